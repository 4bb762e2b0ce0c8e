#!/usr/bin/env bats
# hausdorff: boundary distance metrics against golden files made by the real peers
# (tests/scripts/make_golden_hausdorff.py: MONAI, surface-distance, Metrics Reloaded's definitions,
# numpy/scipy, plastimatch when installed), on small synthetic cases and on TotalSegmentator's fast
# model scored against its full model; determinism, one pass over all classes, JSON, and bad input.
load helpers
bats_require_minimum_version 1.5.0

G="$VOXPIPE_ROOT/tests/golden/hausdorff"
CMP="$SCRIPTS/cmp_tidy.py"
SYN_OPTS="--classes 1-4 --percentile 95 --tolerance 1.6"
REAL_OPTS="--classes 30-33 --percentile 95 --tolerance 3"

# the shared-data pair as one case: reference = full model, prediction = fast model
real_pair() {
    vol-read "$TS/example_seg.nii.gz" --image-name label --label "$TS/example_seg_fast.nii.gz" \
        --label-name pred --labels totalseg-v2 --id example_seg
}

# py SCRIPT ARGS... : run Python with vxp importable
py() {
    "$VOXPIPE_PY" -c "import sys; sys.path.insert(0, '$SCRIPTS'); import vxp, numpy as np
$1" "${@:2}"
}

# refuses CODE CMD... : exit code CODE, nothing on stdout, only "hausdorff: error: " lines on stderr
refuses() {
    local want=$1
    shift
    run --separate-stderr "$@"
    printf 'exit %s\nstderr:\n%s\nstdout:\n%s\n' "$status" "$stderr" "$output"
    [ "$status" -eq "$want" ]
    [ -z "$output" ]
    [ -n "$stderr" ]
    ! grep -v -e "^hausdorff: error: " -e "^(see 'hausdorff --help')$" <<<"$stderr"
}

@test "the golden files are those the committed script makes (params)" {
    run cat "$G/params.txt"
    [ "${lines[0]}" = "synthetic $SYN_OPTS" ]
    [ "${lines[1]}" = "totalseg $REAL_OPTS" ]
}

# golden_syn CONV / golden_real CONV : compare with the peer's golden file to 1e-6 relative
golden_syn() {
    hausdorff -i "$G/synthetic.vxp" --convention "$1" $SYN_OPTS > "$T/got.tsv"
    "$VOXPIPE_PY" "$CMP" "$T/got.tsv" "$G/synthetic_$1.tsv" --rel 1e-6
}
golden_real() {
    real_pair | hausdorff --convention "$1" $REAL_OPTS > "$T/got.tsv"
    "$VOXPIPE_PY" "$CMP" "$T/got.tsv" "$G/totalseg_$1.tsv" --rel 1e-6
}

@test "synthetic cases, --convention voxpipe: agrees with numpy/scipy to 1e-6" { golden_syn voxpipe; }

@test "synthetic cases, --convention monai: agrees with MONAI to 1e-6" { golden_syn monai; }

@test "synthetic cases, --convention deepmind: agrees with surface-distance to 1e-6" { golden_syn deepmind; }

@test "synthetic cases, --convention metricsreloaded: agrees with Metrics Reloaded's definitions to 1e-6" { golden_syn metricsreloaded; }

@test "TotalSegmentator fast vs full model, L2..T11, --convention voxpipe: agrees with numpy/scipy to 1e-6" { golden_real voxpipe; }

@test "TotalSegmentator fast vs full model, L2..T11, --convention monai: agrees with MONAI to 1e-6" { golden_real monai; }

@test "TotalSegmentator fast vs full model, L2..T11, --convention deepmind: agrees with surface-distance to 1e-6" { golden_real deepmind; }

@test "TotalSegmentator fast vs full model, L2..T11, --convention metricsreloaded: agrees with Metrics Reloaded's definitions to 1e-6" { golden_real metricsreloaded; }

