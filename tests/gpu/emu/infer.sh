#!/usr/bin/env bash
# tests/gpu/emu/infer.sh - part 3 of tests/gpu/emulate.sh (which builds the pretend-device objects
# in R first): infer-ressegnet built against the emulated CUDA backend, its --backend cuda runs
# compared with its own --backend cpu run on the shared CT (also the tiled path, taken when the
# case does not fit, and a deconv SegResNet), and its out-of-device-memory path.
#   usage: tests/gpu/emu/infer.sh R SAN(0|1) [DATA_DIR]     exit 0 all pass, 1 a failure
set -u
cd "$(dirname "$0")/../../.." || exit 1
R=$1 SANMAKE=${2:-0} DATA=${3:-../shared/data}
SAN=()
# shellcheck disable=SC2054 # one flag
[ "$SANMAKE" = 1 ] && SAN=(-fsanitize=address,undefined -fno-omit-frame-pointer)
CXX=${CXX:-g++}
PY=${VOXPIPE_PY:-.venv/bin/python}
CT=$DATA/totalseg/example_ct_sm.nii.gz
M=tests/golden/segresnet/model_small.safetensors
W=$R/infer
mkdir -p "$W"
if [ ! -f "$CT" ] || [ ! -x bin/vol-read ] || [ ! -x bin/crop ] || [ ! -x bin/vol-cat ]; then
    echo "emulated infer-ressegnet: SKIP (no $CT, or no bin/vol-read, bin/crop, bin/vol-cat: make)"; exit 0
fi
LDLIBS=$(make -s SAN="$SANMAKE" print-ldlibs)
CF=(-std=c11 -D_GNU_SOURCE -O1 -g "${SAN[@]}" -Ilib -I/usr/include/nifti -DVP_HAVE_CUDA)
cc "${CF[@]}" -c -o "$W/infer-ressegnet.o" filters/infer-ressegnet.c || exit 1
cc "${CF[@]}" -c -o "$W/nn_infer_cuda.o" lib/nn_infer_cuda.c || exit 1
# shellcheck disable=SC2086 # the link line is meant to split into words
"$CXX" -pthread "${SAN[@]}" -o "$W/infer-ressegnet" "$W/infer-ressegnet.o" "$W/nn_infer_cuda.o" "$R"/nn_cuda*.o "$R/emu_rt.o" \
    "$R/libnostub.a" $LDLIBS || exit 1
P=$W/infer-ressegnet
# two crops of the shared CT in one stream (the emulated device is slow: its kernels' threads are
# real threads): 30x27x14 (3 x 2 x 2 windows of 16x16x8 at overlap 0.25, overlapping unevenly)
# and 20x14x6 (smaller than the window in y and z: padded); the device state must be clean
# between cases
bin/vol-read "$CT" >"$W/ct.vxp" || exit 1
bin/crop --box 40,30,6,70,57,20 -i "$W/ct.vxp" -o "$W/a.vxp" && bin/crop --box 50,40,10,70,54,16 -i "$W/ct.vxp" -o "$W/b.vxp" &&
    bin/vol-cat -i "$W/a.vxp" -i "$W/b.vxp" -o "$W/ct2.vxp" || exit 1
rc=0
ok() { echo "ok   emulated infer-ressegnet: $*"; }
bad() { echo "FAIL emulated infer-ressegnet: $*"; rc=1; }
live() { sed -n 's/^emu: \([0-9]*\) device allocations live.*/\1/p' "$1"; }

"$P" --backend cpu --prob --overlap 0.25 -m "$M" -i "$W/ct2.vxp" -o "$W/cpu.vxp" 2>"$W/cpu.err" || { bad "the cpu run failed: $(tail -2 "$W/cpu.err")"; exit 1; }
# control: the comparison does fail on a real difference (the CPU with constant blending)
"$P" --backend cpu --prob --overlap 0.25 --blend constant -m "$M" -i "$W/ct2.vxp" -o "$W/control.vxp" 2>"$W/control.err" &&
    if c=$("$PY" tests/gpu/emu/compare_infer.py "$W/cpu.vxp" "$W/control.vxp"); then bad "control: the comparison missed a difference: $c"
    else ok "control (cpu --blend constant vs gaussian): the comparison fails as it should: ${c#compare: FAIL: }"; fi
run() { # tag compare-args... -- infer args...: a cuda run compared with the cpu run ($REF, default cpu.vxp)
    local tag=$1; shift
    local ref=${REF:-$W/cpu.vxp} in=${IN:-$W/ct2.vxp} model=${MODEL:-$M}
    local cmpa=()
    while [ "$1" != -- ]; do cmpa+=("$1"); shift; done
    shift
    rm -f "$W/$tag.vxp"
    "$P" -v --overlap 0.25 -m "$model" -i "$in" -o "$W/$tag.vxp" "$@" >"$W/$tag.out" 2>"$W/$tag.err"
    local e=$?
    [ $e -eq 0 ] || { bad "$tag ($*): exit $e: $(grep -v '^emu:' "$W/$tag.err" | tail -2)"; return; }
    [ -s "$W/$tag.out" ] && bad "$tag: $(wc -c <"$W/$tag.out") bytes on stdout"
    grep -q 'device-resident SegResNet' "$W/$tag.err" || bad "$tag: the device path was not taken: $(head -3 "$W/$tag.err")"
    grep -q ' 0 bad frees' "$W/$tag.err" || bad "$tag: $(grep '^emu:' "$W/$tag.err")"
    local c
    if c=$("$PY" tests/gpu/emu/compare_infer.py "$ref" "$W/$tag.vxp" "${cmpa[@]}"); then ok "$tag ($*): $c; $(grep '^emu:' "$W/$tag.err")"
    else bad "$tag ($*): $c"; fi
}
run f32 -- --backend cuda --prob
run tf32 -- --backend cuda:0:tf32 --sw-batch 3 --prob
run f16band --agree 99.9 --prob-tol 2e-3 -- --backend cuda --aggregate f16 --prob
grep -q 'NDHWC activations' "$W/tf32.err" || bad "tf32 did not choose NDHWC: $(grep device-resident "$W/tf32.err")"
grep -q 'NCDHW activations' "$W/f32.err" || bad "f32 did not choose NCDHW: $(grep device-resident "$W/f32.err")"
base=$(live "$W/f32.err")
grep -q 'whole volume on the device' "$W/f32.err" || bad "f32 did not keep the whole case on the device: $(grep "case '" "$W/f32.err" | head -2)"

