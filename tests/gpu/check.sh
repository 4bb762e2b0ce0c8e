#!/usr/bin/env bash
# tests/gpu/check.sh - the GPU check, run by hand (or by the device tool) on a machine with an
# NVIDIA GPU; never part of `make test`. Builds the CUDA backend, runs every CUDA op against the
# CPU reference (build/gpu/test_cuda_ops: f32 max abs 1e-4 or NMSE 1e-7, argmax identical), then
# infer-ressegnet on the shared CT with --backend cuda and --backend cpu and compares the labels,
# and prints a summary for BENCHMARKS.md. Under 5 minutes. Without a GPU: says so, exits 0.
#   usage: tests/gpu/check.sh [DATA_DIR]     (default ../shared/data; SKIP the CT part if absent)
set -u
cd "$(dirname "$0")/../.."
DATA=${1:-../shared/data}
OUT=${OUT:-tests/tmp/gpu}
mkdir -p "$OUT"
say() { printf '%s\n' "$*"; }

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
    say "gpu check: SKIP: no NVIDIA GPU on this machine (nvidia-smi finds none); nothing run"
    exit 0
fi
GPU=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -1)
say "gpu check on: $GPU"

# build: only what is needed (not `make all`, whose deps step may want the network)
if ! timeout 240 make -j"$(nproc)" bin/infer-ressegnet bin/vol-read bin/vol-write gpu-check-build >"$OUT/build.log" 2>&1; then
    say "gpu check: FAIL: build (last lines of $OUT/build.log):"; tail -20 "$OUT/build.log"; exit 1
fi
grep -q -- '-DVP_HAVE_CUDA' "$OUT/build.log" || ls build/lib/cuda/*.o >/dev/null 2>&1 ||
    { say "gpu check: FAIL: the CUDA backend was not built (nvcc/cuDNN not found by the Makefile)"; exit 1; }

rc=0
say "== ops against the reference"
timeout 150 build/gpu/test_cuda_ops | tee "$OUT/ops.txt"
ops_rc=${PIPESTATUS[0]}
[ "$ops_rc" -eq 0 ] || { say "ops: FAIL (exit $ops_rc)"; rc=1; }

say "== infer-ressegnet, shared CT, cuda vs cpu"
CT="$DATA/totalseg/example_ct_sm.nii.gz"
MODEL=tests/golden/segresnet/model_small.safetensors
if [ ! -f "$CT" ]; then
    say "infer: SKIP: $CT not found"
    infer="skipped (no CT)"
else
    rm -f "$OUT"/cpu-label.nii "$OUT"/cuda-label.nii
    bin/vol-read "$CT" >"$OUT/ct.vxp" || { say "infer: FAIL: vol-read"; exit 1; }
    for b in cpu cuda; do
        s=$(date +%s.%N)
        timeout 120 bin/infer-ressegnet --backend $b -m "$MODEL" -i "$OUT/ct.vxp" -o "$OUT/$b.vxp" 2>"$OUT/$b.err"
        e=$?
        t=$(awk -v a="$s" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')
        printf -v "t_$b" '%.2f' "$t"
        [ $e -eq 0 ] || { say "infer --backend $b: FAIL exit $e:"; cat "$OUT/$b.err"; rc=1; }
        bin/vol-write -i "$OUT/$b.vxp" --vol label -o "$OUT/$b-{vol}.nii" 2>>"$OUT/$b.err"
    done
    if [ ! -s "$OUT/cuda-label.nii" ] || [ ! -s "$OUT/cpu-label.nii" ]; then infer="a run failed (see above)"; rc=1
    elif cmp -s "$OUT/cpu-label.nii" "$OUT/cuda-label.nii"; then infer="labels identical"
    else infer="labels DIFFER"; rc=1; fi
    infer="$infer; wall cpu ${t_cpu:-?} s, cuda ${t_cuda:-?} s (cuda: host-staged ops, model_small, 122x101x30)"
    say "infer: $infer"
fi

say ""
say "---- summary for BENCHMARKS.md ($(date -u +%Y-%m-%d), $(git rev-parse --short HEAD 2>/dev/null))"
say "GPU: $GPU"
grep '^device:' "$OUT/ops.txt"
say "CUDA ops vs reference: $(grep '^cuda ops' "$OUT/ops.txt" | sed 's/^cuda ops vs reference: //') (f32: max abs <= 1e-4 or NMSE <= 1e-7; device and host-staged tensors)"
grep '^FAIL' "$OUT/ops.txt"
grep '^bench' "$OUT/ops.txt"
say "infer-ressegnet --backend cuda vs cpu: $infer"
say "result: $([ $rc -eq 0 ] && echo PASS || echo FAIL)"
exit $rc
