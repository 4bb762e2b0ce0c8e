#!/usr/bin/env bats
# DICOM TLS (dcm-fetch --pacs and dcm-store --pacs with --tls): against Orthanc on loopback with
# DicomTlsEnabled (TLS only, client certificates required), certificates made by openssl in
# orthanc_helpers.bash tls_certs. The reference for the fetch is dcm-fetch on the same files; the
# stored SEG is found again by DCMTK's findscu over TLS.
# The programs need a build with DCMTK's TLS layer (-DVP_WITH_DCMTLS, -ldcmtls -lssl -lcrypto);
# without it the TLS tests are skipped and the last test checks that --tls is refused clearly.
load helpers
load orthanc_helpers
load dicom_helpers

CT="$VOXPIPE_DATA/totalseg/ct_dicom"
FIX="$SCRIPTS/dicom_fixtures.py"

teardown() { orthanc_stop; }

fetch() { dcm-fetch --timeout 10 --pacs "127.0.0.1:$ORTHANC_DICOM" --aec "$ORTHANC_AET" "$@"; }

@test "TLS: fetch by C-FIND/C-GET = fetch from the files; the SEG stored over TLS is found by C-FIND over TLS" {
    pacs_tls
    run fetch $(ca) --keep-identifiers --study-uid "$STUDY" -o "$T/p.vxp"
    echo "$output"; [ "$status" -eq 0 ]; [[ "$output" == *"1 series, 20 object(s) received from ORTHANC"* ]]
    dcm-fetch -q --keep-identifiers -o "$T/f.vxp" "$T/id"
    run same "$T/p.vxp" "$T/f.vxp"
    echo "$output"; [ "$output" = "True True True True True True []" ]
    [ -z "$(ls -A "$T/tmp")" ]
    # the SEG back by C-STORE over TLS, then found by findscu over TLS
    "$VOXPIPE_PY" "$SCRIPTS/dicom_seg_check.py" labels "$T/p.vxp" "$T/l.vxp"
    run dcm-store $(ca) --timeout 10 --pacs "127.0.0.1:$ORTHANC_DICOM" --aec "$ORTHANC_AET" -o "$T" -i "$T/l.vxp"
    echo "$output"; [ "$status" -eq 0 ]; [[ "$output" == *"stored at ORTHANC"* ]]
    seg=$(findscu -to 10 "${ORTHANC_TLS_ARGS[@]}" -S -aec "$ORTHANC_AET" -k QueryRetrieveLevel=SERIES -k StudyInstanceUID="$STUDY" \
        -k Modality=SEG -k SeriesInstanceUID 127.0.0.1 "$ORTHANC_DICOM" 2>&1 | grep '(0020,000e)' | sed 's/.*\[\(.*\)\].*/\1/')
    want=$("$VOXPIPE_PY" -c 'import pydicom,sys; print(pydicom.dcmread(sys.argv[1]).SeriesInstanceUID)' "$T"/SEG_*.dcm)
    [ -n "$seg" ]; [ "$seg" = "$want" ]
    # --tls-no-verify (with our certificate, which Orthanc requires) also gets through
    run fetch --tls --tls-no-verify --tls-cert "$T/tls/client.crt" --tls-key "$T/tls/client.key" --keep-identifiers \
        --query --study-uid "$STUDY" --modality CT
    echo "$output"; [ "$status" -eq 0 ]; [ "${#lines[@]}" -eq 2 ]; [[ "${lines[1]}" == "$STUDY"* ]]
}

