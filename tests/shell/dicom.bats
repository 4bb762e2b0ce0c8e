#!/usr/bin/env bats
# dcm-fetch: DICOM series -> stream. Reference: dcm2niix (Debian), compared in world space by
# tests/scripts/dicom_check.py; fixtures made with pydicom by tests/scripts/dicom_fixtures.py.
load helpers

CT="$VOXPIPE_DATA/totalseg/ct_dicom"
CODECS="$VOXPIPE_DATA/dicom-codecs"
FIX="$SCRIPTS/dicom_fixtures.py"

d2n() { # d2n DICOM OUTDIR: dcm2niix into OUTDIR/out.nii
    mkdir -p "$2" && dcm2niix -s y -f out -o "$2" -z n -b n "$1" >/dev/null 2>&1 && [ -f "$2/out.nii" ]
}
check() { "$VOXPIPE_PY" "$SCRIPTS/dicom_check.py" "$@"; }
key() { head -c 32 /dev/urandom > "$T/site.key"; }

@test "the shared JPEG 2000 series (no UIDs) equals dcm2niix: voxels, HU and affine" {
    run dcm-fetch --keep-identifiers -o "$T/s.vxp" "$CT"
    [ "$status" -eq 0 ]
    [[ "$output" == *"no SeriesInstanceUID; grouped by FrameOfReferenceUID"* ]]
    mkdir -p "$T/n" && dcm2niix -f out -o "$T/n" -z n -b n "$CT" >/dev/null 2>&1
    run check "$T/s.vxp" "$T/n/out.nii" "$(ls "$CT"/* | head -1)"
    echo "$output"; [[ "$output" == "ok int16 (512, 512, 20)"* ]]
}

@test "every codec file that dcm2niix decodes equals its output (uncompressed LE/BE, J2K, JPEG lossless, RLE)" {
    for f in explicit_big implicit_little jpeg_2000 jpeg_lossless_sel1 rle explicit_little; do
        dcm-fetch -q --keep-identifiers -o "$T/$f.vxp" "$CODECS/$f.dcm"
        d2n "$CODECS/$f.dcm" "$T/$f"
        geo=; [ $f = explicit_little ] && geo=--no-geometry # no position/orientation in the file
        run check "$T/$f.vxp" "$T/$f/out.nii" "$CODECS/$f.dcm" $geo
        echo "$f: $output"; [[ "$output" == ok* ]]
    done
}

@test "deflate, JPEG-LS and JPEG baseline equal dcm2niix after DCMTK's dcmconv/dcmdjpls/dcmdjpeg" {
    # dcm2niix (Debian) decodes none of these three: the reference decompresses them first
    dcmconv +te "$CODECS/deflated.dcm" "$T/defl.dcm"
    dcmdjpls "$CODECS/jpeg_ls.dcm" "$T/jls.dcm"
    dcmdjpeg "$CODECS/jpeg_baseline_8bit.dcm" "$T/jb.dcm"
    for p in deflated:defl:--no-geometry jpeg_ls:jls: jpeg_baseline_8bit:jb:--no-geometry; do
        IFS=: read -r f r geo <<< "$p"
        dcm-fetch -q --keep-identifiers -o "$T/$f.vxp" "$CODECS/$f.dcm"
        d2n "$T/$r.dcm" "$T/$r"
        run check "$T/$f.vxp" "$T/$r/out.nii" "$CODECS/$f.dcm" $geo
        echo "$f: $output"; [[ "$output" == ok* ]]
    done
}

