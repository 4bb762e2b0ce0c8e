#!/usr/bin/env bash
# tests/gpu/emu/infer_unet.sh - part 4 of tests/gpu/emulate.sh (which builds the pretend-device
# objects in R first): infer-unet built against the emulated CUDA backend (filters/infer-unet.c +
# lib/nn_infer_cuda_unet.c + lib/cuda/nn_cuda_unet.cu, nn_cuda_unet_sw.cu), its --backend cuda runs
# compared with its own --backend cpu runs on crops of the shared CT, with the golden ResEnc model
# (tests/golden/resenc: network grid = input grid, labels straight from the device) and the golden
# PlainConvUNet (tests/golden/unet with CT intensity properties added: the image is resampled, so
# the logits come back for nnU-Net's resampling), and its out-of-device-memory path.
#   usage: tests/gpu/emu/infer_unet.sh R SAN(0|1) [DATA_DIR]     exit 0 all pass, 1 a failure
set -u
cd "$(dirname "$0")/../../.." || exit 1
R=$1 SANMAKE=${2:-0} DATA=${3:-../shared/data}
SAN=()
# shellcheck disable=SC2054 # one flag
[ "$SANMAKE" = 1 ] && SAN=(-fsanitize=address,undefined -fno-omit-frame-pointer)
CXX=${CXX:-g++}
PY=${VOXPIPE_PY:-.venv/bin/python}
CT=$DATA/totalseg/example_ct_sm.nii.gz
W=$R/infer_unet
mkdir -p "$W"
if [ ! -f "$CT" ] || [ ! -x bin/vol-read ] || [ ! -x bin/crop ] || [ ! -x bin/vol-cat ]; then
    echo "emulated infer-unet: SKIP (no $CT, or no bin/vol-read, bin/crop, bin/vol-cat: make)"; exit 0
fi
LDLIBS=$(make -s SAN="$SANMAKE" print-ldlibs)
CF=(-std=c11 -D_GNU_SOURCE -O1 -g "${SAN[@]}" -Ilib -I/usr/include/nifti -DVP_HAVE_CUDA)
FL=(-std=c++20 -pthread -O1 -g -w "${SAN[@]}" -Ilib -Ilib/cuda -Itests/gpu/emu -I"${CUDA_HOME:-/usr/local/cuda}/include" -I/usr/include/nifti)
for f in nn_cuda_unet nn_cuda_unet_sw; do
    python3 tests/gpu/emu/prep.py "lib/cuda/$f.cu" emu_rt.h >"$W/$f.cc" && "$CXX" "${FL[@]}" -c -o "$W/$f.o" "$W/$f.cc" || exit 1
done
cc "${CF[@]}" -c -o "$W/infer-unet.o" filters/infer-unet.c || exit 1
cc "${CF[@]}" -c -o "$W/nn_infer_cuda_unet.o" lib/nn_infer_cuda_unet.c || exit 1
# shellcheck disable=SC2086 # the link line is meant to split into words
"$CXX" -pthread "${SAN[@]}" -o "$W/infer-unet" "$W/infer-unet.o" "$W/nn_infer_cuda_unet.o" "$W/nn_cuda_unet.o" "$W/nn_cuda_unet_sw.o" \
    "$R"/nn_cuda*.o "$R/emu_rt.o" "$R/libnostub.a" $LDLIBS || exit 1
P=$W/infer-unet
cc "${CF[@]}" -c -o "$W/test_cuda_unet.o" tests/gpu/test_cuda_unet.c || exit 1
# shellcheck disable=SC2086
"$CXX" -pthread "${SAN[@]}" -o "$W/test_cuda_unet" "$W/test_cuda_unet.o" "$W/nn_infer_cuda_unet.o" "$W/nn_cuda_unet.o" "$W/nn_cuda_unet_sw.o" \
    "$R"/nn_cuda*.o "$R/emu_rt.o" "$R/libnostub.a" $LDLIBS || exit 1
RES=tests/golden/resenc/model.safetensors
# the golden PlainConvUNet has no intensity properties: add the ResEnc's (CTNormalization), and a
# second ResEnc "fold" whose weights differ (every tensor scaled by 1 + 0.05 sin(i)), deterministic
"$PY" tests/scripts/nnunet_raw_e2e.py setmeta tests/golden/unet/model.safetensors "$W/unet.safetensors" intensity_properties \
    '{"0": {"mean": 38.62, "std": 96.79, "percentile_00_5": -595.68, "percentile_99_5": 334.64}}' || exit 1
"$PY" - "$RES" "$W/resenc_f1.safetensors" <<'EOF' || exit 1
import sys, numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file
with safe_open(sys.argv[1], "np") as f:
    meta = f.metadata()
    t = {k: f.get_tensor(k) for k in f.keys()}
for k, v in t.items():
    if v.dtype.kind == "f":
        t[k] = (v * (1 + 0.05 * np.sin(np.arange(v.size, dtype=np.float64))).reshape(v.shape)).astype(v.dtype)
save_file(t, sys.argv[2], metadata=meta)
EOF
UNET=$W/unet.safetensors RES1=$W/resenc_f1.safetensors
# crops of the shared CT (the emulated device is slow, about 30 s per tile on a loaded 2-core
# machine: few tiles): d 44x32x13 (2 x 1 x 2 ResEnc tiles of 40x32x12, overlapping unevenly) and
# c 30x20x8 (smaller than the patch in every axis: zero-padded) in one stream (the device state must
# be clean between cases); b 12x10x8 for the U-Net (resampled to 24x20x8: 2 x 2 x 1 tiles of
# 16x16x8)
bin/vol-read "$CT" >"$W/ct.vxp" || exit 1
bin/crop --box 50,40,10,80,60,18 -i "$W/ct.vxp" -o "$W/c.vxp" && bin/crop --box 42,34,8,86,66,21 -i "$W/ct.vxp" -o "$W/d.vxp" &&
    bin/vol-cat -i "$W/d.vxp" -i "$W/c.vxp" -o "$W/dc.vxp" && bin/crop --box 45,35,8,57,45,16 -i "$W/ct.vxp" -o "$W/b.vxp" || exit 1
