#!/usr/bin/env bats
# metric-dice: overlap metrics against golden files made by tests/scripts/make_golden_metrics.py
# (MONAI's metric functions, the definitions where MONAI has none), options, and bad input.
load helpers

G="$VOXPIPE_ROOT/tests/golden/metrics"
cmp_tidy() { "$VOXPIPE_PY" "$SCRIPTS/tidy_compare.py" "$@" --keys case,class,metric --rel 1e-12 --exact name --exact-stats tp,fp,fn,tn; }

# the fast TotalSegmentator model's labels (pred) and the full model's (label) in one case
pair() {
    vol-read "$TS/example_seg.nii.gz" --id example --image-name label --label "$TS/example_seg_fast.nii.gz" --label-name pred
}

# a stream from Python: mkstream OUT 'cases = [...]' (numpy as np, vxp, eye = identity affine)
mkstream() {
    "$VOXPIPE_PY" - "$1" "$SCRIPTS" "$2" <<'EOF'
import sys; sys.path.insert(0, sys.argv[2])
import numpy as np, vxp
eye = np.eye(4)
ns = {"np": np, "vxp": vxp, "eye": eye}
exec(sys.argv[3], ns)
with open(sys.argv[1], "wb") as f:
    vxp.write(f, ns["cases"])
EOF
}

@test "fast vs full TotalSegmentator, 25 spine classes: the four vertebrae and two groups match MONAI" {
    pair | label-map --preset spine25 --vol label | label-map --preset spine25 --vol pred \
        | metric-dice --group vertebrae=1-24 --group tl=vertebrae_T12,vertebrae_L1 > "$T/out.tsv"
    run cmp_tidy "$T/out.tsv" "$G/overlap_spine25.tsv"
    echo "$output"
    [ "$status" -eq 0 ]
    # the vertebrae present (T11, T12, L1, L2) and the groups, named from meta.labels
    [ "$(cut -f2,3 "$T/out.tsv" | sort -u)" = "$(cut -f2,3 "$G/overlap_spine25.tsv" | sort -u)" ]
    [ "$(cut -f3 "$T/out.tsv" | grep '^vertebrae_[TL][0-9]*$' | sort -u | tr '\n' ' ')" = "vertebrae_L1 vertebrae_L2 vertebrae_T11 vertebrae_T12 " ]
}

@test "every TotalSegmentator class of the pair (40 classes) matches the golden values" {
    pair | metric-dice > "$T/out.tsv"
    run cmp_tidy "$T/out.tsv" "$G/overlap_totalseg.tsv"
    echo "$output"
    [ "$status" -eq 0 ]
}

@test "u8, i16 (negative ids), u16, u8 vs i32, f32/f16 integer labels and empty cases: default classes" {
    metric-dice -i "$G/overlap_synth.vxp" > "$T/out.tsv"
    run cmp_tidy "$T/out.tsv" "$G/overlap_synth_default.tsv"
    echo "$output"
    [ "$status" -eq 0 ]
}

@test "empty-mask rules nan, one, zero: listed classes absent from both volumes, groups" {
    for rule in nan one zero; do
        metric-dice --classes 1-6 --group low=1-2 --group mix=2,4,1000 --empty $rule < "$G/overlap_synth.vxp" > "$T/$rule.tsv"
        run cmp_tidy "$T/$rule.tsv" "$G/overlap_synth_$rule.tsv"
        echo "$rule: $output"
        [ "$status" -eq 0 ]
    done
    # class 6 is in neither volume of case u8_basic: dice undefined -> nan / 1 / 0, specificity 1
    [ "$(awk -F'\t' '$1=="u8_basic" && $2==6 && $4=="dice" {print $5}' "$T/nan.tsv")" = nan ]
    [ "$(awk -F'\t' '$1=="u8_basic" && $2==6 && $4=="dice" {print $5}' "$T/one.tsv")" = 1 ]
    [ "$(awk -F'\t' '$1=="u8_basic" && $2==6 && $4=="dice" {print $5}' "$T/zero.tsv")" = 0 ]
}

