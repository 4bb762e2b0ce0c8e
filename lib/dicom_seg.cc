// dicom_seg.cc - DICOM Segmentation objects and C-STORE over DCMTK (dicom_seg.h).
//
// The SEG follows the Segmentation IOD (PS3.3 A.51) as DCMTK's dcmseg builds it: patient, study
// and frame of reference of the source series; binary segments with label, category, type,
// algorithm (automatic, "voxpipe") and recommended CIELab colour; shared functional groups Pixel
// Measures and Plane Orientation; per frame Plane Position, Frame Content (dimension index:
// segment number, slice) and Derivation Image (the source slice, CID 7202 "Source image for image
// processing operation"; with its ReferencedFrameNumber when the source is multi-frame, and
// SpatialLocationsPreserved YES); the source series listed in the Common Instance Reference module
// (each instance once).
// Geometry: voxel (i, j, k) of the volume is column i, row j of frame k; the RAS affine becomes
// LPS by negating x and y.
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dctk.h>
#include <dcmtk/dcmfg/fgderimg.h>
#include <dcmtk/dcmfg/fgfracon.h>
#include <dcmtk/dcmfg/fgpixmsr.h>
#include <dcmtk/dcmfg/fgplanor.h>
#include <dcmtk/dcmfg/fgplanpo.h>
#include <dcmtk/dcmiod/cielabutil.h>
#include <dcmtk/dcmiod/iodreferences.h>
#include <dcmtk/dcmnet/dcmlayer.h>
#include <dcmtk/dcmnet/scu.h>
#include <dcmtk/dcmseg/segdoc.h>
#include <dcmtk/dcmseg/segment.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

/* the C headers, in C++: volume.h's struct/function name pair and util.h's _Noreturn */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
#define _Noreturn [[noreturn]]
extern "C" {
#include "volume.h"
}
#include "dicom_seg.h"
#include "dicom_tls.h"
#include "util.h"
#undef _Noreturn
#pragma GCC diagnostic pop

