#!/usr/bin/env bash
# The PACS round trip on the shared data: a real PACS (Orthanc, on loopback, with its own config and
# a temporary storage directory) is loaded with the shared CT series, dcm-fetch finds it by C-FIND and
# pulls it by C-GET, pseudonymised with a site key; a segmentation is added; dcm-store turns it into
# a DICOM SEG that references the original series (opening the sealed UIDs with the same key) and
# sends it back by C-STORE; a C-FIND finds it in the study next to the CT. Orthanc is stopped and
# its storage removed on every path (success, error, Ctrl-C).
#
#   examples/pacs-roundtrip.sh [DATA [OUT]]     (DATA: ../shared/data; OUT: examples-out/pacs-roundtrip)
#
# Needs: make (bin/, or VOXPIPE_BIN), Debian orthanc and dcmtk (dcmodify, storescu, echoscu); for the stand-in
# segmentation the project's .venv Python (numpy, msgpack).
# The segmentation step: SEGMENT='a filter command' (stream in, stream out, adding a volume
# "label" on the image's grid), e.g. SEGMENT='infer-ressegnet --model spine.safetensors ...'. Without
# it a stand-in runs: bone = HU > 200, one class named "bone". No trained model ships with the
# project, and the shared TotalSegmentator labels (example_seg.nii.gz) belong to another CT
# (example_ct_sm.nii.gz) that does not overlap this series in space (z -805..-766 mm here, +94..+181
# mm there), so label-map of those labels cannot stand in on this grid.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
data=$(cd "${1:-$root/../shared/data}" && pwd)
out=${2:-$root/examples-out/pacs-roundtrip}
export PATH="${VOXPIPE_BIN:-$root/bin}:$PATH"   # VOXPIPE_BIN: another build (tests: the sanitizer build)
py=${VOXPIPE_PY:-$root/.venv/bin/python}
series="$data/totalseg/ct_dicom"
for t in Orthanc dcmodify storescu echoscu dcm-fetch dcm-store vol-info; do
    command -v "$t" >/dev/null || { echo "pacs-roundtrip: error: $t not found (make; apt-get install orthanc dcmtk)" >&2; exit 1; }
done
rm -rf "$out" && mkdir -p "$out"
work=$(mktemp -d "${TMPDIR:-/tmp}/vp-pacs-roundtrip-XXXXXX")
orthanc_pid=
cleanup() {
    if [ -n "$orthanc_pid" ]; then
        kill "$orthanc_pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$orthanc_pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$orthanc_pid" 2>/dev/null || true
        wait "$orthanc_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# a free loopback port (nothing answers there)
free_port() {
    local p
    for _ in $(seq 100); do
        p=$((20000 + RANDOM % 40000))
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return 0; }
    done
    return 1
}

echo "== 1. a PACS on loopback: Orthanc with its own config and a temporary storage directory"
dicom_port=$(free_port); http_port=$(free_port)
mkdir -p "$work/db"
cat > "$work/orthanc.json" <<JSON
{ "Name": "voxpipe-demo", "StorageDirectory": "$work/db", "IndexDirectory": "$work/db",
  "DicomAet": "ORTHANC", "DicomPort": $dicom_port, "HttpPort": $http_port, "DicomCheckCalledAet": true,
  "RemoteAccessAllowed": false, "AuthenticationEnabled": false, "HttpServerEnabled": false,
  "DicomAlwaysAllowStore": true, "DicomAlwaysAllowFind": true, "DicomAlwaysAllowGet": true,
  "DicomAlwaysAllowEcho": true, "DicomModalities": {}, "Plugins": [], "StableAge": 1 }
JSON
Orthanc "$work/orthanc.json" > "$work/orthanc.log" 2>&1 &
orthanc_pid=$!
for _ in $(seq 100); do
    echoscu -to 2 -aec ORTHANC 127.0.0.1 "$dicom_port" >/dev/null 2>&1 && break
    kill -0 "$orthanc_pid" 2>/dev/null || { echo "pacs-roundtrip: error: Orthanc did not start:" >&2; tail -5 "$work/orthanc.log" >&2; exit 1; }
    sleep 0.2
done
echoscu -to 2 -aec ORTHANC 127.0.0.1 "$dicom_port" || { echo "pacs-roundtrip: error: Orthanc does not answer" >&2; exit 1; }
echo "Orthanc (pid $orthanc_pid) listening on 127.0.0.1:$dicom_port as ORTHANC"

