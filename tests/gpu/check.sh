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
#   infer    infer-ressegnet on the shared CT (two cases in one stream) with the golden SegResNet:
#            --backend cuda (device-resident SegResNet + device sliding window, f32 NCDHW; also
#            --sw-batch 3) must give labels identical to --backend cpu; cuda:0:tf32 (NDHWC) and
#            cuda:0:f16 --aggregate f16 report their agreement; every cuda run must have taken the
#            device path (its -v log says so). infer-unet likewise (host-staged ops) when its
#            model works on the CPU
#   bench    tests/gpu/bench_torch.py (PyTorch eager f32/tf32/AMP+channels-last, whole volume) then
#            build/gpu/bench_segresnet (voxpipe device-resident forward in each math and layout,
#            whole volume; same model file and settings) on the same GPU, then
#            tests/gpu/whole_volume.sh: infer-ressegnet itself on a volume of bench_torch.py's
#            size (f16+f16 band, tf32, f32), time per case against PyTorch's whole-volume line
#   others   every other executable tests/gpu/check_*.sh but check_train.sh (check_review.sh,
#            check_unet.sh, check_pipeline.sh, check_train_state.sh, ... when present), unless
#            VP_GPU_NO_SUBCHECKS=1 (tests/gpu/device_check.sh runs them itself, each in its budget)
# and prints a summary for BENCHMARKS.md. Logs go to $OUT (the device tool's output folder) or
# tests/tmp/gpu; big files (model, streams) to tests/tmp/gpu.
#   usage: tests/gpu/check.sh [DATA_DIR]     (default ../shared/data; the CT part SKIPs if absent)
#   env:   SKIP_BENCH=1 (no benchmark), PY=python with torch (default .venv/bin/python, else python3)
#          VP_GPU_PACK=DIR  use the prebuilt binaries of a pack (tests/gpu/pack.sh; on the device
#                  machine, through tests/gpu/device_check.sh): nothing is built; bin/ and build/gpu/
#                  are links into the pack (tests/gpu/pack_env.sh). Unset: build here (tests/gpu/build.sh)
#          VP_GPU_ONLY="ops oom grad sliding segresnet infer bench others"  run only these steps
#          VP_GPU_DEADLINE=EPOCH  clip every step's timeout to end by then; skip steps past it
set -u
cd "$(dirname "$0")/../.." || exit 1
PY_ASKED=${PY:-}
. tests/gpu/common.sh
DATA=${1:-../shared/data}
want() { case " ${VP_GPU_ONLY:-ops oom grad sliding segresnet infer bench others} " in *" $1 "*) return 0 ;; esac; return 1; }
tmo() { # N: N seconds, or what is left before VP_GPU_DEADLINE if less (at least 1)
    local t=$1 l
    [ -n "${VP_GPU_DEADLINE:-}" ] && { l=$((VP_GPU_DEADLINE - $(date +%s))); [ "$l" -lt "$t" ] && t=$l; }
    [ "$t" -lt 1 ] && t=1
    echo "$t"
}
WORK=tests/tmp/gpu
LOG=${OUT:-$WORK}
mkdir -p "$WORK" "$LOG"

need_gpu "gpu check: SKIP: no NVIDIA GPU on this machine (nvidia-smi finds none); nothing run (tests/gpu/emulate.sh checks the backend on the CPU)"
GPU=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -1)
say "gpu check on: $GPU"
T0=$(date +%s)
elapsed() { echo $(($(date +%s) - T0)); }

# ---- build: only what is needed (not `make all`, whose deps step may want the network), or the pack's
if [ -n "${VP_GPU_PACK:-}" ]; then
    # shellcheck source=tests/gpu/pack_env.sh
    . tests/gpu/pack_env.sh
    vp_pack_setup || { say "gpu check: FAIL: the pack $VP_GPU_PACK cannot be used"; exit 1; }
    for f in bin/infer-ressegnet bin/infer-unet bin/normalize bin/vol-read bin/vol-write build/gpu/test_cuda_ops \
        build/gpu/test_cuda_grad build/gpu/test_cuda_sliding build/gpu/test_cuda_segresnet build/gpu/bench_segresnet; do
        [ -x "$f" ] || { say "gpu check: FAIL: $f is not in the pack $VP_GPU_PACK (rebuild it: tests/gpu/pack.sh)"; exit 1; }
    done
    say "build: none: the pack's binaries ($(sed -n 2,3p "$VP_GPU_PACK/MANIFEST" | paste -sd';'))"
else
    : >"$LOG/build.log"
    JOBS=$(nproc) tests/gpu/build.sh check "$LOG/build.log" || { say "gpu check: FAIL: build (see $LOG/build.log)"; exit 1; }
    say "build: ok ($(elapsed) s)"
