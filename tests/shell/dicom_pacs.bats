#!/usr/bin/env bats
# dcm-fetch --pacs: C-FIND + C-GET from a real PACS (Orthanc on loopback, orthanc_helpers.bash,
# refusing associations called with another AE title), loaded with the shared series after
# dicom_fixtures.py identify gave it UIDs. The reference is dcm-fetch on the same files.
load helpers
load orthanc_helpers
load dicom_helpers

CT="$VOXPIPE_DATA/totalseg/ct_dicom"
FIX="$SCRIPTS/dicom_fixtures.py"

teardown() { orthanc_stop; }

# pacs [--empty]: Orthanc up (checking the called AE title) and loaded with $T/id (or not);
# sets STUDY and SERIES (read back from the files with pydicom)
pacs() {
    command -v Orthanc >/dev/null || skip "Orthanc not installed (Debian package orthanc)"
    "$VOXPIPE_PY" "$FIX" identify "$CT" "$T/id"
    ORTHANC_CHECK_AET=true orthanc_start
    [ "${1:-}" = --empty ] || storescu -q -xv -to 10 -aec "$ORTHANC_AET" +sd 127.0.0.1 "$ORTHANC_DICOM" "$T/id"
    read -r STUDY SERIES < <("$VOXPIPE_PY" -c 'import pydicom,sys,os; d=sys.argv[1]
ds=pydicom.dcmread(os.path.join(d, sorted(os.listdir(d))[0])); print(ds.StudyInstanceUID, ds.SeriesInstanceUID)' "$T/id")
}
fetch() { dcm-fetch --timeout 10 --pacs "127.0.0.1:$ORTHANC_DICOM" --aec "$ORTHANC_AET" "$@"; }

@test "fetched from Orthanc by StudyInstanceUID = fetched from the files: voxels, affine, meta but provenance" {
    pacs
    run fetch --keep-identifiers --study-uid "$STUDY" -o "$T/p.vxp"
    echo "$output"; [ "$status" -eq 0 ]; [[ "$output" == *"1 series, 20 object(s) received from ORTHANC"* ]]
    dcm-fetch -q --keep-identifiers -o "$T/f.vxp" "$T/id"
    run same "$T/p.vxp" "$T/f.vxp"
    echo "$output"; [ "$output" = "True True True True True True []" ]
    tmp_empty
    # the comparison can fail: the same files with a slice left out differ
    mkdir "$T/gap"; i=0
    for f in "$T"/id/*; do i=$((i+1)); [ $i -eq 10 ] || cp "$f" "$T/gap/"; done
    dcm-fetch -q --keep-identifiers --allow-nonuniform -o "$T/g.vxp" "$T/gap"
    run same "$T/p.vxp" "$T/g.vxp"
    [[ "$output" == "True True False False False False []" ]]
}

@test "pseudonymised fetch from Orthanc = pseudonymised fetch from the files; no identifier in the output" {
    pacs
    head -c 32 /dev/urandom > "$T/site.key"
    # --opt=VALUE form: the query values must not reach the provenance either
    fetch -q --site-key "$T/site.key" --study-uid="$STUDY" --patient-id=PID-7788991 -o "$T/p.vxp"
    dcm-fetch -q --site-key "$T/site.key" -o "$T/f.vxp" "$T/id"
    run same "$T/p.vxp" "$T/f.vxp"
    echo "$output"; [ "$output" = "True True True True True True []" ]
    run "$VOXPIPE_PY" "$FIX" leaks "$T/p.vxp" "$T/id"
    echo "$output"; [ "${lines[0]}" = none ]
    run "$VOXPIPE_PY" -c 'import sys; sys.path.insert(0, sys.argv[1]); import vxp
print(list(vxp.read(open(sys.argv[2], "rb")))[0]["meta"]["provenance"][0]["args"])' "$SCRIPTS" "$T/p.vxp"
    echo "$output"; [[ "$output" == *"'--study-uid=INPUT', '--patient-id=INPUT'"* ]]
    tmp_empty
}

@test "--query lists the matching series as TSV; pseudonymised it shows the stream's keyed UIDs only" {
    pacs
    run fetch --keep-identifiers --query --modality CT
    echo "$output"; [ "$status" -eq 0 ]
    want=$("$VOXPIPE_PY" -c 'import pydicom,sys,os; d=sys.argv[1]; fs=sorted(os.listdir(d))
ds=pydicom.dcmread(os.path.join(d, fs[0])); print("\t".join([ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.Modality, ds.SeriesDescription, str(len(fs))]))' "$T/id")
    [ "${#lines[@]}" -eq 2 ]
    [ "${lines[0]}" = "$(printf 'study_uid\tseries_uid\tmodality\tdescription\tinstances')" ]
    [ "${lines[1]}" = "$want" ]
    # the keys filter: by series UID the same row, another modality or patient nothing
    run fetch --keep-identifiers --query --series-uid "$SERIES"
    [ "${lines[1]}" = "$want" ]
    run fetch --keep-identifiers --query --modality MR
    [ "$status" -eq 0 ]; [ "${#lines[@]}" -eq 1 ]
    run fetch --keep-identifiers --query --patient-id NOBODY
    [ "${#lines[@]}" -eq 1 ]
    # pseudonymised: the UIDs are those the fetched stream carries, the description is dropped
    head -c 32 /dev/urandom > "$T/site.key"
    fetch --site-key "$T/site.key" --query --accession ACC9988776 > "$T/q.tsv"
    dcm-fetch -q --site-key "$T/site.key" -o "$T/f.vxp" "$T/id"
    run "$VOXPIPE_PY" -c 'import sys; sys.path.insert(0, sys.argv[1]); import vxp
m = list(vxp.read(open(sys.argv[2], "rb")))[0]["meta"]["dicom"]
print("\t".join([m["StudyInstanceUID"], m["SeriesInstanceUID"], m["Modality"], "", str(m["slices"])]))' "$SCRIPTS" "$T/f.vxp"
    [ "$(sed -n 2p "$T/q.tsv")" = "$output" ]
    [ "$(wc -l < "$T/q.tsv")" -eq 2 ]
    run "$VOXPIPE_PY" "$FIX" leaks "$T/q.tsv" "$T/id"
    echo "$output"; [ "${lines[0]}" = none ]
    tmp_empty
}

@test "unknown AE title, nothing listening, a peer that never answers: exit 1 within the timeout, naming the peer, no file" {
    pacs
    assert_exit 1 dcm-fetch --timeout 5 --pacs "127.0.0.1:$ORTHANC_DICOM" --aec NOT-ORTHANC --keep-identifiers --study-uid "$STUDY" -o "$T/x.vxp"
    [[ "$output" == *"association with NOT-ORTHANC at 127.0.0.1:$ORTHANC_DICOM"* ]]
    [ ! -e "$T/x.vxp" ]
    port=$(free_port)
    start=$SECONDS
    assert_exit 1 dcm-fetch --timeout 3 --pacs "127.0.0.1:$port" --aec ORTHANC --keep-identifiers --study-uid "$STUDY" -o "$T/x.vxp"
    [[ "$output" == *"association with ORTHANC at 127.0.0.1:$port"* ]]
    [ $((SECONDS - start)) -lt 10 ]; [ ! -e "$T/x.vxp" ]
    # a listener that accepts the connection and says nothing: the association times out
    "$VOXPIPE_PY" -c 'import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(4); print(s.getsockname()[1], flush=True)
c, _ = s.accept(); time.sleep(60)' > "$T/port" &
    mute=$!
    for _ in $(seq 50); do [ -s "$T/port" ] && break; sleep 0.1; done
    port=$(cat "$T/port")
    start=$SECONDS
    assert_exit 1 dcm-fetch --timeout 2 --pacs "127.0.0.1:$port" --aec ORTHANC --keep-identifiers --study-uid "$STUDY" -o "$T/x.vxp"
    took=$((SECONDS - start))
    kill "$mute"
    echo "$output ($took s)"
    [[ "$output" == *"association with ORTHANC at 127.0.0.1:$port"* ]]
    [ "$took" -ge 1 ]; [ "$took" -lt 10 ]; [ ! -e "$T/x.vxp" ]
    tmp_empty
}

@test "a fetched series that fails assembly: exit 3, no output, the temporary directory removed" {
    pacs --empty
    mkdir "$T/gap"; i=0; for f in "$T"/id/*; do i=$((i+1)); [ $i -eq 10 ] || cp "$f" "$T/gap/"; done
    storescu -q -xv -to 10 -aec "$ORTHANC_AET" +sd 127.0.0.1 "$ORTHANC_DICOM" "$T/gap"
    assert_exit 3 fetch --keep-identifiers --study-uid "$STUDY" -o "$T/x.vxp"
    [[ "$output" == *"1 missing slice(s) between"* ]]
    [ ! -e "$T/x.vxp" ]; tmp_empty
    run fetch -q --keep-identifiers --allow-nonuniform --study-uid "$STUDY" -o "$T/x.vxp"
    [ "$status" -eq 0 ]; [ -s "$T/x.vxp" ]; tmp_empty
    # the temporary directory does go under $TMPDIR (so the emptiness checks above mean something)
    TMPDIR="$T/missing" assert_exit 1 fetch --keep-identifiers --study-uid "$STUDY" -o "$T/y.vxp"
    [[ "$output" == *"creating a temporary directory under '$T/missing'"* ]]; [ ! -e "$T/y.vxp" ]
}

@test "usage: --pacs needs a query key and no files; query keys need --pacs; HOST:PORT checked" {
    assert_exit 2 dcm-fetch --keep-identifiers --pacs 127.0.0.1:104 -o "$T/x.vxp"
    [[ "$output" == *"at least one query key"* ]]
    assert_exit 2 dcm-fetch --keep-identifiers --pacs 127.0.0.1:104 --modality CT "$CT"
    [[ "$output" == *"not both"* ]]
    assert_exit 2 dcm-fetch --keep-identifiers --query --modality CT
    [[ "$output" == *"need --pacs"* ]]
    assert_exit 2 dcm-fetch --keep-identifiers --pacs nohostport --modality CT
    [[ "$output" == *"expected HOST:PORT"* ]]
    assert_exit 2 dcm-fetch --pacs 127.0.0.1:104 --modality CT
    [[ "$output" == *"needs --site-key"* ]]
    [ ! -e "$T/x.vxp" ]
}

# pacs_move PORT: as pacs, with Orthanc knowing VOXPIPE at 127.0.0.1:PORT (C-MOVE destination)
pacs_move() {
    command -v Orthanc >/dev/null || skip "Orthanc not installed (Debian package orthanc)"
    "$VOXPIPE_PY" "$FIX" identify "$CT" "$T/id"
    ORTHANC_MODALITIES="\"voxpipe\": [\"VOXPIPE\", \"127.0.0.1\", $1]" ORTHANC_CHECK_AET=true orthanc_start
    storescu -q -xv -to 10 -aec "$ORTHANC_AET" +sd 127.0.0.1 "$ORTHANC_DICOM" "$T/id"
    STUDY=1.2.826.0.1.3680043.8.498.1001
}

@test "C-MOVE to our own storage SCP (--move --port) = C-GET = the files; pseudonymised too" {
    port=$(free_port)
    pacs_move "$port"
    run fetch --keep-identifiers --move --port "$port" --study-uid "$STUDY" -o "$T/m.vxp"
    echo "$output"; [ "$status" -eq 0 ]; [[ "$output" == *"1 series, 20 object(s) received from ORTHANC"* ]]
    dcm-fetch -q --keep-identifiers -o "$T/f.vxp" "$T/id"
    run same "$T/m.vxp" "$T/f.vxp"
    echo "$output"; [ "$output" = "True True True True True True []" ]
    tmp_empty
    head -c 32 /dev/urandom > "$T/site.key"
    fetch -q --site-key "$T/site.key" --move --port "$port" --patient-id PID-7788991 -o "$T/mp.vxp"
    dcm-fetch -q --site-key "$T/site.key" -o "$T/fp.vxp" "$T/id"
    run same "$T/mp.vxp" "$T/fp.vxp"
    echo "$output"; [ "$output" = "True True True True True True []" ]
    run "$VOXPIPE_PY" "$FIX" leaks "$T/mp.vxp" "$T/id"
    [ "${lines[0]}" = none ]
    tmp_empty
}

@test "C-MOVE refused: an AE title the PACS does not know, our port taken: exit 1, naming the cause, no file" {
    port=$(free_port)
    pacs_move "$port"
    assert_exit 1 fetch --keep-identifiers --aet STRANGER --move --port "$port" --study-uid "$STUDY" -o "$T/x.vxp"
    echo "$output"; [[ "$output" == *"C-MOVE with ORTHANC at 127.0.0.1:$ORTHANC_DICOM: "*"(does the PACS know our AE title STRANGER, at port $port?)"* ]]
    [ ! -e "$T/x.vxp" ]; tmp_empty
    # something else listens on our port
    "$VOXPIPE_PY" -c 'import socket, sys, time
s = socket.socket(); s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(4); print("up", flush=True); time.sleep(30)' "$port" > "$T/busy" &
    busy=$!
    for _ in $(seq 50); do [ -s "$T/busy" ] && break; sleep 0.1; done
    assert_exit 1 fetch --keep-identifiers --move --port "$port" --study-uid "$STUDY" -o "$T/x.vxp"
    kill "$busy"
    echo "$output"; [[ "$output" == *"C-MOVE: our storage SCP cannot listen on port $port"* ]]
    [ ! -e "$T/x.vxp" ]; tmp_empty
}

@test "usage: --move needs --port (and --pacs); with --tls, our own certificate" {
    assert_exit 2 dcm-fetch --keep-identifiers --pacs 127.0.0.1:104 --modality CT --move -o "$T/x.vxp"
    [[ "$output" == *"--move and --port PORT come together"* ]]
    assert_exit 2 dcm-fetch --keep-identifiers --pacs 127.0.0.1:104 --modality CT --port 11112 -o "$T/x.vxp"
    [[ "$output" == *"come together"* ]]
    assert_exit 2 dcm-fetch --keep-identifiers --move --port 11112 "$CT"
    [[ "$output" == *"need --pacs"* ]]
    assert_exit 2 dcm-fetch --keep-identifiers --pacs 127.0.0.1:104 --modality CT --move --port 11112 --tls --tls-no-verify
    [[ "$output" == *"--move --tls: our storage SCP needs --tls-cert and --tls-key"* ]]
    [ ! -e "$T/x.vxp" ]
}
