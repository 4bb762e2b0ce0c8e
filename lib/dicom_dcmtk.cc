/* dicom_dcmtk.cc - the C-callable DCMTK layer of dicom.h: parse one file, extract the attributes
 * voxpipe uses, decode its pixel data (DCMTK's codecs; JPEG 2000 through OpenJPEG, dicom_j2k.c).
 *
 * Ownership: everything put into struct vp_dcm_file is malloc'ed and released by
 * vp_dcm_file_clear(); no DCMTK object outlives vp_dcm_read().
 */
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dctk.h>
#include <dcmtk/dcmdata/dcistrmf.h>
#include <dcmtk/dcmdata/dcpixseq.h>
#include <dcmtk/dcmdata/dcpxitem.h>
#include <dcmtk/dcmdata/dcrledrg.h>
#include <dcmtk/dcmjpeg/djdecode.h>
#include <dcmtk/dcmjpls/djdecode.h>
#include <dcmtk/oflog/oflog.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* the C headers, in C++: volume.h's struct/function name pair and util.h's _Noreturn */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
#define _Noreturn [[noreturn]]
#include "dicom.h"
#include "util.h"
#undef _Noreturn
#pragma GCC diagnostic pop

static const struct {
    DcmTagKey key;
    const char *name;
} tags[VP_DCM_NTAGS] = {
    {DCM_StudyInstanceUID, "StudyInstanceUID"}, {DCM_SeriesInstanceUID, "SeriesInstanceUID"},
    {DCM_SOPInstanceUID, "SOPInstanceUID"}, {DCM_FrameOfReferenceUID, "FrameOfReferenceUID"},
    {DCM_SOPClassUID, "SOPClassUID"}, {DCM_SeriesDescription, "SeriesDescription"},
    {DCM_StudyDescription, "StudyDescription"}, {DCM_Modality, "Modality"},
    {DCM_SeriesNumber, "SeriesNumber"}, {DCM_PatientID, "PatientID"},
    {DCM_PatientName, "PatientName"}, {DCM_PatientBirthDate, "PatientBirthDate"},
    {DCM_PatientSex, "PatientSex"}, {DCM_StudyDate, "StudyDate"}, {DCM_SeriesDate, "SeriesDate"},
    {DCM_AcquisitionDate, "AcquisitionDate"}, {DCM_ContentDate, "ContentDate"},
    {DCM_StudyTime, "StudyTime"}, {DCM_AccessionNumber, "AccessionNumber"}, {DCM_StudyID, "StudyID"},
    {DCM_InstitutionName, "InstitutionName"}, {DCM_ReferringPhysicianName, "ReferringPhysicianName"},
    {DCM_Manufacturer, "Manufacturer"}, {DCM_BodyPartExamined, "BodyPartExamined"},
    {DCM_ConvolutionKernel, "ConvolutionKernel"}, {DCM_TransferSyntaxUID, "TransferSyntaxUID"},
    {DCM_PhotometricInterpretation, "PhotometricInterpretation"},
};

extern "C" const char *vp_dcm_tag_name(enum vp_dcm_tag t)
{
    return (unsigned)t < VP_DCM_NTAGS ? tags[t].name : "?";
}

extern "C" void vp_dcm_init(void)
{
    static std::once_flag once;
    std::call_once(once, [] {
        OFLog::configure(OFLogger::FATAL_LOG_LEVEL); /* errors are reported by us, with the path */
        DJDecoderRegistration::registerCodecs();
        DJLSDecoderRegistration::registerCodecs();
        DcmRLEDecoderRegistration::registerCodecs();
    });
}

extern "C" void vp_dcm_file_clear(struct vp_dcm_file *f)
{
    free(f->path);
    for (int i = 0; i < VP_DCM_NTAGS; i++) free(f->str[i]);
    free(f->pix);
    free(f->frame_ipp);
    memset(f, 0, sizeof *f);
}

static int fail(char why[256], int code, const char *fmt, const char *arg)
{
    snprintf(why, 256, fmt, arg);
    return -code;
}