# the tiled path (the case kept on the host, slabs of 16 rows uploaded, labels back band by band):
# forced by a budget the case cannot fit (VP_CUDA_MEM_LIMIT_MIB), and by the device's real memory
# (EMU_DEVICE_KIB: the case's buffers fit, the estimate for the network's activations does not);
# both must say so under -v and give the cpu's labels
VP_CUDA_MEM_LIMIT_MIB=1 run tiled -- --backend cuda --prob
VP_CUDA_MEM_LIMIT_MIB=1 run tiled_tf32 -- --backend cuda:0:tf32 --sw-batch 3 --prob
EMU_DEVICE_KIB=3072 run tiled_emu -- --backend cuda --sw-batch 2 --prob
for t in tiled tiled_tf32 tiled_emu; do
    { [ "$(grep -c 'tiled path (the case did not fit' "$W/$t.err")" = 2 ] && grep -q 'tiled, slabs of 16 rows' "$W/$t.err"; } ||
        bad "$t: -v does not say that both cases took the tiled path: $(grep "case '\|tiled" "$W/$t.err" | head -3)"
done

# upsample_mode deconv (ConvTranspose3d k2 s2 on the device; the golden model has 2 input
# channels: a two-channel f32 image from the crops, --no-preprocess): cuda == cpu, whole and tiled
"$PY" - "$W/ct2.vxp" "$W/ct2c.vxp" <<'PYEOF' || bad "cannot make the two-channel input"
import sys
sys.path.insert(0, "tests/scripts")
import numpy as np
import vxp
cases = list(vxp.read(open(sys.argv[1], "rb")))
for c in cases:
    v = c["vols"]["image"]
    a = v.data.astype(np.float32) / 1000.0
    c["vols"]["image"] = vxp.Vol(np.stack([a, np.abs(a) - 0.5], axis=3).astype(np.float32), v.affine)
vxp.write(open(sys.argv[2], "wb"), cases)
PYEOF
DM=tests/golden/segresnet/model_deconv.safetensors
"$P" --backend cpu --prob --no-preprocess --overlap 0.25 -m "$DM" -i "$W/ct2c.vxp" -o "$W/dcpu.vxp" 2>"$W/dcpu.err" ||
    bad "the deconv cpu run failed: $(tail -2 "$W/dcpu.err")"
REF=$W/dcpu.vxp IN=$W/ct2c.vxp MODEL=$DM run deconv -- --backend cuda --prob --no-preprocess --sw-batch 2
REF=$W/dcpu.vxp IN=$W/ct2c.vxp MODEL=$DM VP_CUDA_MEM_LIMIT_MIB=1 run deconv_tiled -- --backend cuda:0:tf32 --no-preprocess --prob
grep -q 'device-resident SegResNet (deconv)' "$W/deconv.err" || bad "deconv: not device-resident: $(grep -m1 cuda "$W/deconv.err")"

# out of device memory (EMU_DEVICE_KIB budgets, found by trying; if a change of the backend moves
# the point of failure, retune them): while putting the weights on the device, then -- the case
# never fits whole at these budgets, so the tiled path runs -- the aggregation band, the band of
# labels, and the network's forward pass on one window (even one batch does not fit). Each: exit 4, the reason on stderr, no output, no device memory left behind.
for spec in "64:cannot put the model on the device" "330:for the f32 aggregation band" "460:for a band of labels" "490:for activation"; do
    kib=${spec%%:*} where=${spec#*:}
    rm -f "$W/oom.vxp"
    EMU_DEVICE_KIB=$kib "$P" --backend cuda --overlap 0.25 -m "$M" -i "$W/ct2.vxp" -o "$W/oom.vxp" >"$W/oom$kib.out" 2>"$W/oom$kib.err"
    e=$?
    why="exit $e, stdout $(wc -c <"$W/oom$kib.out") bytes, $(grep '^emu:' "$W/oom$kib.err")"
    if [ $e -eq 4 ] && grep -q 'out of device memory' "$W/oom$kib.err" && grep -q "$where" "$W/oom$kib.err" && [ ! -s "$W/oom$kib.out" ] &&
        [ ! -e "$W/oom.vxp" ] && ! ls "$W"/.oom.vxp.* >/dev/null 2>&1 && grep -q ' 0 bad frees' "$W/oom$kib.err" && [ -n "$base" ] &&
        [ "$(live "$W/oom$kib.err")" -le "$base" ]; then
        ok "out of device memory at $kib KiB ($where): $why; \"$(grep -m1 'out of device memory' "$W/oom$kib.err" | cut -c1-120)\""
    else
        bad "out of device memory at $kib KiB (expected: $where): $why (a successful run leaves ${base:-?} live); stderr: $(grep -v '^emu:' "$W/oom$kib.err" | tail -3)"
    fi
done
exit $rc
