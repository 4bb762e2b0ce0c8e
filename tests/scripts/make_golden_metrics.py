#!/usr/bin/env python3
"""make_golden_metrics.py - golden files for metric-dice (overlap family) and ttest, computed by the
peers: MONAI's metric functions where they exist, scipy.stats for the statistics, and the metrics'
definitions in numpy for what neither has. Writes tests/golden/metrics/{overlap,ttest,stats}_*.

    .venv/bin/python tests/scripts/make_golden_metrics.py [DATA_DIR]     (default ../shared/data)

Overlap (tests/shell/metrics_overlap.bats runs metric-dice with the options named below):
  overlap_spine25.tsv   example_seg_fast (pred) vs example_seg (ref), both mapped to the 25 spine
                        classes; the four vertebrae present, plus
                        --group vertebrae=1-24 --group tl=vertebrae_T12,vertebrae_L1
  overlap_totalseg.tsv  the same pair, every TotalSegmentator v2 class present (40 classes)
  overlap_synth.vxp     small synthetic cases: u8, i16 with negative ids, u16 with a class filling
                        the volume, u8 pred vs i32 ref, f32 and f16 holding integers, all-empty
  overlap_synth_default.tsv   metric-dice (default classes, --empty nan)
  overlap_synth_{nan,one,zero}.tsv   --classes 1-6 --group low=1-2 --group mix=2,4,1000 --empty RULE
  Each row has a `source` column: the MONAI function that gave the value, or "definition" (numpy/
  Python from the formula in lib/overlap.h) for kappa, volume_similarity and every value the empty
  rule decides. MONAI runs on one-hot float64 tensors: counts from get_confusion_matrix (float32,
  exact at these sizes, then taken to float64);
  dice = compute_confusion_matrix_metric("f1 score"), iou = compute_iou, precision, sensitivity,
  specificity, accuracy, balanced accuracy from compute_confusion_matrix_metric, auc from
  compute_roc_auc on the flattened binary masks. compute_dice casts to float32, so it is only
  checked here (|compute_dice(ignore_empty=False) - dice| < 1e-6) and not used as the source.
  Every MONAI value is also checked against the definition (1e-12 relative) before it is written.

ttest (tests/shell/metrics_ttest.bats):
  ttest_a.tsv, ttest_b.tsv   tidy inputs of two models, deterministic synthetic samples: no ties,
                             ties, zero differences, n = 1, 2, 13, 14, 50, 51, 60, constant samples,
                             unmatched cases, a tiny p-value
  ttest_expected.tsv         scipy.stats.ttest_ind (equal_var True/False), ttest_rel (+ its
                             confidence_interval), wilcoxon (defaults; z from method="asymptotic"),
                             t.interval(0.95) (for sd = 0, where t.interval gives NaN, the point
                             interval [mean, mean]), and Holm/Bonferroni computed here from the
                             p-values
  stats_special.tsv          regularized incomplete beta, t.sf, t.isf and the normal tail at 50 digits
                             (mpmath, with scipy's value beside) for tests/unit/test_stats.c
"""
import math
import os
import sys

import numpy as np
import nibabel as nib
import scipy
import scipy.special as sp
import scipy.stats as st

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(ROOT, "tests", "golden", "metrics")
sys.path.insert(0, HERE)
import vxp  # noqa: E402

try:
    import torch
    from monai.metrics import (compute_confusion_matrix_metric, compute_dice, compute_iou, compute_roc_auc,
                               get_confusion_matrix)
    import monai
    HAVE_MONAI = True
except ImportError:  # fall back to the definitions alone
    HAVE_MONAI = False

METRICS = ["tp", "fp", "fn", "tn", "dice", "iou", "accuracy", "balanced_accuracy", "precision", "sensitivity",
           "specificity", "kappa", "auc", "volume_similarity"]
MONAI_CM = {"dice": "f1 score", "precision": "precision", "sensitivity": "sensitivity",
            "specificity": "specificity", "accuracy": "accuracy", "balanced_accuracy": "balanced accuracy"}


def fmt(v):
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    v = float(v)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return repr(v)


# ---------------------------------------------------------------- overlap: definitions

