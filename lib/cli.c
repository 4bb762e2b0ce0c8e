/* cli.c - see cli.h */
#include "cli.h"
#include "util.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int vp_threads;
static int saved_argc;
static char **saved_argv;

int vp_cli_argc(void) { return saved_argc; }
char **vp_cli_argv(void) { return saved_argv; }

/* Keep only the arguments that change what a program computes: endpoints (-i/--in, -o/--out),
 * --threads, -q and -v say how and where, not what, and would make provenance (and so the output
 * bytes) differ between a pipe run and a ZeroMQ run of the same pipeline. */
static void filter_provenance_args(int argc, char **argv)
{
    static const char *const with_arg[] = {"-i", "-o", "--in", "--out", "--threads", NULL};
    static const char *const alone[] = {"-q", "-v", "--quiet", "--verbose", NULL};
    saved_argv = vp_calloc((size_t)argc + 1, sizeof *saved_argv);
    saved_argc = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int skip = 0;
        if (!strcmp(a, "--")) {
            while (++i < argc) saved_argv[saved_argc++] = argv[i];
            break;
        }
        for (int k = 0; with_arg[k] && !skip; k++) {
            size_t n = strlen(with_arg[k]);
            if (!strcmp(a, with_arg[k])) { skip = 1; i++; }
            else if (!strncmp(a, with_arg[k], n) && (a[n] == '=' || (n == 2 && a[n]))) skip = 1;
        }
        for (int k = 0; alone[k] && !skip; k++)
            if (!strcmp(a, alone[k]) || (a[0] == '-' && a[1] != '-' && strspn(a + 1, "qv") == strlen(a + 1) && a[1])) skip = 1;
        if (!skip) saved_argv[saved_argc++] = argv[i];
    }
}

_Noreturn void vp_usage_error(const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s: error: %s\n(see '%s --help')\n", vp_progname, buf, vp_progname);
    exit(VP_ERR_USAGE);
}

enum { STD_HELP = 'h', STD_QUIET = 'q', STD_VERBOSE = 'v', STD_VERSION = 1000, STD_THREADS };

static const struct vp_opt std_opts[] = {
    {'h', "help", NULL, VP_OPT_FLAG, NULL, "show this help and exit", 0, 0, NULL},
    {0, "version", NULL, VP_OPT_FLAG, NULL, "show the version and exit", 0, 0, NULL},
    {'q', "quiet", NULL, VP_OPT_FLAG, NULL, "print errors only", 0, 0, NULL},
    {'v', "verbose", NULL, VP_OPT_FLAG, NULL, "print more detail (repeatable)", 0, 0, NULL},
    {0, "threads", "N", VP_OPT_INT, NULL, "worker threads (default: number of CPUs)", 1, 1024, NULL},
    {0, NULL, NULL, 0, NULL, NULL, 0, 0, NULL},
};

static void print_opt(FILE *f, const struct vp_opt *o)
{
    char left[96];
    int n;
    if (o->shortname)
        n = snprintf(left, sizeof left, "  -%c, --%s", o->shortname, o->longname);
    else
        n = snprintf(left, sizeof left, "      --%s", o->longname);
    if (o->argname && n > 0 && (size_t)n < sizeof left)
        snprintf(left + n, sizeof left - (size_t)n, " %s", o->argname);
    fprintf(f, "%-30s %s", left, o->help ? o->help : "");
    if (o->kind == VP_OPT_CHOICE && o->choices) {
        fputs(" (", f);
        for (int i = 0; o->choices[i]; i++) fprintf(f, "%s%s", i ? "|" : "", o->choices[i]);
        fputc(')', f);
    }
    fputc('\n', f);
}

void vp_cli_help(const struct vp_cmd *cmd)
{
    printf("%s - %s\n\nusage: %s %s\n\noptions:\n", cmd->name, cmd->summary, cmd->name,
           cmd->usage ? cmd->usage : "[options]");
    for (const struct vp_opt *o = cmd->opts; o && o->longname; o++) print_opt(stdout, o);
    printf("\nstandard options:\n");
    for (const struct vp_opt *o = std_opts; o->longname; o++) print_opt(stdout, o);
    if (cmd->description) printf("\n%s\n", cmd->description);
    printf("\nexit codes: 0 ok, 1 runtime error, 2 usage, 3 bad input data, 4 device unavailable\n");
}

static long parse_long(const char *name, const char *s, double min, double max)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end) vp_usage_error("option '--%s': '%s' is not an integer", name, s);
    if ((min != 0 || max != 0) && (v < min || v > max))
        vp_usage_error("option '--%s': %ld is outside [%.0f, %.0f]", name, v, min, max);
    return v;
}

