#!/usr/bin/env bats
# dcm-store: label volumes -> DICOM SEG. The shared series gets UIDs (dicom_fixtures.py identify),
# goes through dcm-fetch, gets labels on its grid (dicom_seg_check.py labels); the SEG is checked
# with dciodvfy (dicom3tools) and read back with highdicom (dicom_seg_check.py check), and stored
# into a real PACS (Orthanc on loopback) and found there again with C-FIND (findscu).
load helpers

CT="$VOXPIPE_DATA/totalseg/ct_dicom"
CHK="$SCRIPTS/dicom_seg_check.py"

prepare() { # prepare [dcm-fetch options]: $T/l.vxp with an image and a label volume
    "$VOXPIPE_PY" "$SCRIPTS/dicom_fixtures.py" identify "$CT" "$T/id"
    dcm-fetch -q "$@" -o "$T/k.vxp" "$T/id"
    "$VOXPIPE_PY" "$CHK" labels "$T/k.vxp" "$T/l.vxp"
}
dciod_errors() { dciodvfy "$1" 2>&1 | grep -c '^Error' || true; }

@test "SEG from the shared series: dciodvfy finds no error; highdicom reads back the same labels on the same grid" {
    prepare --keep-identifiers
    mkdir "$T/out"
    run dcm-store -i "$T/l.vxp" -o "$T/out"
    echo "$output"; [ "$status" -eq 0 ]
    [[ "$output" == *"label 3 ('soft_tissue'): no specific code"* ]]
    f=$(ls "$T"/out/SEG_*.dcm)
    dciodvfy "$f" 2>&1 | head -20
    dciodvfy "$f" 2>&1 | grep -qx Segmentation
    [ "$(dciod_errors "$f")" -eq 0 ]
    run "$VOXPIPE_PY" "$CHK" check "$f" "$T/l.vxp"
    echo "$output"; [[ "$output" == "ok 4 "* ]]
    # the check can fail: another label volume on the same grid does not match
    "$VOXPIPE_PY" -c '
import sys; sys.path.insert(0, sys.argv[1]); import vxp
c = list(vxp.read(open(sys.argv[2], "rb")))[0]; c["vols"]["label"].data = c["vols"]["label"].data[::-1].copy()
vxp.write(open(sys.argv[3], "wb"), [c])' "$SCRIPTS" "$T/l.vxp" "$T/flip.vxp"
    run "$VOXPIPE_PY" "$CHK" check "$f" "$T/flip.vxp"
    [[ "$output" == *"voxels differ"* ]]
}

@test "pseudonymised stream: the sealed UIDs are opened with the site key and the SEG references the originals" {
    head -c 32 /dev/urandom > "$T/site.key"
    prepare --site-key "$T/site.key"
    mkdir "$T/out" "$T/ref"
    dcm-store -q --site-key "$T/site.key" -i "$T/l.vxp" -o "$T/out"
    f=$(ls "$T"/out/SEG_*.dcm)
    [ "$(dciod_errors "$f")" -eq 0 ]
    # the reference: the same files fetched with identifiers kept
    dcm-fetch -q --keep-identifiers -o "$T/kk.vxp" "$T/id"
    "$VOXPIPE_PY" "$CHK" labels "$T/kk.vxp" "$T/lk.vxp"
    run "$VOXPIPE_PY" "$CHK" check "$f" "$T/lk.vxp"
    echo "$output"; [[ "$output" == "ok 4 "* ]]
    # and it is not readable against the pseudonymous UIDs of the stream
    run "$VOXPIPE_PY" "$CHK" check "$f" "$T/l.vxp"
    [[ "$output" == *StudyInstanceUID* ]]
}

