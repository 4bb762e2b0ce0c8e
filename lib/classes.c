/* classes.c - see classes.h */
#include "classes.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse_id(const char *s, size_t len, int64_t *v)
{
    if (!len || len > 18) return -1;
    int64_t x = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        x = x * 10 + (s[i] - '0');
    }
    *v = x;
    return 0;
}

struct idx { int64_t id; char *name; };

static int cmp_idx(const void *a, const void *b)
{
    int64_t x = ((const struct idx *)a)->id, y = ((const struct idx *)b)->id;
    return x < y ? -1 : x > y;
}

void vp_classnames_from_case(const vp_case *c, vp_classnames *t)
{
    memset(t, 0, sizeof *t);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    if (vp_case_meta_parse(c, "labels", &u) == 0 && u.data.type == MSGPACK_OBJECT_MAP) {
        const msgpack_object_map *m = &u.data.via.map;
        struct idx *e = vp_calloc(m->size ? m->size : 1, sizeof *e);
        size_t n = 0;
        for (uint32_t i = 0; i < m->size; i++) {
            const msgpack_object *k = &m->ptr[i].key, *v = &m->ptr[i].val;
            int64_t id;
            if (k->type != MSGPACK_OBJECT_STR || v->type != MSGPACK_OBJECT_STR) continue;
            if (parse_id(k->via.str.ptr, k->via.str.size, &id)) continue;
            char *name = vp_malloc(v->via.str.size + 1);
            memcpy(name, v->via.str.ptr, v->via.str.size);
            name[v->via.str.size] = 0;
            e[n++] = (struct idx){id, name};
        }
        qsort(e, n, sizeof *e, cmp_idx);
        t->ids = vp_malloc((n ? n : 1) * sizeof *t->ids);
        t->names = vp_malloc((n ? n : 1) * sizeof *t->names);
        for (size_t i = 0; i < n; i++) {
            if (t->n && t->ids[t->n - 1] == e[i].id) { free(e[i].name); continue; } /* first one wins */
            t->ids[t->n] = e[i].id;
            t->names[t->n++] = e[i].name;
        }
        free(e);
    }
    msgpack_unpacked_destroy(&u);
}

const char *vp_classnames_get(const vp_classnames *t, int64_t id)
{
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (t->ids[mid] < id) lo = mid + 1;
        else hi = mid;
    }
    return lo < t->n && t->ids[lo] == id ? t->names[lo] : NULL;
}

void vp_classnames_free(vp_classnames *t)
{
    for (size_t i = 0; i < t->n; i++) free(t->names[i]);
    free(t->ids);
    free(t->names);
    memset(t, 0, sizeof *t);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

int vp_classes_parse(const char *spec, const vp_classnames *names, int64_t **ids, size_t *n, char *why,
                     size_t whylen)
{
    size_t cap = 16, k = 0;
    int64_t *out = vp_malloc(cap * sizeof *out);
    const char *p = spec;
    int rc = 0;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        int64_t a, b;
        const char *dash = memchr(p, '-', len);
        if (!len) {
            snprintf(why, whylen, "empty item in class list '%s'", spec);
            rc = -1;
            break;
        }
        if (!parse_id(p, len, &a)) {
            b = a;
        } else if (dash && dash > p && !parse_id(p, (size_t)(dash - p), &a) &&
                   !parse_id(dash + 1, len - (size_t)(dash - p) - 1, &b)) {
            if (a > b || b - a >= VP_CLASSES_MAX_RANGE) {
                snprintf(why, whylen, "bad range '%.*s' in class list (A-B with A <= B, at most %d ids)", (int)len, p,
                         VP_CLASSES_MAX_RANGE);
                rc = -1;
                break;
            }
        } else if (p[0] >= '0' && p[0] <= '9' && dash) {
            snprintf(why, whylen, "bad range '%.*s' in class list", (int)len, p);
            rc = -1;
            break;
        } else {
            if (!names) { p = comma ? comma + 1 : p + len; if (!comma) break; continue; }
            size_t i = 0;
            for (; i < names->n; i++)
                if (strlen(names->names[i]) == len && !memcmp(names->names[i], p, len)) break;
            if (i == names->n) {
                snprintf(why, whylen, "class name '%.*s' is not in meta 'labels'", (int)len, p);
                rc = -2;
                break;
            }
            a = b = names->ids[i];
        }
        for (int64_t v = a; v <= b; v++) {
            if (k == cap) out = vp_realloc(out, (cap *= 2) * sizeof *out);
            out[k++] = v;
        }
        if (!comma) break;
        p = comma + 1;
    }
    if (rc) { free(out); return rc; }
    qsort(out, k, sizeof *out, cmp_i64);
    size_t u = 0;
    for (size_t i = 0; i < k; i++)
        if (!u || out[u - 1] != out[i]) out[u++] = out[i];
    *ids = out;
    *n = u;
    return 0;
}

int vp_group_parse(const char *arg, vp_group *g, char *why, size_t whylen)
{
    const char *eq = strchr(arg, '=');
    size_t len = eq ? (size_t)(eq - arg) : 0;
    if (!eq || !len || len >= sizeof g->name) {
        snprintf(why, whylen, "group '%s': expected NAME=LIST with a name of 1..%zu characters", arg,
                 sizeof g->name - 1);
        return -1;
    }
    int64_t dummy;
    if (!parse_id(arg, len, &dummy) || strcspn(arg, "\t\n\r\"") < len) {
        snprintf(why, whylen, "group '%s': the name must not be a number or hold tabs, newlines or quotes", arg);
        return -1;
    }
    memcpy(g->name, arg, len);
    g->name[len] = 0;
    g->spec = eq + 1;
    int64_t *ids;
    size_t n;
    if (vp_classes_parse(g->spec, NULL, &ids, &n, why, whylen)) return -1;
    free(ids);
    return 0;
}
