/* pathpat.c - see pathpat.h */
#include "pathpat.h"
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int vp_name_is_safe(const char *s)
{
    size_t n = strlen(s);
    if (!n || n > 255 || s[0] == '.') return 0;
    for (const char *p = s; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' || c == '+'))
            return 0;
    }
    return 1;
}

int vp_path_has(const char *pattern, const char *token) { return strstr(pattern, token) != NULL; }

char *vp_path_expand(const char *pat, const char *id, const char *vol)
{
    size_t cap = strlen(pat) + 1, len = 0;
    const char *vals[2] = {id, vol}, *names[2] = {"{id}", "{vol}"};
    for (int i = 0; i < 2; i++)
        if (vals[i]) {
            if (strstr(pat, names[i]) && !vp_name_is_safe(vals[i])) {
                vp_error("%s '%s' is not safe in a file name (allowed: letters, digits, . _ + -, no leading dot)",
                         i ? "volume name" : "case id", vals[i]);
                return NULL;
            }
            cap += 8 * strlen(vals[i]) + 8;
        }
    char *out = vp_malloc(cap);
    for (const char *p = pat; *p;) {
        int done = 0;
        for (int i = 0; i < 2 && !done; i++) {
            size_t tl = strlen(names[i]);
            if (!strncmp(p, names[i], tl)) {
                if (!vals[i]) { free(out); vp_error("pattern '%s' uses %s, which has no value here", pat, names[i]); return NULL; }
                size_t vl = strlen(vals[i]);
                if (len + vl + 1 > cap) { cap = len + vl + 1 + strlen(p); out = vp_realloc(out, cap); }
                memcpy(out + len, vals[i], vl);
                len += vl;
                p += tl;
                done = 1;
            }
        }
        if (done) continue;
        if (*p == '{') { free(out); vp_error("pattern '%s': unknown placeholder (known: {id}, {vol})", pat); return NULL; }
        if (len + 2 > cap) { cap = cap * 2 + 2; out = vp_realloc(out, cap); }
        out[len++] = *p++;
    }
    out[len] = 0;
    return out;
}

int vp_mkdir_parents(const char *path)
{
    char *d = vp_strdup(path);
    char *slash = strrchr(d, '/');
    if (!slash || slash == d) { free(d); return 0; }
    *slash = 0;
    for (char *p = d + 1; ; p++) {
        if (*p == '/' || *p == 0) {
            char c = *p;
            *p = 0;
            if (mkdir(d, 0777) && errno != EEXIST) {
                vp_error("'%s': cannot create directory: %s", d, strerror(errno));
                free(d);
                return -1;
            }
            if (!c) break;
            *p = c;
        }
    }
    free(d);
    return 0;
}
