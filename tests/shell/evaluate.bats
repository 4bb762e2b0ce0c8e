#!/usr/bin/env bats
# pipelines/evaluate.mk on a small data set made from the shared TotalSegmentator example
# (tests/scripts/make_eval_cases.py: 4 cropped cases; reference = the full model's labels, model
# "fast" = the fast model's, model "degraded" = the fast labels eroded and partly mislabelled).
load helpers

chk() { "$VOXPIPE_PY" "$SCRIPTS/check_report.py" "$@"; }
dataset() { "$VOXPIPE_PY" "$SCRIPTS/make_eval_cases.py" "$TS/example_seg.nii.gz" "$TS/example_seg_fast.nii.gz" "$T/data"; }
mk() { make -s -f "$VOXPIPE_ROOT/pipelines/evaluate.mk" BIN="$VOXPIPE_BIN" REF="$T/data/ref" LABELS=spine25 OUT="$T/out" "$@"; }
ev() { mk PRED_DIRS="fast=$T/data/A degraded=$T/data/B" "$@"; }
# one case scored directly: metric-dice rows, then hausdorff's without the header
direct() { # $1 = model dir, $2 = case
    vol-read -q "$T/data/ref/$2.nii.gz" --image-name label --label "$T/data/$1/$2.nii.gz" --label-name pred --id "$2" |
        label-map -q --preset spine25 --vol label | label-map -q --preset spine25 --vol pred > "$T/one.vxp"
    metric-dice -i "$T/one.vxp"
    hausdorff -i "$T/one.vxp" | tail -n +2
}
no_temp() { [ -z "$(find "$T/out" -name '*.tmp*')" ]; }

