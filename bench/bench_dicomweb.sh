#!/usr/bin/env bash
# dcm-fetch --dicomweb vs a Python DICOMweb client, side by side.   usage: bench/bench_dicomweb.sh [DATA_DIR]
#
# Orthanc with its DICOMweb plugin (Debian orthanc, orthanc-dicomweb) on loopback, storage under
# bench/out/dicomweb, loaded with a 512x512x141 uncompressed CT series (tests/scripts/dicom_fixtures.py
# identify + uncompressed, from the shared JPEG 2000 series; written once). Timed, each to a volume:
#   dcm-fetch --dicomweb URL --study-uid S (QIDO-RS + WADO-RS + assembly, stream to /dev/null)
#   peer: Python requests (QIDO-RS + WADO-RS, multipart split) + pydicom + numpy stack with rescale
#   (tests/scripts/dicomweb_peer.py), what a Python pipeline does without dcm-fetch
#   and, for reference, dcm-fetch --pacs (C-FIND + C-GET) from the same Orthanc.
# VOXPIPE_BIN: the build to time (default bin; it needs DICOMweb, i.e. libcurl).
# Medians of BENCH_ROUNDS (default 5) interleaved rounds; Orthanc's cache is warm for all.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
data=${1:-../shared/data}
py=.venv/bin/python
out=$root/bench/out/dicomweb
rounds=${BENCH_ROUNDS:-5}
ct="$data/totalseg/ct_dicom"
bin=${VOXPIPE_BIN:-bin}
plugin=/usr/share/orthanc/plugins/libOrthancDicomWeb.so
[ -d "$ct" ] || { echo "bench_dicomweb: missing $ct" >&2; exit 1; }
command -v Orthanc >/dev/null && [ -f "$plugin" ] || { echo "bench_dicomweb: needs Debian orthanc and orthanc-dicomweb" >&2; exit 1; }
if "$bin/dcm-fetch" --keep-identifiers --dicomweb http://127.0.0.1:1 --modality CT 2>&1 | grep -q "has no DICOMweb"; then
    echo "bench_dicomweb: $bin/dcm-fetch was built without DICOMweb (libcurl)" >&2; exit 1
fi
mkdir -p "$out"
if [ "$(ls "$out/u141" 2>/dev/null | wc -l)" -ne 141 ]; then
    echo "bench_dicomweb: writing the 512x512x141 uncompressed series (once)" >&2
    rm -rf "$out/u141" "$out/id"
    "$py" tests/scripts/dicom_fixtures.py identify "$ct" "$out/id"
    "$py" tests/scripts/dicom_fixtures.py uncompressed "$out/id" "$out/u141" 141
fi
free_port() { "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
dport=$(free_port); hport=$(free_port)
rm -rf "$out/db"; mkdir -p "$out/db"
cat > "$out/config.json" <<JSON
{ "Name": "voxpipe-bench", "StorageDirectory": "$out/db", "IndexDirectory": "$out/db", "DicomAet": "ORTHANC",
  "DicomPort": $dport, "HttpPort": $hport, "RemoteAccessAllowed": false, "AuthenticationEnabled": false,
  "DicomAlwaysAllowStore": true, "DicomAlwaysAllowFind": true, "DicomAlwaysAllowGet": true, "DicomAlwaysAllowEcho": true,
  "Plugins": [ "$plugin" ], "StableAge": 1 }
JSON
Orthanc "$out/config.json" > "$out/orthanc.log" 2>&1 &
opid=$!
trap 'kill $opid 2>/dev/null || true' EXIT
for _ in $(seq 100); do echoscu -to 2 127.0.0.1 "$dport" -aec ORTHANC >/dev/null 2>&1 && break; sleep 0.2; done
storescu -q -xv -to 30 -aec ORTHANC +sd 127.0.0.1 "$dport" "$out/u141"
study=$("$py" -c 'import pydicom,sys,os; d=sys.argv[1]; print(pydicom.dcmread(os.path.join(d, sorted(os.listdir(d))[0])).StudyInstanceUID)' "$out/u141")
url="http://127.0.0.1:$hport/dicom-web"

t() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1 || { echo "bench_dicomweb: failed: $*" >&2; exit 1; }; e=$(date +%s.%N); echo "$e - $s" | bc; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

echo "dicomweb bench  $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "machine: $(nproc) CPUs; load average before: $(cut -d' ' -f1-3 /proc/loadavg); Orthanc $(Orthanc --version 2>&1 | head -1 | grep -o '[0-9][0-9.]*' | head -1)"
# the peer must produce the same voxels (checked once, not timed)
"$bin/dcm-fetch" -q --keep-identifiers --dicomweb "$url" --study-uid "$study" -o "$out/w.vxp"
"$py" tests/scripts/dicomweb_peer.py "$url" "$study" --check "$out/w.vxp"
a=(); b=(); c=()
"$py" tests/scripts/dicomweb_peer.py "$url" "$study" >/dev/null # warm Orthanc's cache
for _ in $(seq "$rounds"); do
    a+=("$(t "$bin/dcm-fetch" -q --keep-identifiers --dicomweb "$url" --study-uid "$study" -o /dev/null)")
    b+=("$(t "$py" tests/scripts/dicomweb_peer.py "$url" "$study")")
    c+=("$(t "$bin/dcm-fetch" -q --keep-identifiers --pacs "127.0.0.1:$dport" --aec ORTHANC --study-uid "$study" -o /dev/null)")
done
ma=$(printf '%s\n' "${a[@]}" | median); mb=$(printf '%s\n' "${b[@]}" | median); mc=$(printf '%s\n' "${c[@]}" | median)
printf '%-30s dcm-fetch --dicomweb %6.3f s   python requests+pydicom %6.3f s   ratio %5.2fx   (dcm-fetch --pacs C-GET %6.3f s)\n' \
    "512x512x141 uncompressed" "$ma" "$mb" "$(echo "$mb / $ma" | bc -l)" "$mc"
