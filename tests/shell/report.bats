#!/usr/bin/env bats
# report: the study's tables (Markdown, HTML) and PNG figures from tidy metric tables. Every number
# is checked against numpy/scipy on the same tables and against ttest's output, by
# tests/scripts/check_report.py (tables, html, png); the input tables come from
# tests/scripts/make_report_tables.py (seeded, with a NaN, an infinite value, an absent class).
load helpers

chk() { "$VOXPIPE_PY" "$SCRIPTS/check_report.py" "$@"; }
mk_tables() {
    "$VOXPIPE_PY" "$SCRIPTS/make_report_tables.py" "$T"
    ttest --model A="$T/A.tsv" --model B="$T/B.tsv" -o "$T/tt.tsv"
}
models() { M=(--model A="$T/A.tsv" --model B="$T/B.tsv"); }
no_temp() { [ -z "$(find "$T" -name '*.tmp.*')" ]; }

@test "Markdown tables: mean ± sd, CI and n equal numpy/scipy on the same TSVs; per-class p-values are ttest's" {
    mk_tables; models
    report "${M[@]}" --ttest "$T/tt.tsv" -o "$T/r.md"
    run chk tables "$T/r.md" "${M[@]}" --ttest "$T/tt.tsv"
    echo "$output"
    [ "$status" -eq 0 ]
    # the study's layout: one Summary row per metric (tp, a count, left out), one section per metric
    [ "$(grep -c '^## ' "$T/r.md")" -eq 4 ]
    grep -qF '| metric | A n | A mean ± sd | A 95% CI | B n | B mean ± sd | B 95% CI | p Student | p paired |' "$T/r.md"
    grep -q '^## hd95 (lower is better)' "$T/r.md"
    grep -qF '| inf ± n/a |' "$T/r.md" # model B's infinite hd95: an infinite mean, no sd
}

@test "--exact: numbers equal numpy/scipy to 1e-12 (p 1e-10); all four tests, Holm, --level 0.9; --digits/--p-digits" {
    mk_tables; models
    opts=(--tests student,welch,paired,wilcoxon --adjust holm --level 0.9)
    report "${M[@]}" --ttest "$T/tt.tsv" "${opts[@]}" --exact -o "$T/x.md"
    run chk tables "$T/x.md" "${M[@]}" --ttest "$T/tt.tsv" "${opts[@]}" --exact
    echo "$output"
    [ "$status" -eq 0 ]
    grep -qF '| p Student (Holm) | p Welch (Holm) | p paired (Holm) | p Wilcoxon (Holm) |' "$T/x.md"
    report "${M[@]}" --ttest "$T/tt.tsv" "${opts[@]}" --digits 5 --p-digits 3 -o "$T/d.md"
    run chk tables "$T/d.md" "${M[@]}" --ttest "$T/tt.tsv" "${opts[@]}" --digits 5 --p-digits 3
    echo "$output"
    [ "$status" -eq 0 ]
    ! cmp -s "$T/x.md" "$T/d.md"
    # metrics in the order given, the summary over classes 1 and 2 only
    sel=(--metrics hd95,dice --summary-classes 1,2)
    report "${M[@]}" --ttest "$T/tt.tsv" "${sel[@]}" -o "$T/s.md"
    [ "$(grep '^## ' "$T/s.md" | tr '\n' ' ')" = "## Summary ## hd95 (lower is better) ## dice ## Figures " ]
    run chk tables "$T/s.md" "${M[@]}" --ttest "$T/tt.tsv" "${sel[@]}"
    echo "$output"
    [ "$status" -eq 0 ]
    ! cmp -s <(grep '^| dice |' "$T/s.md") <(grep '^| dice |' "$T/d.md")
}

@test "HTML: the Markdown's tables cell for cell, every figure embedded byte for byte; Markdown links resolve" {
    mk_tables; models
    report "${M[@]}" --ttest "$T/tt.tsv" -o "$T/r.md" --html "$T/r.html"
    [ "$(ls "$T/r_figures" | wc -l)" -eq 4 ] # heat maps of dice for A and B, box plots of dice and hd95
    run chk html "$T/r.html" "$T/r.md" "$T/r_figures"
    echo "$output"
    [ "$status" -eq 0 ]
    head -1 "$T/r.html" | grep -q '<!DOCTYPE html>'
    no_temp
}

