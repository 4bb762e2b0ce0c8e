#!/usr/bin/env bash
# tests/gpu/check_unet_tiled.sh - the real-GPU check of infer-unet's tiled fallback (issue 6 item 2,
# H3): the case kept on the host, the slab of patch-depth rows one d-row of tiles reads uploaded at
# each new origin, the labels back band by band (lib/cuda/nn_cuda_unet_sw.cu). Run by
# tests/gpu/check.sh (its "others" step runs every executable tests/gpu/check_*.sh) or by hand;
# without a GPU it says SKIP and exits 0. Needs bin/ (check.sh builds it). About 30 s on an H100.
# On the shared CT (122x101x30 at 3 mm, twice in one stream: the second case must find the device
# as the first left it), each configuration runs twice with --backend cuda: whole volume on the
# device (the default on a GPU of that size), then the tiled path forced by VP_CUDA_MEM_LIMIT_MIB=0;
# the label volumes must be identical byte for byte, -v must say the tiled path was taken for both
# cases of the forced run and for none of the whole run. Configurations:
#   resenc      the golden ResEnc (network grid = input grid: labels from the device), f16 band
#   resenc-tta  the same with --tta and --sw-batch 4
#   unet        the golden PlainConvUNet with CT intensity properties (resampled to 1.5 mm
#               in-plane: the logits come back band by band for nnU-Net's resampling), --agg f32
# Prints "unet-tiled timing: CONFIG: whole X s (device peak M MiB), tiled Y s (peak N MiB)" per
# configuration and one last line "unet-tiled check: PASS|FAIL (...)".
#   usage: tests/gpu/check_unet_tiled.sh [DATA_DIR]   exit 0 pass or skipped, 1 a failure
#   env:   OUT (log folder; else tests/tmp/gpu), PY; for a dry run of this script's plumbing without
#          a GPU: UNET_TILED_DRY=1 with INFER=PROGRAM (an emulated infer-unet), UNET_TILED_IN=FILE.vxp
#          (small cases instead of the CT twice), UNET_TILED_CONFIGS="unet" (a subset) and
#          UNET_TILED_TIMEOUT (seconds per run, default 60)
set -u
cd "$(dirname "$0")/../.." || exit 1
DATA=${1:-../shared/data}
LOG=${OUT:-tests/tmp/gpu}
WORK=tests/tmp/gpu/unet_tiled
mkdir -p "$LOG" "$WORK"
. tests/gpu/common.sh
CT=$DATA/totalseg/example_ct_sm.nii.gz
INFER=${INFER:-bin/infer-unet}
CONFIGS=${UNET_TILED_CONFIGS:-resenc resenc-tta unet}
need_gpu "unet-tiled check: SKIP: no NVIDIA GPU (tests/gpu/emu/infer_unet.sh, emulate.sh part 4, checks this code on the CPU)" "${UNET_TILED_DRY:-0}"
[ -x "$INFER" ] || { say "unet-tiled check: FAIL: $INFER missing (make, or tests/gpu/check.sh builds it)"; exit 1; }
for p in vol-read vol-write vol-cat; do
    [ -x "bin/$p" ] || { say "unet-tiled check: FAIL: bin/$p missing (make, or tests/gpu/check.sh builds it)"; exit 1; }
done
[ -f "$CT" ] || { say "unet-tiled check: SKIP: no $CT"; exit 0; }
if ! { bin/vol-read "$CT" >"$WORK/ct.vxp" && bin/vol-cat -i "$WORK/ct.vxp" -i "$WORK/ct.vxp" -o "$WORK/ct2.vxp" &&
    "$PY" tests/scripts/nnunet_raw_e2e.py setmeta tests/golden/unet/model.safetensors "$WORK/unet.safetensors" intensity_properties \
        '{"0": {"mean": 38.62, "std": 96.79, "percentile_00_5": -595.68, "percentile_99_5": 334.64}}'; } >"$LOG/unet-tiled-prep.log" 2>&1; then
    say "unet-tiled check: FAIL: cannot prepare the input or the model: $(tail -2 "$LOG/unet-tiled-prep.log")"; exit 1
