#!/usr/bin/env python3
"""Check report's output against numpy/scipy computed from the same tidy tables.

  check_report.py tables REPORT.md --model A=FILE ... [--ttest FILE] [--exact] [--digits 3]
                  [--p-digits 5] [--tests student,paired] [--adjust none] [--level 0.95]
      every number of the Markdown tables (Summary and one section per metric) against numpy
      (mean, std ddof=1), scipy.stats.t.interval, scipy.stats.ttest_ind/ttest_rel/wilcoxon (the
      Summary's p-values of the per-case means) and the ttest table (the per-class p-values);
      rounded text must be equal, --exact numbers equal to 1e-12 relative (p 1e-10).
  check_report.py html REPORT.html REPORT.md FIGDIR
      the HTML's table cells equal the Markdown's; every <img> is a data: URI whose bytes equal
      FIGDIR/<alt>; every Markdown image link resolves to a file.
  check_report.py png FILE... [--cell 12] --model A=FILE ... (the tables, for the layout)
      each PNG decodes (signature, chunk CRCs, IHDR, zlib, filters) and has the size the layout in
      report --help gives; heat map cells of the largest / smallest value are the blue / red ends,
      NaN cells grey, absent cells white; each model's colour appears in every box plot.
Prints what it checked; exit 1 on the first class of mismatch (all listed).
"""
import argparse, base64, math, os, re, struct, sys, warnings, zlib
from html.parser import HTMLParser

import numpy as np
from scipy import stats

warnings.filterwarnings("ignore", category=RuntimeWarning)  # numpy's std of a sample holding inf

COUNTS = ("tp", "fp", "fn", "tn")
TESTS = ("student", "welch", "paired", "wilcoxon")
TEST_LABEL = {"student": "Student", "welch": "Welch", "paired": "paired", "wilcoxon": "Wilcoxon"}
ADJ_STAT = {"none": "p", "holm": "p_holm", "bonferroni": "p_bonferroni"}


def read_tsv(path):
    with open(path) as f:
        lines = [l.rstrip("\n").rstrip("\r") for l in f if l.strip()]
    head = lines[0].split("\t")
    return [dict(zip(head, l.split("\t"))) for l in lines[1:]]


def is_int(s):
    return re.fullmatch(r"[+-]?\d+", s) is not None


class Data:
    def __init__(self, models):
        self.models, self.vals = [], {}  # vals[model][(metric, cls)][case] = float
        self.metrics, self.classes, self.cases, self.names = [], [], set(), {}
        for spec in models:
            name, path = spec.split("=", 1)
            if name not in self.models:
                self.models.append(name)
                self.vals[name] = {}
            for r in read_tsv(path):
                m, c = r["metric"], r["class"]
                if m not in self.metrics: self.metrics.append(m)
                if c not in self.classes: self.classes.append(c)
                if r.get("name") and c not in self.names: self.names[c] = r["name"]
                self.cases.add(r["case"])
                self.vals[name].setdefault((m, c), {})[r["case"]] = float(r["value"])
        ints = sorted([c for c in self.classes if is_int(c)], key=int)
        self.classes = ints + [c for c in self.classes if not is_int(c)]

    def values(self, model, m, c):
        d = self.vals[model].get((m, c), {})
        return {k: v for k, v in d.items() if not math.isnan(v)}

    def case_means(self, model, m, sel):
        out = {}
        for case in self.cases:
            v = [self.vals[model].get((m, c), {}).get(case, math.nan) for c in sel]
            v = [x for x in v if not math.isnan(x)]
            if v: out[case] = float(np.mean(v))
        return out


def summary(x, level):
    x = np.asarray(x, dtype=float)
    n = len(x)
    mean = float(np.mean(x)) if n else math.nan
    sd = float(np.std(x, ddof=1)) if n > 1 else math.nan
    if n < 2: lo = hi = math.nan
    elif sd == 0: lo = hi = mean
    else: lo, hi = stats.t.interval(level, n - 1, loc=mean, scale=sd / math.sqrt(n))
    return n, mean, sd, float(lo), float(hi)


