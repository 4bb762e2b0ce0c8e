#!/usr/bin/env bats
# dcm-fetch --dicomweb: QIDO-RS + WADO-RS from a real Orthanc with its DICOMweb plugin (Debian
# orthanc-dicomweb) on loopback, loaded with the shared series after dicom_fixtures.py identify
# gave it UIDs. The references are the DIMSE fetch (C-FIND/C-GET) of the same Orthanc and dcm-fetch
# on the same files. Failures (truncated or malformed multipart, stalls, oversized answers) come
# from tests/scripts/dicomweb_stub.py.
# dcm-fetch needs a build with libcurl (-DVP_WITH_CURL, -lcurl); without it the tests skip.
load helpers
load orthanc_helpers
load dicom_helpers

CT="$VOXPIPE_DATA/totalseg/ct_dicom"
FIX="$SCRIPTS/dicom_fixtures.py"
PLUGIN=/usr/share/orthanc/plugins/libOrthancDicomWeb.so

teardown() {
    orthanc_stop
    [ -z "${STUB:-}" ] || kill "$STUB" 2>/dev/null || true
}

has_web() { ! dcm-fetch --keep-identifiers --dicomweb http://127.0.0.1:1 --modality CT 2>&1 | grep -q "has no DICOMweb"; }
# web [scheme]: Orthanc with DICOMweb (ORTHANC_EXTRA may add configuration), loaded with $T/id;
# sets URL, STUDY, SERIES
web() {
    command -v Orthanc >/dev/null || skip "Orthanc not installed (Debian package orthanc)"
    [ -f "$PLUGIN" ] || skip "Orthanc DICOMweb plugin not installed (Debian package orthanc-dicomweb)"
    has_web || skip "dcm-fetch built without DICOMweb (needs -DVP_WITH_CURL and -lcurl)"
    "$VOXPIPE_PY" "$FIX" identify "$CT" "$T/id"
    ORTHANC_PLUGINS="\"$PLUGIN\"" orthanc_start
    storescu -q -xv -to 10 -aec "$ORTHANC_AET" +sd 127.0.0.1 "$ORTHANC_DICOM" "$T/id"
    URL="${1:-http}://127.0.0.1:$ORTHANC_HTTP/dicom-web"
    read -r STUDY SERIES DATE < <("$VOXPIPE_PY" -c 'import pydicom,sys,os; d=sys.argv[1]
ds=pydicom.dcmread(os.path.join(d, sorted(os.listdir(d))[0])); print(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.StudyDate)' "$T/id")
}
wfetch() { dcm-fetch --timeout 10 --dicomweb "$URL" "$@"; }
dfetch() { dcm-fetch --timeout 10 --pacs "127.0.0.1:$ORTHANC_DICOM" --aec "$ORTHANC_AET" "$@"; }
# stub MODE: the misbehaving server on $T/id's files; sets STUB (pid), SURL, SLOG
stub() {
    has_web || skip "dcm-fetch built without DICOMweb"
    [ -d "$T/id" ] || "$VOXPIPE_PY" "$FIX" identify "$CT" "$T/id"
    SLOG="$T/stub-$1.log"; : > "$SLOG"; rm -f "$T/port"
    "$VOXPIPE_PY" "$SCRIPTS/dicomweb_stub.py" "$1" "$T/id" "$SLOG" > "$T/port" &
    STUB=$!
    for _ in $(seq 50); do [ -s "$T/port" ] && break; sleep 0.1; done
    SURL="http://127.0.0.1:$(cat "$T/port")/dicom-web"
}
sfetch() { dcm-fetch --keep-identifiers --timeout "${TO:-10}" --dicomweb "$SURL" --modality CT -o "$T/x.vxp" "$@"; }

@test "DICOMweb fetch from Orthanc = DIMSE C-GET from Orthanc = the files: voxels, affine, meta; pseudonymised too" {
    web
    run wfetch --keep-identifiers --study-uid "$STUDY" -o "$T/w.vxp"
    echo "$output"; [ "$status" -eq 0 ]; [[ "$output" == *"1 series, 20 object(s) received from $URL"* ]]
    dfetch -q --keep-identifiers --study-uid "$STUDY" -o "$T/d.vxp"
    dcm-fetch -q --keep-identifiers -o "$T/f.vxp" "$T/id"
    run same "$T/w.vxp" "$T/d.vxp"; echo "$output"; [ "$output" = "True True True True True True []" ]
    run same "$T/w.vxp" "$T/f.vxp"; echo "$output"; [ "$output" = "True True True True True True []" ]
    tmp_empty
    # the comparison can fail: the files with a slice left out differ
    mkdir "$T/gap"; i=0
    for f in "$T"/id/*; do i=$((i+1)); [ $i -eq 10 ] || cp "$f" "$T/gap/"; done
    dcm-fetch -q --keep-identifiers --allow-nonuniform -o "$T/g.vxp" "$T/gap"
    run same "$T/w.vxp" "$T/g.vxp"; [ "$output" = "True True False False False False []" ]
    # pseudonymised: = pseudonymised files, no identifier of the input in the bytes, the URL and keys
    # kept out of the provenance
    head -c 32 /dev/urandom > "$T/site.key"
    wfetch -q --site-key "$T/site.key" --patient-id=PID-7788991 --date="$DATE" -o "$T/wp.vxp"
    dcm-fetch -q --site-key "$T/site.key" -o "$T/fp.vxp" "$T/id"
    run same "$T/wp.vxp" "$T/fp.vxp"; echo "$output"; [ "$output" = "True True True True True True []" ]
    run "$VOXPIPE_PY" "$FIX" leaks "$T/wp.vxp" "$T/id"
    echo "$output"; [ "${lines[0]}" = none ]
    ! grep -q "$ORTHANC_HTTP/dicom-web" "$T/wp.vxp"
    tmp_empty
}

@test "--query over QIDO-RS lists what C-FIND lists, for each query key; a key that matches nothing lists none" {
    web
    for k in "--modality CT" "--study-uid $STUDY" "--series-uid $SERIES" "--patient-id PID-7788991" \
             "--accession ACC9988776" "--date $DATE" "--date ${DATE:0:4}0101-" "--patient-id PID-7788991 --modality CT"; do
        # shellcheck disable=SC2086
        wfetch --keep-identifiers --query $k > "$T/w.tsv"
        # shellcheck disable=SC2086
        dfetch --keep-identifiers --query $k > "$T/d.tsv"
        echo "$k"; cat "$T/w.tsv"
        [ "$(wc -l < "$T/w.tsv")" -eq 2 ]; cmp "$T/w.tsv" "$T/d.tsv"
        [ "$(cut -f1,2 "$T/w.tsv" | sed -n 2p)" = "$(printf '%s\t%s' "$STUDY" "$SERIES")" ]
    done
    for k in "--modality MR" "--patient-id NOBODY" "--date 19000101" "--series-uid 1.2.3" "--study-uid 1.2.3"; do
        # shellcheck disable=SC2086
        run wfetch --keep-identifiers --query $k
        echo "$k: $output"; [ "$status" -eq 0 ]; [ "${#lines[@]}" -eq 1 ]
    done
    assert_exit 3 wfetch --keep-identifiers --modality MR -o "$T/x.vxp"
    [[ "$output" == *"no series at $URL matches the query"* ]]; [ ! -e "$T/x.vxp" ]
    # pseudonymised --query prints the keyed UIDs, as C-FIND's does
    head -c 32 /dev/urandom > "$T/site.key"
    wfetch --site-key "$T/site.key" --query --accession ACC9988776 > "$T/wq.tsv"
    dfetch --site-key "$T/site.key" --query --accession ACC9988776 > "$T/dq.tsv"
    cmp "$T/wq.tsv" "$T/dq.tsv"
    ! grep -q "$STUDY" "$T/wq.tsv"
}

@test "HTTP basic auth from --auth-file or --auth-env; none or wrong: HTTP 401, exit 1; the password never in the output" {
    ORTHANC_EXTRA='"AuthenticationEnabled": true, "RegisteredUsers": { "alice": "s3cret-Pw-991" },' web
    printf 'basic alice:s3cret-Pw-991\n' > "$T/auth"
    run wfetch --keep-identifiers --auth-file "$T/auth" --study-uid "$STUDY" -o "$T/w.vxp"
    echo "$output"; [ "$status" -eq 0 ]
    dcm-fetch -q --keep-identifiers -o "$T/f.vxp" "$T/id"
    run same "$T/w.vxp" "$T/f.vxp"; [ "$output" = "True True True True True True []" ]
    ! grep -q "s3cret-Pw-991" "$T/w.vxp"
    VP_WEB_CRED='basic alice:s3cret-Pw-991' run wfetch --keep-identifiers --auth-env VP_WEB_CRED --query --modality CT
    echo "$output"; [ "$status" -eq 0 ]; [ "${#lines[@]}" -eq 2 ]
    assert_exit 1 wfetch --keep-identifiers --study-uid "$STUDY" -o "$T/x.vxp"
    [[ "$output" == *"GET $URL/studies/$STUDY/series"*": HTTP 401 (credentials: --auth-file or --auth-env)"* ]]
    [ ! -e "$T/x.vxp" ]
    printf 'basic alice:wrong\n' > "$T/bad"
    assert_exit 1 wfetch --keep-identifiers --auth-file "$T/bad" --study-uid "$STUDY" -o "$T/x.vxp"
    [[ "$output" == *"HTTP 401"* ]]; [[ "$output" != *wrong* ]]; [ ! -e "$T/x.vxp" ]
    # a malformed credentials file is a usage error that does not print the secret
    printf 'alice:s3cret-Pw-991\n' > "$T/bad"
    assert_exit 2 wfetch --keep-identifiers --auth-file "$T/bad" --study-uid "$STUDY" -o "$T/x.vxp"
    [[ "$output" == *"--auth-file '$T/bad': expected 'basic USER:PASSWORD' or 'bearer TOKEN'"* ]]
    [[ "$output" != *s3cret* ]]; [ ! -e "$T/x.vxp" ]
    tmp_empty
}

@test "bearer token and basic credentials reach the server as Authorization headers; none without" {
    stub ok
    VP_T="bearer tok-fixed-778" run sfetch --auth-env VP_T
    echo "$output"; [ "$status" -eq 0 ]; [ -s "$T/x.vxp" ]
    cut -f2 "$SLOG" | sort -u > "$T/h"; [ "$(cat "$T/h")" = "Bearer tok-fixed-778" ]
    : > "$SLOG"; printf 'basic bob:pw 1\n' > "$T/auth"; rm -f "$T/x.vxp"
    run sfetch --auth-file "$T/auth"
    [ "$status" -eq 0 ]
    want="Basic $(printf 'bob:pw 1' | base64)"
    [ "$(cut -f2 "$SLOG" | sort -u)" = "$want" ]
    : > "$SLOG"; rm -f "$T/x.vxp"
    run sfetch; [ "$status" -eq 0 ]
    [ "$(cut -f2 "$SLOG" | sort -u)" = "-" ]
    # the stub's well-formed answer is a valid 3-slice series (so the failure tests below can fail)
    "$VOXPIPE_PY" -c 'import sys; sys.path.insert(0, sys.argv[1]); import vxp
c = list(vxp.read(open(sys.argv[2], "rb")))[0]; print(c["vols"]["image"].data.shape)' "$SCRIPTS" "$T/x.vxp" > "$T/shape"
    [[ "$(cat "$T/shape")" == "(3, "* ]] || [[ "$(cat "$T/shape")" == *", 3)" ]]
    tmp_empty
}

@test "malformed answers: truncated or short multipart body, a part not DICOM, no boundary, junk JSON, too large: exit 1, no file" {
    for m in truncated:"malformed multipart body: truncated in part 3" \
             short:"transfer closed with" \
             notdicom:"part 2 is 'text/plain', not application/dicom" \
             noboundary:"Content-Type has no boundary" \
             qidojunk:"QIDO-RS answer is not DICOM JSON" \
             big:"response larger than the limit of 1048576 bytes (--max-mib)"; do
        stub "${m%%:*}"
        assert_exit 1 sfetch --max-mib 1
        echo "$m: $output"
        [[ "$output" == *"dcm-fetch: error: "*"${m#*:}"* ]]
        [ ! -e "$T/x.vxp" ]; tmp_empty
        kill "$STUB"; STUB=
    done
}

@test "bad URL, 404, nothing listening, a server that stalls: exit 2 or 1 within the timeout, naming the URL, no file" {
    for u in ftp://127.0.0.1/x "http://alice:pw@127.0.0.1:1/dicom-web" "http://127.0.0.1:1/d?x=1" "https:///x" nourl; do
        assert_exit 2 dcm-fetch --keep-identifiers --dicomweb "$u" --modality CT -o "$T/x.vxp"
        echo "$u: $output"; [[ "$output" == *"--dicomweb: "* ]]; [[ "$output" != *"pw@"* ]]
    done
    port=$(free_port)
    start=$SECONDS
    assert_exit 1 dcm-fetch --keep-identifiers --timeout 3 --dicomweb "http://127.0.0.1:$port/dicom-web" --modality CT -o "$T/x.vxp"
    echo "$output"; [[ "$output" == *"GET http://127.0.0.1:$port/dicom-web/series?"* ]]
    [ $((SECONDS - start)) -lt 10 ]; [ ! -e "$T/x.vxp" ]
    stub hang
    start=$SECONDS
    TO=2 assert_exit 1 sfetch
    took=$((SECONDS - start)); echo "$output ($took s)"
    [[ "$output" == *"GET $SURL/studies/1.2.3/series/1.2.3.4: timed out (--timeout 2)"* ]]
    [ "$took" -ge 2 ]; [ "$took" -lt 10 ]; [ ! -e "$T/x.vxp" ]; tmp_empty
}

@test "404 from Orthanc (a wrong service path): exit 1 naming the URL and status" {
    web
    URL="http://127.0.0.1:$ORTHANC_HTTP/no-such-dicom-web"
    assert_exit 1 wfetch --keep-identifiers --study-uid "$STUDY" -o "$T/x.vxp"
    echo "$output"; [[ "$output" == *"GET $URL/studies/$STUDY/series?"*": HTTP 404"* ]]
    [ ! -e "$T/x.vxp" ]; tmp_empty
}

@test "HTTPS: the server's certificate verified against --tls-ca and the host name; unknown CA refused; --tls-no-verify" {
    # Orthanc 1.10.1's own HTTPS (SslEnabled) resets every TLS connection here, so the HTTPS server
    # is the stub, serving the first 3 slices; the reference is the same stub over HTTP
    command -v openssl >/dev/null || skip "openssl not installed"
    tls_certs
    d="$T/tls"
    openssl req -newkey rsa:2048 -nodes -keyout "$d/web.key" -out "$d/web.csr" -subj "/CN=web" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1\n' > "$d/san"
    openssl x509 -req -in "$d/web.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial -extfile "$d/san" -out "$d/web.crt" -days 2 2>/dev/null
    stub ok
    sfetch -q; mv "$T/x.vxp" "$T/plain.vxp"; kill "$STUB"
    STUB_TLS="$d/web.crt:$d/web.key" stub ok
    SURL="https${SURL#http}"
    run sfetch --tls-ca "$d/ca.crt"
    echo "$output"; [ "$status" -eq 0 ]
    run same "$T/x.vxp" "$T/plain.vxp"; [ "$output" = "True True True True True True []" ]
    rm "$T/x.vxp"
    assert_exit 1 sfetch --tls-ca "$d/rogue-ca.crt"
    echo "$output"; [[ "$output" == *"GET $SURL/series?"*"certificate"* ]]; [ ! -e "$T/x.vxp" ]
    # without --tls-ca the system CAs do not know the test CA
    assert_exit 1 sfetch
    [[ "$output" == *"certificate"* ]]; [ ! -e "$T/x.vxp" ]
    # the host name is checked: the same certificate reached as "localhost" (not in its names) fails
    SURL="${SURL/127.0.0.1/localhost}"
    assert_exit 1 sfetch --tls-ca "$d/ca.crt"
    echo "$output"; [[ "$output" == *"no alternative certificate subject name matches target host name 'localhost'"* ]]
    [ ! -e "$T/x.vxp" ]
    run sfetch --tls-no-verify
    echo "$output"; [ "$status" -eq 0 ]; [ -s "$T/x.vxp" ]
    tmp_empty
}

@test "usage: --dicomweb with --pacs, files, --tls, --move, TLS files on http, --auth-* without --dicomweb" {
    has_web || skip "dcm-fetch built without DICOMweb"
    u=http://127.0.0.1:1/dicom-web
    assert_exit 2 dcm-fetch --keep-identifiers --dicomweb $u --pacs 127.0.0.1:104 --modality CT
    [[ "$output" == *"either --pacs or --dicomweb"* ]]
    assert_exit 2 dcm-fetch --keep-identifiers --dicomweb $u --modality CT "$CT"
    [[ "$output" == *"either --dicomweb or files"* ]]
    assert_exit 2 dcm-fetch --keep-identifiers --dicomweb $u
    [[ "$output" == *"--dicomweb needs at least one query key"* ]]
    assert_exit 2 dcm-fetch --keep-identifiers --dicomweb $u --modality CT --tls --tls-no-verify
    [[ "$output" == *"an https:// URL is TLS"* ]]
    assert_exit 2 dcm-fetch --keep-identifiers --dicomweb $u --modality CT --tls-no-verify
    [[ "$output" == *"need an https:// URL"* ]]
    assert_exit 2 dcm-fetch --keep-identifiers --dicomweb $u --modality CT --move --port 11112
    [[ "$output" == *"--move and --port need --pacs"* ]]
    assert_exit 2 dcm-fetch --keep-identifiers --auth-env X "$CT"
    [[ "$output" == *"need --dicomweb"* ]]
    assert_exit 2 dcm-fetch --keep-identifiers --date 20200101 "$CT"
    [[ "$output" == *"need --pacs HOST:PORT or --dicomweb URL"* ]]
}

@test "a build without DICOMweb (no libcurl) refuses --dicomweb clearly: exit 1" {
    has_web && skip "built with DICOMweb"
    assert_exit 1 dcm-fetch --keep-identifiers --dicomweb http://127.0.0.1:1/dicom-web --modality CT -o "$T/x.vxp"
    [[ "$output" == *"--dicomweb: this build has no DICOMweb (libcurl): build with -DVP_WITH_CURL and link -lcurl"* ]]
    [ ! -e "$T/x.vxp" ]
}