fi
IN=${UNET_TILED_IN:-$WORK/ct2.vxp}
NC=$("$PY" -c 'import sys; sys.path.insert(0, "tests/scripts"); import vxp; print(len(list(vxp.read(open(sys.argv[1], "rb")))))' "$IN")
notes=()
secs=0
run() { # tag args...: infer-unet -v on the two cases into WORK/tag.vxp and WORK/tag-label.nii; sets secs
    local tag=$1 s e; shift
    rm -f "$WORK/$tag.vxp" "$WORK/$tag-label.nii"
    s=$(date +%s.%N)
    timeout "${UNET_TILED_TIMEOUT:-60}" "$INFER" -v "$@" -i "$IN" -o "$WORK/$tag.vxp" >"$LOG/unet-tiled-$tag.out" 2>"$LOG/unet-tiled-$tag.err"
    e=$?
    secs=$(awk -v a="$s" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
    if [ $e -ne 0 ] || [ -s "$LOG/unet-tiled-$tag.out" ]; then
        say "unet-tiled: $tag ($*): exit $e, $(wc -c <"$LOG/unet-tiled-$tag.out") bytes on stdout: $(tail -2 "$LOG/unet-tiled-$tag.err")"
        return 1
    fi
    bin/vol-write -i "$WORK/$tag.vxp" --vol label -o "$WORK/$tag-{vol}.nii" 2>>"$LOG/unet-tiled-$tag.err"
}
ntiled() { grep -c 'tiled path (the case did not fit on the device)' "$LOG/unet-tiled-$1.err"; }
peak() { sed -n 's/.*device memory peak \([0-9.]*\) MiB.*/\1/p' "$LOG/unet-tiled-$1.err" | sort -g | tail -1; }
check() { # config args...
    local cfg=$1 tw; shift
    if ! run "$cfg-whole" --backend cuda "$@"; then fails+=("$cfg: the whole-volume run failed"); return; fi
    tw=$secs
    if ! VP_CUDA_MEM_LIMIT_MIB=0 run "$cfg-tiled" --backend cuda "$@"; then fails+=("$cfg: the tiled run failed"); return; fi
    say "unet-tiled timing: $cfg ($*, $NC cases$([ "$IN" = "$WORK/ct2.vxp" ] && echo " of 122x101x30")): whole $tw s (device peak $(peak "$cfg-whole") MiB), tiled $secs s (peak $(peak "$cfg-tiled") MiB)"
    if [ "$(ntiled "$cfg-whole")" != 0 ] || [ "$(ntiled "$cfg-tiled")" != "$NC" ]; then
        fails+=("$cfg: tiled path taken by $(ntiled "$cfg-whole") whole-run and $(ntiled "$cfg-tiled") forced-run cases (want 0 and $NC)")
    elif ! grep -q 'device-resident U-Net' "$LOG/unet-tiled-$cfg-tiled.err"; then fails+=("$cfg: not the device path")
    elif cmp -s "$WORK/$cfg-whole-label.nii" "$WORK/$cfg-tiled-label.nii"; then notes+=("$cfg identical (whole $tw s, tiled $secs s)")
    else fails+=("$cfg: labels differ: $("$PY" tests/gpu/emu/compare_infer.py "$WORK/$cfg-whole.vxp" "$WORK/$cfg-tiled.vxp" --agree 0 2>&1 | cut -c1-120)"); fi
}
n=0
for cfg in $CONFIGS; do
    n=$((n + 1))
    case $cfg in
    resenc) check resenc -m tests/golden/resenc/model.safetensors ;;
    resenc-tta) check resenc-tta -m tests/golden/resenc/model.safetensors --tta --sw-batch 4 ;;
    unet) check unet -m "$WORK/unet.safetensors" --agg f32 --sw-batch 8 ;;
    *) fails+=("$cfg: no such configuration") ;;
    esac
done
for f in "${fails[@]}"; do say "unet-tiled: FAIL: $f"; done
if [ ${#fails[@]} -eq 0 ]; then say "unet-tiled check: PASS (forced tiled labels == whole-volume labels: ${notes[*]})"; exit 0; fi
say "unet-tiled check: FAIL (${#fails[@]} of $n configurations; passed: ${notes[*]:-none})"
exit 1
