/* tidy.h - tidy metric tables as tab-separated text: a header line naming the columns, then one
 * row per value (metric-dice writes `case class name metric value`; ttest reads such files).
 *
 * Writing: vp_tidy_fmt() formats a double as the shortest decimal text that reads back to the same
 * double (as Python's repr does), "nan"/"inf"/"-inf" for non-finite values, so a value survives a
 * round trip through the text exactly; vp_tidy_field() makes a string safe as a TSV field;
 * vp_json_str() writes a JSON string literal.
 * Reading: vp_table_read() loads a whole TSV file (or "-" for stdin) into rows of string cells.
 *
 * Ownership: a vp_table owns its cells (one buffer holding the file) and arrays; vp_table_free()
 * releases them. The formatting helpers write into caller buffers.
 */
#ifndef VP_TIDY_H
#define VP_TIDY_H

#include <stddef.h>
#include <stdio.h>

/* Shortest round-trip text of v into buf (32 bytes is enough); returns buf. */
char *vp_tidy_fmt(double v, char buf[32]);

/* Copy s into dst (size n, truncated with a terminating 0) with tab, CR and LF replaced by spaces. */
void vp_tidy_field(char *dst, size_t n, const char *s);

/* Write s as a JSON string literal (quotes, escapes) to f. */
void vp_json_str(FILE *f, const char *s);

/* Parse a whole cell as a double ("nan", "inf" accepted, surrounding blanks not). 0 ok, -1 not a number. */
int vp_tidy_parse_double(const char *s, double *v);

typedef struct vp_table {
    char *path;        /* as given, for messages */
    int ncols;
    char **cols;       /* header names */
    size_t nrows;
    char **cells;      /* nrows * ncols, row-major */
    size_t *lines;     /* 1-based line number of each row in the file, for messages */
    char *buf;         /* the file's bytes, cut into cells in place */
} vp_table;

/* Read a TSV file: the first non-empty line is the header, each later non-empty line a row with
 * exactly as many tab-separated fields (a trailing CR is dropped). Errors print "path:line: why" and
 * return -VP_ERR_RUNTIME (unreadable) or -VP_ERR_DATA (empty file, wrong field count, a duplicate
 * column name). 0 ok. */
int vp_table_read(const char *path, vp_table *t);

/* Column index of `name`, or -1. */
int vp_table_col(const vp_table *t, const char *name);

static inline const char *vp_table_cell(const vp_table *t, size_t row, int col)
{
    return t->cells[row * (size_t)t->ncols + (size_t)col];
}

void vp_table_free(vp_table *t);

/* The loop of the metric programs: read each case from in_spec, let score() print its tidy rows
 * to f (a memory stream), and pass them to out_spec (- or a file, written atomically) case by case.
 * A header line "case class name metric value" comes first unless json. Returns the exit code:
 * score's own (0 or VP_ERR_...), or that of a read/write failure. */
struct vp_case;
typedef int (*vp_score_fn)(const struct vp_case *c, FILE *f);
int vp_tidy_run(const char *in_spec, const char *out_spec, int json, vp_score_fn score);

/* The two label volumes a metric program scores: pred and ref of case c, looked up by name. Both
 * there: 0 with *p and *r set; otherwise prints "CTX: no volume 'NAME' (the prediction|reference;
 * see --pred|--ref)" and returns VP_ERR_DATA. */
struct vp_vol;
int vp_tidy_pair(const struct vp_case *c, const char *pred, const char *ref, const char *ctx, const struct vp_vol **p,
                 const struct vp_vol **r);

/* The option rows every metric program of a prediction against a reference shares (for a vp_opt
 * table; cli.h): -i, -o, --pred, --ref, --classes, into the variables named. */
#define VP_TIDY_PAIR_OPTS(in, out, pred, ref, classes)                                                                  \
    {'i', "in", "ENDPOINT", VP_OPT_STR, &(in), "where to read the stream: -, FILE, @tcp://ADDR:PORT, >tcp://HOST:PORT", 0, 0, NULL}, \
    {'o', "out", "FILE", VP_OPT_STR, &(out), "where to write the table: - (default) or a file (written atomically)", 0, 0, NULL}, \
    {0, "pred", "NAME", VP_OPT_STR, &(pred), "the predicted label volume (default pred)", 0, 0, NULL},                 \
    {0, "ref", "NAME", VP_OPT_STR, &(ref), "the reference label volume (default label)", 0, 0, NULL},                  \
    {0, "classes", "LIST", VP_OPT_STR, &(classes), "classes to score: ids, ranges A-B, names (default: every nonzero value in either volume)", 0, 0, NULL}

#endif
