# Orthanc on loopback for the DICOM tests: own config, storage and ports under $T.
#   orthanc_start   sets ORTHANC_DICOM, ORTHANC_HTTP (free ports), ORTHANC_AET=ORTHANC; waits until ready
#   orthanc_stop    stops it (call from teardown)
#   ORTHANC_CHECK_AET=true before orthanc_start: associations called with another AE title are refused
free_port() { "$VOXPIPE_PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

orthanc_start() {
    ORTHANC_DICOM=$(free_port); ORTHANC_HTTP=$(free_port); ORTHANC_AET=ORTHANC
    mkdir -p "$T/orthanc/db"
    cat > "$T/orthanc/config.json" <<JSON
{ "Name": "voxpipe-test", "StorageDirectory": "$T/orthanc/db", "IndexDirectory": "$T/orthanc/db",
  "DicomAet": "$ORTHANC_AET", "DicomPort": $ORTHANC_DICOM, "HttpPort": $ORTHANC_HTTP,
  "RemoteAccessAllowed": false, "AuthenticationEnabled": false, "DicomCheckCalledAet": ${ORTHANC_CHECK_AET:-false},
  "DicomAlwaysAllowStore": true, "DicomAlwaysAllowFind": true, "DicomAlwaysAllowGet": true,
  "DicomAlwaysAllowEcho": true, "DicomModalities": {}, "Plugins": [], "HttpServerEnabled": true,
  "DicomServerEnabled": true, "StableAge": 1 }
JSON
    Orthanc "$T/orthanc/config.json" > "$T/orthanc/log" 2>&1 &
    ORTHANC_PID=$!
    echo $ORTHANC_PID > "$T/orthanc/pid"
    for _ in $(seq 1 100); do
        echoscu -to 2 127.0.0.1 "$ORTHANC_DICOM" -aec "$ORTHANC_AET" >/dev/null 2>&1 && return 0
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