static char *dupstr(const OFString &s)
{
    size_t a = 0, b = s.size();
    while (a < b && (s[a] == ' ' || s[a] == '\0')) a++;
    while (b > a && (s[b - 1] == ' ' || s[b - 1] == '\0')) b--;
    if (a == b) return NULL;
    char *r = (char *)malloc(b - a + 1);
    if (!r) return NULL;
    memcpy(r, s.data() + a, b - a);
    r[b - a] = 0;
    return r;
}

static int get_doubles(DcmItem *ds, const DcmTagKey &k, double *v, int n)
{
    for (int i = 0; i < n; i++) {
        Float64 x;
        if (ds->findAndGetFloat64(k, x, i).bad()) return 0;
        v[i] = x;
    }
    return 1;
}

static double get_double(DcmItem *ds, const DcmTagKey &k, double dflt)
{
    Float64 x;
    return ds->findAndGetFloat64(k, x).good() ? x : dflt;
}

static long get_int(DcmItem *ds, const DcmTagKey &k, long dflt)
{
    Uint16 u;
    if (ds->findAndGetUint16(k, u).good()) return u;
    Sint32 s;
    if (ds->findAndGetSint32(k, s).good()) return s;
    return dflt;
}

/* JPEG 2000: one codestream per frame (the fragments of one frame concatenated) */
static int decode_j2k(DcmPixelData *pd, E_TransferSyntax xfer, struct vp_dcm_file *f, size_t frame_bytes,
                      char why[256])
{
    DcmPixelSequence *seq = NULL;
    if (pd->getEncapsulatedRepresentation(xfer, NULL, seq).bad() || !seq)
        return fail(why, VP_ERR_DATA, "%s", "JPEG 2000 pixel data is not encapsulated");
    unsigned long nitems = seq->card();
    if (nitems < 2) return fail(why, VP_ERR_DATA, "%s", "JPEG 2000 pixel data has no fragments");
    unsigned long nfrag = nitems - 1;
    if (f->frames > 1 && nfrag != (unsigned long)f->frames)
        return fail(why, VP_ERR_DATA, "%s", "multi-frame JPEG 2000 with several fragments per frame is not supported");
    for (int fr = 0; fr < f->frames; fr++) {
        unsigned long first = f->frames == 1 ? 1 : (unsigned long)fr + 1, last = f->frames == 1 ? nfrag : first;
        size_t total = 0;
        for (unsigned long i = first; i <= last; i++) {
            DcmPixelItem *it = NULL;
            if (seq->getItem(it, i).bad()) return fail(why, VP_ERR_DATA, "%s", "cannot read a JPEG 2000 fragment");
            total += it->getLength();
        }
        unsigned char *cs = (unsigned char *)malloc(total ? total : 1), *p = cs;
        if (!cs) return fail(why, VP_ERR_RUNTIME, "%s", "out of memory");
        for (unsigned long i = first; i <= last; i++) {
            DcmPixelItem *it = NULL;
            Uint8 *d = NULL;
            seq->getItem(it, i);
            if (it->getLength() && (it->getUint8Array(d).bad() || !d)) {
                free(cs);
                return fail(why, VP_ERR_DATA, "%s", "cannot read a JPEG 2000 fragment");
            }
            if (it->getLength()) memcpy(p, d, it->getLength());
            p += it->getLength();
        }
        int r = vp_dcm_decode_j2k(cs, total, f->rows, f->cols, f->bits_alloc,
                                  (unsigned char *)f->pix + (size_t)fr * frame_bytes, why);
        free(cs);
        if (r) return -VP_ERR_DATA;
    }
    return 0;
}

/* item 0 of sequence seq in the functional groups of frame fr (per-frame first, then shared) */
static DcmItem *fg_item(DcmItem *pf, DcmItem *shared, const DcmTagKey &seq)
{
    DcmItem *it = NULL;
    if (pf && pf->findAndGetSequenceItem(seq, it, 0).good() && it) return it;
    if (shared && shared->findAndGetSequenceItem(seq, it, 0).good() && it) return it;
    return NULL;
}