def definition(tp, fp, fn, tn, rule):
    """every metric from Python-int counts; None where a denominator is zero (undefined)"""
    n = tp + fp + fn + tn

    def r(num, den):
        return num / den if den else None
    pos, neg = tp + fn, tn + fp
    kden = (tp + fp) * (fp + tn) + (tp + fn) * (fn + tn)
    d = {"tp": tp, "fp": fp, "fn": fn, "tn": tn,
         "dice": r(2 * tp, 2 * tp + fp + fn), "iou": r(tp, tp + fp + fn), "accuracy": (tp + tn) / n,
         "balanced_accuracy": (tp / pos + tn / neg) / 2 if pos and neg else None,
         "precision": r(tp, tp + fp), "sensitivity": r(tp, pos), "specificity": r(tn, neg),
         "kappa": float(2 * (tp * tn - fn * fp)) / float(kden) if kden else None,
         "auc": 1 - (fp / neg + fn / pos) / 2 if pos and neg else None,
         "volume_similarity": 1 - abs(fn - fp) / (2 * tp + fp + fn) if 2 * tp + fp + fn else None}
    undef = {"nan": float("nan"), "one": 1.0, "zero": 0.0}[rule]
    return {k: (undef if v is None else v) for k, v in d.items()}, {k for k, v in d.items() if v is None}


def close(a, b, rel):
    if math.isnan(a) and math.isnan(b):
        return True
    return abs(a - b) <= rel * max(abs(a), abs(b), 1e-300)


def monai_values(pm, rm):
    """MONAI's values for binary masks pm, rm (numpy bool arrays of one case); checks compute_dice"""
    p = torch.from_numpy(pm.astype(np.float64))[None, None]
    r = torch.from_numpy(rm.astype(np.float64))[None, None]
    # [1, 1, 4]: tp, fp, tn, fn; MONAI returns float32 counts (exact below 2^24 voxels), taken to
    # float64 so that compute_confusion_matrix_metric divides in double precision
    assert pm.size < 2 ** 24
    cm = get_confusion_matrix(p, r, include_background=True).double()
    tp, fp, tn, fn = (int(x) for x in cm[0, 0].tolist())
    out = {"tp": (tp, "monai.get_confusion_matrix"), "fp": (fp, "monai.get_confusion_matrix"),
           "fn": (fn, "monai.get_confusion_matrix"), "tn": (tn, "monai.get_confusion_matrix")}
    for k, name in MONAI_CM.items():
        out[k] = (float(compute_confusion_matrix_metric(name, cm)[0, 0]),
                  "monai.compute_confusion_matrix_metric(%r)" % name)
    out["iou"] = (float(compute_iou(p, r, include_background=True, ignore_empty=False)[0, 0]), "monai.compute_iou")
    if pm.any() != pm.all() and rm.any() != rm.all():
        out["auc"] = (float(compute_roc_auc(p.flatten(), r.flatten())), "monai.compute_roc_auc")
    dice32 = float(compute_dice(p, r, include_background=True, ignore_empty=False)[0, 0])
    return out, dice32


def score_rows(case, cls, name, pm, rm, rule):
    """rows (case, class, name, metric, value, source) of one binary mask pair"""
    tp = int(np.count_nonzero(pm & rm))
    fp = int(np.count_nonzero(pm & ~rm))
    fn = int(np.count_nonzero(~pm & rm))
    tn = int(pm.size) - tp - fp - fn
    vals, undefined = definition(tp, fp, fn, tn, rule)
    src = {k: "definition" for k in METRICS}
    if HAVE_MONAI:
        mv, dice32 = monai_values(pm, rm)
        one, _ = definition(tp, fp, fn, tn, "one")
        assert abs(dice32 - one["dice"]) < 1e-6, (case, cls, dice32, one["dice"])
        for k, (v, s) in mv.items():
            if k in undefined:
                continue  # the empty rule decides
            assert close(float(v), float(vals[k]), 1e-12), (case, cls, k, v, vals[k])
            vals[k], src[k] = v, s
    return [(case, str(cls), name, k, fmt(vals[k]), src[k]) for k in METRICS]


def write_tsv(path, header, rows):
    with open(path, "w") as f:
        f.write("\t".join(header) + "\n")
        for r in rows:
            f.write("\t".join(r) + "\n")


HEADER = ["case", "class", "name", "metric", "value", "source"]


def overlap_cases(cases, rule, classes=None, groups=()):
    rows = []
    for c in cases:
        p = c["vols"]["pred"].data.astype(np.float64)
        r = c["vols"]["label"].data.astype(np.float64)
        names = c.get("meta", {}).get("labels", {})
        ids = classes if classes is not None else sorted(int(v) for v in set(np.unique(p)) | set(np.unique(r)) if v != 0)
        for k in ids:
            rows += score_rows(c["id"], k, names.get(str(k), ""), p == k, r == k, rule)
        for gname, spec, members in groups:
            ids_g = [int(k) for k in members]
            rows += score_rows(c["id"], gname, spec, np.isin(p, ids_g), np.isin(r, ids_g), rule)
    return rows


