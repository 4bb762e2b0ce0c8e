/* vp-keygen - make a CurveZMQ key pair for fanout/worker: NAME.pub (public) and NAME.key (secret, 0600). */
#include "cli.h"
#include "fanout_proto.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

static int force;

static const struct vp_opt opts[] = {
    {'f', "force", NULL, VP_OPT_FLAG, &force, "overwrite existing key files", 0, 0, NULL},
    {0, NULL, NULL, 0, NULL, NULL, 0, 0, NULL},
};

static const struct vp_cmd cmd = {
    "vp-keygen", "make a CurveZMQ key pair (Z85 text files) for fanout and worker",
    "[options] NAME",
    "Writes NAME.pub (the public key, one Z85 line: give it to the broker's --allow directory, or\n"
    "as --server-key to workers) and NAME.key (the secret and public key, mode 0600: keep it on\n"
    "this node). Existing files are kept unless --force. Needs libzmq with libsodium.",
    opts, 1, 1,
};

static int write_file(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | (force ? O_TRUNC : O_EXCL), mode);
    if (fd < 0) return vp_error("'%s': cannot create: %s%s", path, strerror(errno), errno == EEXIST ? " (use --force)" : "");
    fchmod(fd, mode); /* whatever the umask, and for an overwritten file */
    size_t n = strlen(text);
    int rc = write(fd, text, n) == (ssize_t)n ? 0 : vp_error("'%s': write failed: %s", path, strerror(errno));
    if (close(fd) && !rc) rc = vp_error("'%s': close failed: %s", path, strerror(errno));
    return rc;
}

int main(int argc, char **argv)
{
    int first = vp_cli_parse(&cmd, argc, argv);
    const char *name = argv[first];
    if (!vp_fo_have_curve(1)) return VP_ERR_RUNTIME;
    char pub[41], sec[41];
    if (zmq_curve_keypair(pub, sec)) vp_die(VP_ERR_RUNTIME, "cannot make a key pair: %s", zmq_strerror(errno));
    char path[4096], text[256];
    snprintf(path, sizeof path, "%s.key", name);
    snprintf(text, sizeof text, "# voxpipe CurveZMQ secret key: keep private\npublic: %s\nsecret: %s\n", pub, sec);
    if (write_file(path, text, 0600)) return VP_ERR_RUNTIME;
    memset(text, 0, sizeof text);
    memset(sec, 0, sizeof sec);
    snprintf(path, sizeof path, "%s.pub", name);
    snprintf(text, sizeof text, "%s\n", pub);
    if (write_file(path, text, 0644)) return VP_ERR_RUNTIME;
    vp_info("wrote %s.key (secret, mode 0600) and %s.pub", name, name);
    return 0;
}
