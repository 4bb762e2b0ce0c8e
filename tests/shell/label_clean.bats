#!/usr/bin/env bats
# label-clean: components, --largest, --min-size, --reassign and --fill-holes against golden files
# made with scipy.ndimage (tests/scripts/make_golden_ccl.py -> tests/golden/ccl, checked exactly by
# ccl_check.py); --spine-order on the shared TotalSegmentator labels (spine25: T11, T12, L1, L2) with
# deliberate errors made by spine_corrupt.py; thread-count invariance; bad input.
load helpers
bats_require_minimum_version 1.5.0

GOLD="$VOXPIPE_ROOT/tests/golden/ccl"

setup_file() {
    export SRC="${VOXPIPE_TMP:-$BATS_TMPDIR}/label_clean-src"
    rm -rf "$SRC" && mkdir -p "$SRC"
    vol-read "$TS/example_ct_sm.nii.gz" --label "$TS/example_seg.nii.gz" > "$SRC/v2.vxp"
    label-map --preset spine25 < "$SRC/v2.vxp" > "$SRC/spine25.vxp"
}

# golden PATTERN : run every manifest check whose key matches PATTERN, then compare them all
golden() {
    local i=0 inp key vol args in
    : > "$T/list"
    while IFS=$'\t' read -r inp key vol args; do
        [[ "$key" == *$1* ]] || continue
        i=$((i + 1))
        case $inp in v2 | spine25) in="$SRC/$inp.vxp" ;; *) in="$GOLD/$inp" ;; esac
        # shellcheck disable=SC2086
        label-clean -q $args -i "$in" -o "$T/out$i.vxp" || { echo "label-clean failed: $key: $args"; return 1; }
        printf '%s\t%s\t%s\n' "$T/out$i.vxp" "$key" "$vol" >> "$T/list"
    done < "$GOLD/manifest.tsv"
    [ "$i" -gt 0 ]
    run "$VOXPIPE_PY" "$SCRIPTS/ccl_check.py" "$GOLD" < "$T/list"
    echo "$output"
    [ "$status" -eq 0 ]
}

@test "component ids are scipy.ndimage.label's, in its order (6/18/26; synthetic, u8..i32, real labels)" {
    golden ":ids"
}

@test "--largest keeps each class's largest component, removed voxels 0 or --reassign'ed (scipy goldens)" {
    golden ":largest"
}

@test "--min-size N and Nmm3 drop small components, with and without --reassign (scipy goldens)" {
    golden ":min"
    golden ":mm"
}

@test "--fill-holes fills each class's holes as binary_fill_holes, innermost class first (scipy goldens)" {
    golden ":fill"
}

@test "all operations together: removal, reassign, then holes of the result (scipy goldens)" {
    golden ":all"
}

@test "the output is byte-identical whatever the thread count" {
    for n in 1 2 5; do
        label-clean --threads $n --largest --min-size 5 --reassign --fill-holes --components comp \
            -i "$SRC/v2.vxp" -o "$T/t$n.vxp"
    done
    cmp "$T/t1.vxp" "$T/t2.vxp"
    cmp "$T/t1.vxp" "$T/t5.vxp"
}

@test "other volumes and meta pass through; the removals are summarised in meta.label_clean" {
    label-clean --largest -i "$SRC/spine25.vxp" -o "$T/s.vxp"
    label-clean --largest --min-size 50 -i "$SRC/v2.vxp" -o "$T/v.vxp"
    run "$VOXPIPE_PY" - "$SRC/spine25.vxp" "$T/s.vxp" "$SRC/v2.vxp" "$T/v.vxp" "$SCRIPTS" <<'EOF'
import sys, numpy as np
sys.path.insert(0, sys.argv[5]); import vxp
for i, o in ((sys.argv[1], sys.argv[2]), (sys.argv[3], sys.argv[4])):
    a, b = list(vxp.read(open(i, "rb")))[0], list(vxp.read(open(o, "rb")))[0]
    assert np.array_equal(a["vols"]["image"].data, b["vols"]["image"].data)
    assert np.array_equal(a["vols"]["label"].affine, b["vols"]["label"].affine)
    for k in a["meta"]:
        if k != "provenance": assert a["meta"][k] == b["meta"][k], k
    assert [p["program"] for p in b["meta"]["provenance"]][-1] == "label-clean"
    la, lb = a["vols"]["label"].data, b["vols"]["label"].data
    # each class lost exactly the voxels the log says, all to 0
    lost = {}
    for e in b["meta"]["label_clean"]:
        assert e["op"] in ("largest", "min-size") and e["to"] == 0 and e["components"] >= 1
        lost[e["from"]] = lost.get(e["from"], 0) + e["voxels"]
    for c in np.unique(la[la > 0]):
        assert (la == c).sum() - (lb == c).sum() == lost.get(int(c), 0), c
    print(len(b["meta"]["label_clean"]), "entries", sum(lost.values()), "voxels")
EOF
    echo "$output"
    [ "$status" -eq 0 ]
    [[ "${lines[0]}" == "0 entries 0 voxels" ]]  # spine25: nothing to remove
    [[ "${lines[1]}" != "0 entries"* ]]          # v2: islands removed
}