@test "bad inputs: no key, wrong key, labels off the source grid, no label volume: exit code, message, no file" {
    head -c 32 /dev/urandom > "$T/site.key"
    prepare --site-key "$T/site.key"
    mkdir "$T/out"
    assert_exit 3 dcm-store -i "$T/l.vxp" -o "$T/out"
    [[ "$output" == *"give --site-key to open meta.dicom.sealed"* ]]
    head -c 32 /dev/urandom > "$T/other.key"
    assert_exit 3 dcm-store --site-key "$T/other.key" -i "$T/l.vxp" -o "$T/out"
    [[ "$output" == *"cannot open it"* ]]
    "$VOXPIPE_PY" -c '
import sys; sys.path.insert(0, sys.argv[1]); import vxp
c = list(vxp.read(open(sys.argv[2], "rb")))[0]; c["vols"]["label"].data = c["vols"]["label"].data[:, :, 1:].copy()
vxp.write(open(sys.argv[3], "wb"), [c])' "$SCRIPTS" "$T/l.vxp" "$T/crop.vxp"
    assert_exit 3 dcm-store --site-key "$T/site.key" -i "$T/crop.vxp" -o "$T/out"
    [[ "$output" == *"the labels must lie on the source grid"* ]]
    assert_exit 3 dcm-store --site-key "$T/site.key" --vol seg -i "$T/l.vxp" -o "$T/out"
    [[ "$output" == *"no volume 'seg'"* ]]
    [ -z "$(ls -A "$T/out")" ]
    assert_exit 2 dcm-store -i "$T/l.vxp"
    assert_exit 2 dcm-store --pacs nohostport -i "$T/l.vxp"
}

@test "file names from case ids are sanitised (no path traversal)" {
    "$VOXPIPE_PY" "$SCRIPTS/dicom_fixtures.py" identify "$CT" "$T/id"
    dcm-fetch -q --keep-identifiers --id "../../evil/x" -o "$T/k.vxp" "$T/id"
    "$VOXPIPE_PY" "$CHK" labels "$T/k.vxp" "$T/l.vxp"
    mkdir "$T/out"
    dcm-store -q -i "$T/l.vxp" -o "$T/out"
    [ "$(ls "$T/out" | wc -l)" -eq 1 ]
    [[ "$(ls "$T/out")" == SEG_* ]]
    [ ! -e "$T/evil" ]
}