rc=0
# the GPU test program itself (f32, both layouts; vs PyTorch's forward and nnU-Net's logits, and the CPU predictor's labels)
out=$("$W/test_cuda_unet" --quick 2>"$W/test_cuda_unet.err"); e=$?
printf '%s\n' "$out" | grep -v '^ok'
echo "emulated test_cuda_unet --quick: exit $e; $(printf '%s\n' "$out" | tail -1); $(grep '^emu:' "$W/test_cuda_unet.err")"
[ $e -eq 0 ] && grep -q ' 0 bad frees' "$W/test_cuda_unet.err" || { rc=1; tail -5 "$W/test_cuda_unet.err"; }
ok() { echo "ok   emulated infer-unet: $*"; }
bad() { echo "FAIL emulated infer-unet: $*"; rc=1; }
live() { sed -n 's/^emu: \([0-9]*\) device allocations live.*/\1/p' "$1"; }
# shellcheck source=tests/gpu/emu/oom_case.sh
. tests/gpu/emu/oom_case.sh
cpu() { # tag input infer-args...: a cpu reference run
    local tag=$1 in=$2; shift 2
    "$P" --backend cpu -i "$W/$in.vxp" -o "$W/$tag.vxp" "$@" 2>"$W/$tag.err" || { bad "cpu run $tag ($*) failed: $(tail -2 "$W/$tag.err")"; exit 1; }
}
run() { # tag ref input compare-args... -- infer args...: a cuda run compared with the cpu run ref
    local tag=$1 ref=$2 in=$3; shift 3
    local cmpa=()
    while [ "$1" != -- ]; do cmpa+=("$1"); shift; done
    shift
    rm -f "$W/$tag.vxp"
    "$P" -v -i "$W/$in.vxp" -o "$W/$tag.vxp" "$@" >"$W/$tag.out" 2>"$W/$tag.err"
    local e=$?
    [ $e -eq 0 ] || { bad "$tag ($*): exit $e: $(grep -v '^emu:' "$W/$tag.err" | tail -2)"; return; }
    [ -s "$W/$tag.out" ] && bad "$tag: $(wc -c <"$W/$tag.out") bytes on stdout"
    grep -q 'device-resident U-Net' "$W/$tag.err" || bad "$tag: the device path was not taken: $(head -3 "$W/$tag.err")"
    grep -q ' 0 bad frees' "$W/$tag.err" || bad "$tag: $(grep '^emu:' "$W/$tag.err")"
    local c
    if c=$("$PY" tests/gpu/emu/compare_infer.py "$W/$ref.vxp" "$W/$tag.vxp" "${cmpa[@]}"); then ok "$tag ($*): $c; $(grep '^emu:' "$W/$tag.err")"
    else bad "$tag ($*): $c"; fi
}
cpu cpu_res dc -m "$RES"
cpu cpu_res32 c -m "$RES" --agg f32
cpu cpu_res16 c -m "$RES"
cpu cpu_folds c -m "$RES" -m "$RES1"
cpu cpu_tta c -m "$RES" --tta
cpu cpu_unet b -m "$UNET"
# control: the comparison does fail on a real difference (the CPU with mirroring)
cpu control dc -m "$RES" --tta
if c=$("$PY" tests/gpu/emu/compare_infer.py "$W/cpu_res.vxp" "$W/control.vxp"); then bad "control: the comparison missed a difference: $c"
else ok "control (cpu --tta vs none): the comparison fails as it should: ${c#compare: FAIL: }"; fi

# EMU_SAN=1 (SAN 1: about 3 times slower) runs the first and the U-Net's only
run res_f16agg cpu_res dc -- --backend cuda -m "$RES"
if [ "$SANMAKE" != 1 ]; then
    run res_f32agg cpu_res32 c -- --backend cuda -m "$RES" --agg f32
    run res_folds cpu_folds c -- --backend cuda -m "$RES" -m "$RES1" --sw-batch 2
    run res_tta cpu_tta c -- --backend cuda -m "$RES" --tta
    run res_tf32 cpu_res16 c -- --backend cuda:0:tf32 -m "$RES"
    grep -q 'NDHWC activations' "$W/res_tf32.err" || bad "tf32 did not choose NDHWC: $(grep device-resident "$W/res_tf32.err")"
fi
run unet_f32 cpu_unet b -- --backend cuda -m "$UNET" --sw-batch 4
grep -q 'NCDHW activations' "$W/res_f16agg.err" || bad "f32 did not choose NCDHW: $(grep device-resident "$W/res_f16agg.err")"
base=$(live "$W/res_f16agg.err")

# out of device memory (EMU_DEVICE_KIB budgets, found by trying; retune them if the backend's
# allocations change): while putting the weights on the device, uploading the case, allocating the
# band, and in the network's forward pass on a tile (everything else is allocated by then). Each: exit 4, the reason on
# stderr, no output, no device memory left behind.
for spec in "100:cannot put the model on the device" "300:for the input image" "400:for the f16 aggregation band" "1000:for activation (1,4,"; do
    oom_case "${spec%%:*}" "${spec#*:}" --backend cuda -m "$RES" -i "$W/dc.vxp"
done
exit $rc