@test "a stream of several cases: each is cleaned on its own, in order (pipe in, pipe out)" {
    cat "$SRC/v2.vxp" "$SRC/spine25.vxp" "$SRC/v2.vxp" | label-clean --largest --fill-holes > "$T/three.vxp"
    label-clean --largest --fill-holes -i "$SRC/v2.vxp" -o "$T/a.vxp"
    label-clean --largest --fill-holes -i "$SRC/spine25.vxp" -o "$T/b.vxp"
    cat "$T/a.vxp" "$T/b.vxp" "$T/a.vxp" | cmp - "$T/three.vxp"
}

# ---- --spine-order

# spine CORRUPTION [--reorient] : corrupt the spine25 labels, repair, keep the reference in $T/ref.vxp
spine() {
    "$VOXPIPE_PY" "$SCRIPTS/spine_corrupt.py" "$@" --expect "$T/expect.json" < "$SRC/spine25.vxp" > "$T/bad.vxp"
    "$VOXPIPE_PY" "$SCRIPTS/spine_corrupt.py" none "${@:2}" < "$SRC/spine25.vxp" > "$T/ref.vxp"
    run --separate-stderr label-clean --spine-order -i "$T/bad.vxp" -o "$T/out.vxp"
    printf 'stderr:\n%s\n' "$stderr"
    [ "$status" -eq 0 ]
}

@test "--spine-order leaves both shared segmentations as they are" {
    for f in example_seg example_seg_fast; do
        vol-read "$TS/example_ct_sm.nii.gz" --label "$TS/$f.nii.gz" | label-map --preset spine25 > "$T/in.vxp"
        run --separate-stderr label-clean --spine-order -i "$T/in.vxp" -o "$T/out.vxp"
        [ "$status" -eq 0 ] && [ -z "$stderr" ]
        echo '[]' > "$T/none.json"
        "$VOXPIPE_PY" "$SCRIPTS/spine_check.py" "$T/out.vxp" "$T/in.vxp" "$T/none.json" --exact
    done
}

@test "--spine-order: T12 and L1 swapped are put back in order, and the log says so" {
    spine swap
    "$VOXPIPE_PY" "$SCRIPTS/spine_check.py" "$T/out.vxp" "$T/ref.vxp" "$T/expect.json" --exact
    [[ "$stderr" == *"spine-order: component of "*" voxels at voxel ("*"), S="*" mm: T12 -> L1 (order along S/I)"* ]]
    [[ "$stderr" == *": L1 -> T12 (order along S/I)"* ]]
}

@test "--spine-order finds S/I from the affine: the swap repaired on axes permuted and flipped (IRP)" {
    spine swap --reorient
    "$VOXPIPE_PY" "$SCRIPTS/spine_check.py" "$T/out.vxp" "$T/ref.vxp" "$T/expect.json" --exact
    spine combo --reorient
    "$VOXPIPE_PY" "$SCRIPTS/spine_check.py" "$T/out.vxp" "$T/ref.vxp" "$T/expect.json" --exact
}

@test "--spine-order removes isolated islands of vertebra labels" {
    spine island
    "$VOXPIPE_PY" "$SCRIPTS/spine_check.py" "$T/out.vxp" "$T/ref.vxp" "$T/expect.json" --exact
    [[ "$stderr" == *": T12 -> 0 (isolated island)"* ]] && [[ "$stderr" == *": C3 -> 0 (isolated island)"* ]]
    spine combo
    "$VOXPIPE_PY" "$SCRIPTS/spine_check.py" "$T/out.vxp" "$T/ref.vxp" "$T/expect.json" --exact
}

