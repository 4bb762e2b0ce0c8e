#!/usr/bin/env bats
# ttest: two models' tidy tables compared against scipy.stats (golden files from
# tests/scripts/make_golden_metrics.py), options, and bad input.
load helpers

G="$VOXPIPE_ROOT/tests/golden/metrics"
cmp_tt() { "$VOXPIPE_PY" "$SCRIPTS/tidy_compare.py" "$@" --keys metric,class,test,statistic --rel 1e-10 --exact name --exact-stats n,exact; }

@test "Student, Welch, paired, Wilcoxon, CIs, Holm and Bonferroni agree with scipy.stats to 1e-10" {
    ttest --model A="$G/ttest_a.tsv" --model B="$G/ttest_b.tsv" -o "$T/out.tsv"
    run cmp_tt "$T/out.tsv" "$G/ttest_expected.tsv"
    echo "$output"
    [ "$status" -eq 0 ]
}

@test "a model given as several files (a name repeated) is the union of their rows" {
    head -1 "$G/ttest_a.tsv" > "$T/a1.tsv"; cp "$T/a1.tsv" "$T/a2.tsv"
    sed 1d "$G/ttest_a.tsv" | awk 'NR % 2' >> "$T/a1.tsv"
    sed 1d "$G/ttest_a.tsv" | awk '!(NR % 2)' >> "$T/a2.tsv"
    ttest --model A="$T/a1.tsv" --model B="$G/ttest_b.tsv" --model A="$T/a2.tsv" > "$T/split.tsv"
    run cmp_tt "$T/split.tsv" "$G/ttest_expected.tsv"
    echo "$output"
    [ "$status" -eq 0 ]
}

@test "--metrics keeps only the metrics named; column order of the input does not matter" {
    awk -F'\t' -v OFS='\t' '{print $5, $4, $1, $2}' "$G/ttest_a.tsv" > "$T/a.tsv"   # value metric case class, no name
    ttest --model A="$T/a.tsv" --model B="$G/ttest_b.tsv" --metrics hd95 > "$T/out.tsv"
    [ "$(cut -f1 "$T/out.tsv" | sed 1d | sort -u)" = hd95 ]
    awk -F'\t' 'NR == 1 || $1 == "hd95"' "$G/ttest_expected.tsv" > "$T/want.tsv"
    [ "$(wc -l < "$T/want.tsv")" -gt 1 ]
    run cmp_tt "$T/out.tsv" "$T/want.tsv"
    echo "$output"
    [ "$status" -eq 0 ]
}

@test "metric-dice tables of two models feed ttest directly" {
    metric-dice -i "$G/overlap_synth.vxp" > "$T/m1.tsv"
    metric-dice -i "$G/overlap_synth.vxp" --empty one > "$T/m2.tsv"
    ttest --model one="$T/m2.tsv" --model nan="$T/m1.tsv" --metrics dice > "$T/out.tsv"
    [ "$(head -1 "$T/out.tsv")" = "$(printf 'metric\tclass\tname\ttest\tstatistic\tvalue')" ]
    # the dice values differ only where the empty rule decides: equal means, paired differences 0
    [ "$(awk -F'\t' '$4=="paired" && $5=="mean_diff" && $6!="0" && $6!="nan"' "$T/out.tsv" | wc -l)" -eq 0 ]
    [ "$(awk -F'\t' '$4=="one" && $5=="n"' "$T/out.tsv" | wc -l)" -eq "$(awk -F'\t' '$4=="dice"' "$T/m1.tsv" | cut -f2 | sort -u | wc -l)" ]
}