static double parse_double(const char *name, const char *s, double min, double max)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v))
        vp_usage_error("option '--%s': '%s' is not a finite number", name, s);
    if ((min != 0 || max != 0) && (v < min || v > max))
        vp_usage_error("option '--%s': %g is outside [%g, %g]", name, v, min, max);
    return v;
}

static void apply(const struct vp_opt *o, const char *arg)
{
    switch (o->kind) {
    case VP_OPT_FLAG: *(int *)o->dest = 1; break;
    case VP_OPT_STR: *(const char **)o->dest = arg; break;
    case VP_OPT_INT: *(long *)o->dest = parse_long(o->longname, arg, o->min, o->max); break;
    case VP_OPT_DOUBLE: *(double *)o->dest = parse_double(o->longname, arg, o->min, o->max); break;
    case VP_OPT_CHOICE: {
        for (int i = 0; o->choices[i]; i++)
            if (!strcmp(o->choices[i], arg)) { *(int *)o->dest = i; return; }
        vp_usage_error("option '--%s': unknown value '%s'", o->longname, arg);
    }
    case VP_OPT_LIST: {
        struct vp_strlist *l = o->dest;
        l->v = vp_realloc(l->v, (size_t)(l->n + 1) * sizeof *l->v);
        l->v[l->n++] = arg;
        break;
    }
    }
}

int vp_cli_parse(const struct vp_cmd *cmd, int argc, char **argv)
{
    vp_set_progname(cmd->name);
    filter_provenance_args(argc, argv);
    long nproc = sysconf(_SC_NPROCESSORS_ONLN);
    vp_threads = nproc > 0 ? (int)nproc : 1;

    int nopts = 0;
    while (cmd->opts && cmd->opts[nopts].longname) nopts++;
    int nstd = (int)(sizeof std_opts / sizeof std_opts[0]) - 1;
    struct option *lo = vp_calloc((size_t)(nopts + nstd + 1), sizeof *lo);
    char shorts[256] = ":"; /* options may follow positionals (GNU order) */
    size_t sl = 1;
    for (int i = 0; i < nopts + nstd; i++) {
        const struct vp_opt *o = i < nopts ? &cmd->opts[i] : &std_opts[i - nopts];
        lo[i].name = o->longname;
        lo[i].has_arg = o->kind == VP_OPT_FLAG ? no_argument : required_argument;
        lo[i].val = 2000 + i;
        if (o->shortname && sl + 3 < sizeof shorts) {
            shorts[sl++] = o->shortname;
            if (o->kind != VP_OPT_FLAG) shorts[sl++] = ':';
        }
    }
    shorts[sl] = 0;

    opterr = 0;
    int c, longidx;
    long threads = 0;
    int verbose = 0, quiet = 0;
    while ((c = getopt_long(argc, argv, shorts, lo, &longidx)) != -1) {
        const struct vp_opt *o = NULL;
        int idx = -1;
        if (c >= 2000) idx = c - 2000;
        else if (c != '?' && c != ':')
            for (int i = 0; i < nopts + nstd; i++) {
                const struct vp_opt *p = i < nopts ? &cmd->opts[i] : &std_opts[i - nopts];
                if (p->shortname == c) { idx = i; break; }
            }
        if (idx < 0) {
            if (optopt && optopt < 256 && optopt != '?')
                vp_usage_error("unknown or incomplete option '-%c'", optopt);
            vp_usage_error("unknown option or missing argument: '%s'", argv[optind - 1]);
        }
        o = idx < nopts ? &cmd->opts[idx] : &std_opts[idx - nopts];
        if (idx >= nopts) {
            if (!strcmp(o->longname, "help")) { vp_cli_help(cmd); exit(0); }
            if (!strcmp(o->longname, "version")) { printf("%s (voxpipe) %s\n", cmd->name, VP_VERSION); exit(0); }
            if (!strcmp(o->longname, "quiet")) quiet = 1;
            else if (!strcmp(o->longname, "verbose")) verbose++;
            else if (!strcmp(o->longname, "threads")) threads = parse_long("threads", optarg, o->min, o->max);
            continue;
        }
        apply(o, optarg);
    }
    free(lo);
    vp_verbosity = quiet ? 0 : 1 + verbose;
    if (threads > 0) vp_threads = (int)threads;
    int npos = argc - optind;
    if (npos < cmd->min_args) vp_usage_error("expected at least %d argument%s", cmd->min_args, cmd->min_args == 1 ? "" : "s");
    if (cmd->max_args >= 0 && npos > cmd->max_args) vp_usage_error("unexpected argument '%s'", argv[optind + cmd->max_args]);
    vp_install_signal_handlers();
    return optind;
}