# plastimatch: plastimatch.tsv holds plastimatch 1.9.4's own numbers (Debian package; written by
# make_golden_hausdorff.py, which needs plastimatch installed). Where its Danielsson distance map is
# exact, voxpipe gives its numbers to print precision; on danielsson.vxp (sparse masks) the map
# overestimates some distances and the bounds below are what was measured. The numbers come from
# this test's own report (plastimatch 1.9.4, Debian):
#   bats --show-output-of-passing-tests -f 'plastimatch dice' tests/shell/hausdorff.bats
#   synthetic + shared data, 256 values: max |voxpipe - plastimatch| 5.95e-07 (6 printed decimals of
#     a float: 255 values print the same, one ahd differs by 1 in the 6th decimal); NaN where both
#     masks are empty (plastimatch exits with an error), FLT_MAX and FLT_MAX/2 where one is, alike
#   danielsson.vxp, 7 cases x 8 values: max relative difference hd, hd_set 0.0274; hd95, hd95_set
#     0.00683; masd, masd_set 0.00183; ahd, ahd_set 0.00349; every case differs somewhere; voxpipe
#     larger by at most 9.6e-07 (exact distances are the smallest; plastimatch rounds its float
#     distances its own way, 1 ulp apart where offsets tie, and prints 6 decimals)
@test "plastimatch: plastimatch dice --hausdorff to print precision where its map is exact; measured bounds where not" {
    [ -f "$G/plastimatch.tsv" ] || skip "no golden file: plastimatch was not installed when the goldens were made"
    hausdorff -i "$G/synthetic.vxp" --convention plastimatch $SYN_OPTS > "$T/syn.tsv"
    real_pair | hausdorff --convention plastimatch $REAL_OPTS > "$T/real.tsv"
    hausdorff -i "$G/danielsson.vxp" --convention plastimatch --classes 1 > "$T/dan.tsv"
    "$VOXPIPE_PY" - "$G/plastimatch.tsv" "$T/syn.tsv" "$T/real.tsv" "$T/dan.tsv" <<'EOF'
import sys
def load(p):
    rows = [l.split("\t") for l in open(p).read().splitlines()[1:]]
    return {(c, k, m): float(v) for c, k, n, m, v in rows}
want, got = load(sys.argv[1]), {}
for p in sys.argv[2:]:
    got.update(load(p))
assert {k[2] for k in want} == {"hd", "hd95", "masd", "ahd", "hd_set", "hd95_set", "masd_set", "ahd_set"}
assert len(want) == 8 * (7 * 4 + 4 + 7), len(want)
EXACT_ABS = 6e-7  # measured 5.95e-07
ABOVE_ABS = 1e-6  # measured 9.6e-07: voxpipe above plastimatch only by float rounding (sparse287 hd95)
SPARSE_REL = {"hd": 0.028, "hd95": 0.0069, "masd": 0.0019, "ahd": 0.0035}  # measured 0.0274, 0.00683, 0.00183, 0.00349
worst, differs, bad = {}, set(), 0
for key, w in sorted(want.items()):
    g = got[key]
    sparse = key[0].startswith("sparse")
    group = ("danielsson.vxp " if sparse else "synthetic + shared data ") + key[2]
    if (g != g) != (w != w):
        print("%s: got %r want %r" % (key, g, w))
        bad += 1
        continue
    d = 0.0 if g != g or g == w else abs(g - w)
    r = d / max(abs(g), abs(w)) if d else 0.0
    a, b, c = worst.get(group, (0.0, 0.0, 0.0))
    worst[group] = (max(a, d), max(b, r), max(c, g - w if d else 0.0))
    if g - w > ABOVE_ABS:
        print("%s: voxpipe %r above plastimatch %r" % (key, g, w))
        bad += 1
    if not sparse and d > EXACT_ABS:
        print("%s: got %r want %r (abs %.3g)" % (key, g, w, d))
        bad += 1
    if sparse and d > EXACT_ABS:
        differs.add(key[0])
    if sparse and r > SPARSE_REL[key[2].replace("_set", "")]:
        print("%s: got %r want %r (rel %.3g)" % (key, g, w, r))
        bad += 1
for grp in sorted(worst):
    print("%-34s max abs %-9.3g max rel %-9.3g max voxpipe - plastimatch %.3g" % ((grp,) + worst[grp]))
print("danielsson.vxp cases where plastimatch differs: %d of 7" % len(differs))
sys.exit(1 if bad or len(differs) != 7 else 0)
EOF
}