/* enhanced multi-frame: geometry and rescale from the functional groups (see dicom.h) */
static int read_functional_groups(DcmDataset *ds, struct vp_dcm_file *f, char why[256])
{
    DcmItem *shared = NULL, *pf0 = NULL;
    ds->findAndGetSequenceItem(DCM_SharedFunctionalGroupsSequence, shared, 0);
    if (ds->findAndGetSequenceItem(DCM_PerFrameFunctionalGroupsSequence, pf0, 0).bad() || !pf0) return 0;
    DcmSequenceOfItems *seq = NULL;
    if (ds->findAndGetSequence(DCM_PerFrameFunctionalGroupsSequence, seq).bad() || !seq ||
        seq->card() != (unsigned long)f->frames)
        return fail(why, VP_ERR_DATA, "%s", "PerFrameFunctionalGroupsSequence: not one item per frame");
    f->frame_ipp = (double *)malloc(sizeof(double) * 3 * (size_t)f->frames);
    if (!f->frame_ipp) return fail(why, VP_ERR_RUNTIME, "%s", "out of memory");
    for (int k = 0; k < f->frames; k++) {
        DcmItem *pf = seq->getItem((unsigned long)k);
        double iop[6], ps[2], sl = 1, in = 0;
        DcmItem *it = fg_item(pf, shared, DCM_PlanePositionSequence);
        if (!it || !get_doubles(it, DCM_ImagePositionPatient, f->frame_ipp + 3 * k, 3)) {
            if (k == 0) { /* no plane positions at all (not a cross-sectional image): frames stacked as before */
                free(f->frame_ipp);
                f->frame_ipp = NULL;
                return 0;
            }
            return fail(why, VP_ERR_DATA, "%s", "a frame has no PlanePositionSequence/ImagePositionPatient");
        }
        it = fg_item(pf, shared, DCM_PlaneOrientationSequence);
        if (!it || !get_doubles(it, DCM_ImageOrientationPatient, iop, 6))
            return fail(why, VP_ERR_DATA, "%s", "a frame has no PlaneOrientationSequence/ImageOrientationPatient");
        it = fg_item(pf, shared, DCM_PixelMeasuresSequence);
        if (!it || !get_doubles(it, DCM_PixelSpacing, ps, 2))
            return fail(why, VP_ERR_DATA, "%s", "a frame has no PixelMeasuresSequence/PixelSpacing");
        if (k == 0) {
            f->thickness = get_double(it, DCM_SliceThickness, 0);
            f->between = get_double(it, DCM_SpacingBetweenSlices, 0);
        }
        if ((it = fg_item(pf, shared, DCM_PixelValueTransformationSequence))) {
            sl = get_double(it, DCM_RescaleSlope, 1);
            in = get_double(it, DCM_RescaleIntercept, 0);
            if (sl == 0) sl = 1;
        }
        if (k == 0) {
            memcpy(f->iop, iop, sizeof iop);
            memcpy(f->ps, ps, sizeof ps);
            f->slope = sl;
            f->inter = in;
            f->has_iop = f->has_ps = f->has_ipp = 1;
            memcpy(f->ipp, f->frame_ipp, sizeof f->ipp);
            continue;
        }
        int same = sl == f->slope && in == f->inter && fabs(ps[0] - f->ps[0]) < 1e-6 && fabs(ps[1] - f->ps[1]) < 1e-6;
        for (int i = 0; i < 6; i++) same &= fabs(iop[i] - f->iop[i]) < 1e-4;
        if (!same) {
            snprintf(why, 256, "frame %d differs from frame 1 in orientation, pixel spacing or rescale: not supported", k + 1);
            return -VP_ERR_DATA;
        }
    }
    return 0;
}

/* VP_DCM_DEFER: native little-endian pixel data that DCMTK left in the file (over the 4 KiB read
 * limit) is not read here; its file offset is kept for vp_dcm_series_build to read straight into
 * the volume. 1 deferred, 0 not possible (read it now), < 0 error. */
