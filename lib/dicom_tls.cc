// dicom_tls.cc - the TLS layer of DIMSE connections (dicom_tls.h): DCMTK dcmtls when built with
// -DVP_WITH_DCMTLS (and linked with -ldcmtls -lssl -lcrypto), a stub that refuses --tls otherwise.
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmnet/scu.h>
#ifdef VP_WITH_DCMTLS
#include <dcmtk/dcmtls/tlslayer.h>
#endif

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
#define _Noreturn [[noreturn]]
extern "C" {
#include "cli.h"
#include "util.h"
}
#include "dicom_tls.h"
#undef _Noreturn
#pragma GCC diagnostic pop

extern "C" int vp_dcm_tls_available(void)
{
#ifdef VP_WITH_DCMTLS
    return 1;
#else
    return 0;
#endif
}

extern "C" void vp_dcm_tls_check(const struct vp_dcm_tls *t)
{
    if (!t->on) {
        if (t->cert || t->key || t->ca || t->no_verify)
            vp_usage_error("--tls-cert, --tls-key, --tls-ca and --tls-no-verify need --tls");
        return;
    }
    if (!t->ca && !t->no_verify)
        vp_usage_error("--tls needs --tls-ca FILE to verify the peer (or, explicitly, --tls-no-verify)");
    if (t->ca && t->no_verify) vp_usage_error("--tls-ca and --tls-no-verify exclude each other");
    if (!t->cert != !t->key) vp_usage_error("--tls-cert and --tls-key come together");
    if (!vp_dcm_tls_available())
        vp_die(VP_ERR_RUNTIME, "--tls: this build has no DICOM TLS (DCMTK dcmtls): build with -DVP_WITH_DCMTLS and "
                               "link -ldcmtls -lssl -lcrypto");
}

#ifdef VP_WITH_DCMTLS
static int bad(char why[256], const char *what, const char *file, const OFCondition &c)
{
    snprintf(why, 256, "TLS: %s '%s': %s", what, file, c.text());
    return -VP_ERR_USAGE;
}

int vp_dcm_tls_layer(const struct vp_dcm_tls *t, int acceptor, DcmTransportLayer **layer, char why[256])
{
    *layer = NULL;
    if (!t || !t->on) return 0;
    if (acceptor && !t->cert) {
        snprintf(why, 256, "TLS: our storage SCP needs a certificate (--tls-cert, --tls-key)");
        return -VP_ERR_USAGE;
    }
    /* a missing file would otherwise surface as an OpenSSL message without the path */
    const char *files[3] = {t->cert, t->key, t->ca};
    for (const char *f : files)
        if (f && access(f, R_OK)) {
            snprintf(why, 256, "TLS: cannot read '%s': %s", f, strerror(errno));
            return -VP_ERR_USAGE;
        }
    DcmTLSTransportLayer *l = new DcmTLSTransportLayer(acceptor ? NET_ACCEPTOR : NET_REQUESTOR, NULL, OFTrue);
    OFCondition c = l->setTLSProfile(TSP_Profile_BCP195);
    if (c.good()) c = l->activateCipherSuites();
    if (c.bad()) {
        delete l;
        snprintf(why, 256, "TLS: cipher suites: %s", c.text());
        return -VP_ERR_RUNTIME;
    }
    if (t->cert) {
        if ((c = l->setPrivateKeyFile(t->key, DCF_Filetype_PEM)).bad()) { delete l; return bad(why, "private key", t->key, c); }
        if ((c = l->setCertificateFile(t->cert, DCF_Filetype_PEM)).bad()) { delete l; return bad(why, "certificate", t->cert, c); }
        if (!l->checkPrivateKeyMatchesCertificate()) {
            delete l;
            snprintf(why, 256, "TLS: the private key '%s' does not belong to the certificate '%s'", t->key, t->cert);
            return -VP_ERR_USAGE;
        }
    }
    if (t->ca && (c = l->addTrustedCertificateFile(t->ca, DCF_Filetype_PEM)).bad()) {
        delete l;
        return bad(why, "CA certificates", t->ca, c);
    }
    l->setCertificateVerification(t->no_verify ? DCV_ignoreCertificate : DCV_requireCertificate);
    *layer = l;
    return 0;
}

int vp_dcm_tls_use(VpTlsScu &scu, const struct vp_dcm_tls *t, DcmTransportLayer **layer, char why[256])
{
    DcmTransportLayer *l = NULL;
    *layer = NULL;
    int rc = vp_dcm_tls_layer(t, 0, &l, why);
    if (rc || !l) return rc;
    OFCondition c;
    if ((c = scu.useTls(l)).bad()) {
        delete l;
        snprintf(why, 256, "TLS: %s", c.text());
        return -VP_ERR_RUNTIME;
    }
    *layer = l;
    return 0;
}
#else
int vp_dcm_tls_layer(const struct vp_dcm_tls *t, int, DcmTransportLayer **layer, char why[256])
{
    *layer = NULL;
    if (!t || !t->on) return 0;
    snprintf(why, 256, "TLS: this build has no DICOM TLS (DCMTK dcmtls)");
    return -VP_ERR_RUNTIME;
}

int vp_dcm_tls_use(VpTlsScu &, const struct vp_dcm_tls *t, DcmTransportLayer **layer, char why[256])
{
    *layer = NULL;
    if (!t || !t->on) return 0;
    snprintf(why, 256, "TLS: this build has no DICOM TLS (DCMTK dcmtls)");
    return -VP_ERR_RUNTIME;
}
#endif