def pvalues(a, b, level):
    """Student, Welch, paired, Wilcoxon p of two dicts case -> value"""
    va, vb = list(a.values()), list(b.values())
    common = sorted(set(a) & set(b))
    pa, pb = [a[c] for c in common], [b[c] for c in common]
    out = {}
    with np.errstate(all="ignore"):
        out["student"] = float(stats.ttest_ind(va, vb).pvalue) if len(va) and len(vb) else math.nan
        out["welch"] = float(stats.ttest_ind(va, vb, equal_var=False).pvalue) if len(va) and len(vb) else math.nan
        out["paired"] = float(stats.ttest_rel(pa, pb).pvalue) if len(pa) else math.nan
        try:
            out["wilcoxon"] = float(stats.wilcoxon(pa, pb).pvalue)
        except ValueError:
            out["wilcoxon"] = math.nan
    return out


class Fmt:
    def __init__(self, a):
        self.exact, self.d, self.pd = a.exact, a.digits, a.p_digits

    def num(self, v):
        if math.isnan(v): return "n/a"
        if math.isinf(v): return "inf" if v > 0 else "-inf"
        return f"{v:.{self.d}f}"

    def p(self, v):
        if math.isnan(v): return "n/a"
        if v < 10.0 ** -self.pd: return f"< {10.0 ** -self.pd:.{self.pd}f}"
        return f"{v:.{self.pd}f}"


def parse_num(s):
    s = s.strip()
    return math.nan if s in ("n/a", "nan") else float(s)


def close(got, want, rel):
    if math.isnan(want): return math.isnan(got)
    if math.isinf(want): return got == want
    return abs(got - want) <= rel * max(abs(want), 1e-300) or got == want


def md_tables(path):
    """{section: (header cells, [row cells])}"""
    out, sec, cur = {}, None, None
    for line in open(path, encoding="utf-8"):
        line = line.rstrip("\n")
        if line.startswith("## "):
            sec, cur = line[3:].split(" (")[0], None
        elif line.startswith("| ") and sec is not None:
            cells = [c.replace("\\|", "|") for c in re.split(r" \| ", line[2:-2])]
            if cur is None:
                cur = out[sec] = (cells, [])
            else:
                cur[1].append(cells)
        elif line.startswith("|---"):
            continue
    return out


def cmp_cells(errs, where, got, want, fmt, kind, rel):
    """got: the report's cell text, want: a number (kind 'num', 'p', 'int') or pair (kind 'ms', 'ci')"""
    if fmt.exact:
        if kind == "ms":
            g = [parse_num(x) for x in got.split(" ± ")]
            ok = close(g[0], want[0], rel) and close(g[1], want[1], rel)
        elif kind == "ci":
            if got == "n/a": ok = math.isnan(want[0])
            else:
                g = [parse_num(x) for x in got.strip("[]").split(", ")]
                ok = close(g[0], want[0], rel) and close(g[1], want[1], rel)
        elif kind == "int": ok = got == str(want)
        else: ok = close(parse_num(got), want, rel)
    else:
        if kind == "ms": w = f"{fmt.num(want[0])} ± {fmt.num(want[1])}"
        elif kind == "ci": w = "n/a" if math.isnan(want[0]) and math.isnan(want[1]) else f"[{fmt.num(want[0])}, {fmt.num(want[1])}]"
        elif kind == "int": w = str(want)
        elif kind == "p": w = fmt.p(want)
        else: w = fmt.num(want)
        ok = got == w
        want = w
    if not ok: errs.append(f"{where}: report '{got}', expected {want!r}")
    return 1