namespace {

// a DS value (at most 16 characters) as precise as fits
OFString ds(double v)
{
    char b[32];
    if (fabs(v) < 1e-9) v = 0;
    for (int p = 10; p > 2; p--) {
        snprintf(b, sizeof b, "%.*g", p, v);
        if (strlen(b) <= 16) break;
    }
    return OFString(b);
}

int fail(char why[256], const char *what, const OFCondition &c, int code = VP_ERR_RUNTIME)
{
    snprintf(why, 256, "%s: %s", what, c.text());
    return -code;
}

#define CHECK(expr, what)                            \
    do {                                             \
        OFCondition c_ = (expr);                     \
        if (c_.bad()) return fail(why, what, c_);    \
    } while (0)

struct geom {
    double row[3], col[3], ps_row, ps_col, step, origin[3], dir_k[3];
};

// LPS geometry from the RAS affine (row-major 4x4)
void geometry(const vp_vol *v, geom *g)
{
    const double *a = v->affine;
    double ci[3] = {-a[0], -a[4], a[8]}, cj[3] = {-a[1], -a[5], a[9]}, ck[3] = {-a[2], -a[6], a[10]};
    double ni = sqrt(ci[0] * ci[0] + ci[1] * ci[1] + ci[2] * ci[2]);
    double nj = sqrt(cj[0] * cj[0] + cj[1] * cj[1] + cj[2] * cj[2]);
    g->step = sqrt(ck[0] * ck[0] + ck[1] * ck[1] + ck[2] * ck[2]);
    for (int d = 0; d < 3; d++) {
        g->row[d] = ci[d] / ni;
        g->col[d] = cj[d] / nj;
        g->dir_k[d] = ck[d];
    }
    g->ps_col = ni; // spacing between columns (along a row)
    g->ps_row = nj; // spacing between rows
    g->origin[0] = -a[3];
    g->origin[1] = -a[7];
    g->origin[2] = a[11];
}

int64_t label_at(const vp_vol *v, uint64_t i)
{
    switch (v->dtype) {
    case VP_U8: return ((const uint8_t *)v->data)[i];
    case VP_I16: return ((const int16_t *)v->data)[i];
    case VP_U16: return ((const uint16_t *)v->data)[i];
    case VP_I32: return ((const int32_t *)v->data)[i];
    default: return (int64_t)vp_vol_get(v, i);
    }
}

int build(DcmSegmentation *seg, const vp_vol *v, const vp_seg_ref *ref, const vp_seg_segment *segs, int nseg,
          const char *series_uid, const char *sop_uid, const char *series_desc, char why[256])
{
    const uint64_t nx = v->dims[0], ny = v->dims[1], nz = v->dims[2];
    CHECK(seg->getPatient().setPatientID(ref->patient_id ? ref->patient_id : ""), "PatientID");
    CHECK(seg->getStudy().setStudyInstanceUID(ref->study_uid), "StudyInstanceUID");
    if (ref->study_date) seg->getStudy().setStudyDate(ref->study_date);
    if (ref->study_time) seg->getStudy().setStudyTime(ref->study_time);
    if (ref->for_uid) CHECK(seg->getFrameOfReference().setFrameOfReferenceUID(ref->for_uid), "FrameOfReferenceUID");
    CHECK(seg->getSeries().setSeriesInstanceUID(series_uid), "SeriesInstanceUID");
    CHECK(seg->getSeries().setSeriesNumber("9901"), "SeriesNumber");
    if (series_desc) CHECK(seg->getSeries().setSeriesDescription(series_desc), "SeriesDescription");
    CHECK(seg->getSOPCommon().setSOPInstanceUID(sop_uid), "SOPInstanceUID");

    for (int s = 0; s < nseg; s++) {
        CodeSequenceMacro cat(segs[s].category.value, segs[s].category.scheme, segs[s].category.meaning);
        CodeSequenceMacro typ(segs[s].type.value, segs[s].type.scheme, segs[s].type.meaning);
        DcmSegment *sg = NULL;
        CHECK(DcmSegment::create(sg, segs[s].label, cat, typ, DcmSegTypes::SAT_AUTOMATIC, "voxpipe"), "segment");
        double L, A, B;
        IODCIELabUtil::rgb2DicomLab(L, A, B, segs[s].rgb[0], segs[s].rgb[1], segs[s].rgb[2]);
        sg->setRecommendedDisplayCIELabValue((Uint16)lround(L), (Uint16)lround(A), (Uint16)lround(B));
        Uint16 num = 0;
        OFCondition c = seg->addSegment(sg, num);
        if (c.bad()) { delete sg; return fail(why, "adding a segment", c); }
    }

    geom g;
    geometry(v, &g);
    FGPixelMeasures pm;
    CHECK(pm.setPixelSpacing(ds(g.ps_row) + "\\" + ds(g.ps_col)), "PixelSpacing");
    CHECK(pm.setSliceThickness(ds(g.step)), "SliceThickness");
    CHECK(pm.setSpacingBetweenSlices(ds(g.step)), "SpacingBetweenSlices");
    CHECK(seg->addForAllFrames(pm), "pixel measures");
    FGPlaneOrientationPatient po;
    CHECK(po.setImageOrientationPatient(ds(g.row[0]), ds(g.row[1]), ds(g.row[2]), ds(g.col[0]), ds(g.col[1]),
                                        ds(g.col[2])), "ImageOrientationPatient");
    CHECK(seg->addForAllFrames(po), "plane orientation");

    char dim_uid[65];
    snprintf(dim_uid, sizeof dim_uid, "%s.1", sop_uid);
    if (strlen(sop_uid) > 60) snprintf(dim_uid, sizeof dim_uid, "%.62s", sop_uid); // still a valid, unique UID
    IODMultiframeDimensionModule &dims = seg->getDimensions();
    CHECK(dims.addDimensionIndex(DCM_ReferencedSegmentNumber, dim_uid, DCM_SegmentIdentificationSequence,
                                 "ReferencedSegmentNumber"), "dimension");
    CHECK(dims.addDimensionIndex(DCM_ImagePositionPatient, dim_uid, DCM_PlanePositionSequence, "ImagePositionPatient"),
          "dimension");

    IODReferences refs;
    for (int k = 0; k < ref->nsop; k++) {
        int seen = 0; // each instance once (the frames of a multi-frame source share one)
        for (int i = k - 1; i >= 0 && !seen; i--) seen = !strcmp(ref->sop_uids[i], ref->sop_uids[k]);
        if (!seen)
            refs.add(new IODImageReference(ref->patient_id ? ref->patient_id : "", ref->study_uid, ref->series_uid,
                                           ref->sop_uids[k], ref->sop_class));
    }
    if (!seg->getCommonInstanceReference().addReferences(refs, ref->study_uid))
        return fail(why, "referenced series", EC_IllegalCall);

    std::vector<Uint8> frame(nx * ny);
    for (int s = 0; s < nseg; s++) {
        for (uint64_t k = 0; k < nz; k++) {
            uint64_t any = 0, base = k * nx * ny;
            for (uint64_t i = 0; i < nx * ny; i++) any |= frame[i] = label_at(v, base + i) == segs[s].value;
            if (!any) continue;
            FGPlanePosPatient pp;
            double p[3];
            for (int d = 0; d < 3; d++) p[d] = g.origin[d] + (double)k * g.dir_k[d];
            CHECK(pp.setImagePositionPatient(ds(p[0]), ds(p[1]), ds(p[2])), "ImagePositionPatient");
            FGFrameContent fc;
            CHECK(fc.setDimensionIndexValues((Uint32)(s + 1), 0), "DimensionIndexValues");
            CHECK(fc.setDimensionIndexValues((Uint32)(k + 1), 1), "DimensionIndexValues");
            OFVector<ImageSOPInstanceReferenceMacro> src(1);
            CHECK(src[0].setReferencedSOPClassUID(ref->sop_class), "ReferencedSOPClassUID");
            CHECK(src[0].setReferencedSOPInstanceUID(ref->sop_uids[k]), "ReferencedSOPInstanceUID");
            // PS3.3 Table 10-3: the frame, when the source is multi-frame
            if (ref->frame_numbers && ref->frame_numbers[k] > 0)
                CHECK(src[0].addReferencedFrameNumber((Uint16)ref->frame_numbers[k]), "ReferencedFrameNumber");
            std::unique_ptr<FGDerivationImage> der(DcmSegmentation::createDerivationImageFG(src, "voxpipe segmentation"));
            if (!der) return fail(why, "derivation image", EC_IllegalCall);
            OFVector<FGBase *> per;
            per.push_back(&pp);
            per.push_back(&fc);
            per.push_back(der.get());
            CHECK(seg->addFrame(frame.data(), (Uint16)(s + 1), per), "adding a frame");
        }
    }
    return 0;
}

// every per-frame source reference gets SpatialLocationsPreserved YES (Type 3, PS3.3 C.7.6.1.1.3: the
// frame is on the source image's grid, as dcm-store requires); DCMTK's functional groups do not
// write it. Readers such as highdicom index a SEG by source frame only when it is there.
OFCondition mark_spatial(DcmDataset *ds)
{
    DcmSequenceOfItems *pf = NULL;
    if (ds->findAndGetSequence(DCM_PerFrameFunctionalGroupsSequence, pf).bad() || !pf) return EC_Normal;
    for (unsigned long f = 0; f < pf->card(); f++) {
        DcmSequenceOfItems *der = NULL;
        if (pf->getItem(f)->findAndGetSequence(DCM_DerivationImageSequence, der).bad() || !der) continue;
        for (unsigned long d = 0; d < der->card(); d++) {
            DcmSequenceOfItems *src = NULL;
            if (der->getItem(d)->findAndGetSequence(DCM_SourceImageSequence, src).bad() || !src) continue;
            for (unsigned long i = 0; i < src->card(); i++) {
                OFCondition c = src->getItem(i)->putAndInsertString(DCM_SpatialLocationsPreserved, "YES");
                if (c.bad()) return c;
            }
        }
    }
    return EC_Normal;
}

} // namespace

