#!/usr/bin/env bash
# tests/gpu/check_pipeline.sh - the real-GPU check of infer-ressegnet's whole-volume pipeline (issue
# 6, H2): the deconv SegResNet on the device and the tiled fallback. Run by tests/gpu/check.sh (its
# "others" step runs every executable tests/gpu/check_*.sh) or by hand; without a GPU it says SKIP
# and exits 0. Needs bin/ (check.sh builds it). Each step prints one "pipeline STEP: PASS|FAIL|SKIP
# ..." line; the last line sums up. About 1.5 minutes (2.5 with the bench model present).
#   deconv  infer-ressegnet with the golden deconv SegResNet (tests/golden/segresnet/model_deconv:
#           2 input channels, upsample_mode deconv; a two-channel f32 image made from two crops of
#           the shared CT, --no-preprocess): --backend cuda (f32, the ConvTranspose3d on the device)
#           must give labels identical to --backend cpu, and its -v log must say device-resident;
#           (test_cuda_segresnet, check.sh's segresnet step, compares the device forward with MONAI)
#   tiled   the shared CT (122x101x30, twice in one stream) with the golden SegResNet: the whole
#           volume on the device vs the tiled path forced by VP_CUDA_MEM_LIMIT_MIB=0 (the case kept
#           on the host, slabs uploaded, labels back band by band): labels identical, -v says the
#           tiled path was taken for both cases, and not for the whole-volume run; then, when
#           check.sh's bench left WORK/segresnet32.safetensors (SegResNet init 32, 105 classes), the
#           same on a 192x192x160 volume at 1.5 mm (f32 math): identical labels, and the wall time
#           of each ("pipeline timing: ..." lines; tiled costs the slab uploads and label downloads)
#   overlap the shared CT 4 times in one stream (raw, preprocessed on the CPU) with --prefetch off and
#           on (the next case read, preprocessed and staged in pinned memory on a reader thread
#           while the device computes this one): the same stream (tests/gpu/emu/same_stream.py:
#           all but the recorded option), -v says the prefetch path ran, the wall time of each
#           (best of 2: "pipeline timing: ..."); a stream whose case 2 is truncated: the same
#           exit code with and without, case 1 whole on stdout
#   (CUDA graphs: tests/gpu/check_graphs.sh)
#   usage: tests/gpu/check_pipeline.sh [DATA_DIR]   exit 0 all pass or skipped, 1 a step failed
#   env:   PIPE_STEPS="deconv tiled overlap" (default all three), OUT (log folder; else tests/tmp/gpu), PY;
#          INFER=PROGRAM another infer-ressegnet and PIPE_DRY=1 (no GPU check): a dry run of this
#          script's plumbing without a GPU
set -u
cd "$(dirname "$0")/../.." || exit 1
DATA=${1:-../shared/data}
LOG=${OUT:-tests/tmp/gpu}
WORK=tests/tmp/gpu/pipeline
mkdir -p "$LOG" "$WORK"
. tests/gpu/common.sh
CHECK=pipeline
STEPS=${PIPE_STEPS:-deconv tiled overlap}
CT=$DATA/totalseg/example_ct_sm.nii.gz
M=tests/golden/segresnet/model_small.safetensors
need_gpu "pipeline check: SKIP: no NVIDIA GPU (tests/gpu/emulate.sh part 3, tests/gpu/emu/infer.sh, checks this code on the CPU)" "${PIPE_DRY:-0}"
for p in infer-ressegnet vol-read vol-write crop vol-cat; do
    [ -x "bin/$p" ] || { say "pipeline check: FAIL: bin/$p missing (make, or tests/gpu/check.sh builds it)"; exit 1; }
done
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
# run TAG ARGS...: infer-ressegnet -v into WORK/TAG.vxp, labels into WORK/TAG-label.nii; sets $secs
run() {
    local tag=$1 s e; shift
    rm -f "$WORK/$tag.vxp" "$WORK/$tag-label.nii"
    s=$(now)
    timeout 150 "${INFER:-bin/infer-ressegnet}" -v "$@" -o "$WORK/$tag.vxp" 2>"$LOG/pipeline-$tag.err"
    e=$?
    secs=$(since "$s")
    [ $e -eq 0 ] || { say "pipeline: $tag ($*): exit $e: $(tail -2 "$LOG/pipeline-$tag.err")"; return 1; }
    bin/vol-write -i "$WORK/$tag.vxp" --vol label -o "$WORK/$tag-{vol}.nii" 2>>"$LOG/pipeline-$tag.err"
}
same() { cmp -s "$WORK/$1-label.nii" "$WORK/$2-label.nii"; }
ntiled() { grep -c 'tiled path (the case did not fit' "$LOG/pipeline-$1.err"; }

