#!/usr/bin/env bats
# dcm-fetch --pacs --move --tls: C-MOVE over DICOM TLS both ways against Orthanc with DicomTlsEnabled
# (client certificates required, orthanc_helpers.bash): the C-MOVE association is ours to Orthanc,
# the return association is Orthanc's to our own storage SCP, which accepts TLS only, presents
# --tls-cert and requires Orthanc's certificate signed by --tls-ca. The reference is dcm-fetch on the
# same files.
load helpers
load orthanc_helpers
load dicom_helpers

CT="$VOXPIPE_DATA/totalseg/ct_dicom"
FIX="$SCRIPTS/dicom_fixtures.py"

teardown() { orthanc_stop; }

# pacs_move_tls PORT USE_TLS: pacs_tls with Orthanc knowing VOXPIPE at 127.0.0.1:PORT (reached with
# TLS when USE_TLS is true); sets STUDY
pacs_move_tls() { pacs_tls "\"voxpipe\": {\"AET\": \"VOXPIPE\", \"Host\": \"127.0.0.1\", \"Port\": $1, \"UseDicomTls\": $2}"; }
mfetch() { dcm-fetch --timeout 10 --pacs "127.0.0.1:$ORTHANC_DICOM" --aec "$ORTHANC_AET" --move --port "$port" "$@"; }

@test "C-MOVE over TLS both ways = the files; pseudonymised too" {
    port=$(free_port)
    pacs_move_tls "$port" true
    run mfetch $(ca) --keep-identifiers --study-uid "$STUDY" -o "$T/m.vxp"
    echo "$output"; [ "$status" -eq 0 ]; [[ "$output" == *"1 series, 20 object(s) received from ORTHANC"* ]]
    dcm-fetch -q --keep-identifiers -o "$T/f.vxp" "$T/id"
    run same "$T/m.vxp" "$T/f.vxp"; echo "$output"; [ "$output" = "True True True True True True []" ]
    tmp_empty
    head -c 32 /dev/urandom > "$T/site.key"
    mfetch -q $(ca) --site-key "$T/site.key" --patient-id PID-7788991 -o "$T/mp.vxp"
    dcm-fetch -q --site-key "$T/site.key" -o "$T/fp.vxp" "$T/id"
    run same "$T/mp.vxp" "$T/fp.vxp"; echo "$output"; [ "$output" = "True True True True True True []" ]
    run "$VOXPIPE_PY" "$FIX" leaks "$T/mp.vxp" "$T/id"
    [ "${lines[0]}" = none ]
    tmp_empty
}

@test "C-MOVE --tls refused: Orthanc sends back in the clear, Orthanc's certificate not trusted, plain C-MOVE: exit 1, no file" {
    port=$(free_port)
    pacs_move_tls "$port" false
    # Orthanc opens the return association without TLS: our TLS-only storage SCP accepts nothing
    assert_exit 1 mfetch $(ca) --keep-identifiers --study-uid "$STUDY" -o "$T/x.vxp"
    echo "$output"; [[ "$output" == *"C-MOVE of series 1 from ORTHANC at 127.0.0.1:$ORTHANC_DICOM to VOXPIPE (port $port)"* ]]
    [ ! -e "$T/x.vxp" ]; tmp_empty
    orthanc_stop
    port=$(free_port)
    pacs_move_tls "$port" true
    # we do not trust Orthanc's certificate: already the C-MOVE association fails
    assert_exit 1 mfetch --tls --tls-ca "$T/tls/rogue-ca.crt" --tls-cert "$T/tls/client.crt" --tls-key "$T/tls/client.key" \
        --keep-identifiers --study-uid "$STUDY" -o "$T/x.vxp"
    echo "$output"; [[ "$output" == *"association with ORTHANC at 127.0.0.1:$ORTHANC_DICOM"*"certificate verify failed"* ]]
    [ ! -e "$T/x.vxp" ]; tmp_empty
    # plain C-MOVE to a TLS-only Orthanc fails too
    assert_exit 1 mfetch --keep-identifiers --study-uid "$STUDY" -o "$T/x.vxp"
    [ ! -e "$T/x.vxp" ]; tmp_empty
}

@test "--move --tls needs our certificate (the storage SCP presents it): exit 2" {
    has_tls || skip "built without DICOM TLS"
    assert_exit 2 dcm-fetch --keep-identifiers --pacs 127.0.0.1:104 --modality CT --move --port 11112 --tls --tls-no-verify
    [[ "$output" == *"--move --tls: our storage SCP needs --tls-cert and --tls-key"* ]]
}