extern "C" int vp_seg_write(const vp_vol *labels, const struct vp_seg_ref *ref, const struct vp_seg_segment *segs,
                            int nseg, const char *series_uid, const char *sop_uid, const char *series_desc,
                            const char *path, char why[256])
{
    if (labels->dims[0] > 65535 || labels->dims[1] > 65535) {
        snprintf(why, 256, "%llu x %llu voxels per slice: more than DICOM's 65535 rows/columns",
                 (unsigned long long)labels->dims[0], (unsigned long long)labels->dims[1]);
        return -VP_ERR_DATA;
    }
    if ((uint64_t)ref->nsop != labels->dims[2]) {
        snprintf(why, 256, "%llu slices but the source series has %d images: the labels must lie on the source grid",
                 (unsigned long long)labels->dims[2], ref->nsop);
        return -VP_ERR_DATA;
    }
    IODGeneralEquipmentModule::EquipmentInfo eq("voxpipe", "voxpipe", "1", VP_VERSION);
    ContentIdentificationMacro ci("1", "SEGMENTATION", "voxpipe segmentation", "voxpipe");
    DcmSegmentation *seg = NULL;
    OFCondition c = DcmSegmentation::createBinarySegmentation(seg, (Uint16)labels->dims[1], (Uint16)labels->dims[0],
                                                              eq, ci);
    if (c.bad()) return fail(why, "creating the segmentation", c);
    std::unique_ptr<DcmSegmentation> own(seg);
    int rc = build(seg, labels, ref, segs, nseg, series_uid, sop_uid, series_desc, why);
    if (rc) return rc;
    /* DcmSegmentation::saveFile() stamps ContentDate/Time with the clock: write the dataset, then
     * put the caller's (source-derived) date and time in their place */
    DcmFileFormat ff;
    DcmDataset *ds = ff.getDataset();
    c = seg->writeDataset(*ds);
    if (c.good()) c = mark_spatial(ds);
    if (c.good()) c = ds->putAndInsertOFStringArray(DCM_ContentDate, ref->content_date);
    if (c.good()) c = ds->putAndInsertOFStringArray(DCM_ContentTime, ref->content_time);
    if (c.good()) c = ds->putAndInsertOFStringArray(DCM_InstanceCreationDate, ref->content_date);
    if (c.good()) c = ds->putAndInsertOFStringArray(DCM_InstanceCreationTime, ref->content_time);
    if (c.bad()) return fail(why, "writing the dataset", c);
    std::string tmp = std::string(path) + ".tmp" + std::to_string((long)getpid());
    c = ff.saveFile(tmp.c_str(), EXS_LittleEndianExplicit);
    if (c.bad()) {
        unlink(tmp.c_str());
        return fail(why, "writing", c);
    }
    if (rename(tmp.c_str(), path)) {
        unlink(tmp.c_str());
        snprintf(why, 256, "renaming into place: %s", strerror(errno));
        return -VP_ERR_RUNTIME;
    }
    return 0;
}

