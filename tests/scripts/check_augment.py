#!/usr/bin/env python3
"""check_augment.py - checks of `augment` output streams, for tests/shell/augment.bats.

  check_augment.py golden CASE.npz OUT.vxp     image within the case's rtol/atol of the peer's, label
                                               equal except at rounding ties, affine as the peer's
  check_augment.py noise IN.vxp OUT.vxp SIGMA  out - in equals SIGMA * the counter-based normal field
                                               of meta.augment.noise_key (splitmix64 + Box-Muller,
                                               re-implemented here with numpy), and its sample std is
                                               SIGMA within 5 standard errors
  check_augment.py elastic IN.vxp OUT.vxp X,Y,Z  elastic deformation alone about centre X,Y,Z: the
                                               field rebuilt from meta.augment (elastic_key, _scale,
                                               _mag) by scipy gaussian_filter(mode 'wrap'), then
                                               map_coordinates (image order 1, label order 0,
                                               grid-constant) at o + field + centre - (P-1)/2
  check_augment.py labels IN.vxp OUT.vxp       every output label value occurs in the input label
  check_augment.py rates OUT.vxp P_JSON        per transform, the share of cases whose meta.augment
                                               .applied names it is within 4.5 binomial standard
                                               deviations of its probability (P_JSON {name: p}, or
                                               @FILE); flip: per axis, from meta.augment.flip;
                                               NAME_channel: channels drawn where NAME was applied
  check_augment.py same IN.vxp OUT.vxp         every volume's values, dtype, dims and affine equal
Prints what it compared; exits 1 on a mismatch.
"""
import json
import math
import sys

import numpy as np

sys.path.insert(0, __import__("os").path.dirname(__file__))
import vxp  # noqa: E402

M64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def one(path):
    cases = list(vxp.read(open(path, "rb")))
    if len(cases) != 1:
        sys.exit("expected 1 case in %s, got %d" % (path, len(cases)))
    return cases[0]


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def golden(npz, out):
    g = np.load(npz)
    c = one(out)
    im = c["vols"]["image"].data
    exp = g["image"]
    if im.dtype != np.float32 or im.shape != exp.shape:
        fail("image %s %s, expected float32 %s" % (im.dtype, im.shape, exp.shape))
    err = np.abs(im.astype(np.float64) - exp)
    tol = float(g["atol"]) + float(g["rtol"]) * np.abs(exp)
    print("image: max |diff| %.3g (atol %g, rtol %g), %d voxels beyond" % (err.max(), g["atol"], g["rtol"],
                                                                           int((err > tol).sum())))
    if np.any(err > tol):
        fail("image differs from the peer")
    if "label" in g:
        lb = c["vols"]["label"].data
        ok = ~g["ties"]
        bad = int(((lb != g["label"]) & ok).sum())
        print("label: %d voxels compared (%d ties left out), %d differ" % (ok.sum(), (~ok).sum(), bad))
        if lb.dtype != g["label"].dtype or bad:
            fail("label differs from the peer")
    if "affine" in g:
        d = np.abs(c["vols"]["image"].affine - g["affine"]).max()
        print("affine: max |diff| %.3g" % d)
        if d > 1e-9 or ("label" in c["vols"] and np.abs(c["vols"]["label"].affine - g["affine"]).max() > 1e-9):
            fail("affine differs from the sampled grid's")


def mix(z):
    z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9))
    z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB))
    return z ^ (z >> np.uint64(31))