@test "the same bytes for any --threads, under every convention" {
    # classes big enough to be split over threads (boxes above a million voxels: 144x120x80)
    py 'from scipy import ndimage
rng = np.random.default_rng(5)
f = ndimage.zoom(rng.standard_normal((12, 12, 8)), (12, 10, 10), order=1)
g = f + 0.15 * ndimage.zoom(rng.standard_normal((36, 30, 20)), 4, order=1)
ref, pred = (f > 0.6).astype(np.uint8), (g > 0.6).astype(np.uint8)
ref[f < -1.2], pred[g < -1.2] = 2, 2
a = np.diag([0.8, 0.9, 1.7, 1.0])
vxp.write(open(sys.argv[1], "wb"), [{"id": "big", "meta": {}, "vols": {"label": vxp.Vol(ref, a), "pred": vxp.Vol(pred, a)}}])' "$T/big.vxp"
    for conv in voxpipe monai deepmind metricsreloaded plastimatch; do
        for in in "$G/synthetic.vxp" "$T/big.vxp"; do
            hausdorff -i "$in" --convention $conv $SYN_OPTS --threads 1 > "$T/a.tsv"
            hausdorff -i "$in" --convention $conv $SYN_OPTS --threads 3 > "$T/b.tsv"
            cmp "$T/a.tsv" "$T/b.tsv"
            [ "$(wc -l < "$T/a.tsv")" -gt 30 ]
        done
    done
}

@test "all classes in one pass give the rows of one class at a time" {
    real_pair > "$T/pair.vxp"
    hausdorff -i "$T/pair.vxp" > "$T/all.tsv"
    head -1 "$T/all.tsv" > "$T/one.tsv"
    classes=$(tail -n +2 "$T/all.tsv" | cut -f2 | uniq)
    [ "$(wc -w <<<"$classes")" -ge 20 ] # every TotalSegmentator class present in either model
    for c in $classes; do hausdorff -i "$T/pair.vxp" --classes "$c" | tail -n +2 >> "$T/one.tsv"; done
    cmp "$T/all.tsv" "$T/one.tsv"
}

@test "tidy TSV: header, classes ascending, names from meta labels, metric names carry P and tolerance" {
    real_pair | hausdorff --classes 30-33 --percentile 90 --tolerance 2.5 > "$T/got.tsv"
    [ "$(head -1 "$T/got.tsv")" = "$(printf 'case\tclass\tname\tmetric\tvalue')" ]
    [ "$(tail -n +2 "$T/got.tsv" | cut -f2 | uniq | tr '\n' ' ')" = "30 31 32 33 " ]
    [ "$(tail -n +2 "$T/got.tsv" | cut -f3 | uniq | tr '\n' ' ')" = "vertebrae_L2 vertebrae_L1 vertebrae_T12 vertebrae_T11 " ]
    [ "$(tail -n +2 "$T/got.tsv" | head -9 | cut -f4 | tr '\n' ' ')" = "hd hd90 masd ahd assd nsd_2.5mm bprec_2.5mm brec_2.5mm bf1_2.5mm " ]
}

@test "--metrics selects and orders; a metric that does not exist is a usage error" {
    hausdorff -i "$G/synthetic.vxp" --classes 1 --metrics assd,hd > "$T/got.tsv"
    [ "$(tail -n +2 "$T/got.tsv" | head -2 | cut -f4 | tr '\n' ' ')" = "assd hd " ]
    [ "$(wc -l < "$T/got.tsv")" -eq 15 ] # 7 cases x 2 metrics + header
    refuses 2 hausdorff -i "$G/synthetic.vxp" --metrics hd,nope
    refuses 2 hausdorff -i "$G/synthetic.vxp" --metrics hd_set # plastimatch only
    hausdorff -i "$G/synthetic.vxp" --classes 1 --convention plastimatch --metrics hd_set,hd95_set,masd_set,ahd_set > "$T/set.tsv"
    [ "$(tail -n +2 "$T/set.tsv" | head -4 | cut -f4 | tr '\n' ' ')" = "hd_set hd95_set masd_set ahd_set " ]
}