have_ct=1
[ -f "$CT" ] || have_ct=0
if [ $have_ct = 1 ]; then
    if ! { bin/vol-read "$CT" >"$WORK/ct.vxp" && bin/crop --box 20,20,0,84,84,24 -i "$WORK/ct.vxp" -o "$WORK/a.vxp" &&
        bin/crop --box 40,30,6,72,62,22 -i "$WORK/ct.vxp" -o "$WORK/b.vxp" && bin/vol-cat -i "$WORK/a.vxp" -i "$WORK/b.vxp" -o "$WORK/ab.vxp"; }; then
        say "pipeline check: FAIL: cannot prepare the CT crops"; exit 1
    fi
fi

if want deconv; then
    if [ $have_ct = 0 ]; then result deconv SKIP "no $CT"
    elif ! "$PY" - "$WORK/ab.vxp" "$WORK/ab2.vxp" <<'PYEOF' 2>"$LOG/pipeline-deconv-prep.err"; then
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
        result deconv SKIP "$PY cannot make the two-channel input (numpy, msgpack): $(tail -1 "$LOG/pipeline-deconv-prep.err")"
    else
        DM=tests/golden/segresnet/model_deconv.safetensors
        if run dcpu --backend cpu --no-preprocess --overlap 0.25 -m "$DM" -i "$WORK/ab2.vxp" && tc=$secs &&
            run dcuda --backend cuda --no-preprocess --overlap 0.25 --sw-batch 4 -m "$DM" -i "$WORK/ab2.vxp"; then
            if ! grep -q 'device-resident SegResNet (deconv)' "$LOG/pipeline-dcuda.err"; then result deconv FAIL "not the device path"
            elif same dcpu dcuda; then result deconv PASS "cuda (ConvTranspose3d on the device) labels identical to cpu; cpu $tc s, cuda $secs s"
            else result deconv FAIL "labels differ from the cpu's"; fi
        else
            result deconv FAIL "a run failed"
        fi
    fi
fi

if want tiled; then
    if [ $have_ct = 0 ]; then result tiled SKIP "no $CT"
    else
        bin/vol-read "$CT" "$CT" >"$WORK/ct2.vxp"
        if run whole --backend cuda --sw-batch 2 -m "$M" -i "$WORK/ct2.vxp" && tw=$secs &&
            VP_CUDA_MEM_LIMIT_MIB=0 run tiled --backend cuda --sw-batch 2 -m "$M" -i "$WORK/ct2.vxp"; then
            why="whole $tw s, tiled $secs s"
            if [ "$(ntiled whole)" != 0 ] || [ "$(ntiled tiled)" != 2 ]; then result tiled FAIL "tiled path taken: whole run $(ntiled whole), forced run $(ntiled tiled) of 2 cases; $why"
            elif same whole tiled; then result tiled PASS "shared CT x2, model_small: tiled labels identical to the whole-volume path; $why"
            else result tiled FAIL "tiled labels differ; $why"; fi
        else
            result tiled FAIL "a run failed"
        fi
    fi
    B=tests/tmp/gpu/segresnet32.safetensors
    if [ ! -s "$B" ] || [ ! -s tests/tmp/gpu/wv1.vxp ]; then
        result tiled-big SKIP "no $B / wv1.vxp (check.sh's bench step writes them)"
    else
        # shellcheck disable=SC2054 # --roi X,Y,Z is one word
        a=(--backend cuda:0:f32 --no-preprocess -m "$B" --roi 96,96,96 --overlap 0.25 --sw-batch 2 -i tests/tmp/gpu/wv1.vxp)
        if run bwhole "${a[@]}" && tw=$secs && VP_CUDA_MEM_LIMIT_MIB=0 run btiled "${a[@]}"; then
            pw=$(sed -n 's/.*device memory peak \([0-9.]*\) MiB.*/\1/p' "$LOG/pipeline-bwhole.err" | tail -1)
            pt=$(sed -n 's/.*device memory peak \([0-9.]*\) MiB.*/\1/p' "$LOG/pipeline-btiled.err" | tail -1)
            say "pipeline timing: infer-ressegnet 192x192x160 SegResNet-32 f32, one case incl. start-up: whole volume $tw s (device peak ${pw:-?} MiB), tiled $secs s (peak ${pt:-?} MiB)"
            if [ "$(ntiled btiled)" = 1 ] && same bwhole btiled; then result tiled-big PASS "192x192x160: tiled labels identical; whole $tw s, tiled $secs s"
            else result tiled-big FAIL "tiled taken $(ntiled btiled), labels $(same bwhole btiled && echo identical || echo DIFFER)"; fi
        else
            result tiled-big FAIL "a run failed"
        fi
    fi
