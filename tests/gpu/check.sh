#!/usr/bin/env bash
# tests/gpu/check.sh - the GPU check, run by hand (or by the device tool) on a machine with an
# NVIDIA GPU; never part of `make test`. Under 5 minutes on one H100. Without a GPU: says SKIP,
# exits 0. Steps (each with its own timeout; a failing step does not stop the others):
#   build    the programs, build/gpu/test_cuda_ops (make gpu-check-build) and the other drivers
#            of tests/gpu against build/libvoxpipe.a (the Makefile's link line: make print-ldlibs)
#   ops      every CUDA op against the reference (f32: max abs 1e-4 or NMSE 1e-7; tf32/f16/bf16
#            convolutions 1e-2 relative), device NCDHW, device NDHWC and host tensors
#   oom      out of device memory: exit code 4, "out of device memory" on stderr, stdout empty
#   grad     the backward ops against nn_grad.h's reference backward ops
#   sliding  the device-side sliding window (aggregation + argmax on the GPU) against nn_sliding.c
#   segresnet the device-resident SegResNet (each math and layout), the host-staged drop-in path
#            and the device sliding window with it, against MONAI's golden outputs
#   infer    infer-ressegnet (and infer-unet when its model works on the CPU) on the shared CT with
#            --backend cuda (f32: labels identical to cpu; VP_CUDA_MATH=f16: agreement reported)
#   bench    tests/gpu/bench_torch.py (PyTorch eager f32/tf32/AMP+channels-last, whole volume) then
#            build/gpu/bench_segresnet (voxpipe device-resident forward in each math and layout,
#            whole volume; same model file and settings) on the same GPU
# and prints a summary for BENCHMARKS.md. Logs go to $OUT (the device tool's output folder) or
# tests/tmp/gpu; big files (model, streams) to tests/tmp/gpu.
#   usage: tests/gpu/check.sh [DATA_DIR]     (default ../shared/data; the CT part SKIPs if absent)
#   env:   SKIP_BENCH=1 (no benchmark), PY=python with torch (default .venv/bin/python, else python3)
set -u
cd "$(dirname "$0")/../.." || exit 1
DATA=${1:-../shared/data}
WORK=tests/tmp/gpu
LOG=${OUT:-$WORK}
mkdir -p "$WORK" "$LOG"
say() { printf '%s\n' "$*"; }

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
    say "gpu check: SKIP: no NVIDIA GPU on this machine (nvidia-smi finds none); nothing run (tests/gpu/emulate.sh checks the backend on the CPU)"
    exit 0
fi
GPU=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -1)
say "gpu check on: $GPU"
T0=$(date +%s)
elapsed() { echo $(($(date +%s) - T0)); }

# ---- build: only what is needed (not `make all`, whose deps step may want the network)
if ! timeout 300 make -j"$(nproc)" bin/infer-ressegnet bin/infer-unet bin/normalize bin/vol-read bin/vol-write gpu-check-build \
    >"$LOG/build.log" 2>&1; then
    say "gpu check: FAIL: build (last lines of $LOG/build.log):"; tail -20 "$LOG/build.log"; exit 1
