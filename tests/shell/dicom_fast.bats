#!/usr/bin/env bats
# dcm-fetch's in-place read of uncompressed little-endian slices (the header parsed by DCMTK, the
# pixel bytes read from the file straight into the volume and converted there) against dcm2niix
# and a numpy reference from the raw PixelData bytes (tests/scripts/dicom_fast_fixtures.py): every
# output type, the fallback when a slice does not fit i16, series mixing in-place and decoded
# slices, thread counts. And the DICOM SEG of an enhanced (multi-frame) source: per-frame source
# references with ReferencedFrameNumber, checked with dciodvfy and highdicom
# (tests/scripts/dicom_seg_frames.py).
load helpers
bats_require_minimum_version 1.5.0

CT="$VOXPIPE_DATA/totalseg/ct_dicom"
FIX="$SCRIPTS/dicom_fixtures.py"
FFIX="$SCRIPTS/dicom_fast_fixtures.py"
SFR="$SCRIPTS/dicom_seg_frames.py"

series() { "$VOXPIPE_PY" "$FIX" uncompressed "$CT" "$1" "${2:-6}"; } # series DIR [N]: explicit LE, 2 mm apart
ref() { "$VOXPIPE_PY" "$FFIX" check "$@"; }
dciod_errors() { dciodvfy "$1" 2>&1 | grep -c '^Error' || true; }

@test "uncompressed series read in place = dcm2niix = the numpy reference; same bytes for --threads 1 and 2" {
    series "$T/u"
    dcm-fetch -q --keep-identifiers --threads 1 -o "$T/a.vxp" "$T/u"
    dcm-fetch -q --keep-identifiers --threads 2 -o "$T/b.vxp" "$T/u"
    cmp "$T/a.vxp" "$T/b.vxp"
    mkdir "$T/n" && dcm2niix -f out -o "$T/n" -z n -b n "$T/u" >/dev/null 2>&1
    run "$VOXPIPE_PY" "$SCRIPTS/dicom_check.py" "$T/a.vxp" "$T/n/out.nii" "$(ls "$T"/u/* | head -1)"
    echo "$output"; [[ "$output" == "ok int16 (512, 512, 6)"* ]]
    run ref "$T/a.vxp" "$T/u"
    echo "$output"; [[ "$output" == "ok int16 (512, 512, 6)"* ]]
    # the reference can fail: one slice's bytes changed after the volume was read
    "$VOXPIPE_PY" -c '
import sys, pydicom; d = pydicom.dcmread(sys.argv[1]); b = bytearray(d.PixelData); b[1000] ^= 1
d.PixelData = bytes(b); d.save_as(sys.argv[1])' "$T/u/slice0003.dcm"
    run ref "$T/a.vxp" "$T/u"
    [[ "$output" == "1 voxels differ"* ]]
}

@test "every output type: u16 and i32 (the i16 guess fails: read again), signed 12 bits with junk high bits, f32, u8" {
    for kind in u16:uint16 i32:int32 signed12:int16 float:float32 smallu8:uint8; do
        IFS=: read -r k want <<< "$kind"
        series "$T/$k" 4
        "$VOXPIPE_PY" "$FFIX" values "$T/$k" "$k"
        dcm-fetch -q --keep-identifiers --threads 1 -o "$T/$k-1.vxp" "$T/$k"
        dcm-fetch -q --keep-identifiers --threads 2 -o "$T/$k-2.vxp" "$T/$k"
        cmp "$T/$k-1.vxp" "$T/$k-2.vxp"
        run ref "$T/$k-2.vxp" "$T/$k"
        echo "$k: $output"; [[ "$output" == "ok $want (512, 512, 4)"* ]]
    done
    # dcm2niix agrees where it keeps the stored type (u16, no rescale)
    mkdir "$T/n" && dcm2niix -f out -o "$T/n" -z n -b n "$T/u16" >/dev/null 2>&1
    run "$VOXPIPE_PY" "$SCRIPTS/dicom_check.py" "$T/u16-1.vxp" "$T/n/out.nii" "$(ls "$T"/u16/* | head -1)"
    echo "$output"; [[ "$output" == "ok uint16 (512, 512, 4)"* ]]
}

