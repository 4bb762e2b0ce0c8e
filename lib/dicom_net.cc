/* dicom_net.cc - C-FIND and C-GET over DCMTK's DcmSCU for dcm-fetch --pacs (see dicom_net.h). */
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dctk.h>
#include <dcmtk/dcmnet/dcmlayer.h>
#include <dcmtk/dcmnet/scu.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
#define _Noreturn [[noreturn]]
#include "dicom.h"
#include "dicom_net.h"
#include "dicom_tls.h"
#include "util.h"
#undef _Noreturn
#pragma GCC diagnostic pop

namespace {


/* writes each received object as DIR/NNNNNN.dcm: no file name derived from what the peer sends */
class Scu : public VpTlsScu {
  public:
    std::string dir;
    int stored = 0;

  protected:
    OFString createStorageFilename(DcmDataset *) override
    {
        char b[32];
        snprintf(b, sizeof b, "/%06d.dcm", stored);
        return OFString((dir + b).c_str());
    }
    void notifyInstanceStored(const OFString &, const OFString &, const OFString &) const override
    {
        const_cast<Scu *>(this)->stored++;
    }
};


OFString str(DcmDataset *d, const DcmTagKey &t)
{
    OFString s;
    if (d) d->findAndGetOFString(t, s);
    return s;
}

void put(DcmDataset &d, const DcmTagKey &t, const char *v) { d.putAndInsertString(t, v ? v : ""); }

/* one C-FIND; the identifiers of the pending responses into out; 0 or -VP_ERR_RUNTIME */
int find(Scu &scu, const struct vp_dcm_peer *p, DcmDataset &keys, std::vector<DcmDataset> &out, char why[256])
{
    T_ASC_PresentationContextID pc = scu.findPresentationContextID(UID_FINDStudyRootQueryRetrieveInformationModel, "");
    if (!pc) { snprintf(why, 256, "%s at %s:%d does not offer Study Root C-FIND", p->aec, p->host, p->port); return -VP_ERR_RUNTIME; }
    OFList<QRResponse *> rs;
    OFCondition c = scu.sendFINDRequest(pc, &keys, &rs);
    int rc = 0;
    for (QRResponse *r : rs) {
        if (!rc && r->m_dataset && DICOM_PENDING_STATUS(r->m_status)) out.push_back(*r->m_dataset);
        if (!rc && r->m_status != STATUS_Success && !DICOM_PENDING_STATUS(r->m_status)) {
            snprintf(why, 256, "C-FIND refused by %s at %s:%d: status 0x%04x", p->aec, p->host, p->port, r->m_status);
            rc = -VP_ERR_RUNTIME;
        }
        delete r;
    }
    if (c.bad() && !rc) rc = vp_dcm_net_fail(why, p, "C-FIND", c);
    return rc;
}

} // namespace

/* what the reader (dicom_dcmtk.cc, dicom_j2k.c) decodes, the encapsulated lossless syntaxes first:
 * offered one per context for C-GET, all in one for our C-MOVE storage SCP, so the PACS sends each
 * object as stored and never has to transcode */
const char *const vp_dcm_xfers[] = {
    UID_JPEG2000LosslessOnlyTransferSyntax, UID_JPEGLSLosslessTransferSyntax, UID_JPEGProcess14SV1TransferSyntax,
    UID_JPEGProcess14TransferSyntax, UID_RLELosslessTransferSyntax, UID_DeflatedExplicitVRLittleEndianTransferSyntax,
    UID_LittleEndianExplicitTransferSyntax, UID_LittleEndianImplicitTransferSyntax, UID_BigEndianExplicitTransferSyntax,
    UID_JPEG2000TransferSyntax, UID_JPEGLSLossyTransferSyntax, UID_JPEGProcess1TransferSyntax,
};
const int vp_dcm_n_xfers = sizeof vp_dcm_xfers / sizeof *vp_dcm_xfers;

/* 11 x 12 = 132 contexts would pass the 128 limit of one association */
const char *const vp_dcm_image_classes[] = {
    UID_CTImageStorage, UID_EnhancedCTImageStorage, UID_MRImageStorage, UID_EnhancedMRImageStorage,
    UID_PositronEmissionTomographyImageStorage, UID_NuclearMedicineImageStorage, UID_SecondaryCaptureImageStorage,
    UID_ComputedRadiographyImageStorage, UID_DigitalXRayImageStorageForPresentation,
};
const int vp_dcm_n_image_classes = sizeof vp_dcm_image_classes / sizeof *vp_dcm_image_classes;

