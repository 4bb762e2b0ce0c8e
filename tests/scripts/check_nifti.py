"""check_nifti.py - compare voxpipe's NIfTI reading and writing with nibabel's (used by tests/shell/nifti.bats).

    check_nifti.py read FIXDIR NAME STREAM [--vol image]
        the stream (from vol-read FIXDIR/NAME.nii[.gz]) holds one case NAME whose volume matches
        FIXDIR/expected.json (make_nifti_fixtures.py): dims, dtype, affine (1e-6 abs + rel), voxel
        values exactly (float32 against nibabel's values cast to float32), meta.nifti header facts
    check_nifti.py info NIFTI INFOJSON [--vol image] [--spacing affine|zooms]
        vol-info --json output for NIFTI: orientation == nib.aff2axcodes(img.affine), dims, and
        spacing == nibabel's voxel sizes of the affine (default) or header.get_zooms()[:3]
    check_nifti.py written ORIG NEW [--nifti2]
        NEW (written by vol-write from a stream read from ORIG) read with nibabel: same voxel values
        (exact), dtype, affine (1e-6), qform_code and sform_code non-zero, get_qform() within 1e-5 of
        the affine, pixdim[1:4] equal to the spacing; NIfTI-1 (or -2 with --nifti2); gzip iff .gz
    check_nifti.py split-totalseg SEG NAMES_STREAM OUTDIR
        write OUTDIR/<v2 name>.nii.gz, one uint8 mask per label present in SEG, named from meta
        'labels' of the stream NAMES_STREAM (vol-read ... --labels totalseg-v2)
    check_nifti.py totalseg STREAM CT SEG --id ID [--spine25 NAMES_STREAM]
        the stream of a TotalSegmentator case directory: case ID, image equal to CT, label equal
        to SEG voxel for voxel (or to SEG mapped to the spine25 classes, computed here from the v2
        names), affines equal to nibabel's, meta labels naming the ids
Exit status 0 when everything matches, 1 with a message per mismatch on stderr.
"""
import argparse
import json
import os
import sys

import nibabel as nib
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vxp  # noqa: E402
from make_nifti_fixtures import VP_NUMPY, nib_values, slope_inter, vp_dtype_for  # noqa: E402

errors = []


def fail(msg):
    errors.append(msg)