static int defer_pixels(DcmElement *el, const DcmXfer &x, struct vp_dcm_file *f, size_t total, char why[256])
{
    if (x.isEncapsulated() || x.getByteOrder() != gLocalByteOrder || f->frames != 1 || el->valueLoaded()) return 0;
    const DcmInputStreamFactory *in = el->getInputStream();
    if (!in || in->ident() != DFT_DcmInputFileStreamFactory) return 0; /* e.g. deflated: only a stream */
    const DcmInputFileStreamFactory *fin = OFstatic_cast(const DcmInputFileStreamFactory *, in);
    offile_off_t off = fin->getOffset();
    struct stat st;
    if (off <= 0 || stat(f->path, &st)) return 0;
    /* the same bound the full read has: the value must be in the file (a truncated file fails now) */
    if (el->getLength() < total || (unsigned long long)off + total > (unsigned long long)st.st_size)
        return fail(why, VP_ERR_DATA, "%s", "PixelData is shorter than Rows x Columns x NumberOfFrames");
    f->pix_off = (int64_t)off;
    f->pix_bytes = total;
    return 1;
}

static int read_pixels(DcmFileFormat &ff, DcmDataset *ds, struct vp_dcm_file *f, int mode, char why[256])
{
    if (f->spp != 1) return fail(why, VP_ERR_DATA, "%s", "only one sample per pixel (grey-scale) is supported");
    if (f->bits_alloc != 8 && f->bits_alloc != 16)
        return fail(why, VP_ERR_DATA, "%s", "BitsAllocated must be 8 or 16");
    if (f->rows <= 0 || f->cols <= 0 || f->frames <= 0 || f->frames > 65536)
        return fail(why, VP_ERR_DATA, "%s", "bad Rows, Columns or NumberOfFrames");
    size_t frame_bytes = (size_t)f->rows * f->cols * (f->bits_alloc / 8);
    size_t total = frame_bytes * (size_t)f->frames;
    if (total > ((size_t)4 << 30)) return fail(why, VP_ERR_DATA, "%s", "pixel data over 4 GiB");
    DcmElement *el = NULL;
    if (ds->findAndGetElement(DCM_PixelData, el).bad() || !el)
        return fail(why, VP_ERR_DATA, "%s", "no PixelData");
    DcmPixelData *pd = OFstatic_cast(DcmPixelData *, el);
    E_TransferSyntax xfer = ds->getOriginalXfer();
    DcmXfer x(xfer);
    if (x.isEncapsulated() && !f->is_j2k) {
        /* the encoded size bounds what a codec may claim to produce: check before decoding */
        OFCondition c = ds->chooseRepresentation(EXS_LittleEndianExplicit, NULL);
        if (c.bad() || !ds->canWriteXfer(EXS_LittleEndianExplicit))
            return fail(why, VP_ERR_DATA, "cannot decode the pixel data (%s)", x.getXferName());
        if (ds->findAndGetElement(DCM_PixelData, el).bad() || !el)
            return fail(why, VP_ERR_DATA, "%s", "no PixelData after decoding");
    }
    if (mode == VP_DCM_DEFER) {
        int r = defer_pixels(el, x, f, total, why);
        if (r) return r < 0 ? r : 0;
    }
    f->pix = malloc(total);
    if (!f->pix) return fail(why, VP_ERR_RUNTIME, "%s", "out of memory");
    f->pix_bytes = total;
    if (f->is_j2k) return decode_j2k(pd, xfer, f, frame_bytes, why);
    if (el->getLength() < total) return fail(why, VP_ERR_DATA, "%s", "PixelData is shorter than Rows x Columns x NumberOfFrames");
    /* straight from the file into our buffer, in host byte order: no copy of the element */
    if (!x.isEncapsulated() && el->getPartialValue(f->pix, 0, (Uint32)total, NULL, gLocalByteOrder).good()) return 0;
    const void *src = NULL;
    if (f->bits_alloc == 8) {
        Uint8 *p = NULL;
        if (el->getUint8Array(p).bad() || !p) return fail(why, VP_ERR_DATA, "%s", "cannot read PixelData");
        src = p;
    } else {
        Uint16 *p = NULL;
        if (el->getUint16Array(p).bad() || !p) return fail(why, VP_ERR_DATA, "%s", "cannot read PixelData");
        src = p;
    }
    memcpy(f->pix, src, total);
    (void)ff;
    return 0;
}

/* Deflated Explicit VR Little Endian: DCMTK cannot skip inside a deflate stream, so it reserves
 * each element's declared length before finding the stream short (a 5 KiB file can declare 1 GiB).
 * Such a file's dataset is inflated here into a temporary file (at most 4 GiB written, nothing held
 * in memory), which DCMTK then reads as explicit little endian with long values left on disk.
 * 0 not deflated, 1 inflated into tmp (the caller unlinks it), < 0 error. */