void vp_dcm_scu_setup(VpTlsScu &scu, const struct vp_dcm_peer *p, const char *qr)
{
    scu.setPeerHostName(p->host);
    scu.setPeerPort((Uint16)p->port);
    scu.setAETitle(p->aet);
    scu.setPeerAETitle(p->aec);
    scu.setConnectionTimeout(p->timeout);
    scu.setACSETimeout((Uint32)p->timeout);
    scu.setDIMSEBlockingMode(DIMSE_NONBLOCKING);
    scu.setDIMSETimeout((Uint32)p->timeout);
    scu.setVerbosePCMode(OFFalse);
    OFList<OFString> ts;
    ts.push_back(UID_LittleEndianExplicitTransferSyntax);
    ts.push_back(UID_LittleEndianImplicitTransferSyntax);
    scu.addPresentationContext(qr, ts);
}

int vp_dcm_net_fail(char why[256], const struct vp_dcm_peer *p, const char *what, const OFCondition &c)
{
    snprintf(why, 256, "%s with %s at %s:%d: %s", what, p->aec, p->host, p->port, c.text());
    return -VP_ERR_RUNTIME;
}

int vp_dcm_scu_connect(VpTlsScu &scu, const struct vp_dcm_peer *p, std::unique_ptr<DcmTransportLayer> &tl,
                       char why[256])
{
    OFCondition c = scu.initNetwork();
    if (c.bad()) return vp_dcm_net_fail(why, p, "network setup", c);
    DcmTransportLayer *l = NULL;
    int rc = vp_dcm_tls_use(scu, p->tls, &l, why);
    tl.reset(l);
    if (rc) return rc;
    if ((c = scu.negotiateAssociation()).bad()) return vp_dcm_net_fail(why, p, "association", c);
    return 0;
}

extern "C" int vp_dcm_find(const struct vp_dcm_peer *p, const struct vp_dcm_query *q, struct vp_dcm_hit **hits,
                           char why[256])
{
    *hits = NULL;
    vp_dcm_init();
    std::unique_ptr<DcmTransportLayer> tl;
    Scu scu;
    vp_dcm_scu_setup(scu, p, UID_FINDStudyRootQueryRetrieveInformationModel);
    int rc = vp_dcm_scu_connect(scu, p, tl, why);
    if (rc) return rc;
    DcmDataset sk;
    put(sk, DCM_QueryRetrieveLevel, "STUDY");
    put(sk, DCM_StudyInstanceUID, q->study_uid);
    put(sk, DCM_PatientID, q->patient_id);
    put(sk, DCM_AccessionNumber, q->accession);
    put(sk, DCM_StudyDate, q->date);
    std::vector<DcmDataset> studies, series;
    rc = find(scu, p, sk, studies, why);
    std::vector<std::string> suids;
    for (auto &d : studies) suids.push_back(str(&d, DCM_StudyInstanceUID).c_str());
    std::sort(suids.begin(), suids.end());
    suids.erase(std::unique(suids.begin(), suids.end()), suids.end());
    for (size_t i = 0; i < suids.size() && !rc; i++) {
        if (suids[i].empty()) continue;
        DcmDataset k;
        put(k, DCM_QueryRetrieveLevel, "SERIES");
        put(k, DCM_StudyInstanceUID, suids[i].c_str());
        put(k, DCM_SeriesInstanceUID, q->series_uid);
        put(k, DCM_Modality, q->modality);
        put(k, DCM_SeriesDescription, NULL);
        put(k, DCM_NumberOfSeriesRelatedInstances, NULL);
        rc = find(scu, p, k, series, why);
    }
    if (rc) { scu.abortAssociation(); return rc; }
    scu.releaseAssociation();
    std::vector<vp_dcm_hit> h;
    for (auto &d : series) {
        vp_dcm_hit x;
        memset(&x, 0, sizeof x);
        snprintf(x.study_uid, sizeof x.study_uid, "%s", str(&d, DCM_StudyInstanceUID).c_str());
        snprintf(x.series_uid, sizeof x.series_uid, "%s", str(&d, DCM_SeriesInstanceUID).c_str());
        snprintf(x.modality, sizeof x.modality, "%s", str(&d, DCM_Modality).c_str());
        snprintf(x.description, sizeof x.description, "%s", str(&d, DCM_SeriesDescription).c_str());
        OFString n = str(&d, DCM_NumberOfSeriesRelatedInstances);
        x.instances = n.empty() ? -1 : atoi(n.c_str());
        if (!x.study_uid[0] || !x.series_uid[0]) continue;
        h.push_back(x);
    }
    std::sort(h.begin(), h.end(), [](const vp_dcm_hit &a, const vp_dcm_hit &b) {
        int c = strcmp(a.study_uid, b.study_uid);
        return c ? c < 0 : strcmp(a.series_uid, b.series_uid) < 0;
    });
    h.erase(std::unique(h.begin(), h.end(),
                        [](const vp_dcm_hit &a, const vp_dcm_hit &b) {
                            return !strcmp(a.study_uid, b.study_uid) && !strcmp(a.series_uid, b.series_uid);
                        }),
            h.end());
    *hits = (struct vp_dcm_hit *)calloc(h.size() ? h.size() : 1, sizeof **hits);
    if (!*hits) { snprintf(why, 256, "out of memory"); return -VP_ERR_RUNTIME; }
    if (!h.empty()) memcpy(*hits, h.data(), h.size() * sizeof h[0]);
    return (int)h.size();
}