def normal_field(key, n):
    """value 2j = r cos t, 2j+1 = r sin t, with u1, u2 from splitmix64 outputs 2j+1, 2j+2 of key"""
    i = np.arange((n + 1) // 2, dtype=np.uint64)
    with np.errstate(over="ignore"):
        k, g = np.uint64(key), np.uint64(GOLDEN)
        a = mix(k + (np.uint64(2) * i + np.uint64(1)) * g)
        b = mix(k + (np.uint64(2) * i + np.uint64(2)) * g)
    u1 = ((a >> np.uint64(11)) + np.uint64(1)).astype(np.float64) * 2.0 ** -53
    u2 = (b >> np.uint64(11)).astype(np.float64) * 2.0 ** -53
    r, t = np.sqrt(-2.0 * np.log(u1)), 2.0 * np.pi * u2
    return np.stack([r * np.cos(t), r * np.sin(t)], axis=1).ravel()[:n]


def noise(inp, out, sigma):
    x = one(inp)["vols"]["image"].data.astype(np.float32)
    c = one(out)
    y = c["vols"]["image"].data
    meta = c["meta"]["augment"]
    sigma = float(sigma)
    if meta.get("noise") != sigma:
        fail("meta.augment.noise %r, expected %r" % (meta.get("noise"), sigma))
    z = normal_field(meta["noise_key"], x.size).reshape(x.shape, order="F")
    exp = (x.astype(np.float64) + sigma * z).astype(np.float32)
    d = np.abs(y.astype(np.float64) - exp).max()
    n = x.size
    sd = float(np.std(y.astype(np.float64) - x, ddof=1))
    # the std of a sample std of n normals is about sigma / sqrt(2(n-1))
    se = sigma / math.sqrt(2 * (n - 1))
    print("noise: max |diff| from the formula %.3g; sample std %.6f vs sigma %.6f (5 se = %.6f)" % (d, sd, sigma, 5 * se))
    if d > 1e-3 + 1e-6 * np.abs(exp).max() or abs(sd - sigma) > 5 * se:
        fail("noise differs")


def elastic(inp, out, centre):
    from scipy import ndimage as ndi
    a = one(inp)
    c = one(out)
    meta = c["meta"]["augment"]
    p = c["vols"]["image"].data.shape
    nv = p[0] * p[1] * p[2]
    z = normal_field(meta["elastic_key"], 3 * nv)
    coords = []
    for d in range(3):
        f = z[d * nv:(d + 1) * nv].reshape(p, order="F")
        sigma = meta["elastic_scale"][d] * p[d]
        if sigma > 1e-15:
            f = ndi.gaussian_filter(f, sigma, mode="wrap", truncate=4.0)
        f = f / (np.abs(f).max() / max(meta["elastic_mag"][d], 1e-8))
        f = f - f.mean()
        o = np.arange(p[d], dtype=np.float64).reshape([-1 if k == d else 1 for k in range(3)])
        coords.append(o + f + (float(centre.split(",")[d]) - (p[d] - 1) / 2))
    coords = np.stack(coords)
    exp = ndi.map_coordinates(a["vols"]["image"].data.astype(np.float64), coords, order=1, mode="grid-constant", cval=0.0)
    lab = ndi.map_coordinates(a["vols"]["label"].data, coords, order=0, mode="grid-constant", cval=0)
    ok = ~np.any(np.abs(coords - np.floor(coords) - 0.5) < 1e-6, axis=0)
    d = np.abs(c["vols"]["image"].data - exp)
    bad = int(((c["vols"]["label"].data != lab) & ok).sum())
    moved = np.abs(coords[0] - np.arange(p[0])[:, None, None] - (float(centre.split(",")[0]) - (p[0] - 1) / 2)).max()
    print("elastic: largest displacement along x %.3f voxels; image max |diff| %.3g; label %d compared, %d differ"
          % (moved, d.max(), ok.sum(), bad))
    if d.max() > 2e-3 + 1e-5 * np.abs(exp).max() or bad:
        fail("elastic deformation differs")


def labels(inp, out):
    a = set(np.unique(one(inp)["vols"]["label"].data).tolist())
    b = set(np.unique(one(out)["vols"]["label"].data).tolist())
    print("input labels %d, output labels %d, new: %s" % (len(a), len(b), sorted(b - a)))
    if not b <= a:
        fail("labels not in the input")


def rates(out, pj):
    probs = json.load(open(pj[1:])) if pj.startswith("@") else json.loads(pj)
    cases = list(vxp.read(open(out, "rb")))
    n = len(cases)
    worst = 0.0
    for name, p in probs.items():
        if name == "flip":
            k = sum(sum(c["meta"]["augment"]["flip"]) for c in cases)
            m = 3 * n
        elif name.endswith("_channel"):  # per channel, among the cases where the transform was drawn
            t = name[:-len("_channel")]
            drawn = [c["meta"]["augment"][t] for c in cases if t in c["meta"]["augment"]["applied"]]
            k = sum(v is not None for d in drawn for v in d)
            m = sum(len(d) for d in drawn)
        else:
            k = sum(name in c["meta"]["augment"]["applied"] for c in cases)
            m = n
        sd = math.sqrt(p * (1 - p) / m)
        z = abs(k / m - p) / sd if sd > 0 else (0 if k / m == p else math.inf)
        worst = max(worst, z)
        print("%-11s p %.3f  rate %.4f (%d/%d)  |z| %.2f" % (name, p, k / m, k, m, z))
        if z > 4.5:
            fail("%s applied at rate %.4f, configured %.3f" % (name, k / m, p))
    print("worst |z| %.2f over %d cases" % (worst, n))


def same(inp, out):
    a, b = one(inp), one(out)
    if set(a["vols"]) != set(b["vols"]):
        fail("volumes differ")
    for k, v in a["vols"].items():
        w = b["vols"][k]
        if v.data.dtype != w.data.dtype or v.data.shape != w.data.shape or not np.array_equal(v.data, w.data) \
                or not np.array_equal(v.affine, w.affine):
            fail("volume %s changed" % k)
    print("unchanged:", sorted(a["vols"]))


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"golden": golden, "noise": noise, "elastic": elastic, "labels": labels, "rates": rates, "same": same}[cmd](*args)
