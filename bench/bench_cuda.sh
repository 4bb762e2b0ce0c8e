#!/usr/bin/env bash
# bench/bench_cuda.sh - the GPU benchmark side by side: SegResNet (init_filters 32, 105 classes) on
# 96^3 patches (batch 2) and whole-volume sliding-window inference of a 192x192x160 volume, PyTorch
# (tests/gpu/bench_torch.py: eager f32, AMP f16 + channels-last) vs voxpipe's CUDA backend
# (build/gpu/bench_segresnet: device-resident forward, f32 NCDHW and f16 NDHWC) on the same GPU, same model file (random weights,
# seed 0) and input (seeded), medians as each side reports them; ratio = PyTorch AMP time /
# voxpipe f16 time (> 1: voxpipe faster). Files under bench/out/cuda. Without an NVIDIA GPU: SKIP.
#   usage: bench/bench_cuda.sh        env: PY (python with torch; default .venv/bin/python, else python3)
set -u
cd "$(dirname "$0")/.." || exit 1
OUTD=bench/out/cuda
mkdir -p "$OUTD"
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
    echo "bench_cuda: SKIP: no NVIDIA GPU on this machine"
    exit 0
fi
PY=${PY:-}
[ -z "$PY" ] && { if .venv/bin/python -c 'import torch' 2>/dev/null; then PY=.venv/bin/python; else PY=python3; fi; }
LDLIBS=$(make -s print-ldlibs)
# shellcheck disable=SC2086 # the link line is meant to split into words
make -s gpu-check-build >"$OUTD/build.log" 2>&1 &&
    cc -std=c11 -D_GNU_SOURCE -O2 -Ilib -I/usr/include/nifti -DVP_HAVE_CUDA -o build/gpu/bench_segresnet tests/gpu/bench_segresnet.c \
        build/libvoxpipe.a $LDLIBS >>"$OUTD/build.log" 2>&1 ||
    { echo "bench_cuda: build failed (see $OUTD/build.log)"; exit 1; }
timeout 200 "$PY" tests/gpu/bench_torch.py "$OUTD" 192 192 160 >"$OUTD/torch.txt" 2>"$OUTD/torch.err" ||
    { echo "bench_cuda: bench_torch.py failed:"; tail -3 "$OUTD/torch.err"; exit 1; }
[ -s "$OUTD/segresnet32.safetensors" ] || { cat "$OUTD/torch.txt"; exit 0; } # torch sees no GPU: SKIP line
timeout 200 build/gpu/bench_segresnet "$OUTD/segresnet32.safetensors" 192 192 160 >"$OUTD/voxpipe.txt" 2>"$OUTD/voxpipe.err" ||
    { echo "bench_cuda: bench_segresnet failed:"; tail -3 "$OUTD/voxpipe.err"; }
ms() { grep -h "$1" "$2" | grep -o '[0-9.]* ms' | head -1 | cut -d' ' -f1; }
t_f32=$(ms 'batch 2 eager_f32' "$OUTD/torch.txt"); t_amp=$(ms 'batch 2 amp_f16' "$OUTD/torch.txt"); t_vol=$(ms 'whole volume' "$OUTD/torch.txt")
v_f32=$(ms 'batch 2 f32 NCDHW' "$OUTD/voxpipe.txt"); v_f16=$(ms 'batch 2 f16 NDHWC' "$OUTD/voxpipe.txt")
v_vol=$(ms 'whole volume.*NDHWC' "$OUTD/voxpipe.txt")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0 && b > 0) printf "%.2f", a / b; else printf "n/a" }'; }
echo "GPU: $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)"
printf '%-44s %12s %12s %8s\n' "SegResNet-32, 105 classes" "PyTorch ms" "voxpipe ms" "ratio"
printf '%-44s %12s %12s %8s\n' "96^3 batch 2, f32 (eager / cuda f32 NCDHW)" "${t_f32:-?}" "${v_f32:-?}" "$(ratio "${t_f32:-0}" "${v_f32:-0}")"
printf '%-44s %12s %12s %8s\n' "96^3 batch 2, AMP+CL / cuda f16 NDHWC" "${t_amp:-?}" "${v_f16:-?}" "$(ratio "${t_amp:-0}" "${v_f16:-0}")"
printf '%-44s %12s %12s %8s\n' "whole volume 192x192x160, AMP / f16 NDHWC" "${t_vol:-?}" "${v_vol:-?}" "$(ratio "${t_vol:-0}" "${v_vol:-0}")"
grep -h 'TFLOP/s\|peak' "$OUTD/torch.txt" "$OUTD/voxpipe.txt"