fi

rc=0
step() { # name timeout command...: run, tee the log, record failure
    local name=$1 t; t=$(tmo "$2"); shift 2
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

want ops && step ops 150 build/gpu/test_cuda_ops

oom="not run"
if want oom; then
say "== oom"
timeout "$(tmo 60)" build/gpu/test_cuda_ops --oom >"$LOG/oom.out" 2>"$LOG/oom.err"
e=$?
if [ $e -eq 4 ] && grep -q 'out of device memory' "$LOG/oom.err" && [ ! -s "$LOG/oom.out" ]; then
    oom="ok (exit 4, \"$(grep -m1 'out of device memory' "$LOG/oom.err" | cut -c1-110)\", nothing on stdout)"
else
    oom="FAIL (exit $e, stdout $(wc -c <"$LOG/oom.out") bytes, stderr: $(tail -1 "$LOG/oom.err"))"; rc=1; fails+=(oom)
fi
say "oom: $oom"
fi

want grad && step grad 90 build/gpu/test_cuda_grad
want sliding && step sliding 120 build/gpu/test_cuda_sliding
want segresnet && step segresnet 90 build/gpu/test_cuda_segresnet

# ---- inference on the shared CT, cuda vs cpu
want infer && say "== infer"
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
infer_one() { # prog tag model "VARIANTS" extra-args...: sets $line. VARIANTS: space-separated
    # NAME=BACKEND[,ARG...]; the first is the reference (cpu); a NAME ending in ! must give labels
    # identical to it (f32 math), the others report their agreement
    local prog=$1 tag=$2 model=$3 vars=$4; shift 4
    local v name be s e t ref="" args
    line=""
    for v in $vars; do
        name=${v%%=*}; IFS=, read -r -a args <<<"${v#*=}"; be=${args[0]}; args=("${args[@]:1}")
        local f=${name%!}
        rm -f "$WORK/$tag-$f-label.nii" "$WORK/$tag-$f.vxp"
        s=$(date +%s.%N)
        timeout "$(tmo 120)" "bin/$prog" -v --backend "$be" "${args[@]}" -m "$model" "$@" -i "$WORK/$tag-in.vxp" -o "$WORK/$tag-$f.vxp" 2>"$LOG/$tag-$f.err"
        e=$?
        t=$(awk -v a="$s" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
        if [ $e -ne 0 ]; then
            [ -z "$ref" ] && { line="SKIP (the $be run failed: $(tail -1 "$LOG/$tag-$f.err"))"; return 0; }
            say "$tag --backend $be ${args[*]}: FAIL exit $e:"; tail -3 "$LOG/$tag-$f.err"; rc=1; fails+=("$tag-$f")
            line="$line; $f ($be ${args[*]}): FAILED exit $e"
            continue
        fi
        bin/vol-write -i "$WORK/$tag-$f.vxp" --vol label -o "$WORK/$tag-$f-{vol}.nii" 2>>"$LOG/$tag-$f.err"
        if [ -z "$ref" ]; then ref=$f; line="$f $t s"; continue; fi
        local how pk
        pk=$(sed -n 's/.*device memory peak \([0-9.]*\) MiB.*/\1/p' "$LOG/$tag-$f.err" | sort -g | tail -1)
        if cmp -s "$WORK/$tag-$ref-label.nii" "$WORK/$tag-$f-label.nii"; then how="labels identical"
        else
            how="$(agree "$WORK/$tag-$ref-label.nii" "$WORK/$tag-$f-label.nii")% of labels agree"
            [ "$name" != "$f" ] && { how="labels DIFFER: $how"; rc=1; fails+=("$tag-$f"); }
        fi
        if [ "$prog" = infer-ressegnet ] && ! grep -q 'device-resident SegResNet' "$LOG/$tag-$f.err"; then
            how="$how, NOT the device path"; rc=1; fails+=("$tag-$f-path")
        fi
        line="$line; $f ($be ${args[*]}): $how, $t s${pk:+, device peak $pk MiB}"
    done
}
if ! want infer; then
    seg="not run"; unet="not run"
elif [ ! -f "$CT" ]; then
    seg="skipped (no CT)"; unet="skipped (no CT)"
else
    bin/vol-read "$CT" "$CT" >"$WORK/seg-in.vxp" || { say "infer: FAIL: vol-read"; exit 1; } # two cases
    infer_one infer-ressegnet seg tests/golden/segresnet/model_small.safetensors \
        "cpu=cpu cuda!=cuda cuda-b3!=cuda,--sw-batch,3 tf32=cuda:0:tf32,--sw-batch,3 f16=cuda:0:f16,--aggregate,f16,--sw-batch,3"
    seg="$line (model_small, shared CT 122x101x30 twice, device-resident SegResNet + device sliding window)"
    bin/vol-read "$CT" >"$WORK/unet1.vxp" && bin/normalize --zscore -i "$WORK/unet1.vxp" -o "$WORK/unet-in.vxp" 2>"$LOG/normalize.err"
    infer_one infer-unet unet tests/golden/unet/model.safetensors "cpu=cpu cuda!=cuda f16=cuda:0:f16" --no-preprocess
    unet="$line (device-resident U-Net + nnU-Net sliding window on the device)"
fi
want infer && say "infer-ressegnet: $seg" && say "infer-unet: $unet"

# ---- benchmark: PyTorch then voxpipe, same GPU, same model file
if ! want bench || [ "${SKIP_BENCH:-0}" = 1 ]; then
    :
elif [ "$(elapsed)" -gt 200 ] || [ "$(tmo 999)" -lt 60 ]; then
    say "== bench: SKIP: $(elapsed) s spent already, $(tmo 999) s left (the check keeps under 5 minutes; VP_GPU_ONLY=bench runs it alone)"
else
    PY=$PY_ASKED
    [ -z "$PY" ] && { if .venv/bin/python -c 'import torch' 2>/dev/null; then PY=.venv/bin/python; else PY=python3; fi; }
    say "== bench ($(elapsed) s so far; python: $PY)"
    rm -f "$WORK/segresnet32.safetensors"
    if step bench_torch 90 "$PY" tests/gpu/bench_torch.py "$WORK" 192 192 160 && [ -s "$WORK/segresnet32.safetensors" ]; then
        step bench_voxpipe 90 build/gpu/bench_segresnet "$WORK/segresnet32.safetensors" 192 192 160
        step whole 150 tests/gpu/whole_volume.sh "$WORK" 192 192 160
    fi
fi

# ---- the other real-GPU checks (unless tests/gpu/device_check.sh runs them itself)
subs=()
if want others && [ "${VP_GPU_NO_SUBCHECKS:-0}" != 1 ]; then
    for f in tests/gpu/check_*.sh; do
        [ "$f" = tests/gpu/check_train.sh ] && continue
        if [ -x "$f" ]; then
            n=$(basename "$f" .sh)
            step "$n" 180 "$f" && subs+=("$n: PASS") || subs+=("$n: FAIL")
        fi
    done
fi

say ""
say "---- summary for BENCHMARKS.md ($(date -u +%Y-%m-%d), $(git rev-parse --short HEAD 2>/dev/null || sed -n 's/^commit: \([0-9a-f]\{9\}\).*/\1 (pack)/p' "${VP_GPU_PACK:-.}/MANIFEST" 2>/dev/null), $(elapsed) s)"
say "GPU: $GPU"
want ops && grep -h '^device:' "$LOG/ops.txt" 2>/dev/null
want ops && say "CUDA ops vs reference: $(grep -h '^cuda ops' "$LOG/ops.txt" 2>/dev/null | sed 's/^cuda ops vs reference: //') (f32: max abs <= 1e-4 or NMSE <= 1e-7; tf32/f16/bf16 conv: 1e-2 relative; device NCDHW, NDHWC, host-staged)"
want grad && say "CUDA backward ops vs nn_grad reference: $(grep -h '^cuda backward' "$LOG/grad.txt" 2>/dev/null | sed 's/^.*reference: //')"
want sliding && say "device sliding window vs CPU: $(grep -h '^cuda sliding window:' "$LOG/sliding.txt" 2>/dev/null | sed 's/^cuda sliding window: //')"
want segresnet && say "device SegResNet vs MONAI: $(grep -h '^cuda segresnet vs MONAI:' "$LOG/segresnet.txt" 2>/dev/null | sed 's/^.*MONAI: //')"
want oom && say "out of device memory: $oom"
grep -h '^FAIL' "$LOG"/ops.txt "$LOG"/grad.txt "$LOG"/sliding.txt "$LOG"/segresnet.txt 2>/dev/null | head -20
grep -h '^bench' "$LOG"/ops.txt "$LOG"/sliding.txt 2>/dev/null
want infer && say "infer-ressegnet --backend cuda vs cpu: $seg"
want infer && say "infer-unet --backend cuda vs cpu: $unet"
grep -h '^torch:' "$LOG/bench_torch.txt" 2>/dev/null
grep -h '^voxpipe:' "$LOG/bench_voxpipe.txt" "$LOG/whole.txt" 2>/dev/null
[ ${#subs[@]} -gt 0 ] && say "other checks: ${subs[*]}"
[ ${#fails[@]} -gt 0 ] && say "failed steps: ${fails[*]}"
say "result: $([ $rc -eq 0 ] && echo PASS || echo FAIL)"
exit $rc
