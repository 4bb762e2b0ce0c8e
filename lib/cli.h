/* cli.h - one option-table command-line layer shared by every voxpipe program.
 *
 * A program declares its usage as data (struct vp_cmd with a table of struct vp_opt); vp_cli_parse()
 * validates the command line against it, fills the destinations, and handles the standard options
 * every program has: -h/--help (text generated from the table), --version, -q, -v, --threads N.
 * Errors exit with VP_ERR_USAGE and "prog: error: ...".
 *
 * Ownership: string destinations point into argv (never freed); list destinations are arrays the
 * parser allocates and the program may leak at exit.
 */
#ifndef VP_CLI_H
#define VP_CLI_H

#include <stddef.h>

enum vp_opt_kind {
    VP_OPT_FLAG,   /* int *: set to 1 */
    VP_OPT_STR,    /* const char **: the argument */
    VP_OPT_INT,    /* long *: integer within [min, max] */
    VP_OPT_DOUBLE, /* double *: finite number within [min, max] */
    VP_OPT_CHOICE, /* int *: index into choices (NULL-terminated) */
    VP_OPT_LIST,   /* struct vp_strlist *: repeatable, each occurrence appended */
};

struct vp_strlist {
    const char **v;
    int n;
};

struct vp_opt {
    char shortname;       /* 0 for none */
    const char *longname; /* without leading dashes */
    const char *argname;  /* metavar shown in help; NULL for flags */
    enum vp_opt_kind kind;
    void *dest;
    const char *help;
    double min, max;            /* for INT and DOUBLE; both 0 means unbounded */
    const char *const *choices; /* for CHOICE */
};

struct vp_cmd {
    const char *name;
    const char *summary;     /* one line */
    const char *usage;       /* e.g. "[options] FILE..." */
    const char *description; /* paragraphs shown after the options, may be NULL */
    const struct vp_opt *opts; /* terminated by an entry with longname == NULL */
    int min_args, max_args;  /* positional argument count; max -1 = unbounded */
};

/* Global values of the standard options. */
extern int vp_threads; /* --threads, default: online CPUs */

/* Parse argv; returns the index of the first positional argument. Exits on --help/--version (0)
 * and on errors (2). Records argc/argv for vp_cli_argv() (provenance). */
int vp_cli_parse(const struct vp_cmd *cmd, int argc, char **argv);

/* Print generated help to stdout. */
void vp_cli_help(const struct vp_cmd *cmd);

/* The arguments vp_cli_parse() saw (argv[1..]) less transport and verbosity options (-i/--in,
 * -o/--out, --threads, -q, -v), for provenance entries: the same pipeline over pipes or ZeroMQ
 * records the same provenance. */
int vp_cli_argc(void);
char **vp_cli_argv(void);

/* Exit with a usage error. */
_Noreturn void vp_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