def spine25(a):
    """TotalSegmentator v2 ids -> 25 spine classes (C1..C7 1..7, T1..T12 8..19, L1..L5 20..24, sacrum/S1 25)"""
    m = np.zeros(256, np.int64)
    for i in range(7):
        m[50 - i] = 1 + i       # C1 = 50 ... C7 = 44
    for i in range(12):
        m[43 - i] = 8 + i       # T1 = 43 ... T12 = 32
    for i in range(5):
        m[31 - i] = 20 + i      # L1 = 31 ... L5 = 27
    m[25] = m[26] = 25
    return m[a]


def real_cases(data):
    ts = os.path.join(data, "totalseg")
    ref = np.asarray(nib.load(os.path.join(ts, "example_seg.nii.gz")).dataobj)
    pred = np.asarray(nib.load(os.path.join(ts, "example_seg_fast.nii.gz")).dataobj)
    return ref, pred


def make_overlap(data):
    ref, pred = real_cases(data)
    names25 = {}
    for i, nm in enumerate(["C1", "C2", "C3", "C4", "C5", "C6", "C7"]):
        names25[str(1 + i)] = "vertebrae_" + nm
    for i in range(12):
        names25[str(8 + i)] = "vertebrae_T%d" % (i + 1)
    for i in range(5):
        names25[str(20 + i)] = "vertebrae_L%d" % (i + 1)
    names25["25"] = "sacrum"
    case = {"id": "example", "meta": {"labels": names25},
            "vols": {"pred": vxp.Vol(spine25(pred), np.eye(4)), "label": vxp.Vol(spine25(ref), np.eye(4))}}
    groups = [("vertebrae", "1-24", range(1, 25)), ("tl", "vertebrae_T12,vertebrae_L1", [19, 20])]
    write_tsv(os.path.join(OUT, "overlap_spine25.tsv"), HEADER, overlap_cases([case], "nan", None, groups))
    # every v2 class present, raw ids (no names: vol-read of a single NIfTI attaches none)
    case = {"id": "example", "meta": {},
            "vols": {"pred": vxp.Vol(pred, np.eye(4)), "label": vxp.Vol(ref, np.eye(4))}}
    rows = overlap_cases([case], "nan")
    write_tsv(os.path.join(OUT, "overlap_totalseg.tsv"), HEADER, rows)


def synth_cases():
    rng = np.random.default_rng(20240604)
    aff = np.array([[0.8, 0, 0, -10], [0, 0.8, 0, 5], [0, 0, 2.5, 30], [0, 0, 0, 1]])
    shape = (9, 7, 5)
    cases = []

    def noisy(base, flip, values):
        out = base.copy()
        m = rng.random(shape) < flip
        out[m] = rng.choice(values, size=int(m.sum()))
        return out
    # u8: classes 1, 2 in both, 3 only in pred, 4 only in ref
    base = rng.choice([0, 0, 0, 1, 2], size=shape)
    p = noisy(base, 0.15, [0, 1, 2, 3])
    r = noisy(base, 0.15, [0, 1, 2, 4])
    cases.append({"id": "u8_basic", "meta": {"labels": {"1": "alpha", "2": "beta", "4": "delta"}},
                  "vols": {"pred": vxp.Vol(p.astype(np.uint8), aff), "label": vxp.Vol(r.astype(np.uint8), aff)}})
    # i16 with negative and large ids
    base = rng.choice([0, -2, 1, 1000], size=shape)
    cases.append({"id": "i16_neg", "vols": {"pred": vxp.Vol(noisy(base, 0.2, [0, -2, 1000, 2]).astype(np.int16), aff),
                                            "label": vxp.Vol(noisy(base, 0.2, [0, 1, 6]).astype(np.int16), aff)}})
    # u16: class 5 fills the reference (specificity undefined), most of the prediction
    r = np.full(shape, 5)
    p = noisy(r, 0.1, [0, 2])
    cases.append({"id": "u16_full", "vols": {"pred": vxp.Vol(p.astype(np.uint16), aff),
                                             "label": vxp.Vol(r.astype(np.uint16), aff)}})
    # u8 prediction against an i32 reference
    base = rng.choice([0, 1, 2, 4], size=shape)
    cases.append({"id": "mixed", "vols": {"pred": vxp.Vol(noisy(base, 0.1, [0, 1, 2]).astype(np.uint8), aff),
                                          "label": vxp.Vol(noisy(base, 0.1, [0, 4, 70000]).astype(np.int32), aff)}})
    # f32 and f16 holding integers (and -0.0)
    base = rng.choice([0, 1, 3], size=shape).astype(np.float32)
    pf = noisy(base, 0.1, [0, 1, 2]).astype(np.float32)
    pf[pf == 0] = np.where(rng.random(int((pf == 0).sum())) < 0.3, -0.0, 0.0).astype(np.float32)
    cases.append({"id": "float", "vols": {"pred": vxp.Vol(pf, aff),
                                          "label": vxp.Vol(noisy(base, 0.1, [0, 2, 3]).astype(np.float16), aff)}})
    # both empty
    z = np.zeros(shape, np.uint8)
    cases.append({"id": "empty", "vols": {"pred": vxp.Vol(z, aff), "label": vxp.Vol(z, aff)}})
    return cases


