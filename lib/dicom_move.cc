// dicom_move.cc - C-MOVE retrieval for dcm-fetch --pacs --move (dicom_net.h): a storage SCP of our
// own (DCMTK DcmSCP) listens on --port in a second thread while the C-MOVE request, on its own
// association, asks the PACS to send the series to our AE title. The PACS must know that AE title
// with our host and port (its list of modalities, e.g. Orthanc's DicomModalities).
//
// The storage SCP accepts only associations whose calling AE title is the PACS's (--aec), only the
// image storage classes, and writes each object exactly as received to DIR/NNNNNN.dcm (names never
// come from the peer). It stops once the C-MOVE has ended (checked every second).
// With --tls both associations are TLS: the C-MOVE one as for C-GET, and the storage SCP accepts
// only TLS, presenting our --tls-cert/--tls-key and requiring the PACS's certificate to be signed
// by --tls-ca (unless --tls-no-verify), so the series never crosses the network in the clear.
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dctk.h>
#include <dcmtk/dcmnet/scp.h>

#include <stdio.h>
#include <string.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>

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


class StoreScp : public DcmSCP {
  public:
    std::string dir, peer_aet;
    std::atomic<bool> done{false};
    std::atomic<int> stored{0}, refused{0};

  protected:
    void notifyAssociationRequest(const T_ASC_Parameters &params, DcmSCPActionType &action) override
    {
        if (peer_aet != params.DULparams.callingAPTitle) action = DCMSCP_ACTION_REFUSE_ASSOCIATION;
        if (action == DCMSCP_ACTION_REFUSE_ASSOCIATION) refused++;
    }
    OFCondition handleIncomingCommand(T_DIMSE_Message *msg, const DcmPresentationContextInfo &pc) override
    {
        if (msg->CommandField != DIMSE_C_STORE_RQ) return DcmSCP::handleIncomingCommand(msg, pc);
        T_DIMSE_C_StoreRQ &rq = msg->msg.CStoreRQ;
        char name[32];
        snprintf(name, sizeof name, "/%06d.dcm", stored.load());
        OFString path((dir + name).c_str());
        OFCondition c = receiveSTORERequest(rq, pc.presentationContextID, path);
        if (c.bad()) return c;
        stored++;
        return sendSTOREResponse(pc.presentationContextID, rq, STATUS_Success);
    }
    OFBool stopAfterConnectionTimeout() override { return done.load(); }
    OFBool stopAfterCurrentAssociation() override { return done.load(); }
};

} // namespace

extern "C" int vp_dcm_move(const struct vp_dcm_peer *p, const struct vp_dcm_hit *hits, int n, const char *dir,
                           int *nfiles, char why[256])
{
    vp_dcm_init();
    *nfiles = 0;
    StoreScp scp;
    scp.dir = dir;
    scp.peer_aet = p->aec;
    scp.setPort((Uint16)p->move_port);
    scp.setAETitle(p->aet);
    scp.setHostLookupEnabled(OFFalse);
    scp.setConnectionBlockingMode(DUL_NOBLOCK);
    scp.setConnectionTimeout(1); /* how often the thread looks at done */
    scp.setACSETimeout((Uint32)p->timeout);
    scp.setDIMSEBlockingMode(DIMSE_NONBLOCKING);
    scp.setDIMSETimeout((Uint32)p->timeout);
    scp.setVerbosePCMode(OFFalse);
    OFList<OFString> ts;
    for (int i = 0; i < vp_dcm_n_xfers; i++) ts.push_back(vp_dcm_xfers[i]);
    for (int i = 0; i < vp_dcm_n_image_classes; i++) scp.addPresentationContext(vp_dcm_image_classes[i], ts);
    OFList<OFString> echo;
    echo.push_back(UID_LittleEndianImplicitTransferSyntax);
    scp.addPresentationContext(UID_VerificationSOPClass, echo);
    DcmTransportLayer *sl = NULL; /* the SCP's TLS layer: outlives the thread below */
    int rc = vp_dcm_tls_layer(p->tls, 1, &sl, why);
    if (rc) return rc;
    std::unique_ptr<DcmTransportLayer> scp_tl(sl);
    if (sl) scp.getConfig().setTransportLayer(sl);
    OFCondition c = scp.openListenPort();
    if (c.bad()) {
        snprintf(why, 256, "C-MOVE: our storage SCP cannot listen on port %d: %s", p->move_port, c.text());
        return -VP_ERR_RUNTIME;
    }
    std::thread th([&scp] { scp.acceptAssociations(); });

    {
        std::unique_ptr<DcmTransportLayer> tl;
        VpTlsScu scu;
        vp_dcm_scu_setup(scu, p, UID_MOVEStudyRootQueryRetrieveInformationModel);
        rc = vp_dcm_scu_connect(scu, p, tl, why);
        T_ASC_PresentationContextID pc = 0;
        if (!rc && !(pc = scu.findPresentationContextID(UID_MOVEStudyRootQueryRetrieveInformationModel, ""))) {
            snprintf(why, 256, "%s at %s:%d does not offer Study Root C-MOVE", p->aec, p->host, p->port);
            rc = -VP_ERR_RUNTIME;
        }
        for (int i = 0; i < n && !rc; i++) {
            DcmDataset k;
            k.putAndInsertString(DCM_QueryRetrieveLevel, "SERIES");
            k.putAndInsertString(DCM_StudyInstanceUID, hits[i].study_uid);
            k.putAndInsertString(DCM_SeriesInstanceUID, hits[i].series_uid);
            OFList<RetrieveResponse *> rs;
            int before = scp.stored;
            c = scu.sendMOVERequest(pc, p->aet, &k, &rs);
            Uint16 last = 0xffff;
            int failed = 0;
            for (RetrieveResponse *r : rs) {
                last = r->m_status;
                failed = r->m_numberOfFailedSubops;
                delete r;
            }
            if (c.bad()) {
                snprintf(why, 256, "C-MOVE with %s at %s:%d: %s (does the PACS know our AE title %s, at port %d?)",
                         p->aec, p->host, p->port, c.text(), p->aet, p->move_port);
                rc = -VP_ERR_RUNTIME;
            }
            else if (last != STATUS_Success) {
                snprintf(why, 256, "C-MOVE of series %d from %s at %s:%d to %s (port %d): status 0x%04x, %d failed "
                         "sub-operation(s)%s", i + 1, p->aec, p->host, p->port, p->aet, p->move_port, last, failed,
                         last == 0xa801 ? ": the PACS does not know our AE title" : "");
                rc = -VP_ERR_RUNTIME;
            } else if (scp.stored == before) {
                snprintf(why, 256, "C-MOVE of series %d from %s at %s:%d: no object received on port %d%s", i + 1,
                         p->aec, p->host, p->port, p->move_port,
                         scp.refused ? " (an association from another AE title was refused)" : "");
                rc = -VP_ERR_RUNTIME;
            }
        }
        if (rc) scu.abortAssociation();
        else scu.releaseAssociation();
    }
    scp.done = true;
    th.join();
    *nfiles = scp.stored;
    return rc;
}