def check_tables(a):
    data, fmt = Data(a.model), Fmt(a)
    tests = [t for t in TESTS if t in a.tests.split(",")]
    metrics = a.metrics.split(",") if a.metrics else [m for m in data.metrics if m not in COUNTS]
    sel = [c for c in data.classes if is_int(c)] if not a.summary_classes else a.summary_classes.split(",")
    tt = {}
    if a.ttest:
        for r in read_tsv(a.ttest):
            tt[(r["metric"], r["class"], r["test"], r["statistic"])] = float(r["value"])
    tabs = md_tables(a.report)
    errs, n = [], 0
    M = data.models

    def model_cells(where, row, col, per_model):
        nonlocal n
        for k, model in enumerate(M):
            s = per_model[model]
            n += cmp_cells(errs, f"{where} {model} n", row[col + 3 * k], s[0], fmt, "int", 0)
            n += cmp_cells(errs, f"{where} {model} mean ± sd", row[col + 3 * k + 1], s[1:3], fmt, "ms", 1e-12)
            n += cmp_cells(errs, f"{where} {model} CI", row[col + 3 * k + 2], s[3:5], fmt, "ci", 1e-12)

    head, rows = tabs.get("Summary", ([], []))
    if [r[0] for r in rows] != metrics:
        errs.append(f"Summary: metrics {[r[0] for r in rows]}, expected {metrics}")
    for row in rows:
        m = row[0]
        means = {model: data.case_means(model, m, sel) for model in M}
        model_cells(f"Summary {m}", row, 1, {model: summary(list(means[model].values()), a.level) for model in M})
        if len(M) >= 2:
            p = pvalues(means[M[0]], means[M[1]], a.level)
            for j, t in enumerate(tests):
                n += cmp_cells(errs, f"Summary {m} p {t}", row[1 + 3 * len(M) + j], p[t], fmt, "p", 1e-10)
    for m in metrics:
        if m not in tabs:
            errs.append(f"no section '{m}'")
            continue
        head, rows = tabs[m]
        classes = [c for c in data.classes if any(data.vals[model].get((m, c)) for model in M)]
        if [r[0] for r in rows] != classes:
            errs.append(f"{m}: classes {[r[0] for r in rows]}, expected {classes}")
        for row in rows:
            c = row[0]
            if row[1] != data.names.get(c, ""):
                errs.append(f"{m} class {c}: name '{row[1]}', expected '{data.names.get(c, '')}'")
            model_cells(f"{m} class {c}", row, 2,
                        {model: summary(list(data.values(model, m, c).values()), a.level) for model in M})
            if a.ttest:
                for j, t in enumerate(tests):
                    want = tt.get((m, c, t, ADJ_STAT[a.adjust]), math.nan)
                    n += cmp_cells(errs, f"{m} class {c} p {t}", row[2 + 3 * len(M) + j], want, fmt, "p", 0)
            elif len(row) != 2 + 3 * len(M):
                errs.append(f"{m} class {c}: p-value columns without a ttest table")
    for e in errs[:40]: print(e)
    print(f"checked {n} cells, {len(errs)} mismatches")
    return 1 if errs or not n else 0


class HtmlCells(HTMLParser):
    def __init__(self):
        super().__init__()
        self.cells, self.imgs, self.cur = [], [], None

    def handle_starttag(self, tag, attrs):
        if tag in ("td", "th"): self.cur = ""
        if tag == "img": self.imgs.append(dict(attrs))

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.cells.append(self.cur)
            self.cur = None

    def handle_data(self, d):
        if self.cur is not None: self.cur += d