extern "C" int vp_dcm_cstore(const char *host, int port, const char *aet, const char *aec, int timeout,
                             const struct vp_dcm_tls *tls, const char *const *paths, int n, char why[256])
{
    std::unique_ptr<DcmTransportLayer> tl; /* outlives scu */
    VpTlsScu scu;
    scu.setPeerHostName(host);
    scu.setPeerPort((Uint16)port);
    scu.setAETitle(aet);
    scu.setPeerAETitle(aec);
    scu.setConnectionTimeout(timeout);
    scu.setACSETimeout((Uint32)timeout);
    scu.setDIMSEBlockingMode(DIMSE_NONBLOCKING);
    scu.setDIMSETimeout((Uint32)timeout);
    scu.setVerbosePCMode(OFFalse);
    OFList<OFString> xfers;
    xfers.push_back(UID_LittleEndianExplicitTransferSyntax);
    xfers.push_back(UID_LittleEndianImplicitTransferSyntax);
    OFCondition c = scu.addPresentationContext(UID_SegmentationStorage, xfers);
    if (c.bad()) return fail(why, "presentation context", c);
    if ((c = scu.initNetwork()).bad()) return fail(why, "network", c);
    DcmTransportLayer *l = NULL;
    int r = vp_dcm_tls_use(scu, tls, &l, why);
    tl.reset(l);
    if (r) return r;
    if ((c = scu.negotiateAssociation()).bad()) {
        snprintf(why, 256, "association with %s at %s:%d: %s", aec, host, port, c.text());
        return -VP_ERR_RUNTIME;
    }
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        T_ASC_PresentationContextID pc = scu.findPresentationContextID(UID_SegmentationStorage, "");
        Uint16 status = 0;
        c = scu.sendSTORERequest(pc, paths[i], NULL, status);
        if (c.bad()) rc = fail(why, "C-STORE", c);
        else if (status != 0) {
            snprintf(why, 256, "C-STORE of '%s' refused by %s: status 0x%04x", paths[i], aec, status);
            rc = -VP_ERR_RUNTIME;
        }
    }
    if (rc) scu.abortAssociation();
    else scu.releaseAssociation();
    return rc;
}