@test "a series mixing in-place slices with decoded ones (big endian, RLE, deflate) = the all-little-endian series" {
    for k in plain u16; do
        series "$T/$k" 5
        [ $k = plain ] || "$VOXPIPE_PY" "$FFIX" values "$T/$k" "$k"
        dcm-fetch -q --keep-identifiers -o "$T/$k.vxp" "$T/$k"
        mkdir "$T/$k-mix" && cp "$T/$k"/* "$T/$k-mix/"
        "$VOXPIPE_PY" "$FFIX" bigendian "$T/$k/slice0001.dcm" "$T/$k-mix/slice0001.dcm"
        dcmdump "$T/$k-mix/slice0001.dcm" | grep -q '^(7fe0,0010) OW'
        dcmcrle "$T/$k/slice0002.dcm" "$T/$k-mix/slice0002.dcm"
        dcmconv +td "$T/$k/slice0004.dcm" "$T/$k-mix/slice0004.dcm"
        dcm-fetch -q --keep-identifiers -o "$T/$k-mix.vxp" "$T/$k-mix"
        run ref "$T/$k-mix.vxp" "$T/$k-mix"
        echo "$k: $output"; [[ "$output" == ok* ]]
        # same voxels and affine as the all-little-endian series (meta differs: TransferSyntaxUID)
        "$VOXPIPE_PY" -c '
import sys, numpy as np; sys.path.insert(0, sys.argv[1]); import vxp
a, b = [list(vxp.read(open(f, "rb")))[0]["vols"]["image"] for f in sys.argv[2:4]]
assert a.data.dtype == b.data.dtype and np.array_equal(a.data, b.data) and np.array_equal(a.affine, b.affine)' \
            "$SCRIPTS" "$T/$k.vxp" "$T/$k-mix.vxp"
    done
}

@test "a truncated uncompressed slice fails the run naming it (exit 3, no output); skipped with --on-error skip" {
    series "$T/u" 5
    truncate -s 300000 "$T/u/slice0004.dcm" # inside the pixel data
    run --separate-stderr dcm-fetch -q --keep-identifiers -o "$T/o.vxp" "$T/u"
    echo "$stderr"; [ "$status" -eq 3 ]
    [[ "$stderr" == *"'$T/u/slice0004.dcm': "* ]]
    [ ! -e "$T/o.vxp" ] && [ -z "$(ls "$T" | grep -v '^u$')" ]
    run --separate-stderr dcm-fetch --keep-identifiers --on-error skip -o "$T/o.vxp" "$T/u"
    echo "$stderr"; [ "$status" -eq 0 ]
    [[ "$stderr" == *"'$T/u/slice0004.dcm': "*"skipped"* ]]
    rm "$T/u/slice0004.dcm"
    run ref "$T/o.vxp" "$T/u"
    echo "$output"; [[ "$output" == "ok int16 (512, 512, 4)"* ]]
}

enhanced() { # enhanced [dcm-fetch options]: $T/enh.dcm (frames shuffled), $T/e.vxp, $T/l.vxp with labels
    "$VOXPIPE_PY" "$FIX" identify "$CT" "$T/id"
    "$VOXPIPE_PY" "$SCRIPTS/dicom_enhanced.py" "$T/id" "$T/enh.dcm" >/dev/null
    dcm-fetch -q "$@" -o "$T/e.vxp" "$T/enh.dcm"
    "$VOXPIPE_PY" "$SCRIPTS/dicom_seg_check.py" labels "$T/e.vxp" "$T/l.vxp"
}

@test "SEG of an enhanced CT: each frame references its source frame (ReferencedFrameNumber); dciodvfy; highdicom" {
    enhanced --keep-identifiers
    mkdir "$T/out"
    run dcm-store -i "$T/l.vxp" -o "$T/out"
    echo "$output"; [ "$status" -eq 0 ]
    f=$(ls "$T"/out/SEG_*.dcm)
    dciodvfy "$f" 2>&1 | grep -E '^(Error|Warning)' | sort | uniq -c | head -20
    dciodvfy "$f" 2>&1 | grep -qx Segmentation
    [ "$(dciod_errors "$f")" -eq 0 ]
    run "$VOXPIPE_PY" "$SFR" check "$f" "$T/enh.dcm" "$T/l.vxp"
    echo "$output"; [[ "$output" == "ok "*" 20" ]]
    run "$VOXPIPE_PY" "$SCRIPTS/dicom_seg_check.py" check "$f" "$T/l.vxp"
    echo "$output"; [[ "$output" == "ok 4 "* ]]
    # the source is listed once in the Common Instance Reference module
    [ "$("$VOXPIPE_PY" -c 'import sys, pydicom; d = pydicom.dcmread(sys.argv[1])
print(len(d.ReferencedSeriesSequence[0].ReferencedInstanceSequence))' "$f")" -eq 1 ]
    # the check fails without the frame numbers, or with them on the wrong frames
    "$VOXPIPE_PY" "$SFR" strip "$f" "$T/strip.dcm"
    run "$VOXPIPE_PY" "$SFR" check "$T/strip.dcm" "$T/enh.dcm" "$T/l.vxp"
    echo "$output"; [[ "$output" == *"no ReferencedFrameNumber"* ]]
    "$VOXPIPE_PY" "$SFR" shift "$f" "$T/shift.dcm"
    run "$VOXPIPE_PY" "$SFR" check "$T/shift.dcm" "$T/enh.dcm" "$T/l.vxp"
    echo "$output"; [[ "$output" == *"elsewhere"* ]]
    # a single-frame source gets no frame numbers (and its meta none)
    dcm-fetch -q --keep-identifiers -o "$T/s.vxp" "$T/id"
    "$VOXPIPE_PY" "$SCRIPTS/dicom_seg_check.py" labels "$T/s.vxp" "$T/sl.vxp"
    mkdir "$T/out1" && dcm-store -q -i "$T/sl.vxp" -o "$T/out1"
    run "$VOXPIPE_PY" -c 'import sys, pydicom; d = pydicom.dcmread(sys.argv[1])
print(sum("ReferencedFrameNumber" in i.DerivationImageSequence[0].SourceImageSequence[0] for i in d.PerFrameFunctionalGroupsSequence), len(d.PerFrameFunctionalGroupsSequence))' "$(ls "$T"/out1/SEG_*.dcm)"
    echo "$output"; [[ "$output" == "0 "* ]] && [ "$output" != "0 0" ]
}

@test "pseudonymised enhanced stream: frame numbers travel (sealed too); the SEG references the original frames" {
    head -c 32 /dev/urandom > "$T/site.key"
    enhanced --site-key "$T/site.key"
    mkdir "$T/out"
    run dcm-store --site-key "$T/site.key" -i "$T/l.vxp" -o "$T/out"
    echo "$output"; [ "$status" -eq 0 ]
    f=$(ls "$T"/out/SEG_*.dcm)
    [ "$(dciod_errors "$f")" -eq 0 ]
    run "$VOXPIPE_PY" "$SFR" check "$f" "$T/enh.dcm" "$T/l.vxp"
    echo "$output"; [[ "$output" == "ok "*" 20" ]]
}

@test "bad meta.dicom.ReferencedFrameNumbers (wrong count, not a frame number): exit 3, naming it, no file" {
    enhanced --keep-identifiers
    mkdir "$T/out"
    for bad in short text big; do
        "$VOXPIPE_PY" -c '
import sys; sys.path.insert(0, sys.argv[1]); import vxp
c = list(vxp.read(open(sys.argv[2], "rb")))[0]; m = c["meta"]["dicom"]; f = m["ReferencedFrameNumbers"]
m["ReferencedFrameNumbers"] = {"short": f[1:], "text": ["1"] * len(f), "big": [70000] * len(f)}[sys.argv[4]]
vxp.write(open(sys.argv[3], "wb"), [c])' "$SCRIPTS" "$T/l.vxp" "$T/$bad.vxp" "$bad"
        refuses dcm-store 3 dcm-store -i "$T/$bad.vxp" -o "$T/out"
        [[ "$stderr" == *"meta.dicom.ReferencedFrameNumbers"* ]]
    done
    [ -z "$(ls -A "$T/out")" ]
}