fi
if want overlap; then
    if [ $have_ct = 0 ]; then result overlap SKIP "no $CT"
    else
        # 4 cases of the shared CT (raw i16: preprocessed on the CPU, the work --prefetch overlaps
        # with the device's compute), --prefetch off then on, best of 2 each (the first off run
        # also warms the device up)
        bin/vol-read "$CT" "$CT" "$CT" "$CT" >"$WORK/ct4.vxp"
        best() { awk -v a="$1" -v b="$2" 'BEGIN { print (a < b ? a : b) }'; }
        toff=999999 ton=999999 ok=1
        for _ in 1 2; do
            run pfoff --backend cuda --sw-batch 2 --prefetch off -m "$M" -i "$WORK/ct4.vxp" && toff=$(best "$toff" "$secs") || ok=0
            run pfon --backend cuda --sw-batch 2 --prefetch on -m "$M" -i "$WORK/ct4.vxp" && ton=$(best "$ton" "$secs") || ok=0
        done
        if [ $ok = 1 ]; then
            ratio=$(awk -v a="$toff" -v b="$ton" 'BEGIN { printf "%.2f", a / b }')
            say "pipeline timing: infer-ressegnet 4 x shared CT (122x101x30, preprocessed), model_small, cuda f32: --prefetch off $toff s, on $ton s (best of 2; off/on $ratio x)"
            same=$("$PY" tests/gpu/emu/same_stream.py "$WORK/pfon.vxp" "$WORK/pfoff.vxp" --drop-opt --prefetch 2>&1)
            # case 2 truncated: the same exit code, case 1 whole on stdout, with and without
            s1=$(bin/vol-read "$CT" | wc -c)
            head -c $((s1 + s1 / 2)) "$WORK/ct4.vxp" >"$WORK/trunc.vxp"
            for pf in on off; do
                "${INFER:-bin/infer-ressegnet}" --backend cuda --prefetch $pf -m "$M" -i "$WORK/trunc.vxp" >"$WORK/tr_$pf.vxp" 2>"$LOG/pipeline-tr_$pf.err"
                echo $? >"$WORK/tr_$pf.rc"
            done
            tr=$("$PY" tests/gpu/emu/same_stream.py "$WORK/tr_on.vxp" "$WORK/tr_off.vxp" --drop-opt --prefetch 2>&1)
            if [ "$same" != "same: 4 objects" ]; then result overlap FAIL "--prefetch on vs off: $same; off $toff s, on $ton s"
            elif ! grep -q -- '--prefetch on: the next case is read' "$LOG/pipeline-pfon.err"; then result overlap FAIL "the prefetch path was not taken"
            elif [ "$(cat "$WORK/tr_on.rc")" = 0 ] || [ "$(cat "$WORK/tr_on.rc")" != "$(cat "$WORK/tr_off.rc")" ] || [ "$tr" != "same: 1 objects" ]; then
                result overlap FAIL "case 2 truncated: exit $(cat "$WORK/tr_on.rc") (off $(cat "$WORK/tr_off.rc")), stdout on vs off: $tr"
            else result overlap PASS "4 cases: the same stream with --prefetch on and off; truncated case 2: exit $(cat "$WORK/tr_on.rc") both, case 1 whole; off $toff s, on $ton s ($ratio x)"; fi
        else
            result overlap FAIL "a run failed"
        fi
    fi
fi
if [ ${#fails[@]} -eq 0 ]; then say "pipeline check: PASS"; exit 0; fi
say "pipeline check: FAIL: ${fails[*]}"
exit 1