@test "the same bytes whatever --threads" {
    pair > "$T/pair.vxp"
    metric-dice --threads 1 -i "$T/pair.vxp" > "$T/t1.tsv"
    metric-dice --threads 4 -i "$T/pair.vxp" > "$T/t4.tsv"
    metric-dice --threads 3 -i "$G/overlap_synth.vxp" > "$T/s3.tsv"
    metric-dice --threads 1 -i "$G/overlap_synth.vxp" > "$T/s1.tsv"
    [ -s "$T/t1.tsv" ]
    cmp "$T/t1.tsv" "$T/t4.tsv"
    cmp "$T/s1.tsv" "$T/s3.tsv"
}

@test "--json lines hold the same values as the TSV; NaN becomes null" {
    metric-dice --classes 1-6 --json < "$G/overlap_synth.vxp" > "$T/out.jsonl"
    metric-dice --classes 1-6 < "$G/overlap_synth.vxp" > "$T/out.tsv"
    run "$VOXPIPE_PY" - "$T/out.jsonl" "$T/out.tsv" <<'EOF'
import csv, json, math, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
tsv = list(csv.DictReader(open(sys.argv[2]), delimiter="\t"))
flat = {}
for r in rows:
    for k, v in r.items():
        if k not in ("case", "class", "name"):
            flat[(r["case"], r["class"], k)] = v
assert len(flat) == len(tsv), (len(flat), len(tsv))
nulls = 0
for t in tsv:
    v = flat[(t["case"], t["class"], t["metric"])]
    if v is None:
        nulls += 1
        assert t["value"] == "nan", t
    else:
        assert float(t["value"]) == v, (t, v)
assert nulls > 0
print(len(rows), "objects", nulls, "nulls")
EOF
    echo "$output"
    [ "$status" -eq 0 ]
}

@test "--metrics picks and orders metrics; -o writes the file; an empty stream gives the header alone" {
    metric-dice --metrics dice,tp -o "$T/m.tsv" < "$G/overlap_synth.vxp"
    [ "$(cut -f4 "$T/m.tsv" | sed 1d | sort -u | tr '\n' ' ')" = "dice tp " ]
    [ "$(sed -n 2p "$T/m.tsv" | cut -f4)" = dice ]
    [ "$(sed -n 3p "$T/m.tsv" | cut -f4)" = tp ]
    : > "$T/empty.vxp"
    metric-dice -i "$T/empty.vxp" -o "$T/e.tsv"
    [ "$(cat "$T/e.tsv")" = "$(printf 'case\tclass\tname\tmetric\tvalue')" ]
    run metric-dice --json -i "$T/empty.vxp"
    [ "$status" -eq 0 ] && [ -z "$output" ]
    assert_exit 2 metric-dice --metrics dice,hausdorff -i "$T/empty.vxp"
    [[ "$output" == *"unknown metric 'hausdorff'"* ]]
}

@test "bad input: prediction and reference on different grids (dims or affine): exit 3 naming both, no output file" {
    mkstream "$T/dims.vxp" 'cases = [{"id": "g1", "vols": {"pred": vxp.Vol(np.zeros((4,4,4), np.uint8), eye), "label": vxp.Vol(np.zeros((4,4,5), np.uint8), eye)}}]'
    assert_exit 3 metric-dice -i "$T/dims.vxp" -o "$T/out.tsv"
    [[ "$output" == "metric-dice: error: case 'g1': volumes 'pred' and 'label' are on different grids (dims 4x4x4 vs 4x4x5)"* ]]
    [ ! -e "$T/out.tsv" ] && [ -z "$(ls "$T" | grep '\.tmp\.')" ]
    mkstream "$T/aff.vxp" 'a = eye.copy(); a[0, 3] = 1.5
cases = [{"id": "g2", "vols": {"pred": vxp.Vol(np.zeros((4,4,4), np.uint8), eye), "label": vxp.Vol(np.zeros((4,4,4), np.uint8), a)}}]'
    assert_exit 3 metric-dice -i "$T/aff.vxp" -o "$T/out.tsv"
    [[ "$output" == "metric-dice: error: case 'g2': volumes 'pred' and 'label' are on different grids (affine entry [0][3] 0 vs 1.5)"* ]]
    [ ! -e "$T/out.tsv" ]
}

