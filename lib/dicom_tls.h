/* dicom_tls.h - TLS for DIMSE connections (DCMTK dcmtls over OpenSSL): dcm-fetch --pacs (C-FIND,
 * C-GET, C-MOVE) and dcm-store's C-STORE use it when given --tls.
 *
 * The peer's certificate is verified against --tls-ca by default (DCMTK "require certificate": an
 * unknown or missing certificate fails the association); --tls-no-verify turns that off
 * explicitly. --tls-cert/--tls-key are our own certificate and key (PEM), which a PACS requiring
 * client certificates (Orthanc's DicomTlsRemoteCertificateRequired) checks in turn. The cipher
 * suites are DCMTK's BCP 195 profile (TLS 1.2 or later). Like DCMTK's own tools, the host name is
 * not matched against the certificate: trust comes from the CA file alone, so give a CA (or the
 * peer's own certificate) that signs only the PACS you mean.
 *
 * DCMTK's TLS library is a separate link (-ldcmtls -lssl -lcrypto). lib/dicom_tls.cc builds the
 * real layer when compiled with -DVP_WITH_DCMTLS and otherwise a stub whose --tls fails with a
 * message saying so (vp_dcm_tls_available() tells which).
 *
 * Ownership: the strings in struct vp_dcm_tls are borrowed from the caller (argv). The layer made by
 * vp_dcm_tls_use() is the caller's: delete it after the association is released.
 */
#ifndef VP_DICOM_TLS_H
#define VP_DICOM_TLS_H

#ifdef __cplusplus
extern "C" {
#endif

struct vp_dcm_tls {
    int on;                        /* --tls */
    const char *cert, *key, *ca;   /* PEM files; cert and key both or neither; ca unless no_verify */
    int no_verify;                 /* --tls-no-verify */
};

/* Whether this build has DCMTK's TLS layer (1) or the stub (0). */
int vp_dcm_tls_available(void);

/* Check the --tls options of a program (exits with a usage error naming the option): the others
 * need --tls; --tls needs --tls-ca or --tls-no-verify (not both); --tls-cert and --tls-key come
 * together. Also fails (exit 1) when --tls is asked of a build without TLS. */
void vp_dcm_tls_check(const struct vp_dcm_tls *t);

#ifdef __cplusplus
}

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmnet/dcmlayer.h>
#include <dcmtk/dcmnet/scu.h>

/* DcmSCU with its (protected, in DCMTK 3.6.7) useSecureConnection() reachable */
class VpTlsScu : public DcmSCU {
  public:
    OFCondition useTls(DcmTransportLayer *l) { return useSecureConnection(l); }
};

/* C++: when t asks for TLS, the layer (key, certificate and CA files loaded and checked) for our
 * side as requestor (acceptor 0: an SCU) or acceptor (1: the storage SCP of C-MOVE, which needs
 * --tls-cert/--tls-key) into *layer (the caller's; else *layer = NULL). The peer's certificate is
 * required and verified against --tls-ca unless --tls-no-verify. Returns as vp_dcm_tls_use(). */
int vp_dcm_tls_layer(const struct vp_dcm_tls *t, int acceptor, DcmTransportLayer **layer, char why[256]);

/* C++ (dicom_net.cc, dicom_seg.cc): when t asks for TLS, make the layer (loading and checking the
 * key, certificate and CA files), hand it to scu (after its initNetwork()) and return it in *layer (else
 * *layer = NULL); the layer must outlive scu. 0 ok, or -VP_ERR_USAGE (a file cannot be loaded, key
 * and certificate do not match) / -VP_ERR_RUNTIME with the reason in why[256]. */
int vp_dcm_tls_use(VpTlsScu &scu, const struct vp_dcm_tls *t, DcmTransportLayer **layer, char why[256]);
#endif

#endif