def make_synth():
    cases = synth_cases()
    with open(os.path.join(OUT, "overlap_synth.vxp"), "wb") as f:
        vxp.write(f, cases)
    write_tsv(os.path.join(OUT, "overlap_synth_default.tsv"), HEADER, overlap_cases(cases, "nan"))
    groups = [("low", "1-2", [1, 2]), ("mix", "2,4,1000", [2, 4, 1000])]
    for rule in ("nan", "one", "zero"):
        write_tsv(os.path.join(OUT, "overlap_synth_%s.tsv" % rule), HEADER,
                  overlap_cases(cases, rule, list(range(1, 7)), groups))


# ---------------------------------------------------------------- ttest

def ttest_groups():
    """(metric, class, name, {case: value} of A, {case: value} of B), deterministic"""
    rng = np.random.default_rng(7)
    groups = []

    def ids(n, start=0):
        return ["c%03d" % i for i in range(start, start + n)]

    def add(metric, cls, name, a, b, ida=None, idb=None):
        ida = ida or ids(len(a))
        idb = idb or ids(len(b))
        groups.append((metric, str(cls), name, dict(zip(ida, (float(x) for x in a))),
                       dict(zip(idb, (float(x) for x in b)))))
    n = lambda k, m, s: rng.normal(m, s, k)  # noqa: E731
    add("dice", 1, "noties20", n(20, 0.85, 0.05), n(20, 0.88, 0.04))
    add("dice", 2, "ties10", np.round(n(10, 0.85, 0.03), 2), np.round(n(10, 0.86, 0.03), 2))
    a = n(12, 0.8, 0.05)
    b = a + np.where(rng.random(12) < 0.3, 0.0, rng.normal(0.01, 0.02, 12))
    add("dice", 3, "zeros12", a, b)
    add("dice", 4, "ties30", np.round(n(30, 0.85, 0.03), 2), np.round(n(30, 0.87, 0.03), 2))
    add("dice", 5, "n60", n(60, 0.85, 0.05), n(60, 0.86, 0.05))
    add("dice", 6, "n50", n(50, 0.85, 0.05), n(50, 0.87, 0.05))
    add("dice", 7, "n51", n(51, 0.85, 0.05), n(51, 0.87, 0.05))
    add("dice", 8, "n13ties", np.round(n(13, 0.85, 0.03), 2), np.round(n(13, 0.87, 0.03), 2))
    add("dice", 9, "n14ties", np.round(n(14, 0.85, 0.03), 2), np.round(n(14, 0.87, 0.03), 2))
    add("dice", 10, "unmatched", n(25, 0.8, 0.05), n(25, 0.82, 0.05), ids(25), ids(25, 5))
    add("dice", 11, "tiny_p", n(40, 0.9, 0.01), n(40, 0.5, 0.01))
    add("dice", 12, "n2", n(2, 0.8, 0.05), n(2, 0.85, 0.05))
    add("dice", 13, "n1", n(1, 0.8, 0.05), n(5, 0.85, 0.05))
    add("dice", 14, "const", [0.8] * 5, [0.7] * 5)
    add("dice", 15, "equal_const", [0.8] * 5, [0.8] * 5)
    a = n(15, 0.8, 0.05)
    a[3] = np.nan
    b = n(15, 0.82, 0.05)
    b[9] = np.nan
    add("dice", 16, "with_nan", a, b)
    add("dice", 17, "no_pairs", n(6, 0.8, 0.05), n(6, 0.82, 0.05), ids(6), ids(6, 100))
    for k in range(1, 5):
        add("hd95", k, "hd_%d" % k, n(20, 3.0, 0.5), n(20, 2.6 + 0.2 * k, 0.4))
    return groups