static const char DEFLATED_UID[] = "1.2.840.10008.1.2.1.99";

static int inflate_if_deflated(const char *path, char *tmp, size_t tmpn, char why[256])
{
    FILE *in = fopen(path, "rb");
    if (!in) return 0; /* DCMTK reports it */
    unsigned char h[144];
    uint32_t glen = 0;
    int deflated = 0;
    if (fread(h, 1, sizeof h, in) == sizeof h && !memcmp(h + 128, "DICM", 4) && h[132] == 2 && h[133] == 0 &&
        h[134] == 0 && h[135] == 0 && !memcmp(h + 136, "UL", 2)) {
        glen = (uint32_t)h[140] | (uint32_t)h[141] << 8 | (uint32_t)h[142] << 16 | (uint32_t)h[143] << 24;
        if (glen <= 65536) {
            char *meta = (char *)malloc(glen ? glen : 1);
            if (meta && fread(meta, 1, glen, in) == glen) deflated = memmem(meta, glen, DEFLATED_UID, sizeof DEFLATED_UID - 1) != NULL;
            free(meta);
        }
    }
    if (!deflated) { fclose(in); return 0; }
    const char *dir = getenv("TMPDIR");
    snprintf(tmp, tmpn, "%s/vp-inflate-XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(tmp);
    if (fd < 0) { fclose(in); return fail(why, VP_ERR_RUNTIME, "cannot make a temporary file in %s", dir && *dir ? dir : "/tmp"); }
    FILE *out = fdopen(fd, "wb");
    z_stream z;
    memset(&z, 0, sizeof z);
    int rc = out && inflateInit2(&z, -MAX_WBITS) == Z_OK ? Z_OK : Z_MEM_ERROR;
    static const unsigned long long cap = 4ull << 30;
    unsigned long long total = 0;
    unsigned char ib[65536], ob[65536];
    while (rc == Z_OK) {
        if (z.avail_in == 0) {
            z.avail_in = (uInt)fread(ib, 1, sizeof ib, in);
            z.next_in = ib;
            if (z.avail_in == 0) break; /* the stream ended early: DCMTK reports the short dataset */
        }
        z.next_out = ob;
        z.avail_out = sizeof ob;
        rc = inflate(&z, Z_NO_FLUSH);
        size_t got = sizeof ob - z.avail_out;
        total += got;
        if (total > cap) { rc = Z_BUF_ERROR; break; }
        if (got && fwrite(ob, 1, got, out) != got) { rc = Z_ERRNO; break; }
    }
    if (out) inflateEnd(&z);
    fclose(in);
    int bad = !out || fclose(out) != 0;
    if (!out) close(fd);
    if (bad || (rc != Z_OK && rc != Z_STREAM_END)) {
        unlink(tmp);
        if (total > cap) return fail(why, VP_ERR_DATA, "%s", "deflated dataset inflates to over 4 GiB");
        if (bad || rc == Z_ERRNO || rc == Z_MEM_ERROR) return fail(why, VP_ERR_RUNTIME, "cannot inflate into %s", tmp);
        return fail(why, VP_ERR_DATA, "%s", "corrupt deflated dataset");
    }
    return 1;
}

static int read_file(const char *path, int mode, struct vp_dcm_file *f, char why[256]);

extern "C" int vp_dcm_read(const char *path, int mode, struct vp_dcm_file *f, char why[256])
{
    char tmp[4096];
    memset(f, 0, sizeof *f);
    f->path = strdup(path);
    if (!f->path) return fail(why, VP_ERR_RUNTIME, "%s", "out of memory");
    int inflated = inflate_if_deflated(path, tmp, sizeof tmp, why);
    if (inflated < 0) return inflated;
    if (!inflated) return read_file(path, mode, f, why);
    /* the inflated copy: its pixel data are read now (a deferred offset would point into tmp) */
    int r = read_file(tmp, mode == VP_DCM_DEFER ? VP_DCM_PIXELS : mode, f, why);
    unlink(tmp);
    if (!f->str[VP_DCM_TRANSFER_SYNTAX] || strcmp(f->str[VP_DCM_TRANSFER_SYNTAX], DEFLATED_UID)) {
        free(f->str[VP_DCM_TRANSFER_SYNTAX]);
        f->str[VP_DCM_TRANSFER_SYNTAX] = strdup(DEFLATED_UID);
    }
    return r;
}

/* the body of vp_dcm_read on PATH (the file itself, or the inflated copy of a deflated one: then a
 * bare explicit little-endian dataset) */
static int read_file(const char *path, int mode, struct vp_dcm_file *f, char why[256])
{
    DcmFileFormat ff;
    const int bare = strcmp(path, f->path) != 0;
    /* attributes above 4 KiB (the pixel data) are read from the file only when asked for */
    OFCondition c = bare ? ff.loadFile(path, EXS_LittleEndianExplicit, EGL_noChange, 4096, ERM_dataset)
                         : ff.loadFile(path, EXS_Unknown, EGL_noChange, 4096, ERM_autoDetect);
    if (c.bad()) {
        int code = c == EC_InvalidFilename || strstr(c.text(), "No such file") ? VP_ERR_RUNTIME : VP_ERR_DATA;
        return fail(why, code, "not a readable DICOM file (%s)", c.text());
    }
    DcmDataset *ds = ff.getDataset();
    for (int i = 0; i < VP_DCM_NTAGS; i++) {
        OFString s;
        DcmItem *src = i == VP_DCM_TRANSFER_SYNTAX ? (DcmItem *)ff.getMetaInfo() : (DcmItem *)ds;
        if (src->findAndGetOFStringArray(tags[i].key, s).good()) f->str[i] = dupstr(s);
    }
    if (!f->str[VP_DCM_TRANSFER_SYNTAX]) f->str[VP_DCM_TRANSFER_SYNTAX] = strdup(DcmXfer(ds->getOriginalXfer()).getXferID());
    f->has_iop = get_doubles(ds, DCM_ImageOrientationPatient, f->iop, 6);
    f->has_ipp = get_doubles(ds, DCM_ImagePositionPatient, f->ipp, 3);
    f->has_ps = get_doubles(ds, DCM_PixelSpacing, f->ps, 2);
    f->thickness = get_double(ds, DCM_SliceThickness, 0);
    f->between = get_double(ds, DCM_SpacingBetweenSlices, 0);
    f->slope = get_double(ds, DCM_RescaleSlope, 1);
    f->inter = get_double(ds, DCM_RescaleIntercept, 0);
    f->tilt = get_double(ds, DCM_GantryDetectorTilt, 0);
    if (f->slope == 0) f->slope = 1;
    f->rows = (int)get_int(ds, DCM_Rows, 0);
    f->cols = (int)get_int(ds, DCM_Columns, 0);
    f->spp = (int)get_int(ds, DCM_SamplesPerPixel, 1);
    f->bits_alloc = (int)get_int(ds, DCM_BitsAllocated, 0);
    f->bits_stored = (int)get_int(ds, DCM_BitsStored, f->bits_alloc);
    f->pixrep = (int)get_int(ds, DCM_PixelRepresentation, 0);
    Sint32 nf = 1;
    OFString nfs;
    if (ds->findAndGetOFString(DCM_NumberOfFrames, nfs).good()) nf = atoi(nfs.c_str());
    f->frames = nf > 0 ? nf : 1;
    OFString inst;
    f->instance = ds->findAndGetOFString(DCM_InstanceNumber, inst).good() ? atoll(inst.c_str()) : 0;
    E_TransferSyntax xfer = ds->getOriginalXfer();
    f->is_j2k = xfer == EXS_JPEG2000LosslessOnly || xfer == EXS_JPEG2000;
    if (!ds->tagExists(DCM_PixelData)) return fail(why, VP_ERR_DATA, "%s", "no PixelData (not an image)");
    if (f->frames > 1) {
        int r = read_functional_groups(ds, f, why);
        if (r) return r;
    }
    if (mode == VP_DCM_HEADERS) return 0;
    try {
        return read_pixels(ff, ds, f, mode, why);
    } catch (...) {
        return fail(why, VP_ERR_RUNTIME, "%s", "DCMTK raised an exception");
    }
}