@test "PNGs decode (CRCs, zlib, filters) at the documented sizes; heat map colours: best blue, worst red, NaN grey, absent white" {
    mk_tables; models
    report "${M[@]}" --html "$T/r.html" --figures "$T/figs" --heatmap hd95 --cell 7
    ls "$T/figs"/heatmap-hd95-A.png "$T/figs"/heatmap-hd95-B.png
    run chk png "$T"/figs/*.png "${M[@]}" --cell 7
    echo "$output"
    [ "$status" -eq 0 ]
    report "${M[@]}" -o "$T/r.md" # default: dice heat maps, 12-pixel cells
    run chk png "$T"/r_figures/*.png "${M[@]}"
    echo "$output"
    [ "$status" -eq 0 ]
    # a check that can fail: the sizes of the other cell size do not pass
    run chk png "$T"/r_figures/heatmap-dice-A.png "${M[@]}" --cell 7
    [ "$status" -eq 1 ]
}

@test "--figures elsewhere: Markdown links relative to the Markdown; a second run removes figures it no longer writes" {
    mk_tables; models
    mkdir -p "$T/doc/sub"
    report "${M[@]}" -o "$T/doc/sub/r.md" --html "$T/doc/r.html" --figures "$T/figs"
    grep -qF '](../../figs/box-dice.png)' "$T/doc/sub/r.md"
    run chk html "$T/doc/r.html" "$T/doc/sub/r.md" "$T/figs"
    echo "$output"
    [ "$status" -eq 0 ]
    touch "$T/figs/notes.txt"
    report "${M[@]}" -o "$T/doc/sub/r.md" --figures "$T/figs" --metrics dice --heatmap none
    [ "$(ls "$T/figs")" = "$(printf 'box-dice.png\nnotes.txt')" ]
}

@test "one model: no p-values; Markdown to stdout writes no figures" {
    mk_tables
    run report --model A="$T/A.tsv"
    [ "$status" -eq 0 ]
    [[ "$output" == *"| metric | A n | A mean ± sd | A 95% CI |"* ]]
    [[ "$output" != *"p Student"* ]]
    [[ "$output" == *"No figures were written"* ]]
    echo "$output" > "$T/one.md"
    run chk tables "$T/one.md" --model A="$T/A.tsv"
    echo "$output"
    [ "$status" -eq 0 ]
    [ -z "$(ls "$T" | grep -v '^[AB]\.tsv$\|^tt\.tsv$\|^one\.md$')" ]
}

@test "bad input: a TSV with missing columns: exit 3 naming file and column, nothing written" {
    mk_tables
    cut -f1,2,3,5 "$T/A.tsv" > "$T/nometric.tsv"
    assert_exit 3 report --model A="$T/nometric.tsv" --model B="$T/B.tsv" -o "$T/r.md" --html "$T/r.html"
    [ "$output" = "report: error: '$T/nometric.tsv': no column 'metric' (a tidy table needs case, class, metric, value)" ]
    cut -f1,2,4,5 "$T/B.tsv" > "$T/noname.tsv" # name is optional
    report --model A="$T/A.tsv" --model B="$T/noname.tsv" -o "$T/ok.md"
    cut -f1,2,3,4,6 "$T/tt.tsv" > "$T/tt_nostat.tsv"
    assert_exit 3 report --model A="$T/A.tsv" --model B="$T/B.tsv" --ttest "$T/tt_nostat.tsv" -o "$T/r.md" --html "$T/r.html"
    [ "$output" = "report: error: '$T/tt_nostat.tsv': no column 'statistic' (a ttest table needs metric, class, test, statistic, value)" ]
    [ ! -e "$T/r.md" ] && [ ! -e "$T/r.html" ] && [ ! -e "$T/r_figures" ]
    no_temp
}

@test "bad input: a value not a number, a duplicate row, a ttest table of other models, an unknown metric: exit 3, nothing written" {
    mk_tables
    { head -3 "$T/A.tsv"; printf 's99\t1\t\tdice\tabc\n'; } > "$T/nan.tsv"
    assert_exit 3 report --model A="$T/nan.tsv" --model B="$T/B.tsv" -o "$T/r.md"
    [ "$output" = "report: error: $T/nan.tsv:4: value 'abc' is not a number" ]
    { cat "$T/A.tsv"; sed -n 3p "$T/A.tsv"; } > "$T/dup.tsv"
    assert_exit 3 report --model A="$T/dup.tsv" --model B="$T/B.tsv" -o "$T/r.md"
    [[ "$output" == "report: error: $T/dup.tsv:$(wc -l < "$T/dup.tsv"): case 's1', class '1', metric '"*"' already given for model 'A'" ]]
    assert_exit 3 report --model A="$T/A.tsv" --model C="$T/B.tsv" --ttest "$T/tt.tsv" -o "$T/r.md"
    line=$(grep -n -P '^[^\t]*\t[^\t]*\t[^\t]*\tB\tmean\t' "$T/tt.tsv" | head -1 | cut -d: -f1)
    [ "$output" = "report: error: $T/tt.tsv:$line: the ttest table compares model 'B', which no --model names" ]
    assert_exit 3 report --model A="$T/A.tsv" --metrics dice,hd99 -o "$T/r.md"
    [ "$output" = "report: error: --metrics: no metric 'hd99' in the tables" ]
    assert_exit 3 report --model A="$T/A.tsv" --summary-classes 1-3,7 -o "$T/r.md"
    assert_exit 3 report --model A="$T/A.tsv" --heatmap hd99 -o "$T/r.md"
    [ ! -e "$T/r.md" ] && [ ! -e "$T/r_figures" ]
    no_temp
}

@test "bad usage: no model, a bad model name, --ttest with one model, an unknown test, a bad --heat-range: exit 2" {
    mk_tables
    assert_exit 2 report -o "$T/r.md"
    assert_exit 2 report --model 'a b'="$T/A.tsv"
    assert_exit 2 report --model A="$T/A.tsv" --ttest "$T/tt.tsv"
    assert_exit 2 report --model A="$T/A.tsv" --tests student,anova
    assert_exit 2 report --model A="$T/A.tsv" --heat-range 1,0
    assert_exit 1 report --model A="$T/missing.tsv" -o "$T/r.md"
    [ ! -e "$T/r.md" ]
}
