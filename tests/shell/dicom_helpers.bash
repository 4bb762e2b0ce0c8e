# Shared by the DICOM network tests (dicom_pacs, dicom_tls, dicom_move_tls, dicom_web .bats): scratch space with
# dcm-fetch's temporary directory under it, and the comparison of two fetched streams.
#   setup          T per test, $T/tmp as TMPDIR (it must be empty after every fetch: tmp_empty)
#   same A B       one case in each stream; prints whether id, dtype, shape, voxels, affine and
#                  meta but provenance are equal, then the meta keys only one has
#                  ("True True True True True True []" when all agree)
#   has_tls        dcm-fetch was built with DCMTK's TLS layer
#   pacs_tls [MODALITIES]  Orthanc with DICOM TLS only (orthanc_helpers.bash; MODALITIES: its
#                  DicomModalities members), loaded over TLS with the shared series given UIDs in
#                  $T/id ($CT, $FIX from the test file); sets STUDY
#   ca             dcm-fetch's TLS options with the test CA and client certificate

setup() {
    T="${VOXPIPE_TMP:-$BATS_TMPDIR}/$(basename "$BATS_TEST_FILENAME" .bats)-$BATS_TEST_NUMBER"
    rm -rf "$T" && mkdir -p "$T/tmp"
    export TMPDIR="$T/tmp"
}

tmp_empty() { [ -z "$(ls -A "$T/tmp")" ]; }

same() {
    "$VOXPIPE_PY" -c '
import sys, numpy as np; sys.path.insert(0, sys.argv[1]); import vxp
a, b = [list(vxp.read(open(f, "rb"))) for f in sys.argv[2:4]]
assert len(a) == len(b) == 1, (len(a), len(b))
a, b = a[0], b[0]
va, vb = a["vols"]["image"], b["vols"]["image"]
ma = {k: v for k, v in a["meta"].items() if k != "provenance"}
mb = {k: v for k, v in b["meta"].items() if k != "provenance"}
print(a["id"] == b["id"], va.data.dtype == vb.data.dtype, va.data.shape == vb.data.shape,
      np.array_equal(va.data, vb.data), np.array_equal(va.affine, vb.affine), ma == mb,
      sorted(set(a["meta"]) ^ set(b["meta"])))' "$SCRIPTS" "$1" "$2"
}

has_tls() {
    ! dcm-fetch --keep-identifiers --tls --tls-no-verify --timeout 1 --pacs 127.0.0.1:1 --modality CT 2>&1 \
        | grep -q "has no DICOM TLS"
}

pacs_tls() {
    command -v Orthanc >/dev/null || skip "Orthanc not installed (Debian package orthanc)"
    has_tls || skip "built without DICOM TLS (needs -DVP_WITH_DCMTLS and -ldcmtls -lssl -lcrypto)"
    "$VOXPIPE_PY" "$FIX" identify "$CT" "$T/id"
    ORTHANC_MODALITIES="${1:-}" ORTHANC_TLS=true orthanc_start
    storescu -q -xv -to 10 "${ORTHANC_TLS_ARGS[@]}" -aec "$ORTHANC_AET" +sd 127.0.0.1 "$ORTHANC_DICOM" "$T/id"
    STUDY=1.2.826.0.1.3680043.8.498.1001
}

ca() { echo --tls --tls-ca "$T/tls/ca.crt" --tls-cert "$T/tls/client.crt" --tls-key "$T/tls/client.key"; }