def check_html(a):
    p = HtmlCells()
    p.feed(open(a.html, encoding="utf-8").read())
    md = []
    for head, rows in md_tables(a.md).values():
        md += head
        for r in rows: md += r
    errs = []
    if p.cells != md:
        errs.append(f"HTML table cells differ from the Markdown's ({len(p.cells)} vs {len(md)})")
    figs = sorted(f for f in os.listdir(a.figdir) if f.endswith(".png"))
    seen = []
    for img in p.imgs:
        src = img.get("src", "")
        if not src.startswith("data:image/png;base64,"):
            errs.append(f"img {img.get('alt')}: not an embedded PNG")
            continue
        data = base64.b64decode(src.split(",", 1)[1])
        want = open(os.path.join(a.figdir, img["alt"]), "rb").read()
        if data != want: errs.append(f"img {img['alt']}: embedded bytes differ from the file")
        w, h = png_size(data)
        if (str(w), str(h)) != (img.get("width"), img.get("height")):
            errs.append(f"img {img['alt']}: width/height attributes {img.get('width')}x{img.get('height')}, PNG {w}x{h}")
        seen.append(img["alt"])
    if sorted(seen) != figs: errs.append(f"embedded {sorted(seen)}, figure files {figs}")
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", open(a.md, encoding="utf-8").read())
    base = os.path.dirname(os.path.abspath(a.md))
    for l in links:
        if not os.path.isfile(os.path.join(base, l)): errs.append(f"Markdown link {l}: no such file")
    if sorted(os.path.basename(l) for l in links) != figs: errs.append(f"Markdown links {links}, figures {figs}")
    for e in errs: print(e)
    print(f"{len(p.cells)} cells, {len(seen)} embedded figures, {len(links)} links; {len(errs)} mismatches")
    return 1 if errs or not seen else 0


def png_size(data):
    return struct.unpack(">II", data[16:24])


