#!/usr/bin/env bash
# tests/gpu/emu/infer_unet.sh - part 4 of tests/gpu/emulate.sh (which builds the pretend-device
# objects in R first): infer-unet built against the emulated CUDA backend (filters/infer-unet.c +
# lib/nn_infer_cuda_unet.c + lib/cuda/nn_cuda_unet.cu, nn_cuda_unet_sw.cu), its --backend cuda runs
# compared with its own --backend cpu runs on crops of the shared CT, with the golden ResEnc model
# (tests/golden/resenc: network grid = input grid, labels straight from the device) and the golden
# PlainConvUNet (tests/golden/unet with CT intensity properties added: the image is resampled, so
# the logits come back for nnU-Net's resampling), its tiled fallback (the case kept on the host,
# slabs of patch-depth rows uploaded, labels back band by band: forced by VP_CUDA_MEM_LIMIT_MIB=1
# for the ResEnc with the f16 band, the U-Net (f32 band, logits back), --tta and two folds, each
# equal voxel for voxel to the whole-volume cuda run and to --backend cpu; chosen by itself under a
# small emulated device), and its out-of-device-memory paths (one tile batch that cannot fit even
# on the tiled path included).
#   usage: tests/gpu/emu/infer_unet.sh R SAN(0|1) [DATA_DIR]     exit 0 all pass, 1 a failure
#   env:   EMU_UNET_ONLY=tiled  only the runs the tiled, prefetch and out-of-memory checks need (and
#          those checks); EMU_UNET_ONLY=prefetch  only the --prefetch and out-of-memory checks
set -u
cd "$(dirname "$0")/../../.." || exit 1
. tests/gpu/emu/setup.sh "emulated infer-unet" infer_unet "$@"
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
ONLY=${EMU_UNET_ONLY:-all}
ok() { echo "ok   emulated infer-unet: $*"; }
bad() { echo "FAIL emulated infer-unet: $*"; rc=1; }
if [ "$ONLY" = all ]; then
# the GPU test program itself (f32, both layouts; vs PyTorch's forward and nnU-Net's logits, and the CPU predictor's labels)
out=$("$W/test_cuda_unet" --quick 2>"$W/test_cuda_unet.err"); e=$?
printf '%s\n' "$out" | grep -v '^ok'
echo "emulated test_cuda_unet --quick: exit $e; $(printf '%s\n' "$out" | tail -1); $(grep '^emu:' "$W/test_cuda_unet.err")"
if [ $e -ne 0 ] || ! grep -q ' 0 bad frees' "$W/test_cuda_unet.err"; then rc=1; tail -5 "$W/test_cuda_unet.err"; fi
fi
live() { sed -n 's/^emu: \([0-9]*\) device allocations live.*/\1/p' "$1"; }
# shellcheck source=tests/gpu/emu/oom_case.sh
. tests/gpu/emu/oom_case.sh
cpu() { # tag input infer-args...: a cpu reference run
    local tag=$1 in=$2; shift 2
    "$P" --backend cpu -i "$W/$in.vxp" -o "$W/$tag.vxp" "$@" 2>"$W/$tag.err" || { bad "cpu run $tag ($*) failed: $(tail -2 "$W/$tag.err")"; exit 1; }
}
ncases() { "$PY" -c 'import sys; sys.path.insert(0, "tests/scripts"); import vxp; print(len(list(vxp.read(open(sys.argv[1], "rb")))))' "$1"; }
run() { # tag ref input compare-args... -- infer args...: a cuda run compared with the cpu run ref;
    # env TILED=N: N cases must take the tiled path (default 0: every case whole on the device)
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
    local nt nw n
    nt=$(grep -c 'tiled path (the case did not fit on the device)' "$W/$tag.err") nw=$(grep -c 'whole volume on the device' "$W/$tag.err")
    n=$(ncases "$W/$in.vxp")
    if [ "$nt" != "${TILED:-0}" ] || [ $((nt + nw)) != "$n" ]; then
        bad "$tag: $nt of $n cases took the tiled path, $nw the whole-volume path (expected ${TILED:-0} tiled)"
    fi
    local c
    if c=$("$PY" tests/gpu/emu/compare_infer.py "$W/$ref.vxp" "$W/$tag.vxp" "${cmpa[@]}"); then ok "$tag ($*): $c; $nt/$n cases tiled; $(grep '^emu:' "$W/$tag.err")"
    else bad "$tag ($*): $c"; fi
}
same_as() { # tag whole: the tiled run's labels equal the whole-volume cuda run's voxel for voxel
    local c
    if [ ! -s "$W/$1.vxp" ] || [ ! -s "$W/$2.vxp" ]; then bad "$1 vs $2: an output is missing"
    elif c=$("$PY" tests/gpu/emu/compare_infer.py "$W/$2.vxp" "$W/$1.vxp"); then ok "$1 == $2 (the whole-volume cuda run): $c"
    else bad "$1 vs $2 (the whole-volume cuda run): $c"; fi
}
prefetch_checks() {
    # --prefetch on (the default for cuda: the next case read and preprocessed on a reader thread while
    # this one runs) and off on b twice in one stream, whole and tiled: the same stream but for the
    # recorded option (control: it does differ there), the cpu's labels, -v says so only when on
    "$PY" - "$W/b.vxp" "$W/bb.vxp" <<'PYEOF' || bad "cannot make the two-case stream"
import sys
sys.path.insert(0, "tests/scripts")
import vxp
c = list(vxp.read(open(sys.argv[1], "rb")))
c2 = [dict(x) for x in c]
for x in c2:
    x["id"] = x["id"] + "_2"
vxp.write(open(sys.argv[2], "wb"), c + c2)
PYEOF
    "$P" --backend cpu -i "$W/bb.vxp" -o "$W/cpu_bb.vxp" -m "$UNET" 2>"$W/cpu_bb.err" || bad "cpu run on bb failed: $(tail -2 "$W/cpu_bb.err")"
    for lim in "" 1; do
        t=pf${lim:+_tiled} nt=0
        [ -n "$lim" ] && nt=2
        VP_CUDA_MEM_LIMIT_MIB=$lim TILED=$nt run "${t}_on" cpu_bb bb -- --backend cuda -m "$UNET" --sw-batch 4 --prefetch on
        VP_CUDA_MEM_LIMIT_MIB=$lim TILED=$nt run "${t}_off" cpu_bb bb -- --backend cuda -m "$UNET" --sw-batch 4 --prefetch off
        same=$("$PY" tests/gpu/emu/same_stream.py "$W/${t}_on.vxp" "$W/${t}_off.vxp" --drop-opt --prefetch)
        ctl=$("$PY" tests/gpu/emu/same_stream.py "$W/${t}_on.vxp" "$W/${t}_off.vxp")
        if [ "$same" = "same: 2 objects" ] && [ "${ctl%%:*}" = differ ] && grep -q -- '--prefetch on: the next case is read' "$W/${t}_on.err" &&
            ! grep -q -- '--prefetch on' "$W/${t}_off.err"; then
            ok "$t: --prefetch on == off but the recorded option ($same; control without dropping it: $ctl)"
        else bad "$t: --prefetch on vs off: $same (control: $ctl); -v on/off: $(grep -c -- '--prefetch on' "$W/${t}_on.err")/$(grep -c -- '--prefetch on' "$W/${t}_off.err")"; fi
    done
}
oom_checks() {
    # out of device memory (EMU_DEVICE_KIB budgets, found by trying; retune them if the backend's
    # allocations change): while putting the weights on the device, allocating the band, the slab of the
    # image and the band of labels (below 64 MiB the estimate always picks the tiled path), and in the
    # network's forward pass on one tile of the tiled path (even one tile batch does not fit: -v must
    # say the tiled path was chosen). Each: exit 4, the reason on stderr, no output, no device memory left behind.
    for spec in "100:cannot put the model on the device" "300:for the f16 aggregation band" "450:for a slab of the input image" \
        "500:for a band of labels" "1000:for activation (1,4,"; do
        oom_case "${spec%%:*}" "${spec#*:}" -v --backend cuda -m "$RES" -i "$W/dc.vxp"
    done
    grep -q 'tiled, slabs of 12 rows' "$W/oom1000.err" || bad "out of device memory at 1000 KiB: the tiled path was not chosen first: $(grep -m1 tiled "$W/oom1000.err")"
}
if [ "$ONLY" = prefetch ]; then
    prefetch_checks
    base=$(live "$W/pf_off.err")
    oom_checks
    exit $rc