@test "--json: one object per case and class, the TSV's values, NaN as null and +inf as 1e999" {
    hausdorff -i "$G/synthetic.vxp" $SYN_OPTS > "$T/got.tsv"
    hausdorff -i "$G/synthetic.vxp" $SYN_OPTS --json > "$T/got.jsonl"
    "$VOXPIPE_PY" - "$T/got.tsv" "$T/got.jsonl" <<'EOF'
import json, math, sys
rows = [l.split("\t") for l in open(sys.argv[1]).read().splitlines()[1:]]
objs = [json.loads(l) for l in open(sys.argv[2])]
assert len(objs) == 28, len(objs)
tsv = {(c, k, m): float(v) for c, k, n, m, v in rows}
seen = 0
for o in objs:
    for m, v in o.items():
        if m in ("case", "class", "name"):
            continue
        want = tsv[(o["case"], o["class"], m)]
        got = float("nan") if v is None else v
        assert (math.isnan(got) and math.isnan(want)) or got == want, (o["case"], o["class"], m, got, want)
        seen += 1
assert seen == len(rows)
assert any(v is None for o in objs for v in o.values()) and any(v == math.inf for o in objs for v in o.values())
EOF
}

@test "a class absent from both volumes: NaN under voxpipe and plastimatch, 0 under metricsreloaded (documented)" {
    hausdorff -i "$G/synthetic.vxp" --classes 9 --metrics hd,assd > "$T/vp.tsv"
    [ "$(tail -n +2 "$T/vp.tsv" | cut -f5 | sort -u)" = "nan" ]
    [ "$(wc -l < "$T/vp.tsv")" -eq 15 ]
    hausdorff -i "$G/synthetic.vxp" --classes 9 --metrics hd,assd --convention metricsreloaded > "$T/mr.tsv"
    [ "$(tail -n +2 "$T/mr.tsv" | cut -f5 | sort -u)" = "0" ]
    hausdorff -i "$G/synthetic.vxp" --classes 9 --convention plastimatch > "$T/plm.tsv" # plastimatch itself fails
    [ "$(tail -n +2 "$T/plm.tsv" | cut -f5 | sort -u)" = "nan" ]
    [ "$(wc -l < "$T/plm.tsv")" -eq $((7 * 13 + 1)) ]
}

@test "an empty input stream gives the header alone" {
    run bash -c ": | hausdorff"
    echo "status $status: $output"
    [ "$status" -eq 0 ]
    [ "$output" = "$(printf 'case\tclass\tname\tmetric\tvalue')" ]
    : > "$T/empty.vxp"
    hausdorff -i "$T/empty.vxp" --json -o "$T/out.jsonl"
    [ -e "$T/out.jsonl" ] && [ ! -s "$T/out.jsonl" ]
}

@test "float label volumes holding integers give the numbers of the integer volumes" {
    py 'c = list(vxp.read(open(sys.argv[1], "rb")))
for x in c:
    for k in ("pred", "label"):
        v = x["vols"][k]; x["vols"][k] = vxp.Vol(v.data.astype(np.float32 if k == "pred" else np.int16), v.affine)
vxp.write(open(sys.argv[2], "wb"), c)' "$G/synthetic.vxp" "$T/f32.vxp"
    hausdorff -i "$G/synthetic.vxp" $SYN_OPTS > "$T/u8.tsv"
    hausdorff -i "$T/f32.vxp" $SYN_OPTS > "$T/f32.tsv"
    cmp "$T/u8.tsv" "$T/f32.tsv"
}

