#!/usr/bin/env bash
# tests/gpu/whole_volume.sh - whole-volume timing of infer-ressegnet on the GPU, the voxpipe side of
# tests/gpu/bench_torch.py's whole-volume line (tests/gpu/check.sh runs it after bench_torch.py):
# the same model file (WORK/segresnet32.safetensors: SegResNet init_filters 32, 105 classes), the
# same volume size, roi 96, overlap 0.25, Gaussian, sw batch 2, labels to the host. Input: a
# deterministic pseudo-random int16 NIfTI (1.5 mm, the model's spacing; --no-preprocess). Time per
# case = (wall of a 4-case stream - wall of a 1-case stream) / 3, so process start, CUDA/cuDNN
# initialisation and the weights' upload are left out as PyTorch's in-process median leaves them
# out; the 1-case wall is printed too. Device peak from infer-ressegnet -v. Needs bin/ (make),
# python3 (standard library only). INFER=PROGRAM runs another build (the emulated one, for a dry run).
#   usage: tests/gpu/whole_volume.sh WORK [D H W]       prints "voxpipe: ..." lines
set -u
cd "$(dirname "$0")/../.." || exit 1
WORK=$1 D=${2:-192} H=${3:-192} Z=${4:-160}
M=$WORK/segresnet32.safetensors
[ -s "$M" ] || { echo "voxpipe: whole volume: SKIP: no $M (bench_torch.py writes it)"; exit 1; }
python3 - "$WORK/wv.nii" "$D" "$H" "$Z" <<'PY' || exit 1
import random, struct, sys
p, nx, ny, nz = sys.argv[1], *map(int, sys.argv[2:5])
h = bytearray(352)
struct.pack_into("<i", h, 0, 348)
struct.pack_into("<8h", h, 40, 3, nx, ny, nz, 1, 1, 1, 1)
struct.pack_into("<2h", h, 70, 4, 16)                      # int16
struct.pack_into("<8f", h, 76, 1, 1.5, 1.5, 1.5, 1, 1, 1, 1)
struct.pack_into("<f", h, 108, 352.0)
struct.pack_into("<h", h, 254, 1)                          # sform
for r, row in enumerate(((1.5, 0, 0, 0), (0, 1.5, 0, 0), (0, 0, 1.5, 0))):
    struct.pack_into("<4f", h, 280 + 16 * r, *row)
h[344:348] = b"n+1\0"
rng = random.Random(1)
with open(p, "wb") as f:
    f.write(bytes(h) + bytes(b & 0x0F for b in rng.randbytes(2 * nx * ny * nz)))  # 0..3855
PY
bin/vol-read "$WORK/wv.nii" >"$WORK/wv1.vxp" && bin/vol-read "$WORK/wv.nii" "$WORK/wv.nii" "$WORK/wv.nii" "$WORK/wv.nii" >"$WORK/wv4.vxp" || exit 1
tms=$(python3 -c 'import json,sys; print("%.1f" % json.load(open(sys.argv[1]))["whole_volume"]["ms"])' "$WORK/torch.json" 2>/dev/null)
rc=0
wall() { # stream log backend args...: seconds
    local in=$1 log=$2 s e; shift 2
    s=$(date +%s.%N)
    timeout 100 "${INFER:-bin/infer-ressegnet}" -v --no-preprocess -m "$M" --roi 96,96,96 --overlap 0.25 --sw-batch 2 --backend "$@" \
        -i "$in" -o "$WORK/wv-out.vxp" 2>"$log" || { e=$?; echo "voxpipe: whole volume: FAIL: --backend $* exit $e: $(tail -2 "$log")" >&2; return 1; }
    awk -v a="$s" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }'
}
for mode in "f16:cuda:0:f16 --aggregate f16" "tf32:cuda:0:tf32" "f32:cuda:0:f32"; do
    name=${mode%%:*} args=${mode#*:}
    # shellcheck disable=SC2086 # args split into words
    if ! t1=$(wall "$WORK/wv1.vxp" "$WORK/wv1-$name.err" $args) || ! t4=$(wall "$WORK/wv4.vxp" "$WORK/wv4-$name.err" $args); then
        rc=1; continue
    fi
    per=$(awk -v a="$t1" -v b="$t4" 'BEGIN { printf "%.0f", (b - a) / 3 * 1000 }')
    pk=$(sed -n 's/.*device memory peak \([0-9.]*\) MiB.*/\1/p' "$WORK/wv4-$name.err" | sort -g | tail -1)
    ratio=""
    [ -n "$tms" ] && [ "$per" -gt 0 ] && ratio=$(awk -v t="$tms" -v v="$per" 'BEGIN { printf "; PyTorch AMP+channels-last %.0f ms: %.2fx", t, t / v }')
    echo "voxpipe: infer-ressegnet whole volume ${D}x${H}x${Z} (roi 96, overlap 0.25, sw batch 2) $args: ${per} ms per case (4-case minus 1-case wall / 3; 1 case incl. start-up ${t1} s), device peak ${pk:-?} MiB$ratio"
done
exit $rc