echo
echo "== 2. the shared series (20 JPEG 2000 slices without UIDs) gets UIDs and a patient (dcmodify), then storescu"
root_uid=1.2.826.0.1.3680043.8.498
mkdir -p "$work/series"
i=0
for f in "$series"/*; do
    i=$((i + 1))
    cp "$f" "$work/series/$i.dcm"; chmod u+w "$work/series/$i.dcm"
    dcmodify -q -nb -i "(0020,000d)=$root_uid.7001" -i "(0020,000e)=$root_uid.7002" \
        -i "(0008,0016)=1.2.840.10008.5.1.4.1.1.2" -i "(0008,0018)=$root_uid.$((7100 + i))" \
        -i "(0010,0020)=DEMO-0001" -i "(0010,0010)=Demo^Patient" -i "(0008,0050)=DEMOACC01" "$work/series/$i.dcm"
done
storescu -q -xv +sd -to 10 -aec ORTHANC 127.0.0.1 "$dicom_port" "$work/series"  # -xv: as stored (JPEG 2000 lossless)
echo "$i images stored (PatientID DEMO-0001, AccessionNumber DEMOACC01, StudyInstanceUID $root_uid.7001)"

pacs=(--timeout 10 --pacs "127.0.0.1:$dicom_port" --aec ORTHANC)
head -c 32 /dev/urandom > "$work/site.key"; chmod 600 "$work/site.key"   # the hospital's secret; never leaves it

echo
echo "== 3. dcm-fetch --query: what the PACS has for the patient, as the cloud side would see it (pseudonymised)"
dcm-fetch "${pacs[@]}" --site-key "$work/site.key" --query --patient-id DEMO-0001 | column -t -s $'\t'

echo
echo "== 4. dcm-fetch: C-FIND by PatientID, C-GET, assembly, pseudonymisation"
dcm-fetch "${pacs[@]}" --site-key "$work/site.key" --patient-id DEMO-0001 --modality CT -o "$out/fetched.vxp"
vol-info -i "$out/fetched.vxp"

echo
if [ -n "${SEGMENT:-}" ]; then
    echo "== 5. segmentation: $SEGMENT"
    $SEGMENT < "$out/fetched.vxp" > "$out/segmented.vxp"
else
    echo "== 5. segmentation (stand-in: bone = HU > 200; no model at hand, see the header of this script)"
    "$py" - "$root/tests/scripts" "$out/fetched.vxp" "$out/segmented.vxp" <<'PY'
import sys
import numpy as np
sys.path.insert(0, sys.argv[1])
import vxp
cases = list(vxp.read(open(sys.argv[2], "rb")))
for c in cases:
    img = c["vols"]["image"]
    c["vols"]["label"] = vxp.Vol((img.data > 200).astype(np.uint8), img.affine)
    c["meta"]["labels"] = {"1": "bone"}
vxp.write(open(sys.argv[3], "wb"), cases)
PY
fi
vol-info -i "$out/segmented.vxp"

echo
echo "== 6. dcm-store: the label volume -> DICOM SEG referencing the original series, C-STORE back"
mkdir -p "$out/seg"
dcm-store "${pacs[@]}" --site-key "$work/site.key" -i "$out/segmented.vxp" -o "$out/seg"

echo
echo "== 7. C-FIND again (inside the hospital, identifiers kept): the study now holds the CT and the SEG"
dcm-fetch "${pacs[@]}" --keep-identifiers --query --study-uid "$root_uid.7001" > "$out/after.tsv"
column -t -s $'\t' "$out/after.tsv"
seg_uid=$(awk -F'\t' '$3 == "SEG" { print $2 }' "$out/after.tsv")
[ -n "$seg_uid" ] || { echo "pacs-roundtrip: error: the SEG is not in the PACS" >&2; exit 1; }

echo
echo "== summary"
echo "fetched:   $(awk -F'\t' '$3 == "CT" { print $5 }' "$out/after.tsv") CT images by C-GET, as case $("$py" -c 'import sys; sys.path.insert(0, sys.argv[1]); import vxp; print(list(vxp.read(open(sys.argv[2], "rb")))[0]["id"])' "$root/tests/scripts" "$out/fetched.vxp") (pseudonymised)"
echo "stored:    SEG $(ls "$out"/seg/) by C-STORE"
echo "found:     SEG series $seg_uid in study $root_uid.7001 by C-FIND"
echo "pacs-roundtrip: ok (outputs in $out)"