def summary(x):
    x = np.asarray(x)
    nx = len(x)
    mean = float(np.mean(x)) if nx else float("nan")
    sd = float(np.std(x, ddof=1)) if nx > 1 else float("nan")
    if nx > 1 and sd > 0:
        lo, hi = st.t.interval(0.95, nx - 1, loc=mean, scale=sd / math.sqrt(nx))
    elif nx > 1:  # t.interval refuses scale 0 (NaN); the interval is the point, as ttest_rel's CI gives
        lo = hi = mean
    else:
        lo = hi = float("nan")
    return [("n", nx), ("mean", mean), ("sd", sd), ("ci_low", lo), ("ci_high", hi)]


def wilcoxon_is_exact(d):
    """scipy 1.17 wilcoxon method='auto': not the normal approximation? (_wilcoxon.py)"""
    d = np.asarray(d)
    nz = d[d != 0]
    ties = len(np.unique(np.abs(nz))) < len(nz)
    if len(d) > 50:
        return 0
    if not ties and not (d == 0).any():
        return 1
    return 1 if len(d) <= 13 else 0


def holm(p):
    p = np.asarray(p, float)
    out = np.full(len(p), np.nan)
    idx = [i for i in np.argsort(p, kind="stable") if not np.isnan(p[i])]
    m = len(idx)
    run = 0.0
    for k, i in enumerate(idx):
        run = max(run, min(1.0, (m - k) * p[i]))
        out[i] = run
    return out


def bonferroni(p):
    p = np.asarray(p, float)
    m = int(np.count_nonzero(~np.isnan(p)))
    return np.where(np.isnan(p), np.nan, np.minimum(1.0, m * p))


def make_ttest():
    groups = ttest_groups()
    for k, fname in ((3, "ttest_a.tsv"), (4, "ttest_b.tsv")):
        rows = []
        for g in groups:
            for case, v in g[k].items():
                rows.append((case, g[1], g[2], g[0], fmt(v)))
        write_tsv(os.path.join(OUT, fname), ["case", "class", "name", "metric", "value"], rows)
    res = []
    import warnings
    warnings.simplefilter("ignore")
    for metric, cls, name, da, db in groups:
        xa = np.array([v for v in da.values() if not math.isnan(v)])
        xb = np.array([v for v in db.values() if not math.isnan(v)])
        common = sorted(set(da) & set(db))
        pairs = [(da[c], db[c]) for c in common if not (math.isnan(da[c]) or math.isnan(db[c]))]
        pa = np.array([p[0] for p in pairs])
        pb = np.array([p[1] for p in pairs])
        r = {"A": summary(xa), "B": summary(xb)}
        s = st.ttest_ind(xa, xb, equal_var=True)
        w = st.ttest_ind(xa, xb, equal_var=False)
        r["student"] = [("t", s.statistic), ("df", s.df), ("p", s.pvalue), ("diff", np.mean(xa) - np.mean(xb))]
        r["welch"] = [("t", w.statistic), ("df", w.df), ("p", w.pvalue), ("diff", np.mean(xa) - np.mean(xb))]
        if len(pairs):
            pr = st.ttest_rel(pa, pb)
            ci = pr.confidence_interval(0.95) if len(pairs) > 1 else (float("nan"), float("nan"))
            wx = st.wilcoxon(pa, pb)
            wz = st.wilcoxon(pa, pb, method="asymptotic").zstatistic
            d = pa - pb
            r["paired"] = [("t", pr.statistic), ("df", pr.df), ("n", len(pairs)), ("p", pr.pvalue),
                           ("mean_diff", np.mean(d)), ("ci_low", ci[0]), ("ci_high", ci[1])]
            r["wilcoxon"] = [("w", wx.statistic), ("z", wz), ("n", int(np.count_nonzero(d))), ("p", wx.pvalue),
                             ("exact", wilcoxon_is_exact(d))]
        else:
            nan = float("nan")
            r["paired"] = [("t", nan), ("df", nan), ("n", 0), ("p", nan), ("mean_diff", nan), ("ci_low", nan),
                           ("ci_high", nan)]
            r["wilcoxon"] = [("w", nan), ("z", nan), ("n", 0), ("p", nan), ("exact", nan)]
        res.append((metric, cls, name, r))
    # Holm / Bonferroni per metric and test, across classes
    for test in ("student", "welch", "paired", "wilcoxon"):
        for metric in sorted({g[0] for g in res}):
            fam = [g for g in res if g[0] == metric]
            ps = [dict(g[3][test])["p"] for g in fam]
            for g, h, b in zip(fam, holm(ps), bonferroni(ps)):
                g[3][test] += [("p_holm", h), ("p_bonferroni", b)]
    rows = []
    for metric, cls, name, r in res:
        for test in ("A", "B", "student", "welch", "paired", "wilcoxon"):
            for stat, v in r[test]:
                rows.append((metric, cls, name, test, stat, fmt(v)))
    write_tsv(os.path.join(OUT, "ttest_expected.tsv"), ["metric", "class", "name", "test", "statistic", "value"], rows)