fi

cpu cpu_res dc -m "$RES"
cpu cpu_folds c -m "$RES" -m "$RES1"
cpu cpu_tta c -m "$RES" --tta
cpu cpu_unet b -m "$UNET"
cpu cpu_unet32 b -m "$UNET" --agg f32
if [ "$ONLY" = all ]; then
cpu cpu_res32 c -m "$RES" --agg f32
cpu cpu_res16 c -m "$RES"
# control: the comparison does fail on a real difference (the CPU with mirroring)
cpu control dc -m "$RES" --tta
if c=$("$PY" tests/gpu/emu/compare_infer.py "$W/cpu_res.vxp" "$W/control.vxp"); then bad "control: the comparison missed a difference: $c"
else ok "control (cpu --tta vs none): the comparison fails as it should: ${c#compare: FAIL: }"; fi
fi

# EMU_SAN=1 (SAN 1: about 3 times slower) runs the first and the U-Net's only (and their tiled twins)
run res_f16agg cpu_res dc -- --backend cuda -m "$RES"
if [ "$SANMAKE" != 1 ]; then
    [ "$ONLY" = all ] && run res_f32agg cpu_res32 c -- --backend cuda -m "$RES" --agg f32
    run res_folds cpu_folds c -- --backend cuda -m "$RES" -m "$RES1" --sw-batch 2
    run res_tta cpu_tta c -- --backend cuda -m "$RES" --tta
    if [ "$ONLY" = all ]; then
        run res_tf32 cpu_res16 c -- --backend cuda:0:tf32 -m "$RES"
        grep -q 'NDHWC activations' "$W/res_tf32.err" || bad "tf32 did not choose NDHWC: $(grep device-resident "$W/res_tf32.err")"
    fi
