#!/usr/bin/env bash
# tests/gpu/check_overlap.sh - the real-GPU check of issue 6 item 2: infer-ressegnet --prefetch on
# uploads case k+1 on a second CUDA stream (the copy stream) while case k computes (lib/nn_infer_cuda.h,
# "Staged inputs"). Run by tests/gpu/check.sh's "others" step (every executable tests/gpu/check_*.sh)
# and by tests/gpu/device_check.sh as phase "overlap", or by hand; without a GPU it says SKIP.
# Under 60 s on an H100. Steps:
#   1. three cases (ids ov1..ov3) of the shared CT scaled to 244 x 202 x 120, f32, already on the
#      model's scale (--no-preprocess), so the reader thread's work per case is short (read, pin,
#      start the copy) and the device's compute long (model_small, roi 64,64,32, overlap 0.75,
#      --sw-batch 4: about 1500 windows a case)
#   2. --prefetch off, then on with VP_CUDA_TRACE=1 (device times of each case's compute on the
#      compute stream and of each copy on the copy stream, cudaEvent timestamps on one clock; no
#      nsys needed); the wall time of each run is printed
#   3. PASS when: the two outputs are the same stream but the recorded option (labels identical),
#      -v says all three cases were uploaded ahead, and the copies of ov2 and ov3 each lie inside
#      the compute interval of the case before them (start >= its start, end <= its end): the upload
#      overlapped the compute instead of preceding it. The times are printed either way.
#   usage: tests/gpu/check_overlap.sh [DATA_DIR]   exit 0 pass or skip, 1 fail
#   env:   OUT (log folder; else tests/tmp/gpu), PY; INFER=PROGRAM another infer-ressegnet and
#          OVL_DRY=1 (no GPU check) with OVL_ZOOM=ZX,ZY,ZZ (the CT's scaling, default 2,2,4) and
#          OVL_ROI=X,Y,Z (default 64,64,32), OVL_TMO=S (seconds per run, default 25): a dry run of the plumbing on small cases, e.g. with the
#          emulated build of tests/gpu/emu/infer.sh (its trace times are all 0)
set -u
cd "$(dirname "$0")/../.." || exit 1
DATA=${1:-../shared/data}
LOG=${OUT:-tests/tmp/gpu}
WORK=tests/tmp/gpu/overlap
mkdir -p "$LOG" "$WORK"
. tests/gpu/common.sh
CT=$DATA/totalseg/example_ct_sm.nii.gz
M=tests/golden/segresnet/model_small.safetensors
P=${INFER:-bin/infer-ressegnet}
need_gpu "overlap check: SKIP: no NVIDIA GPU (tests/gpu/emu/infer.sh checks the two-stream logic on the CPU)" "${OVL_DRY:-0}"
[ -x "$P" ] || { say "overlap check: FAIL: $P missing (make, or tests/gpu/check.sh builds it)"; exit 1; }
[ -f "$CT" ] || { say "overlap check: SKIP: no $CT"; exit 0; }
"$PY" - "$CT" "$WORK/ov3.vxp" "${OVL_ZOOM:-2,2,4}" <<'PYEOF' || { say "overlap check: FAIL: cannot make the input"; exit 1; }
import sys
sys.path.insert(0, "tests/scripts")
import nibabel as nib
import numpy as np
import vxp
img = nib.load(sys.argv[1])
z = [int(v) for v in sys.argv[3].split(",")]  # whole factors: numpy only (the device may lack scipy)
a = np.asarray(img.dataobj, dtype=np.float32) / 1000.0
for i in range(3):
    a = np.repeat(a, z[i], axis=i)
a = np.ascontiguousarray(a, dtype=np.float32)
aff = img.affine.copy()
for i in range(3):
    aff[:3, i] /= z[i]
cases = [{"id": "ov%d" % (k + 1), "vols": {"image": vxp.Vol(np.roll(a, 7 * k, axis=0), aff)}, "meta": {}} for k in range(3)]
vxp.write(open(sys.argv[2], "wb"), cases)
PYEOF
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
# shellcheck disable=SC2054 # --roi takes X,Y,Z
ARGS=(--backend cuda --no-preprocess --roi "${OVL_ROI:-64,64,32}" --overlap 0.75 --sw-batch 4 -m "$M" -i "$WORK/ov3.vxp")
s=$(now)
timeout "${OVL_TMO:-25}" "$P" -v --prefetch off "${ARGS[@]}" -o "$WORK/off.vxp" 2>"$LOG/overlap-off.err"
eoff=$? toff=$(since "$s")
s=$(now)
VP_CUDA_TRACE=1 timeout "${OVL_TMO:-25}" "$P" -v --prefetch on "${ARGS[@]}" -o "$WORK/on.vxp" 2>"$LOG/overlap-on.err"
eon=$? ton=$(since "$s")
say "overlap: infer-ressegnet 3 cases of the shared CT scaled by ${OVL_ZOOM:-2,2,4} (244x202x120 by default), f32, model_small, cuda f32: --prefetch off $toff s (exit $eoff), on $ton s (exit $eon); logs $LOG/overlap-{off,on}.err"
grep 'trace:' "$LOG/overlap-on.err" | sed 's/^/overlap: /'
fail=()
[ $eoff = 0 ] && [ $eon = 0 ] || fail+=("a run failed: $(grep -h ': error:' "$LOG/overlap-off.err" "$LOG/overlap-on.err" | head -2)")
same=$("$PY" tests/gpu/emu/same_stream.py "$WORK/on.vxp" "$WORK/off.vxp" --drop-opt --prefetch 2>&1)
[ "$same" = "same: 3 objects" ] || fail+=("--prefetch on vs off: $same")
na=$(grep -c 'uploading on the copy stream' "$LOG/overlap-on.err")
[ "$na" = 3 ] || fail+=("$na of 3 cases uploaded ahead: $(grep -m2 'uploaded ahead' "$LOG/overlap-on.err")")
# "PROG: cuda:0: trace: copy case 'ov2' T0..T1 ms" / "... trace: compute case 'ov1' T0..T1 ms"
span() { sed -n "s/.*cuda:[0-9]*: trace: $1 case '$2' \([-0-9.]*\)\.\.\([-0-9.]*\) ms$/\1 \2/p" "$LOG/overlap-on.err" | head -1; }
for k in 2 3; do
    cp=$(span copy "ov$k") cm=$(span compute "ov$((k - 1))")
    if [ -z "$cp" ] || [ -z "$cm" ]; then fail+=("no trace of the copy of ov$k or the compute of ov$((k - 1))"); continue; fi
    v=$(awk -v c="$cp" -v m="$cm" 'BEGIN { split(c, a, " "); split(m, b, " ");
        printf "%s", (a[1] + 0 >= b[1] + 0 && a[2] + 0 <= b[2] + 0) ? "inside" : "outside" }')
    say "overlap: copy of ov$k ${cp/ /..} ms, compute of ov$((k - 1)) ${cm/ /..} ms: $v"
    [ "$v" = inside ] || fail+=("the copy of ov$k (${cp/ /..} ms) is not inside the compute of ov$((k - 1)) (${cm/ /..} ms)")
done
if [ ${#fail[@]} -eq 0 ]; then
    say "overlap check: PASS (labels identical on/off, 3 cases uploaded ahead, copies of ov2, ov3 inside the compute before them; off $toff s, on $ton s)"
    exit 0
fi
for f in "${fail[@]}"; do say "overlap: $f"; done
say "overlap check: FAIL"
exit 1
