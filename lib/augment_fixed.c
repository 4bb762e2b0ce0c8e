/* augment_fixed.c - the --fixed parameter specification of augment.h (vp_aug_parse_fixed). */
#include "augment.h"
#include "util.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int parse_values(const char *key, const char *s, size_t len, double *v, int maxn)
{
    int n = 0;
    const char *p = s, *end = s + len;
    while (p < end) {
        if (n == maxn) return vp_error("--fixed: %s: more than %d values", key, maxn), -1;
        char buf[64];
        size_t k = 0;
        while (p < end && *p != ',' && k < sizeof buf - 1) buf[k++] = *p++;
        buf[k] = 0;
        char *e;
        errno = 0;
        v[n] = strtod(buf, &e);
        if (!k || *e || errno == ERANGE) return vp_error("--fixed: %s: '%s' is not a number", key, buf), -1;
        if (!isfinite(v[n])) return vp_error("--fixed: %s: %s is not finite", key, buf), -1;
        n++;
        if (p < end) p++; /* ',' */
    }
    if (!n) return vp_error("--fixed: %s: no value", key), -1;
    return n;
}

int vp_aug_parse_fixed(const char *spec, struct vp_aug_fixed *f)
{
    memset(f, 0, sizeof *f);
    for (int a = 0; a < 3; a++) f->scale[a] = 1;
    int nel = 0; /* elastic_scale 1, elastic_mag 2 */
    const char *p = spec;
    while (*p) {
        const char *semi = strchr(p, ';'), *end = semi ? semi : p + strlen(p);
        const char *eq = memchr(p, '=', (size_t)(end - p));
        if (!eq) return vp_error("--fixed: '%.*s' is not key=value", (int)(end - p), p);
        char key[32];
        size_t kl = (size_t)(eq - p);
        if (kl >= sizeof key) kl = sizeof key - 1;
        memcpy(key, p, kl);
        key[kl] = 0;
        double v[3];
        int n = parse_values(key, eq + 1, (size_t)(end - eq - 1), v, 3);
        if (n < 0) return -1;
        int one = n == 1, three = n == 3;
        if (!strcmp(key, "centre") || !strcmp(key, "center")) {
            if (!three) return vp_error("--fixed: centre needs 3 values");
            f->has_centre = 1;
            memcpy(f->centre, v, sizeof f->centre);
        } else if (!strcmp(key, "rotation")) {
            if (!three) return vp_error("--fixed: rotation needs 3 angles (radians)");
            f->set[VP_AUG_ROTATION] = 1;
            memcpy(f->rotation, v, sizeof f->rotation);
        } else if (!strcmp(key, "scaling") || !strcmp(key, "blur") || !strncmp(key, "elastic_", 8)) {
            int bl = key[0] == 'b', el = key[0] == 'e';
            if (el && strcmp(key, "elastic_scale") && strcmp(key, "elastic_mag"))
                return vp_error("--fixed: unknown key '%s'", key);
            if (!one && !three) return vp_error("--fixed: %s needs 1 or 3 values", key);
            double *dst = bl ? f->blur : !el ? f->scale : key[8] == 's' ? f->elastic_scale : f->elastic_mag;
            for (int a = 0; a < 3; a++) {
                dst[a] = v[one ? 0 : a];
                if (el ? dst[a] < 0 : dst[a] <= 0) return vp_error("--fixed: %s: %g is out of range", key, dst[a]);
            }
            if (el) nel |= key[8] == 's' ? 1 : 2;
            else f->set[bl ? VP_AUG_BLUR : VP_AUG_SCALING] = 1;
        } else if (!strcmp(key, "flip")) {
            if (!three) return vp_error("--fixed: flip needs 3 values (0 or 1)");
            for (int a = 0; a < 3; a++) {
                if (v[a] != 0 && v[a] != 1) return vp_error("--fixed: flip: %g is not 0 or 1", v[a]);
                f->flip[a] = (int)v[a];
            }
            f->set[VP_AUG_FLIP] = 1;
        } else {
            static const struct { const char *k; enum vp_aug_t t; int pos; } sc[] = {
                {"noise", VP_AUG_NOISE, 0},         {"brightness", VP_AUG_BRIGHTNESS, 0},
                {"contrast", VP_AUG_CONTRAST, 0},   {"lowres", VP_AUG_LOWRES, 1},
                {"gamma_inv", VP_AUG_GAMMA_INV, 1}, {"gamma", VP_AUG_GAMMA, 1}};
            int i, ns = (int)(sizeof sc / sizeof sc[0]);
            for (i = 0; i < ns && strcmp(key, sc[i].k); i++) {}
            if (i == ns) return vp_error("--fixed: unknown key '%s'", key);
            if (!one) return vp_error("--fixed: %s needs 1 value", key);
            if (sc[i].pos ? v[0] <= 0 : v[0] < 0) return vp_error("--fixed: %s: %g is out of range", key, v[0]);
            double *dst[] = {&f->noise, &f->brightness, &f->contrast, &f->lowres, &f->gamma_inv, &f->gamma};
            *dst[i] = v[0];
            f->set[sc[i].t] = 1;
        }
        p = semi ? semi + 1 : end;
    }
    if (nel && nel != 3) return vp_error("--fixed: elastic needs both elastic_scale and elastic_mag");
    f->set[VP_AUG_ELASTIC] = nel == 3;
    return 0;
}