def make_special():
    """special functions at 50 digits with mpmath (the truth), rounded to double; scipy's own value in
    a last column for comparison (scipy 1.17's t.sf is off by up to 3e-11 near t = 0 for df = 1, and
    betainc by 3e-3 at betainc(107, 30, 0.001) ~ 3e-292)"""
    import mpmath as mpm
    mpm.mp.dps = 50

    def t_sf(t, df):
        x = mpm.mpf(df) / (df + mpm.mpf(t) ** 2)
        tail = mpm.betainc(mpm.mpf(df) / 2, mpm.mpf(1) / 2, 0, x, regularized=True) / 2
        return tail if t > 0 else 1 - tail

    def t_isf(q, df):
        return mpm.findroot(lambda t: t_sf(t, df) - q, st.t.isf(q, df), tol=mpm.mpf(10) ** -40)
    rows = []
    for a in (0.5, 1.0, 2.5, 10.0, 53.5, 107.0, 400.0, 2500.0):
        for b in (0.5, 1.0, 3.0, 30.0):
            for x in (1e-10, 1e-3, 0.1, 0.3, 0.5, 0.7, 0.9, 0.999, 1 - 1e-9):
                v = mpm.betainc(a, b, 0, mpm.mpf(x), regularized=True)
                rows.append(("incbet", fmt(a), fmt(b), fmt(x), fmt(float(v)), fmt(sp.betainc(a, b, x))))
    for df in (1.0, 2.0, 3.0, 7.0, 29.0, 106.0, 214.0, 1000.0, 5000.0):
        for t in (-40.0, -3.5, -1.0, -1e-6, 0.0, 1e-6, 0.3, 1.96, 4.0, 12.0, 80.0, 1e5):
            v = mpm.mpf(1) / 2 if t == 0 else t_sf(t, df)
            rows.append(("t_sf", fmt(df), fmt(t), "0", fmt(float(v)), fmt(st.t.sf(t, df))))
        for q in (1e-12, 1e-6, 0.005, 0.025, 0.025000000000000022, 0.1, 0.4, 0.6, 0.975, 0.999):
            rows.append(("t_isf", fmt(df), fmt(q), "0", fmt(float(t_isf(q, df))), fmt(st.t.isf(q, df))))
    for z in (-8.0, -2.0, -0.5, 0.0, 0.3, 1.0, 1.959963984540054, 3.0, 6.0, 10.0, 30.0):
        v = mpm.erfc(mpm.mpf(z) / mpm.sqrt(2)) / 2
        rows.append(("norm_sf", fmt(z), "0", "0", fmt(float(v)), fmt(st.norm.sf(z))))
    write_tsv(os.path.join(OUT, "stats_special.tsv"), ["func", "a", "b", "x", "value", "scipy"], rows)


def main():
    data = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "..", "shared", "data")
    os.makedirs(OUT, exist_ok=True)
    print("peers: numpy %s, scipy %s, %s" % (np.__version__, scipy.__version__,
          "MONAI %s (torch %s)" % (monai.__version__, torch.__version__) if HAVE_MONAI
          else "no MONAI: overlap values from the definitions only"))
    make_overlap(data)
    make_synth()
    make_ttest()
    make_special()
    for f in sorted(os.listdir(OUT)):
        if f.startswith(("overlap_", "ttest_", "stats_")):
            print("  %-28s %7d bytes" % (f, os.path.getsize(os.path.join(OUT, f))))


if __name__ == "__main__":
    main()
