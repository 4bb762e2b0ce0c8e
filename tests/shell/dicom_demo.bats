#!/usr/bin/env bats
# examples/pacs-roundtrip.sh (called by make demo): the whole PACS round trip on the shared series
# against a real Orthanc it starts itself. Checked here: it succeeds, the SEG it found by C-FIND is
# the one it wrote and references the original series, nothing identifying reaches the stream, and
# Orthanc is gone and the temporary directory removed afterwards, also when a step fails.
load helpers

setup() {
    T="${VOXPIPE_TMP:-$BATS_TMPDIR}/$(basename "$BATS_TEST_FILENAME" .bats)-$BATS_TEST_NUMBER"
    rm -rf "$T" && mkdir -p "$T/tmp"
    command -v Orthanc >/dev/null || skip "Orthanc not installed (Debian package orthanc)"
}
demo() { TMPDIR="$T/tmp" VOXPIPE_BIN="$VOXPIPE_BIN" "$VOXPIPE_ROOT/examples/pacs-roundtrip.sh" "$VOXPIPE_DATA" "$T/out"; }
orthanc_gone() { # the pid the script printed is not running any more
    local pid; pid=$(sed -n 's/^Orthanc (pid \([0-9]*\)).*/\1/p' <<<"$1")
    [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null
}

@test "pacs-roundtrip.sh: fetch, segment, store, find; the SEG found is the one written; Orthanc stopped, no temporary files" {
    run demo
    echo "$output"; [ "$status" -eq 0 ]
    [[ "$output" == *"dcm-fetch: 1 series, 20 object(s) received from ORTHANC"* ]]
    [[ "${lines[-1]}" == "pacs-roundtrip: ok"* ]]
    orthanc_gone "$output"
    [ -z "$(ls -A "$T/tmp")" ]
    found=$(sed -n 's/^found: *SEG series \([0-9.]*\) in study.*/\1/p' <<<"$output")
    seg=$(ls "$T"/out/seg/SEG_*.dcm)
    run "$VOXPIPE_PY" -c 'import pydicom,sys; d=pydicom.dcmread(sys.argv[1])
print(d.SeriesInstanceUID, d.StudyInstanceUID, d.ReferencedSeriesSequence[0].SeriesInstanceUID, d.PatientID, len(d.SegmentSequence))' "$seg"
    echo "$output"; [ "$output" = "$found 1.2.826.0.1.3680043.8.498.7001 1.2.826.0.1.3680043.8.498.7002 DEMO-0001 1" ]
    # the stream that left the "hospital" holds none of the identifiers the script gave the series
    for v in DEMO-0001 Demo DEMOACC01 1.2.826.0.1.3680043.8.498.7001 1.2.826.0.1.3680043.8.498.7002; do
        ! grep -q -F "$v" "$T/out/fetched.vxp"
    done
    # (the search finds them where they are)
    grep -q -F DEMO-0001 "$seg"
}

@test "pacs-roundtrip.sh: a failing step fails the script, and Orthanc is stopped and the temporary files removed" {
    SEGMENT=false run demo
    echo "$output"; [ "$status" -ne 0 ]
    [[ "$output" != *"pacs-roundtrip: ok"* ]]
    orthanc_gone "$output"
    [ -z "$(ls -A "$T/tmp")" ]
}