@test "--nan propagate: a NaN value makes that class's statistics NaN (default omit: golden values)" {
    ttest --model A="$G/ttest_a.tsv" --model B="$G/ttest_b.tsv" --nan propagate > "$T/p.tsv"
    # class 16 of dice holds one NaN per model; class 1 none
    [ "$(awk -F'\t' '$1=="dice" && $2==16 && $5=="p" {print $6}' "$T/p.tsv" | sort -u)" = nan ]
    [ "$(awk -F'\t' '$1=="dice" && $2==16 && $5=="p"' "$T/p.tsv" | wc -l)" -eq 4 ]
    # the other classes are unchanged but for Holm/Bonferroni, whose family lost class 16's p-value
    keep='NR == 1 || !($1 == "dice" && ($2 == 16 || $5 ~ /^p_(holm|bonferroni)$/))'
    awk -F'\t' "$keep" "$T/p.tsv" > "$T/rest.tsv"
    awk -F'\t' "$keep" "$G/ttest_expected.tsv" > "$T/want.tsv"
    run cmp_tt "$T/rest.tsv" "$T/want.tsv"
    echo "$output"
    [ "$status" -eq 0 ]
    ! cmp -s <(grep -P '^dice\t1\t.*\tp_holm\t' "$T/p.tsv") <(grep -P '^dice\t1\t.*\tp_holm\t' "$G/ttest_expected.tsv")
}

@test "header-only tables give a header-only result" {
    printf 'case\tclass\tname\tmetric\tvalue\n' > "$T/h.tsv"
    run ttest --model A="$T/h.tsv" --model B="$T/h.tsv"
    [ "$status" -eq 0 ]
    [ "$output" = "$(printf 'metric\tclass\tname\ttest\tstatistic\tvalue')" ]
}

@test "bad input: a TSV with a missing column: exit 3 naming file and column, no output file" {
    cut -f1,2,3,5 "$G/ttest_a.tsv" > "$T/nometric.tsv"
    assert_exit 3 ttest --model A="$T/nometric.tsv" --model B="$G/ttest_b.tsv" -o "$T/out.tsv"
    [ "$output" = "ttest: error: '$T/nometric.tsv': no column 'metric' (a tidy table needs case, class, metric, value)" ]
    [ ! -e "$T/out.tsv" ] && [ -z "$(ls "$T" | grep '\.tmp\.')" ]
}

@test "bad input: a value that is not a number, a duplicate row, a ragged row, an empty file: exit 3" {
    { head -3 "$G/ttest_a.tsv"; printf 'c999\t1\tx\tdice\tabc\n'; } > "$T/nan.tsv"
    assert_exit 3 ttest --model A="$T/nan.tsv" --model B="$G/ttest_b.tsv" -o "$T/out.tsv"
    [ "$output" = "ttest: error: $T/nan.tsv:4: value 'abc' is not a number" ]
    { cat "$G/ttest_a.tsv"; sed -n 2p "$G/ttest_a.tsv"; } > "$T/dup.tsv"
    assert_exit 3 ttest --model A="$T/dup.tsv" --model B="$G/ttest_b.tsv" -o "$T/out.tsv"
    [[ "$output" == "ttest: error: $T/dup.tsv:"*"already given for model 'A' ($T/dup.tsv:2)" ]]
    { head -3 "$G/ttest_a.tsv"; printf 'c999\t1\tdice\t0.5\n'; } > "$T/ragged.tsv"
    assert_exit 3 ttest --model A="$T/ragged.tsv" --model B="$G/ttest_b.tsv" -o "$T/out.tsv"
    [ "$output" = "ttest: error: $T/ragged.tsv:4: 4 fields, but the header has 5 columns" ]
    : > "$T/empty.tsv"
    assert_exit 3 ttest --model A="$T/empty.tsv" --model B="$G/ttest_b.tsv" -o "$T/out.tsv"
    [ "$output" = "ttest: error: '$T/empty.tsv': empty file: no header line" ]
    [ ! -e "$T/out.tsv" ]
}

@test "bad usage: one model, three models, NAME=FILE malformed: exit 2; a missing file: exit 1" {
    assert_exit 2 ttest --model A="$G/ttest_a.tsv"
    assert_exit 2 ttest --model A="$G/ttest_a.tsv" --model B="$G/ttest_b.tsv" --model C="$G/ttest_b.tsv"
    [[ "$output" == *"exactly two model names"* ]]
    assert_exit 2 ttest --model "$G/ttest_a.tsv" --model B="$G/ttest_b.tsv"
    assert_exit 1 ttest --model A="$T/nonexistent.tsv" --model B="$G/ttest_b.tsv"
    [[ "$output" == "ttest: error: '$T/nonexistent.tsv': cannot open: No such file or directory" ]]
}
