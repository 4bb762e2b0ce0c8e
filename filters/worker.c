/* worker - serve a fanout broker: run a voxpipe filter once per case it hands out. */
#include "cli.h"
#include "fanout_proto.h"
#include "fanout_worker.h"
#include "util.h"

#include <stdio.h>
#include <unistd.h>

static const char *connect_spec = NULL, *name = NULL;
static const char *key_file = NULL, *server_key = NULL;
static int insecure, fresh;
static long credit = 2, jobs = 1;
static double heartbeat_s = 1, timeout_s = 10, max_frame_mib = 4096;

static const struct vp_opt opts[] = {
    {'c', "connect", "ENDPOINT", VP_OPT_STR, &connect_spec, "the broker's endpoint, e.g. tcp://head:5560 (required)", 0, 0, NULL},
    {0, "name", "NAME", VP_OPT_STR, &name, "name in the broker's log and summary (default HOST:PID)", 0, 0, NULL},
    {0, "credit", "N", VP_OPT_INT, &credit, "most cases held at once, running or waiting (default 2)", 1, 1024, NULL},
    {'j', "jobs", "N", VP_OPT_INT, &jobs, "filter processes at once, each kept from case to case (default 1; at most --credit)", 1, 1024, NULL},
    {0, "fresh", NULL, VP_OPT_FLAG, &fresh, "a new filter process per case (for programs that read all their input first)", 0, 0, NULL},
    {0, "key", "FILE", VP_OPT_STR, &key_file, "this worker's secret key file (vp-keygen)", 0, 0, NULL},
    {0, "server-key", "FILE", VP_OPT_STR, &server_key, "the broker's public key file", 0, 0, NULL},
    {0, "insecure", NULL, VP_OPT_FLAG, &insecure, "plain TCP without CURVE (the broker must be --insecure too)", 0, 0, NULL},
    {0, "heartbeat", "SEC", VP_OPT_DOUBLE, &heartbeat_s, "heartbeat interval (default 1)", 0.01, 3600, NULL},
    {0, "timeout", "SEC", VP_OPT_DOUBLE, &timeout_s, "the broker silent this long: drop held cases, register again (default 10)", 0.05, 86400, NULL},
    {0, "max-frame", "MIB", VP_OPT_DOUBLE, &max_frame_mib, "largest frame in MiB accepted (ZMQ_MAXMSGSIZE; default 4096)", 1, 1 << 30, NULL},
    {0, NULL, NULL, 0, NULL, NULL, 0, 0, NULL},
};

static const struct vp_cmd cmd = {
    "worker", "serve a fanout broker: feed its cases to a voxpipe filter",
    "[options] --connect ENDPOINT -- FILTER [ARGS...]",
    "Each case the broker hands out is written to a 'FILTER ARGS...' process on its stdin; the one\n"
    "frame it writes back to stdout (same case id) is the result. Each of the --jobs slots keeps its\n"
    "filter process running from case to case (voxpipe filters stream, one frame out per frame in);\n"
    "a filter that exits or is killed fails its case (the broker hands it out again) and the next\n"
    "case starts a new process. With --fresh each case gets a new process and its exit status 0 is\n"
    "required too (for programs that read all their input before writing). The filter needs no code\n"
    "of its own, and its provenance is the same as in a plain pipe ('FILTER ARGS...').\n"
    "Heartbeats continue while the filter runs. The worker exits 0 when the broker says the stream\n"
    "is over; when the broker is silent past --timeout it drops its cases and registers again.\n"
    "CURVE (default) needs --key and --server-key; see 'fanout --help' and docs/FANOUT.md.",
    opts, 1, -1,
};

int main(int argc, char **argv)
{
    int first = vp_cli_parse(&cmd, argc, argv);
    vp_fo_malloc_tune();
    if (!connect_spec) vp_usage_error("--connect ENDPOINT is required");
    if (!insecure && (!key_file || !server_key)) vp_usage_error("CURVE needs --key and --server-key (or --insecure)");
    if (insecure && (key_file || server_key)) vp_usage_error("--insecure and --key/--server-key exclude each other");
    if (jobs > credit) jobs = credit;
    char host[64] = "?", defname[100];
    gethostname(host, sizeof host - 1);
    snprintf(defname, sizeof defname, "%s:%d", host, (int)getpid());
    struct vp_fo_worker_cfg cfg = {
        connect_spec, name ? name : defname, credit, jobs, (long)(heartbeat_s * 1000), (long)(timeout_s * 1000),
        (uint64_t)(max_frame_mib * 1048576.0), key_file, server_key, insecure, fresh, argv + first,
    };
    if (cfg.timeout_ms <= cfg.heartbeat_ms) vp_usage_error("--timeout must be longer than --heartbeat");
    return vp_fo_worker_run(&cfg);
}