@test "a PACS that does not answer: C-STORE fails within the timeout" {
    prepare --keep-identifiers
    port=$("$VOXPIPE_PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    start=$SECONDS
    assert_exit 1 dcm-store --timeout 3 --pacs 127.0.0.1:$port -i "$T/l.vxp"
    [[ "$output" == *"association with ANY-SCP at 127.0.0.1:$port"* ]]
    [ $((SECONDS - start)) -lt 20 ]
}

load orthanc_helpers
teardown() { orthanc_stop; }

@test "real PACS (Orthanc on loopback): the series loaded with storescu, the SEG stored by C-STORE and found by C-FIND" {
    command -v Orthanc >/dev/null || skip "Orthanc not installed (Debian package orthanc)"
    prepare --keep-identifiers
    orthanc_start
    storescu -q -xv -to 10 -aec "$ORTHANC_AET" +sd 127.0.0.1 "$ORTHANC_DICOM" "$T/id"
    q() { # q MODALITY: SeriesInstanceUIDs of that modality in the study, via C-FIND
        findscu -to 10 -S -aec "$ORTHANC_AET" -k QueryRetrieveLevel=SERIES -k StudyInstanceUID=1.2.826.0.1.3680043.8.498.1001 \
            -k Modality="$1" -k SeriesInstanceUID 127.0.0.1 "$ORTHANC_DICOM" 2>&1 | grep '(0020,000e)' | sed 's/.*\[\(.*\)\].*/\1/'
    }
    [ "$(q CT)" = 1.2.826.0.1.3680043.8.498.1002 ]
    [ -z "$(q SEG)" ]
    run dcm-store --timeout 10 --pacs 127.0.0.1:$ORTHANC_DICOM --aec "$ORTHANC_AET" -o "$T" -i "$T/l.vxp"
    echo "$output"; [ "$status" -eq 0 ]; [[ "$output" == *"stored at $ORTHANC_AET"* ]]
    seg=$(q SEG)
    want=$("$VOXPIPE_PY" -c 'import pydicom,sys; print(pydicom.dcmread(sys.argv[1]).SeriesInstanceUID)' "$T"/SEG_*.dcm)
    [ -n "$seg" ]; [ "$seg" = "$want" ]
}

@test "deterministic SEG: the same input twice (a second apart) gives the same bytes; dates from the source or --date" {
    head -c 32 /dev/urandom > "$T/site.key"
    prepare --site-key "$T/site.key"
    mkdir "$T/a" "$T/b" "$T/c"
    dcm-store -q --site-key "$T/site.key" -i "$T/l.vxp" -o "$T/a"
    sleep 1.1 # a clock-derived ContentTime would differ now
    dcm-store -q --site-key "$T/site.key" -i "$T/l.vxp" -o "$T/b"
    cmp "$T"/a/SEG_*.dcm "$T"/b/SEG_*.dcm
    # the dates are the original study's (sealed in the stream, not the shifted StudyDate it shows)
    dates() { "$VOXPIPE_PY" -c 'import pydicom,sys; d=pydicom.dcmread(sys.argv[1])
print(d.ContentDate, d.ContentTime, d.InstanceCreationDate, d.InstanceCreationTime, d.StudyDate, d.StudyTime)' "$1"; }
    want=$("$VOXPIPE_PY" -c 'import pydicom,sys,os; d=sys.argv[1]; ds=pydicom.dcmread(os.path.join(d, sorted(os.listdir(d))[0]))
print(" ".join([ds.StudyDate, ds.StudyTime] * 3))' "$T/id")
    run dates "$T"/a/SEG_*.dcm
    echo "$output / $want"; [ "$output" = "$want" ]
    shifted=$("$VOXPIPE_PY" -c 'import sys; sys.path.insert(0, sys.argv[1]); import vxp
print(list(vxp.read(open(sys.argv[2], "rb")))[0]["meta"]["dicom"]["StudyDate"])' "$SCRIPTS" "$T/l.vxp")
    [ "$shifted" != "${want%% *}" ]
    # --date sets them; the bytes change accordingly
    dcm-store -q --site-key "$T/site.key" --date 20250102030405 -i "$T/l.vxp" -o "$T/c"
    run dates "$T"/c/SEG_*.dcm
    read -r sd st _ <<< "$want"
    echo "$output"; [ "$output" = "20250102 030405 20250102 030405 $sd $st" ]
    ! cmp -s "$T"/a/SEG_*.dcm "$T"/c/SEG_*.dcm
    [ "$(dciod_errors "$(ls "$T"/c/SEG_*.dcm)")" -eq 0 ]
}

@test "SEG date: a source without StudyDate needs --date (exit 3, no file); a malformed --date is a usage error" {
    prepare --keep-identifiers
    "$VOXPIPE_PY" -c '
import sys; sys.path.insert(0, sys.argv[1]); import vxp
c = list(vxp.read(open(sys.argv[2], "rb")))[0]; del c["meta"]["dicom"]["StudyDate"]; del c["meta"]["dicom"]["StudyTime"]
vxp.write(open(sys.argv[3], "wb"), [c])' "$SCRIPTS" "$T/l.vxp" "$T/nodate.vxp"
    mkdir "$T/out"
    assert_exit 3 dcm-store -i "$T/nodate.vxp" -o "$T/out"
    [[ "$output" == *"case '"*"': meta.dicom: no StudyDate for the SEG's ContentDate: give --date"* ]]
    [ -z "$(ls -A "$T/out")" ]
    run dcm-store -q --date 20240229 -i "$T/nodate.vxp" -o "$T/out"
    [ "$status" -eq 0 ]
    run "$VOXPIPE_PY" -c 'import pydicom,sys; d=pydicom.dcmread(sys.argv[1]); print(d.ContentDate, d.ContentTime)' "$T"/out/SEG_*.dcm
    [ "$output" = "20240229 000000" ]
    for bad in 2024 2024-02-29 20240229T1200 abcdefgh; do
        assert_exit 2 dcm-store --date "$bad" -i "$T/l.vxp" -o "$T/out"
        [[ "$output" == *"--date: expected YYYYMMDD or YYYYMMDDHHMMSS, got '$bad'"* ]]
    done
}