@test "TLS refused: PACS certificate from another CA, our certificate from another CA, none, or plain TCP: exit 1, no file" {
    pacs_tls
    # we do not trust the PACS: its certificate is not signed by the CA we give
    assert_exit 1 fetch --tls --tls-ca "$T/tls/rogue-ca.crt" --tls-cert "$T/tls/client.crt" --tls-key "$T/tls/client.key" \
        --keep-identifiers --study-uid "$STUDY" -o "$T/x.vxp"
    echo "$output"; [[ "$output" == *"dcm-fetch: error: association with ORTHANC at 127.0.0.1:$ORTHANC_DICOM"* ]]
    [[ "$output" == *"TLS error: certificate verify failed"* ]]
    [ ! -e "$T/x.vxp" ]
    # the PACS does not trust us: a certificate from the rogue CA, or none at all
    assert_exit 1 fetch --tls --tls-ca "$T/tls/ca.crt" --tls-cert "$T/tls/rogue.crt" --tls-key "$T/tls/rogue.key" \
        --keep-identifiers --study-uid "$STUDY" -o "$T/x.vxp"
    echo "$output"; [[ "$output" == *"association with ORTHANC at 127.0.0.1:$ORTHANC_DICOM"* ]]; [ ! -e "$T/x.vxp" ]
    assert_exit 1 fetch --tls --tls-ca "$T/tls/ca.crt" --keep-identifiers --study-uid "$STUDY" -o "$T/x.vxp"
    [[ "$output" == *"association with ORTHANC at 127.0.0.1:$ORTHANC_DICOM"* ]]; [ ! -e "$T/x.vxp" ]
    # no TLS at all to a TLS-only PACS
    assert_exit 1 fetch --keep-identifiers --study-uid "$STUDY" -o "$T/x.vxp"
    [ ! -e "$T/x.vxp" ]
    # the same for C-STORE: an untrusted PACS gets no SEG
    "$VOXPIPE_PY" "$SCRIPTS/dicom_seg_check.py" labels <(dcm-fetch -q --keep-identifiers -o - "$T/id") "$T/l.vxp"
    assert_exit 1 dcm-store --timeout 10 --tls --tls-ca "$T/tls/rogue-ca.crt" --tls-cert "$T/tls/client.crt" \
        --tls-key "$T/tls/client.key" --pacs "127.0.0.1:$ORTHANC_DICOM" --aec "$ORTHANC_AET" -i "$T/l.vxp"
    echo "$output"; [[ "$output" == *"association with ORTHANC at 127.0.0.1:$ORTHANC_DICOM"* ]]
    run findscu -to 10 "${ORTHANC_TLS_ARGS[@]}" -S -aec "$ORTHANC_AET" -k QueryRetrieveLevel=SERIES -k StudyInstanceUID="$STUDY" \
        -k Modality=SEG -k SeriesInstanceUID 127.0.0.1 "$ORTHANC_DICOM"
    [[ "$output" != *"(0020,000e)"* ]]
    [ -z "$(ls -A "$T/tmp")" ]
}

@test "TLS options: checked before connecting (exit 2, naming the option or file)" {
    has_tls || skip "built without DICOM TLS"
    tls_certs
    k=(--keep-identifiers --pacs 127.0.0.1:1 --modality CT -o "$T/x.vxp")
    assert_exit 2 dcm-fetch --tls "${k[@]}"
    [[ "$output" == *"--tls needs --tls-ca FILE"*"--tls-no-verify"* ]]
    assert_exit 2 dcm-fetch --tls-ca "$T/tls/ca.crt" "${k[@]}"
    [[ "$output" == *"need --tls"* ]]
    assert_exit 2 dcm-fetch --tls --tls-ca "$T/tls/ca.crt" --tls-no-verify "${k[@]}"
    [[ "$output" == *"exclude each other"* ]]
    assert_exit 2 dcm-fetch --tls --tls-ca "$T/tls/ca.crt" --tls-cert "$T/tls/client.crt" "${k[@]}"
    [[ "$output" == *"--tls-cert and --tls-key come together"* ]]
    assert_exit 2 dcm-fetch --tls --tls-ca "$T/tls/missing.crt" "${k[@]}"
    [[ "$output" == *"cannot read '$T/tls/missing.crt'"* ]]
    assert_exit 2 dcm-fetch --tls --tls-ca "$T/tls/ca.crt" --tls-cert "$T/tls/client.crt" --tls-key "$T/tls/rogue.key" "${k[@]}"
    [[ "$output" == *"the private key '$T/tls/rogue.key' does not belong to the certificate"* ]]
    assert_exit 2 dcm-fetch --tls --tls-ca "$T/tls/ca.crt" --keep-identifiers "$CT"
    [[ "$output" == *"--tls needs --pacs"* ]]
    assert_exit 2 dcm-store --tls --tls-ca "$T/tls/ca.crt" -o "$T"
    [[ "$output" == *"--tls needs --pacs"* ]]
    assert_exit 2 dcm-store --tls -i /dev/null --pacs 127.0.0.1:1
    [[ "$output" == *"--tls needs --tls-ca FILE"* ]]
    [ ! -e "$T/x.vxp" ]
}

@test "a build without DICOM TLS refuses --tls clearly (exit 1)" {
    has_tls && skip "built with DICOM TLS"
    assert_exit 1 dcm-fetch --keep-identifiers --tls --tls-no-verify --pacs 127.0.0.1:1 --modality CT -o "$T/x.vxp"
    [[ "$output" == *"--tls: this build has no DICOM TLS"* ]]; [ ! -e "$T/x.vxp" ]
}