@test "pseudonymised: no identifying value of the input appears in the output bytes; ids are keyed" {
    "$VOXPIPE_PY" "$FIX" identify "$CT" "$T/id"
    key
    dcm-fetch -q --site-key "$T/site.key" -o "$T/p.vxp" "$T/id"
    run "$VOXPIPE_PY" "$FIX" leaks "$T/p.vxp" "$T/id"
    echo "$output"; [ "${lines[0]}" = none ]
    # the search does find them when identifiers are kept (so the check above can fail)
    dcm-fetch -q --keep-identifiers -o "$T/k.vxp" "$T/id"
    run "$VOXPIPE_PY" "$FIX" leaks "$T/k.vxp" "$T/id"
    [[ "$output" == *PID-7788991* && "$output" == *1.2.826.0.1.3680043.8.498.1002* ]]
    # same key, same bytes; another key, another pseudonym; voxels unchanged by pseudonymisation
    dcm-fetch -q --site-key "$T/site.key" -o "$T/p2.vxp" "$T/id"
    cmp "$T/p.vxp" "$T/p2.vxp"
    head -c 32 /dev/urandom > "$T/other.key"
    dcm-fetch -q --site-key "$T/other.key" -o "$T/o.vxp" "$T/id"
    run "$VOXPIPE_PY" -c '
import sys; sys.path.insert(0, sys.argv[1]); import vxp, numpy as np
p, o, k = [list(vxp.read(open(f, "rb")))[0] for f in sys.argv[2:5]]
print(p["meta"]["dicom"]["PatientID"] != o["meta"]["dicom"]["PatientID"], len(p["meta"]["dicom"]["PatientID"]),
      np.array_equal(p["vols"]["image"].data, k["vols"]["image"].data), sorted(p["meta"]["dicom"]["sealed"]))' \
        "$SCRIPTS" "$T/p.vxp" "$T/o.vxp" "$T/k.vxp"
    [ "$output" = "True 64 True ['alg', 'box', 'nonce']" ]
}

@test "pseudonymisation without a site key is refused; a short key too" {
    assert_exit 2 dcm-fetch -o "$T/x.vxp" "$CT"
    [[ "$output" == *"needs --site-key"* ]]; [ ! -e "$T/x.vxp" ]
    head -c 16 /dev/urandom > "$T/short.key"
    assert_exit 2 dcm-fetch --site-key "$T/short.key" -o "$T/x.vxp" "$CT"
    [[ "$output" == *"at least 32 random bytes"* ]]; [ ! -e "$T/x.vxp" ]
}

@test "a missing slice fails the series (exit 3, no output) unless --allow-nonuniform" {
    mkdir "$T/gap"; i=0
    for f in "$CT"/*; do i=$((i+1)); [ $i -eq 10 ] || cp "$f" "$T/gap/"; done
    assert_exit 3 dcm-fetch --keep-identifiers -o "$T/x.vxp" "$T/gap"
    [[ "$output" == *"1 missing slice(s) between"* ]]; [ ! -e "$T/x.vxp" ]
    run dcm-fetch --keep-identifiers --allow-nonuniform -o "$T/x.vxp" "$T/gap"
    [ "$status" -eq 0 ]; [[ "$output" == *"using the mean spacing"* ]]; [ -s "$T/x.vxp" ]
}

@test "gantry tilt is refused clearly" {
    "$VOXPIPE_PY" "$FIX" tilt "$CT" "$T/tilt"
    assert_exit 3 dcm-fetch --keep-identifiers -o "$T/x.vxp" "$T/tilt"
    [[ "$output" == *"gantry tilt"*"degrees off the slice normal"* ]]; [ ! -e "$T/x.vxp" ]
}

@test "a truncated file fails the run naming it, or is skipped with --on-error skip" {
    mkdir "$T/in"; cp "$CODECS/jpeg_2000.dcm" "$CODECS/rle.dcm" "$T/in/"
    chmod u+w "$T/in/rle.dcm"; truncate -s 2000 "$T/in/rle.dcm"
    assert_exit 3 dcm-fetch --keep-identifiers -o "$T/x.vxp" "$T/in"
    [[ "$output" == *"'$T/in/rle.dcm'"* ]]; [ ! -e "$T/x.vxp" ]
    run dcm-fetch --keep-identifiers --on-error skip -o "$T/x.vxp" "$T/in"
    [ "$status" -eq 0 ]; [[ "$output" == *"rle.dcm"*"skipped"* ]]
    run "$VOXPIPE_PY" "$SCRIPTS/vxp.py" < "$T/x.vxp"
    [ "${#lines[@]}" -eq 1 ]
}

@test "case ids are sanitised: no path traversal" {
    dcm-fetch -q --keep-identifiers --id "../../etc/passwd" -o "$T/x.vxp" "$CODECS/rle.dcm"
    run "$VOXPIPE_PY" "$SCRIPTS/vxp.py" < "$T/x.vxp"
    id=${output%% *}
    [[ "$id" != */* && "$id" != .* ]]
}

@test "a file that is not DICOM is reported with its path" {
    echo hello > "$T/not.dcm"
    assert_exit 3 dcm-fetch --keep-identifiers -o "$T/x.vxp" "$T/not.dcm"
    [[ "$output" == *"'$T/not.dcm': not a readable DICOM file"* ]]; [ ! -e "$T/x.vxp" ]
}