extern "C" int vp_dcm_get(const struct vp_dcm_peer *p, const struct vp_dcm_hit *hits, int n, const char *dir,
                          int *nfiles, char why[256])
{
    vp_dcm_init();
    *nfiles = 0;
    std::unique_ptr<DcmTransportLayer> tl;
    Scu scu;
    vp_dcm_scu_setup(scu, p, UID_GETStudyRootQueryRetrieveInformationModel);
    scu.dir = dir;
    scu.setStorageMode(DCMSCU_STORAGE_DISK);
    scu.setStorageDir(dir);
    for (int i = 0; i < vp_dcm_n_image_classes; i++)
        for (int j = 0; j < vp_dcm_n_xfers; j++) {
            OFList<OFString> one;
            one.push_back(vp_dcm_xfers[j]);
            scu.addPresentationContext(vp_dcm_image_classes[i], one, ASC_SC_ROLE_SCP);
        }
    int rc = vp_dcm_scu_connect(scu, p, tl, why);
    if (rc) return rc;
    T_ASC_PresentationContextID pc = scu.findPresentationContextID(UID_GETStudyRootQueryRetrieveInformationModel, "");
    if (!pc) {
        snprintf(why, 256, "%s at %s:%d does not offer Study Root C-GET", p->aec, p->host, p->port);
        rc = -VP_ERR_RUNTIME;
    }
    for (int i = 0; i < n && !rc; i++) {
        DcmDataset k;
        put(k, DCM_QueryRetrieveLevel, "SERIES");
        put(k, DCM_StudyInstanceUID, hits[i].study_uid);
        put(k, DCM_SeriesInstanceUID, hits[i].series_uid);
        OFList<RetrieveResponse *> rs;
        int before = scu.stored;
        OFCondition c = scu.sendCGETRequest(pc, &k, &rs);
        Uint16 last = 0xffff;
        int failed = 0;
        for (RetrieveResponse *r : rs) {
            last = r->m_status;
            failed = r->m_numberOfFailedSubops;
            delete r;
        }
        *nfiles = scu.stored;
        if (c.bad()) rc = vp_dcm_net_fail(why, p, "C-GET", c);
        else if (last != STATUS_Success) {
            snprintf(why, 256, "C-GET of series %d from %s at %s:%d: status 0x%04x, %d failed sub-operation(s)", i + 1,
                     p->aec, p->host, p->port, last, failed);
            rc = -VP_ERR_RUNTIME;
        } else if (scu.stored == before) {
            snprintf(why, 256, "C-GET of series %d from %s at %s:%d: no object received", i + 1, p->aec, p->host,
                     p->port);
            rc = -VP_ERR_RUNTIME;
        }
    }
    if (rc) scu.abortAssociation();
    else scu.releaseAssociation();
    return rc;
}