def close(got, want, tol):
    """|got - want| <= tol + tol * |want| everywhere; returns the worst excess or None."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        return "shape %s vs %s" % (got.shape, want.shape)
    err = np.abs(got - want) - (tol + tol * np.abs(want))
    if not np.all(np.isfinite(got)) or np.any(err > 0):
        i = np.unravel_index(np.nanargmax(np.where(np.isfinite(err), err, np.inf)), err.shape)
        return "at %s: %r vs %r (tolerance %g abs + rel)" % (tuple(int(x) for x in i), got[i], want[i], tol)
    return None


def check_affine(what, got, want, tol=1e-6):
    why = close(got, want, tol)
    if why:
        fail("%s: affine differs from nibabel's %s\n got:\n%s\n nibabel:\n%s" % (what, why, np.asarray(got), np.asarray(want)))


def check_values(what, got, want, vp_dtype):
    """got: voxpipe's voxels; want: nibabel's (raw or get_fdata()); exact after nibabel's values are
    cast to the voxpipe dtype (float32 for f32; integers must be integral and equal)."""
    got = np.asarray(got)
    want = np.asarray(want)
    if got.shape != want.shape:
        fail("%s: voxel array shape %s, nibabel %s" % (what, got.shape, want.shape))
        return
    if vp_dtype == "f32":
        w = want.astype(np.float32)
        g = got.astype(np.float32)
        same = (g == w) | (np.isnan(g) & np.isnan(w))
    else:
        wf = want.astype(np.float64)
        if not np.all(wf == np.round(wf)):
            fail("%s: nibabel's values are not integers but voxpipe dtype is %s" % (what, vp_dtype))
            return
        same = got.astype(np.float64) == wf
    if not same.all():
        bad = np.argwhere(~same)
        i = tuple(int(x) for x in bad[0])
        fail("%s: %d of %d voxels differ from nibabel; first at %s: voxpipe %r, nibabel %r"
             % (what, len(bad), same.size, i, got[i], want[i]))


def load_stream(path):
    with open(path, "rb") as f:
        return list(vxp.read(f))


def one_case(path):
    cases = load_stream(path)
    if len(cases) != 1:
        fail("%s: %d cases in the stream, expected 1" % (path, len(cases)))
        return None
    return cases[0]


def cmd_read(a):
    with open(os.path.join(a.fixdir, "expected.json")) as f:
        exp = json.load(f)[a.name]
    c = one_case(a.stream)
    if c is None:
        return
    if c["id"] != a.name:
        fail("case id %r, expected %r (file name without extension)" % (c["id"], a.name))
    if a.vol not in c["vols"]:
        fail("no volume %r in the case (has %s)" % (a.vol, sorted(c["vols"])))
        return
    v = c["vols"][a.vol]
    what = "%s/%s" % (a.name, a.vol)
    if list(v.data.shape) != exp["shape"]:
        fail("%s: dims %s, nibabel shape %s" % (what, list(v.data.shape), exp["shape"]))
    got_dt = vxp.NAMES[v.data.dtype]
    if got_dt != exp["vp_dtype"]:
        fail("%s: dtype %s, expected %s" % (what, got_dt, exp["vp_dtype"]))
    check_affine(what, v.affine, exp["affine"])
    want = np.load(os.path.join(a.fixdir, exp["values"]))
    check_values(what, v.data, want, exp["vp_dtype"])
    ni = c["meta"].get("nifti", {}).get(a.vol)
    if not isinstance(ni, dict):
        fail("%s: no meta.nifti.%s" % (what, a.vol))
    else:
        for k in ("version", "datatype", "qform_code", "sform_code"):
            if ni.get(k) != exp[k]:
                fail("%s: meta.nifti %s = %r, the header says %r" % (what, k, ni.get(k), exp[k]))


def cmd_info(a):
    img = nib.load(a.nifti)
    with open(a.infojson) as f:
        lines = [json.loads(x) for x in f if x.strip()]
    if len(lines) != 1:
        fail("%s: %d JSON lines, expected 1" % (a.infojson, len(lines)))
        return
    v = lines[0]["vols"].get(a.vol)
    if v is None:
        fail("vol-info: no volume %r" % a.vol)
        return
    want_ax = "".join(nib.aff2axcodes(img.affine))
    if v["orientation"] != want_ax:
        fail("vol-info orientation %s, nib.aff2axcodes %s" % (v["orientation"], want_ax))
    want_sp = img.header.get_zooms()[:3] if a.spacing == "zooms" else nib.affines.voxel_sizes(img.affine)
    why = close(v["spacing"], want_sp, 1e-6)
    if why:
        fail("vol-info spacing %s, nibabel %s %s: %s" % (v["spacing"], a.spacing, list(map(float, want_sp)), why))
    if v["dims"] != list(img.shape):
        fail("vol-info dims %s, nibabel shape %s" % (v["dims"], list(img.shape)))
    check_affine("vol-info", np.array(v["affine"]).reshape(4, 4), img.affine)


def cmd_written(a):
    orig = nib.load(a.orig)
    new = nib.load(a.new)
    what = os.path.basename(a.new)
    with open(a.new, "rb") as f:
        magic = f.read(2)
    gz = magic == b"\x1f\x8b"
    if gz != a.new.endswith(".gz"):
        fail("%s: gzip-compressed is %s for a file named %s" % (what, gz, what))
    want_cls = nib.Nifti2Image if a.nifti2 else nib.Nifti1Image
    if type(new) is not want_cls:
        fail("%s: nibabel loads it as %s, expected %s" % (what, type(new).__name__, want_cls.__name__))
    vd = vp_dtype_for(orig)
    got_dt = np.dtype(new.get_data_dtype()).newbyteorder("=")
    if got_dt != np.dtype(VP_NUMPY[vd]):
        fail("%s: data dtype %s, expected %s (voxpipe %s)" % (what, got_dt, np.dtype(VP_NUMPY[vd]), vd))
    if slope_inter(new) != (1.0, 0.0):
        fail("%s: scaling %s written, expected none" % (what, slope_inter(new)))
    if new.shape != orig.shape:
        fail("%s: shape %s, original %s" % (what, new.shape, orig.shape))
    else:
        check_values(what, np.asanyarray(new.dataobj), nib_values(orig), vd)
    check_affine(what, new.affine, orig.affine)
    hdr = new.header
    q, s = int(hdr["qform_code"]), int(hdr["sform_code"])
    if q == 0 or s == 0:
        fail("%s: qform_code %d, sform_code %d: both must be set" % (what, q, s))
    if q:
        why = close(hdr.get_qform(), new.affine, 1e-5)
        if why:
            fail("%s: get_qform() differs from the affine: %s\n qform:\n%s\n affine:\n%s" % (what, why, hdr.get_qform(), new.affine))
    why = close(hdr["pixdim"][1:4], nib.affines.voxel_sizes(new.affine), 1e-6)
    if why:
        fail("%s: pixdim[1:4] %s is not the spacing %s: %s" % (what, hdr["pixdim"][1:4], nib.affines.voxel_sizes(new.affine), why))


def v2_names(stream):
    c = one_case(stream)
    if c is None:
        return {}
    labels = c["meta"].get("labels")
    if not isinstance(labels, dict) or not labels:
        fail("%s: no meta labels" % stream)
        return {}
    return {int(k): v for k, v in labels.items()}


def cmd_split(a):
    seg = nib.load(a.seg)
    lab = np.asanyarray(seg.dataobj)
    names = v2_names(a.names)
    os.makedirs(a.outdir, exist_ok=True)
    n = 0
    present = [i for i in np.unique(lab) if i != 0]
    for i in present:
        if int(i) not in names:
            fail("label %d of %s has no v2 name" % (i, a.seg))
            continue
        mask = nib.Nifti1Image((lab == i).astype(np.uint8), seg.affine, seg.header)
        mask.set_data_dtype(np.uint8)
        nib.save(mask, os.path.join(a.outdir, names[int(i)] + ".nii.gz"))
        n += 1
    if n != len(present) or n < 2:
        fail("%d masks written for %d labels present" % (n, len(present)))


# spine25 (lib/labels.h contract): C1..C7 = 1..7, T1..T12 = 8..19, L1..L5 = 20..24, S1 and sacrum = 25
SPINE = ["C%d" % k for k in range(1, 8)] + ["T%d" % k for k in range(1, 13)] + ["L%d" % k for k in range(1, 6)]


def spine25_of_name(name):
    if name in ("sacrum", "vertebrae_S1"):
        return 25
    if name.startswith("vertebrae_") and name[10:] in SPINE:
        return SPINE.index(name[10:]) + 1
    return 0


def cmd_totalseg(a):
    c = one_case(a.stream)
    if c is None:
        return
    ct, seg = nib.load(a.ct), nib.load(a.seg)
    if c["id"] != a.id:
        fail("case id %r, expected %r" % (c["id"], a.id))
    for vol in ("image", "label"):
        if vol not in c["vols"]:
            fail("no %s volume (has %s)" % (vol, sorted(c["vols"])))
            return
    img, lab = c["vols"]["image"], c["vols"]["label"]
    if vxp.NAMES[img.data.dtype] != vp_dtype_for(ct):
        fail("image dtype %s, expected %s" % (vxp.NAMES[img.data.dtype], vp_dtype_for(ct)))
    check_values("image", img.data, nib_values(ct), vp_dtype_for(ct))
    check_affine("image", img.affine, ct.affine)
    check_affine("label", lab.affine, ct.affine)
    if vxp.NAMES[lab.data.dtype] != "u8":
        fail("label dtype %s, expected u8" % vxp.NAMES[lab.data.dtype])
    v2 = np.asanyarray(seg.dataobj).astype(np.int64)
    labels = c["meta"].get("labels", {})
    if a.spine25:
        names = v2_names(a.spine25)
        lut = np.zeros(max(names) + 1, dtype=np.int64)
        for i, nm in names.items():
            lut[i] = spine25_of_name(nm)
        want = lut[v2]
        if not np.any(want):
            fail("no spine class in %s: nothing to test" % a.seg)
        check_values("label (spine25)", lab.data, want, "u8")
        for i in np.unique(want[want > 0]):
            nm = labels.get(str(int(i)))
            if spine25_of_name(nm or "") != i:
                fail("meta labels[%d] = %r does not name spine25 class %d" % (i, nm, i))
    else:
        check_values("label", lab.data, v2, "u8")
        names = v2_names(a.stream)
        for i in np.unique(v2[v2 > 0]):
            if int(i) not in names:
                fail("meta labels has no name for id %d" % i)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("read")
    r.add_argument("fixdir")
    r.add_argument("name")
    r.add_argument("stream")
    r.add_argument("--vol", default="image")
    i = sub.add_parser("info")
    i.add_argument("nifti")
    i.add_argument("infojson")
    i.add_argument("--vol", default="image")
    i.add_argument("--spacing", choices=("affine", "zooms"), default="affine")
    w = sub.add_parser("written")
    w.add_argument("orig")
    w.add_argument("new")
    w.add_argument("--nifti2", action="store_true")
    s = sub.add_parser("split-totalseg")
    s.add_argument("seg")
    s.add_argument("names")
    s.add_argument("outdir")
    t = sub.add_parser("totalseg")
    t.add_argument("stream")
    t.add_argument("ct")
    t.add_argument("seg")
    t.add_argument("--id", required=True)
    t.add_argument("--spine25", metavar="NAMES_STREAM")
    a = p.parse_args()
    {"read": cmd_read, "info": cmd_info, "written": cmd_written, "split-totalseg": cmd_split,
     "totalseg": cmd_totalseg}[a.cmd](a)
    if errors:
        for e in errors:
            print("check_nifti %s: %s" % (a.cmd, e), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