@test "bad input: non-integer (float) labels: exit 3; integer-valued floats are scored" {
    mkstream "$T/f.vxp" 'p = np.zeros((5,4,3), np.float32); p[1,1,1] = 2.5
cases = [{"id": "f", "vols": {"pred": vxp.Vol(p, eye), "label": vxp.Vol(np.ones((5,4,3), np.uint8), eye)}}]'
    assert_exit 3 metric-dice -i "$T/f.vxp" -o "$T/out.tsv"
    [[ "$output" == "metric-dice: error: case 'f': volume 'pred': value 2.5 is not an integer label (dtype f32)"* ]]
    [ ! -e "$T/out.tsv" ]
    # the same labels as f32 (with -0.0), f16 and u8 give the same table
    for t in float32 float16 uint8; do
        mkstream "$T/$t.vxp" 'p = np.zeros((5,4,3)); p[1:3] = 1; p[4] = 3; p[0, 0] = -0.0
r = np.ones((5,4,3)); r[3:] = 3
cases = [{"id": "f", "vols": {"pred": vxp.Vol(p.astype(np.'$t'), eye), "label": vxp.Vol(r.astype(np.'$t'), eye)}}]'
        metric-dice -i "$T/$t.vxp" > "$T/$t.tsv"
    done
    [ "$(wc -l < "$T/uint8.tsv")" -gt 1 ]
    cmp "$T/float32.tsv" "$T/uint8.tsv"
    cmp "$T/float16.tsv" "$T/uint8.tsv"
}

@test "bad input: a case without the prediction, a multi-channel volume, an unknown class name: exit 3" {
    mkstream "$T/m.vxp" 'cases = [{"id": "ok", "vols": {"pred": vxp.Vol(np.ones((3,3,3), np.uint8), eye), "label": vxp.Vol(np.ones((3,3,3), np.uint8), eye)}},
         {"id": "nopred", "vols": {"label": vxp.Vol(np.ones((3,3,3), np.uint8), eye)}}]'
    assert_exit 3 metric-dice -i "$T/m.vxp" -o "$T/out.tsv"
    [[ "$output" == "metric-dice: error: case 'nopred': no volume 'pred' (the prediction; see --pred)"* ]]
    [ ! -e "$T/out.tsv" ]  # the first case's rows are not left behind either
    mkstream "$T/c.vxp" 'cases = [{"id": "ch", "vols": {"pred": vxp.Vol(np.ones((3,3,3,2), np.uint8), eye), "label": vxp.Vol(np.ones((3,3,3), np.uint8), eye)}}]'
    assert_exit 3 metric-dice -i "$T/c.vxp"
    [[ "$output" == *"case 'ch': volume 'pred': 2 channels; a label volume has one"* ]]
    pair | label-map --preset spine25 --vol label | label-map --preset spine25 --vol pred > "$T/p.vxp"
    assert_exit 3 metric-dice -i "$T/p.vxp" --classes vertebrae_L1,liver
    [[ "$output" == *"case 'example': --classes: class name 'liver' is not in meta 'labels'"* ]]
    assert_exit 2 metric-dice -i "$T/p.vxp" --classes 5-2
    [[ "$output" == *"bad range '5-2'"* ]]
    assert_exit 2 metric-dice -i "$T/p.vxp" --group 7=1-3
    assert_exit 2 metric-dice -i "$T/p.vxp" -o '@tcp://*:5999'
}