fi
run unet_f32 cpu_unet b -- --backend cuda -m "$UNET" --sw-batch 4
grep -q 'NCDHW activations' "$W/res_f16agg.err" || bad "f32 did not choose NCDHW: $(grep device-resident "$W/res_f16agg.err")"
base=$(live "$W/res_f16agg.err")

# the tiled path (the case kept on the host, the slab of 12 (ResEnc) / 8 (U-Net) rows one d-row of
# tiles reads uploaded, the labels back band by band), forced by a budget no case fits
# (VP_CUDA_MEM_LIMIT_MIB=1): the ResEnc with its f16 band on d and c in one stream (d: 13 rows, two
# slabs, a band of 1 then of 12 label rows; c: smaller than the patch), the U-Net with an f32 band
# (resampled: the logits come back), --tta and two folds: each equal to the cpu's labels and to the
# whole-volume cuda run's voxel for voxel
VP_CUDA_MEM_LIMIT_MIB=1 TILED=2 run res_tiled cpu_res dc -- --backend cuda -m "$RES"
same_as res_tiled res_f16agg
grep -q 'tiled, slabs of 12 rows' "$W/res_tiled.err" || bad "res_tiled: -v does not say 'tiled, slabs of 12 rows': $(grep -m2 'tiled' "$W/res_tiled.err")"
VP_CUDA_MEM_LIMIT_MIB=1 TILED=1 run unet_tiled cpu_unet b -- --backend cuda -m "$UNET" --sw-batch 4
same_as unet_tiled unet_f32
VP_CUDA_MEM_LIMIT_MIB=1 TILED=1 run unet_tiled32 cpu_unet32 b -- --backend cuda -m "$UNET" --sw-batch 3 --agg f32
if [ "$SANMAKE" != 1 ]; then
    VP_CUDA_MEM_LIMIT_MIB=1 TILED=1 run res_tiled_tta cpu_tta c -- --backend cuda -m "$RES" --tta
    same_as res_tiled_tta res_tta
    VP_CUDA_MEM_LIMIT_MIB=1 TILED=1 run res_tiled_folds cpu_folds c -- --backend cuda -m "$RES" -m "$RES1" --sw-batch 2
    same_as res_tiled_folds res_folds
fi
# chosen by itself: on a 3 MiB device the case's buffers fit but the estimate of one tile batch's
# needs does not (the 4 GiB device above kept every case whole: run's default check)
EMU_DEVICE_KIB=3072 TILED=2 run res_auto cpu_res dc -- --backend cuda -m "$RES" --sw-batch 2
grep -q 'exceed the .* MiB available: tiled' "$W/res_auto.err" || bad "res_auto: -v does not give the reason: $(grep -m1 'tiled' "$W/res_auto.err")"

prefetch_checks
oom_checks
exit $rc