fi
ls build/lib/cuda/*.o >/dev/null 2>&1 ||
    { say "gpu check: FAIL: the CUDA backend was not built (nvcc/cuDNN not found by the Makefile)"; exit 1; }
LDLIBS=$(make -s print-ldlibs)
for d in test_cuda_grad test_cuda_sliding test_cuda_segresnet bench_segresnet; do
    if ! cc -std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Wno-unused-parameter -Ilib -I/usr/include/nifti -DVP_HAVE_CUDA \
        -o "build/gpu/$d" "tests/gpu/$d.c" build/libvoxpipe.a $LDLIBS >>"$LOG/build.log" 2>&1; then
        say "gpu check: FAIL: build of tests/gpu/$d.c (see $LOG/build.log)"; tail -20 "$LOG/build.log"; exit 1
    fi
done
say "build: ok ($(elapsed) s)"

rc=0
fails=()
step() { # name timeout command...: run, tee the log, record failure
    local name=$1 t=$2; shift 2
    say "== $name"
    timeout "$t" "$@" > >(tee "$LOG/$name.txt") 2>"$LOG/$name.err"
    local e=$?
    sleep 0.2 # let tee finish
    if [ $e -ne 0 ]; then
        say "$name: FAIL (exit $e$([ $e -eq 124 ] && echo ', timed out')); stderr:"; tail -5 "$LOG/$name.err"
        rc=1; fails+=("$name")
    fi
    return $e
}

step ops 150 build/gpu/test_cuda_ops

say "== oom"
build/gpu/test_cuda_ops --oom >"$LOG/oom.out" 2>"$LOG/oom.err"
e=$?
if [ $e -eq 4 ] && grep -q 'out of device memory' "$LOG/oom.err" && [ ! -s "$LOG/oom.out" ]; then
    oom="ok (exit 4, \"$(grep -m1 'out of device memory' "$LOG/oom.err" | cut -c1-110)\", nothing on stdout)"
else
    oom="FAIL (exit $e, stdout $(wc -c <"$LOG/oom.out") bytes, stderr: $(tail -1 "$LOG/oom.err"))"; rc=1; fails+=(oom)
fi
say "oom: $oom"

step grad 90 build/gpu/test_cuda_grad
step sliding 120 build/gpu/test_cuda_sliding
step segresnet 90 build/gpu/test_cuda_segresnet

# ---- inference on the shared CT, cuda vs cpu
say "== infer"
CT="$DATA/totalseg/example_ct_sm.nii.gz"
agree() { # agreement of two label NIfTI files (.nii), as a percentage
    python3 - "$1" "$2" <<'EOF'
import struct, sys
def load(p):
    b = open(p, "rb").read()
    code = struct.unpack_from("<h", b, 70)[0]; off = int(struct.unpack_from("<f", b, 108)[0])
    size = {2: 1, 4: 2, 8: 4, 256: 1, 512: 2, 768: 4}[code]
    return [b[i:i + size] for i in range(off, len(b), size)]
a, b = load(sys.argv[1]), load(sys.argv[2])
print("%.3f" % (100.0 * sum(x == y for x, y in zip(a, b)) / max(len(a), 1)) if len(a) == len(b) else "size differs")
EOF
}
infer_one() { # prog label model extra-args...: runs cpu, cuda, cuda f16; sets $line
    local prog=$1 tag=$2 model=$3; shift 3
    local t_cpu t_cuda s e
    for b in cpu cuda cuda16; do
        rm -f "$WORK/$tag-$b-label.nii"
        s=$(date +%s.%N)
        if [ $b = cuda16 ]; then VP_CUDA_MATH=f16 timeout 120 bin/$prog --backend cuda -m "$model" "$@" -i "$WORK/$tag-in.vxp" -o "$WORK/$tag-$b.vxp" 2>"$LOG/$tag-$b.err"
        else timeout 120 bin/$prog --backend $b -m "$model" "$@" -i "$WORK/$tag-in.vxp" -o "$WORK/$tag-$b.vxp" 2>"$LOG/$tag-$b.err"; fi
        e=$?
        printf -v "t_$b" '%.2f' "$(awk -v a="$s" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')"
        if [ $e -ne 0 ]; then
            [ $b = cpu ] && { line="SKIP (the cpu run failed: $(tail -1 "$LOG/$tag-$b.err"))"; return 0; }
            say "$tag --backend $b: FAIL exit $e:"; tail -3 "$LOG/$tag-$b.err"; rc=1; fails+=("$tag-$b")
            continue
        fi
        bin/vol-write -i "$WORK/$tag-$b.vxp" --vol label -o "$WORK/$tag-$b-{vol}.nii" 2>>"$LOG/$tag-$b.err"
    done
    if [ ! -s "$WORK/$tag-cuda-label.nii" ]; then line="cuda run failed"
    elif cmp -s "$WORK/$tag-cpu-label.nii" "$WORK/$tag-cuda-label.nii"; then line="f32 labels identical"
    else line="f32 labels DIFFER ($(agree "$WORK/$tag-cpu-label.nii" "$WORK/$tag-cuda-label.nii")% agree)"; rc=1; fails+=("$tag")
    fi
    [ -s "$WORK/$tag-cuda16-label.nii" ] && line="$line; f16 math: $(agree "$WORK/$tag-cpu-label.nii" "$WORK/$tag-cuda16-label.nii")% of voxels agree"
    line="$line; wall cpu ${t_cpu:-?} s, cuda ${t_cuda:-?} s, cuda f16 ${t_cuda16:-?} s"
}
if [ ! -f "$CT" ]; then
    seg="skipped (no CT)"; unet="skipped (no CT)"
else
    bin/vol-read "$CT" >"$WORK/seg-in.vxp" || { say "infer: FAIL: vol-read"; exit 1; }
    infer_one infer-ressegnet seg tests/golden/segresnet/model_small.safetensors
    seg="$line (model_small, 122x101x30, host-staged ops)"
    bin/normalize --zscore -i "$WORK/seg-in.vxp" -o "$WORK/unet-in.vxp" 2>"$LOG/normalize.err"
    infer_one infer-unet unet tests/golden/unet/model.safetensors --no-preprocess
    unet="$line"
fi
say "infer-ressegnet: $seg"
say "infer-unet: $unet"

# ---- benchmark: PyTorch then voxpipe, same GPU, same model file
if [ "$(elapsed)" -gt 200 ]; then
    say "== bench: SKIP: $(elapsed) s spent already (the check keeps under 5 minutes; run bench/bench_cuda.sh alone)"
elif [ "${SKIP_BENCH:-0}" != 1 ]; then
    PY=${PY:-}
    [ -z "$PY" ] && { if .venv/bin/python -c 'import torch' 2>/dev/null; then PY=.venv/bin/python; else PY=python3; fi; }
    say "== bench ($(elapsed) s so far; python: $PY)"
    rm -f "$WORK/segresnet32.safetensors"
    if step bench_torch 90 "$PY" tests/gpu/bench_torch.py "$WORK" 192 192 160 && [ -s "$WORK/segresnet32.safetensors" ]; then
        step bench_voxpipe 90 build/gpu/bench_segresnet "$WORK/segresnet32.safetensors" 192 192 160
    fi
fi

say ""
say "---- summary for BENCHMARKS.md ($(date -u +%Y-%m-%d), $(git rev-parse --short HEAD 2>/dev/null), $(elapsed) s)"
say "GPU: $GPU"
grep -h '^device:' "$LOG/ops.txt" 2>/dev/null
say "CUDA ops vs reference: $(grep -h '^cuda ops' "$LOG/ops.txt" 2>/dev/null | sed 's/^cuda ops vs reference: //') (f32: max abs <= 1e-4 or NMSE <= 1e-7; tf32/f16/bf16 conv: 1e-2 relative; device NCDHW, NDHWC, host-staged)"
say "CUDA backward ops vs nn_grad reference: $(grep -h '^cuda backward' "$LOG/grad.txt" 2>/dev/null | sed 's/^.*reference: //')"
say "device sliding window vs CPU: $(grep -h '^cuda sliding window:' "$LOG/sliding.txt" 2>/dev/null | sed 's/^cuda sliding window: //')"
say "device SegResNet vs MONAI: $(grep -h '^cuda segresnet vs MONAI:' "$LOG/segresnet.txt" 2>/dev/null | sed 's/^.*MONAI: //')"
say "out of device memory: $oom"
grep -h '^FAIL' "$LOG"/ops.txt "$LOG"/grad.txt "$LOG"/sliding.txt "$LOG"/segresnet.txt 2>/dev/null | head -20
grep -h '^bench' "$LOG"/ops.txt "$LOG"/sliding.txt 2>/dev/null
say "infer-ressegnet --backend cuda vs cpu: $seg"
say "infer-unet --backend cuda vs cpu: $unet"
grep -h '^torch:' "$LOG/bench_torch.txt" 2>/dev/null
grep -h '^voxpipe:' "$LOG/bench_voxpipe.txt" 2>/dev/null
[ ${#fails[@]} -gt 0 ] && say "failed steps: ${fails[*]}"
say "result: $([ $rc -eq 0 ] && echo PASS || echo FAIL)"
exit $rc