@test "evaluate.mk: per case and model the programs' rows, joined per model; ttest and report on them; report numbers = the TSVs'" {
    dataset
    ev -j2
    [ "$(ls "$T/out/fast/cases" "$T/out/degraded/cases" | grep -c '\.tsv$')" -eq 8 ]
    for c in case1 case2 case3 case4; do
        direct A "$c" | cmp - "$T/out/fast/cases/$c.tsv"
        direct B "$c" | cmp - "$T/out/degraded/cases/$c.tsv"
    done
    # the model tables: one header, every case's rows
    [ "$(grep -cP '^case\tclass\t' "$T/out/fast.tsv")" -eq 1 ]
    cmp <(sed 1d "$T/out/degraded.tsv" | sort) <(for c in case1 case2 case3 case4; do sed 1d "$T/out/degraded/cases/$c.tsv"; done | sort)
    ttest --model fast="$T/out/fast.tsv" --model degraded="$T/out/degraded.tsv" | cmp - "$T/out/ttest.tsv"
    # the four vertebrae of the example, as spine25 classes, and hausdorff's metrics beside metric-dice's
    grep -qF 'Classes (4): 18 vertebrae_T11, 19 vertebrae_T12, 20 vertebrae_L1, 21 vertebrae_L2.' "$T/out/report.md"
    grep -q '^## hd95 (lower is better)' "$T/out/report.md"
    run chk tables "$T/out/report.md" --model fast="$T/out/fast.tsv" --model degraded="$T/out/degraded.tsv" --ttest "$T/out/ttest.tsv"
    echo "$output"
    [ "$status" -eq 0 ]
    run chk html "$T/out/report.html" "$T/out/report.md" "$T/out/report_figures"
    echo "$output"
    [ "$status" -eq 0 ]
    run chk png "$T"/out/report_figures/*.png --model fast="$T/out/fast.tsv" --model degraded="$T/out/degraded.tsv"
    echo "$output"
    [ "$status" -eq 0 ]
    no_temp
}

@test "evaluate.mk re-runs only what changed: nothing; one case; every case on an option change; the tables when a case goes" {
    dataset
    ev -j2
    run ev -q
    [ "$status" -eq 0 ]
    [ -z "$(ev -n)" ]
    touch "$T/data/B/case2.nii.gz"
    run ev -n
    [ "$(grep -c 'vol-read' <<< "$output")" -eq 1 ] && [[ "$output" == *"/B/case2.nii.gz"* ]]
    [[ "$output" == *"bin/ttest"* && "$output" == *"bin/report"* ]]
    ev
    run ev -q
    [ "$status" -eq 0 ]
    # an option of the scoring programs: every case again; and back again: every case again
    [ "$(ev -n HD_OPTS='--percentile 90' | grep -c 'vol-read')" -eq 8 ]
    ev HD_OPTS='--percentile 90'
    grep -qP '\thd90\t' "$T/out/fast.tsv" && ! grep -qP '\thd95\t' "$T/out/fast.tsv"
    [ "$(ev -n | grep -c 'vol-read')" -eq 8 ]
    ev
    grep -qP '\thd95\t' "$T/out/fast.tsv"
    # a report option: the report only
    run ev -n REPORT_OPTS=--exact
    [[ "$output" == *"bin/report"* && "$output" != *"vol-read"* && "$output" != *"bin/ttest"* ]]
    # a case removed: no case rescored, the tables, ttest and report redone without it
    rm "$T"/data/{ref,A,B}/case4.nii.gz
    run ev -n
    [[ "$output" != *"vol-read"* && "$output" == *"awk"* ]]
    ev
    [ "$(sed 1d "$T/out/fast.tsv" | cut -f1 | sort -u | tr '\n' ' ')" = "case1 case2 case3 " ]
    grep -qF 'Cases (3, ' "$T/out/report.md"
    run ev -q
    [ "$status" -eq 0 ]
}

@test "evaluate.mk: PRED_A/PRED_B with names; a missing prediction is an error (ALLOW_MISSING=1 leaves it out); one model: no ttest" {
    dataset
    mk PRED_A="$T/data/A" PRED_B="$T/data/B" NAME_A=fast NAME_B=eroded
    [ -f "$T/out/fast.tsv" ] && [ -f "$T/out/eroded.tsv" ] && [ -f "$T/out/ttest.tsv" ]
    grep -q '^# Segmentation metrics: fast vs eroded' "$T/out/report.md"
    rm "$T/data/B/case3.nii.gz"
    run ev OUT="$T/out2"
    [ "$status" -ne 0 ]
    [[ "$output" == *"model 'degraded': no prediction in $T/data/B for case(s) case3 (ALLOW_MISSING=1 to leave them out)"* ]]
    [ ! -e "$T/out2" ]
    ev OUT="$T/out2" ALLOW_MISSING=1
    [ "$(sed 1d "$T/out2/degraded.tsv" | cut -f1 | sort -u | tr '\n' ' ')" = "case1 case2 case4 " ]
    [ "$(sed 1d "$T/out2/fast.tsv" | cut -f1 | sort -u | wc -l)" -eq 4 ]
    ev OUT="$T/out3" PRED_DIRS="fast=$T/data/A"
    [ -f "$T/out3/report.md" ] && [ ! -e "$T/out3/ttest.tsv" ]
}

@test "evaluate.mk: a case that fails leaves no target and no temporary file; fixed, the run completes" {
    dataset
    cp "$T/data/B/case3.nii.gz" "$T/good.nii.gz"
    head -c 3000 "$T/good.nii.gz" > "$T/data/B/case3.nii.gz"
    run ev -j2 -k
    [ "$status" -ne 0 ]
    [[ "$output" == *"vol-read: error"* ]]
    [ ! -e "$T/out/degraded/cases/case3.tsv" ] && [ ! -e "$T/out/degraded.tsv" ] && [ ! -e "$T/out/report.md" ]
    [ -f "$T/out/degraded/cases/case2.tsv" ] # -k: the other cases were scored
    no_temp
    cp "$T/good.nii.gz" "$T/data/B/case3.nii.gz"
    run ev -n
    [ "$(grep -c 'vol-read' <<< "$output")" -eq 1 ]
    ev
    [ -f "$T/out/report.md" ]
    no_temp
}
