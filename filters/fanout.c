/* fanout - hand a stream of cases to remote workers and gather their results, each case exactly once. */
#include "cli.h"
#include "fanout_proto.h"
#include "fanout.h"
#include "util.h"

#include <stdlib.h>

static const char *in_spec = "-";
static const char *out_spec = "-";
static const char *bind_spec = NULL;
static const char *key_file = NULL, *allow = NULL;
static int ordered, insecure;
static long window = 64, max_attempts = 3;
static double heartbeat_s = 1, timeout_s = 10, case_timeout_s = 0, max_frame_mib = 4096;

static const struct vp_opt opts[] = {
    {'i', "in", "ENDPOINT", VP_OPT_STR, &in_spec, "where to read the cases: -, FILE, @tcp://ADDR:PORT, >tcp://HOST:PORT", 0, 0, NULL},
    {'o', "out", "ENDPOINT", VP_OPT_STR, &out_spec, "where to write the results: -, FILE, @tcp://ADDR:PORT, >tcp://HOST:PORT", 0, 0, NULL},
    {0, "bind", "ENDPOINT", VP_OPT_STR, &bind_spec, "where workers connect, e.g. tcp://0.0.0.0:5560 or ipc:///tmp/fo (required)", 0, 0, NULL},
    {0, "key", "FILE", VP_OPT_STR, &key_file, "the broker's secret key file (vp-keygen)", 0, 0, NULL},
    {0, "allow", "DIR|FILE", VP_OPT_STR, &allow, "worker public keys admitted: a directory of *.pub files or a file of keys", 0, 0, NULL},
    {0, "insecure", NULL, VP_OPT_FLAG, &insecure, "plain TCP without CURVE or authentication (trusted networks only)", 0, 0, NULL},
    {0, "ordered", NULL, VP_OPT_FLAG, &ordered, "write results in input order (default: as they finish)", 0, 0, NULL},
    {0, "window", "N", VP_OPT_INT, &window, "--ordered: most cases read ahead of the oldest unwritten one (default 64)", 1, 1000000, NULL},
    {0, "max-attempts", "K", VP_OPT_INT, &max_attempts, "give a case up after it failed on K workers (default 3)", 1, 1000, NULL},
    {0, "heartbeat", "SEC", VP_OPT_DOUBLE, &heartbeat_s, "heartbeat interval (default 1)", 0.01, 3600, NULL},
    {0, "timeout", "SEC", VP_OPT_DOUBLE, &timeout_s, "a worker silent this long is dead and its cases go elsewhere (default 10)", 0.05, 86400, NULL},
    {0, "case-timeout", "SEC", VP_OPT_DOUBLE, &case_timeout_s, "take a case back when its worker has not answered in SEC (default 0: never)", 0, 1e7, NULL},
    {0, "max-frame", "MIB", VP_OPT_DOUBLE, &max_frame_mib, "largest frame in MiB a peer may send (ZMQ_MAXMSGSIZE; default 4096)", 1, 1 << 30, NULL},
    {0, NULL, NULL, 0, NULL, NULL, 0, 0, NULL},
};

static const struct vp_cmd cmd = {
    "fanout", "hand a stream of cases to remote workers and gather the results (each case exactly once)",
    "[options] --bind ENDPOINT",
    "Workers ('worker --connect ENDPOINT -- FILTER ARGS...') connect to --bind, say how many cases\n"
    "they hold at once (credit), and get cases only while they have credit; the input is read only\n"
    "as fast as workers take cases. Heartbeats go both ways: a worker silent past --timeout is dead\n"
    "and its cases go to another worker. Each case id appears once in the output; a late duplicate\n"
    "result is dropped with a log line. A case that fails on --max-attempts workers is reported and\n"
    "skipped. SIGINT/SIGTERM: read no more input, finish the cases already read, then stop (a second\n"
    "signal aborts). A summary (cases, retries, per-worker counts and throughput) goes to stderr.\n"
    "\n"
    "Security: by default every connection uses CurveZMQ (needs libzmq with libsodium, checked at\n"
    "start): --key is the broker's secret key, and a ZAP handler admits only workers whose public key\n"
    "is in --allow; every other peer (unknown key, plain TCP) is refused. --insecure turns it off.\n"
    "Protocol and design: docs/FANOUT.md.\n"
    "\n"
    "exit codes: 0 every case written; 1 a case given up (the others are written) or a runtime error;\n"
    "3 bad input data (output discarded); 130 interrupted (the cases already read are written)",
    opts, 0, 0,
};

int main(int argc, char **argv)
{
    vp_cli_parse(&cmd, argc, argv);
    vp_fo_malloc_tune();
    if (!bind_spec) vp_usage_error("--bind ENDPOINT is required");
    if (insecure && (key_file || allow)) vp_usage_error("--insecure and --key/--allow exclude each other");
    struct vp_fanout_cfg cfg = {
        in_spec, out_spec, bind_spec, ordered, window, max_attempts,
        (long)(heartbeat_s * 1000), (long)(timeout_s * 1000), (long)(case_timeout_s * 1000),
        (uint64_t)(max_frame_mib * 1048576.0), key_file, allow, insecure,
    };
    if (cfg.timeout_ms <= cfg.heartbeat_ms) vp_usage_error("--timeout must be longer than --heartbeat");
    return vp_fanout_run(&cfg);
}
