# Orthanc on loopback for the DICOM tests: own config, storage and ports under $T.
#   orthanc_start   sets ORTHANC_DICOM, ORTHANC_HTTP (free ports), ORTHANC_AET=ORTHANC; waits until ready
#   orthanc_stop    stops it (call from teardown)
#   ORTHANC_CHECK_AET=true before orthanc_start: associations called with another AE title are refused
#   ORTHANC_TLS=true before orthanc_start: DICOM TLS only, with certificates from tls_certs in $T/tls;
#                    Orthanc requires a client certificate signed by ca.crt
#   ORTHANC_MODALITIES='"name": ["AET", "127.0.0.1", PORT]' before orthanc_start: C-MOVE destinations
#   ORTHANC_TLS_ARGS  the DCMTK tool options (echoscu, storescu, findscu) that talk TLS to it
#   ORTHANC_PLUGINS='"/path/plugin.so"' and ORTHANC_EXTRA='"Key": value,' before orthanc_start: plugins
#                    (e.g. DICOMweb) and more configuration
free_port() { "$VOXPIPE_PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# tls_certs: $T/tls/{ca,server,client}.{crt,key} (server and client signed by ca), and a rogue CA
# rogue-ca.crt with rogue.{crt,key} signed by it; openssl, 2048-bit RSA, valid 2 days
tls_certs() {
    local d="$T/tls" n
    [ -f "$d/ca.crt" ] && return 0
    mkdir -p "$d"
    for n in ca rogue-ca; do
        openssl req -x509 -newkey rsa:2048 -nodes -keyout "$d/$n.key" -out "$d/$n.crt" -days 2 -subj "/CN=voxpipe test $n" 2>/dev/null
    done
    for n in server:ca client:ca rogue:rogue-ca; do
        openssl req -newkey rsa:2048 -nodes -keyout "$d/${n%%:*}.key" -out "$d/${n%%:*}.csr" -subj "/CN=${n%%:*}" 2>/dev/null
        openssl x509 -req -in "$d/${n%%:*}.csr" -CA "$d/${n#*:}.crt" -CAkey "$d/${n#*:}.key" -CAcreateserial \
            -out "$d/${n%%:*}.crt" -days 2 2>/dev/null
    done
    [ -s "$d/rogue.crt" ]
}

orthanc_start() {
    ORTHANC_DICOM=$(free_port); ORTHANC_HTTP=$(free_port); ORTHANC_AET=ORTHANC
    mkdir -p "$T/orthanc/db"
    local tls=""
    ORTHANC_TLS_ARGS=()
    if [ "${ORTHANC_TLS:-false}" = true ]; then
        tls_certs
        tls="\"DicomTlsEnabled\": true, \"DicomTlsCertificate\": \"$T/tls/server.crt\", \"DicomTlsPrivateKey\": \"$T/tls/server.key\",
  \"DicomTlsTrustedCertificates\": \"$T/tls/ca.crt\", \"DicomTlsRemoteCertificateRequired\": true,"
        ORTHANC_TLS_ARGS=(+tls "$T/tls/client.key" "$T/tls/client.crt" +cf "$T/tls/ca.crt")
    fi
    cat > "$T/orthanc/config.json" <<JSON
{ "Name": "voxpipe-test", "StorageDirectory": "$T/orthanc/db", "IndexDirectory": "$T/orthanc/db",
  "DicomAet": "$ORTHANC_AET", "DicomPort": $ORTHANC_DICOM, "HttpPort": $ORTHANC_HTTP,
  "RemoteAccessAllowed": false, "AuthenticationEnabled": false, "DicomCheckCalledAet": ${ORTHANC_CHECK_AET:-false},
  "DicomAlwaysAllowStore": true, "DicomAlwaysAllowFind": true, "DicomAlwaysAllowGet": true,
  "DicomAlwaysAllowEcho": true, "DicomModalities": { ${ORTHANC_MODALITIES:-} }, "Plugins": [ ${ORTHANC_PLUGINS:-} ], "HttpServerEnabled": true, $tls ${ORTHANC_EXTRA:-}
  "DicomServerEnabled": true, "StableAge": 1 }
JSON
    Orthanc "$T/orthanc/config.json" > "$T/orthanc/log" 2>&1 &
    ORTHANC_PID=$!
    echo $ORTHANC_PID > "$T/orthanc/pid"
    for _ in $(seq 1 100); do
        echoscu -to 2 "${ORTHANC_TLS_ARGS[@]}" 127.0.0.1 "$ORTHANC_DICOM" -aec "$ORTHANC_AET" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    echo "Orthanc did not start:" >&2; tail -20 "$T/orthanc/log" >&2
    return 1
}

orthanc_stop() {
    [ -f "$T/orthanc/pid" ] || return 0
    local pid; pid=$(cat "$T/orthanc/pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$T/orthanc/pid"
}