@test "--spine-order cuts a component holding L1 and L2 (both labelled L2) and relabels the upper one" {
    spine duplicate
    # the cut between touching vertebrae is approximate: a few boundary voxels may differ
    "$VOXPIPE_PY" "$SCRIPTS/spine_check.py" "$T/out.vxp" "$T/ref.vxp" "$T/expect.json" --max-wrong 0.03
    [[ "$stderr" == *": L2 -> L1 (lower part of a component holding two vertebrae; order along S/I)"* ]] ||
        [[ "$stderr" == *": L2 -> L1 (order along S/I)"* ]]
    spine duplicate --reorient
    "$VOXPIPE_PY" "$SCRIPTS/spine_check.py" "$T/out.vxp" "$T/ref.vxp" "$T/expect.json" --max-wrong 0.03
}

@test "--spine-order joins a vertebra split between two labels (40% or 60% of L1 labelled L2)" {
    for k in split40 split60; do
        spine $k
        "$VOXPIPE_PY" "$SCRIPTS/spine_check.py" "$T/out.vxp" "$T/ref.vxp" "$T/expect.json" --max-wrong 0.07
        spine $k --reorient
        "$VOXPIPE_PY" "$SCRIPTS/spine_check.py" "$T/out.vxp" "$T/ref.vxp" "$T/expect.json" --max-wrong 0.07
    done
}

# ---- bad input: exit code, one error line naming case and volume, nothing written

refuses() {
    local want=$1
    shift
    run --separate-stderr "$@"
    printf 'exit %s\nstderr:\n%s\n' "$status" "$stderr"
    [ "$status" -eq "$want" ]
    [ -z "$output" ]
    grep -q "^label-clean: error: " <<<"$stderr"
    ! grep -v -e "^label-clean: error: " -e "^(see 'label-clean --help')$" <<<"$stderr"
}

@test "a float label volume: exit 3, case, volume and dtype named, nothing written" {
    "$VOXPIPE_PY" -c '
import sys, numpy as np; sys.path.insert(0, sys.argv[1]); import vxp
vxp.write(sys.stdout.buffer, [{"id": "flt", "vols": {"label": vxp.Vol(np.ones((5, 4, 3), np.float32), np.eye(4))}}])' "$SCRIPTS" > "$T/f.vxp"
    refuses 3 label-clean --largest -i "$T/f.vxp" -o "$T/out.vxp"
    [[ "$stderr" == *"case 'flt': volume 'label': dtype f32: a label volume must be an integer type"* ]]
    [ ! -e "$T/out.vxp" ] && [ -z "$(find "$T" -name '.*tmp*')" ]
}

@test "a missing volume name: exit 3, the case and its volumes named, nothing written" {
    refuses 3 label-clean --largest --vol seg -i "$SRC/v2.vxp" -o "$T/out.vxp"
    [[ "$stderr" == *"case 'example_ct_sm': no volume 'seg' (volumes: image, label)"* ]]
    [ ! -e "$T/out.vxp" ] && [ -z "$(find "$T" -name '.*tmp*')" ]
}

@test "a label volume with several channels: exit 3, nothing written" {
    "$VOXPIPE_PY" -c '
import sys, numpy as np; sys.path.insert(0, sys.argv[1]); import vxp
vxp.write(sys.stdout.buffer, [{"id": "ch2", "vols": {"label": vxp.Vol(np.ones((5, 4, 3, 2), np.uint8), np.eye(4))}}])' "$SCRIPTS" > "$T/c.vxp"
    refuses 3 label-clean --fill-holes -i "$T/c.vxp" -o "$T/out.vxp"
    [[ "$stderr" == *"case 'ch2': volume 'label': 2 channels"* ]]
    [ ! -e "$T/out.vxp" ]
}

@test "--spine-order on labels that are not spine25 (named by meta.labels): exit 3, nothing written" {
    label-map --preset totalseg-v2 < "$SRC/v2.vxp" > "$T/named.vxp"
    refuses 3 label-clean --spine-order -i "$T/named.vxp" -o "$T/out.vxp"
    [[ "$stderr" == *"meta 'labels': id 1 is 'spleen', not spine25's 'vertebrae_C1'"* ]]
    [ ! -e "$T/out.vxp" ]
}

@test "usage errors exit 2: nothing to do, bad --min-size, bad connectivity, --reassign alone" {
    refuses 2 label-clean -i "$SRC/v2.vxp" -o "$T/out.vxp"
    refuses 2 label-clean --min-size 0 -i "$SRC/v2.vxp" -o "$T/out.vxp"
    refuses 2 label-clean --min-size 5cm3 -i "$SRC/v2.vxp" -o "$T/out.vxp"
    refuses 2 label-clean --largest --connectivity 8 -i "$SRC/v2.vxp" -o "$T/out.vxp"
    refuses 2 label-clean --reassign --fill-holes -i "$SRC/v2.vxp" -o "$T/out.vxp"
    [ ! -e "$T/out.vxp" ]
}