@test "bad input: volumes on different grids (affine or dims) exit 3 and leave no output file" {
    py 'c = next(vxp.read(open(sys.argv[1], "rb")))
a = c["vols"]["pred"].affine.copy(); a[0, 3] += 0.5
c["vols"]["pred"] = vxp.Vol(c["vols"]["pred"].data, a)
vxp.write(open(sys.argv[2], "wb"), [c])
c["vols"]["pred"] = vxp.Vol(c["vols"]["pred"].data[:-1], a)
vxp.write(open(sys.argv[3], "wb"), [c])' "$G/synthetic.vxp" "$T/shift.vxp" "$T/dims.vxp"
    refuses 3 hausdorff -i "$T/shift.vxp" -o "$T/out.tsv"
    [[ "$stderr" == *"case 'blobs': volumes 'pred' and 'label' are on different grids (affine entry [0][3]"* ]]
    [ ! -e "$T/out.tsv" ]
    refuses 3 hausdorff -i "$T/dims.vxp" -o "$T/out.tsv"
    [[ "$stderr" == *"different grids (dims 23x20x14 vs 24x20x14)"* ]]
    [ ! -e "$T/out.tsv" ]
    [ -z "$(find "$T" -name '.out.tsv*')" ]
}

@test "bad input: a non-integer label exits 3 naming the case, volume, value and voxel" {
    py 'c = next(vxp.read(open(sys.argv[1], "rb")))
d = c["vols"]["pred"].data.astype(np.float32); d[5, 6, 7] = 1.5
c["vols"]["pred"] = vxp.Vol(d, c["vols"]["pred"].affine)
vxp.write(open(sys.argv[2], "wb"), [c])' "$G/synthetic.vxp" "$T/frac.vxp"
    refuses 3 hausdorff -i "$T/frac.vxp" -o "$T/out.tsv"
    [ "$stderr" = "hausdorff: error: case 'blobs': volume 'pred': value 1.5 at voxel (5, 6, 7) is not an integer label (dtype f32)" ]
    [ ! -e "$T/out.tsv" ]
}

@test "bad input: a case without the prediction, or an unknown class name, exits 3" {
    refuses 3 hausdorff -i "$G/synthetic.vxp" --pred nope -o "$T/out.tsv"
    [[ "$stderr" == *"case 'blobs': no volume 'nope' (the prediction; see --pred)"* ]]
    [ ! -e "$T/out.tsv" ]
    real_pair > "$T/pair.vxp"
    refuses 3 hausdorff -i "$T/pair.vxp" --classes vertebrae_L2,vertebrae_X9 -o "$T/out.tsv"
    [[ "$stderr" == *"case 'example_seg': --classes:"*"vertebrae_X9"* ]]
    [ ! -e "$T/out.tsv" ]
    hausdorff -i "$T/pair.vxp" --classes vertebrae_L2 --metrics hd > "$T/byname.tsv"
    [ "$(tail -n +2 "$T/byname.tsv" | cut -f2,3,4)" = "$(printf '30\tvertebrae_L2\thd')" ]
}

@test "bad input: a truncated stream exits 3 and leaves no output file" {
    head -c 20000 "$G/synthetic.vxp" > "$T/cut.vxp"
    refuses 3 hausdorff -i "$T/cut.vxp" -o "$T/out.tsv"
    [ ! -e "$T/out.tsv" ]
}

@test "usage errors exit 2" {
    refuses 2 hausdorff --convention nope
    refuses 2 hausdorff --percentile 101
    refuses 2 hausdorff --tolerance -1
    refuses 2 hausdorff --classes 3-1
    refuses 2 hausdorff -o '@tcp://*:5999'
}

@test "--help says how to put a prediction and a reference into one case" {
    run hausdorff --help
    [ "$status" -eq 0 ]
    [[ "$output" == *"vol-read REF.nii.gz --image-name label --label PRED.nii.gz --label-name pred"* ]]
    [[ "$output" == *"--convention NAME"* ]]
}