def png_decode(data):
    """(w, h, rows of RGB bytes); raises on anything invalid"""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "bad signature"
    pos, idat, ihdr, end = 8, b"", None, False
    while pos < len(data):
        n, typ = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        crc, = struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])
        assert zlib.crc32(typ + body) == crc, f"bad CRC in {typ}"
        if typ == b"IHDR": ihdr = struct.unpack(">IIBBBBB", body)
        elif typ == b"IDAT": idat += body
        elif typ == b"IEND": end = True
        pos += 12 + n
    assert ihdr and end and pos == len(data), "missing IHDR/IEND or trailing bytes"
    w, h, depth, ctype, comp, filt, inter = ihdr
    assert (depth, ctype, comp, filt, inter) == (8, 2, 0, 0, 0), f"unexpected IHDR {ihdr}"
    raw = zlib.decompress(idat)
    stride = 3 * w
    assert len(raw) == h * (stride + 1), "wrong image data length"
    rows, prev = [], bytearray(stride)
    for y in range(h):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - 3] if i >= 3 else 0
            up, ul = prev[i], (prev[i - 3] if i >= 3 else 0)
            if f == 1: line[i] = (line[i] + left) & 255
            elif f == 2: line[i] = (line[i] + up) & 255
            elif f == 3: line[i] = (line[i] + (left + up) // 2) & 255
            elif f == 4:
                pp = left + up - ul
                pa, pb, pc = abs(pp - left), abs(pp - up), abs(pp - ul)
                pr = left if pa <= pb and pa <= pc else up if pb <= pc else ul
                line[i] = (line[i] + pr) & 255
            else: assert f == 0, f"bad filter {f}"
        rows.append(bytes(line))
        prev = line
    return w, h, rows


def pixel(rows, x, y):
    return tuple(rows[y][3 * x:3 * x + 3])


PALETTE = [(78, 121, 167), (242, 142, 43), (89, 161, 79), (225, 87, 89), (176, 122, 161), (118, 183, 178),
           (237, 201, 72), (156, 117, 95)]
BLUE, RED, GREY, WHITE = (49, 54, 149), (165, 0, 38), (170, 170, 170), (255, 255, 255)
LOWER = ("hd", "masd", "ahd", "assd")


def check_png(a):
    data = Data(a.model) if a.model else None
    errs, n, n_box = [], 0, [0]
    for path in a.files:
        name = os.path.basename(path)
        try:
            w, h, rows = png_decode(open(path, "rb").read())
        except Exception as e:
            errs.append(f"{name}: does not decode: {e}")
            continue
        n += 1
        if not data: continue
        M = data.models
        if name.startswith("heatmap-"):
            mt = next(m for m in data.metrics if name.startswith(f"heatmap-{m}-"))
            model = name[len(f"heatmap-{mt}-"):-4]
            classes = [c for c in data.classes if any(data.vals[k].get((mt, c)) for k in M)]
            C = a.cell
            want = (44 + len(data.cases) * C + 70, 16 + max(len(classes) * C, 120))
            if (w, h) != want: errs.append(f"{name}: {w}x{h}, layout says {want[0]}x{want[1]}")
            cases = sorted(data.cases, key=natural)
            finite = [v for k in M for d in (data.vals[k].get((mt, c), {}) for c in classes) for v in d.values()
                      if math.isfinite(v)]
            lo, hi = min(finite), max(finite)
            best, worst = (lo, hi) if mt.startswith(LOWER) else (hi, lo)
            for j, c in enumerate(classes):
                for i, case in enumerate(cases):
                    v = data.vals[model].get((mt, c), {}).get(case)
                    got = pixel(rows, 44 + i * C + 1, 8 + j * C + 1)
                    want_px = (WHITE if v is None else GREY if not math.isfinite(v) else BLUE if v == best
                               else RED if v == worst else None)
                    if want_px and got != want_px:
                        errs.append(f"{name}: class {c} case {case} (value {v}): pixel {got}, expected {want_px}")
        elif name.startswith("box-"):
            mt = name[4:-4]
            groups = len([c for c in data.classes if any(data.vals[k].get((mt, c)) for k in M)]) + 1
            want = (56 + groups * (len(M) * 12 + 10) + 8, 228)
            if (w, h) != want: errs.append(f"{name}: {w}x{h}, layout says {want[0]}x{want[1]}")
            # a model's fill colour must show wherever one of its boxes is at least 5 pixels tall
            sel = [c for c in data.classes if is_int(c)]
            cls = [c for c in data.classes if any(data.vals[k].get((mt, c)) for k in M)]
            boxes = {k: [[v for v in data.values(k, mt, c).values() if math.isfinite(v)] for c in cls] +
                     [[v for v in data.case_means(k, mt, sel).values() if math.isfinite(v)]] for k in M}
            allv = [v for k in M for b in boxes[k] for v in b]
            lo, hi = (min(allv), max(allv)) if allv else (0.0, 1.0)
            pad = (hi - lo) * 0.05 or max(abs(hi) * 0.05, 0.5)
            lo, hi = lo - pad, hi + pad
            y = lambda v: 208 - round((v - lo) / (hi - lo) * 200)
            colours = {pixel(rows, x, yy) for yy in range(h) for x in range(w)}
            for i, k in enumerate(M):
                tall = any(len(b) and y(np.quantile(b, 0.25)) - y(np.quantile(b, 0.75)) + 1 >= 5 for b in boxes[k])
                if tall and PALETTE[i] not in colours: errs.append(f"{name}: no box in model {k}'s colour {PALETTE[i]}")
                n_box[0] += tall
    for e in errs[:40]: print(e)
    print(f"{n} PNGs decoded, {n_box[0]} model fills expected and found, {len(errs)} mismatches")
    return 1 if errs or not n else 0


def natural(s):
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.findall(r"\d+|\D+", s)]


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("tables")
    t.add_argument("report")
    for p in (t, sub.add_parser("png")):
        p.add_argument("--model", action="append", default=[])
    t.add_argument("--ttest")
    t.add_argument("--exact", action="store_true")
    t.add_argument("--digits", type=int, default=3)
    t.add_argument("--p-digits", type=int, default=5)
    t.add_argument("--tests", default="student,paired")
    t.add_argument("--adjust", default="none")
    t.add_argument("--level", type=float, default=0.95)
    t.add_argument("--metrics")
    t.add_argument("--summary-classes")
    h = sub.add_parser("html")
    h.add_argument("html"); h.add_argument("md"); h.add_argument("figdir")
    p = sub.choices["png"]
    p.add_argument("files", nargs="+")
    p.add_argument("--cell", type=int, default=12)
    a = ap.parse_args()
    sys.exit({"tables": check_tables, "html": check_html, "png": check_png}[a.cmd](a))


if __name__ == "__main__":
    main()
