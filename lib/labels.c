/* labels.c - see labels.h */
#include "labels.h"
#include "frame.h"
#include "util.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* TotalSegmentator v2, task "total": class_map["total"] in totalsegmentator/map_to_binary.py of
 * github.com/wasserth/TotalSegmentator (checked against commit 0275d304; release 2.2.1 fixed the rib
 * order, so older 2.0/2.1 copies of the file differ at ids 92..115). Index = id. */
static const char *const totalseg_v2[VP_TOTALSEG_V2_N + 1] = {
    NULL,
    "spleen",                      /*   1 */
    "kidney_right",                /*   2 */
    "kidney_left",                 /*   3 */
    "gallbladder",                 /*   4 */
    "liver",                       /*   5 */
    "stomach",                     /*   6 */
    "pancreas",                    /*   7 */
    "adrenal_gland_right",         /*   8 */
    "adrenal_gland_left",          /*   9 */
    "lung_upper_lobe_left",        /*  10 */
    "lung_lower_lobe_left",        /*  11 */
    "lung_upper_lobe_right",       /*  12 */
    "lung_middle_lobe_right",      /*  13 */
    "lung_lower_lobe_right",       /*  14 */
    "esophagus",                   /*  15 */
    "trachea",                     /*  16 */
    "thyroid_gland",               /*  17 */
    "small_bowel",                 /*  18 */
    "duodenum",                    /*  19 */
    "colon",                       /*  20 */
    "urinary_bladder",             /*  21 */
    "prostate",                    /*  22 */
    "kidney_cyst_left",            /*  23 */
    "kidney_cyst_right",           /*  24 */
    "sacrum",                      /*  25 */
    "vertebrae_S1",                /*  26 */
    "vertebrae_L5",                /*  27 */
    "vertebrae_L4",                /*  28 */
    "vertebrae_L3",                /*  29 */
    "vertebrae_L2",                /*  30 */
    "vertebrae_L1",                /*  31 */
    "vertebrae_T12",               /*  32 */
    "vertebrae_T11",               /*  33 */
    "vertebrae_T10",               /*  34 */
    "vertebrae_T9",                /*  35 */
    "vertebrae_T8",                /*  36 */
    "vertebrae_T7",                /*  37 */
    "vertebrae_T6",                /*  38 */
    "vertebrae_T5",                /*  39 */
    "vertebrae_T4",                /*  40 */
    "vertebrae_T3",                /*  41 */
    "vertebrae_T2",                /*  42 */
    "vertebrae_T1",                /*  43 */
    "vertebrae_C7",                /*  44 */
    "vertebrae_C6",                /*  45 */
    "vertebrae_C5",                /*  46 */
    "vertebrae_C4",                /*  47 */
    "vertebrae_C3",                /*  48 */
    "vertebrae_C2",                /*  49 */
    "vertebrae_C1",                /*  50 */
    "heart",                       /*  51 */
    "aorta",                       /*  52 */
    "pulmonary_vein",              /*  53 */
    "brachiocephalic_trunk",       /*  54 */
    "subclavian_artery_right",     /*  55 */
    "subclavian_artery_left",      /*  56 */
    "common_carotid_artery_right", /*  57 */
    "common_carotid_artery_left",  /*  58 */
    "brachiocephalic_vein_left",   /*  59 */
    "brachiocephalic_vein_right",  /*  60 */
    "atrial_appendage_left",       /*  61 */
    "superior_vena_cava",          /*  62 */
    "inferior_vena_cava",          /*  63 */
    "portal_vein_and_splenic_vein", /* 64 */
    "iliac_artery_left",           /*  65 */
    "iliac_artery_right",          /*  66 */
    "iliac_vena_left",             /*  67 */
    "iliac_vena_right",            /*  68 */
    "humerus_left",                /*  69 */
    "humerus_right",               /*  70 */
    "scapula_left",                /*  71 */
    "scapula_right",               /*  72 */
    "clavicula_left",              /*  73 */
    "clavicula_right",             /*  74 */
    "femur_left",                  /*  75 */
    "femur_right",                 /*  76 */
    "hip_left",                    /*  77 */
    "hip_right",                   /*  78 */
    "spinal_cord",                 /*  79 */
    "gluteus_maximus_left",        /*  80 */
    "gluteus_maximus_right",       /*  81 */
    "gluteus_medius_left",         /*  82 */
    "gluteus_medius_right",        /*  83 */
    "gluteus_minimus_left",        /*  84 */
    "gluteus_minimus_right",       /*  85 */
    "autochthon_left",             /*  86 */
    "autochthon_right",            /*  87 */
    "iliopsoas_left",              /*  88 */
    "iliopsoas_right",             /*  89 */
    "brain",                       /*  90 */
    "skull",                       /*  91 */
    "rib_left_1",                  /*  92 */
    "rib_left_2",                  /*  93 */
    "rib_left_3",                  /*  94 */
    "rib_left_4",                  /*  95 */
    "rib_left_5",                  /*  96 */
    "rib_left_6",                  /*  97 */
    "rib_left_7",                  /*  98 */
    "rib_left_8",                  /*  99 */
    "rib_left_9",                  /* 100 */
    "rib_left_10",                 /* 101 */
    "rib_left_11",                 /* 102 */
    "rib_left_12",                 /* 103 */
    "rib_right_1",                 /* 104 */
    "rib_right_2",                 /* 105 */
    "rib_right_3",                 /* 106 */
    "rib_right_4",                 /* 107 */
    "rib_right_5",                 /* 108 */
    "rib_right_6",                 /* 109 */
    "rib_right_7",                 /* 110 */
    "rib_right_8",                 /* 111 */
    "rib_right_9",                 /* 112 */
    "rib_right_10",                /* 113 */
    "rib_right_11",                /* 114 */
    "rib_right_12",                /* 115 */
    "sternum",                     /* 116 */
    "costal_cartilages",           /* 117 */
};

const char *vp_totalseg_v2_name(int id)
{
    return id >= 1 && id <= VP_TOTALSEG_V2_N ? totalseg_v2[id] : NULL;
}

int vp_totalseg_v2_id(const char *name)
{
    if (!name) return -1;
    for (int id = 1; id <= VP_TOTALSEG_V2_N; id++)
        if (!strcmp(totalseg_v2[id], name)) return id;
    return -1;
}

static void pack_id_key(msgpack_packer *pk, int32_t id)
{
    char key[16];
    snprintf(key, sizeof key, "%d", (int)id);
    vp_pack_cstr(pk, key);
}

void vp_labels_pack_totalseg_v2(msgpack_packer *pk)
{
    msgpack_pack_map(pk, VP_TOTALSEG_V2_N);
    for (int id = 1; id <= VP_TOTALSEG_V2_N; id++) {
        pack_id_key(pk, id);
        vp_pack_cstr(pk, totalseg_v2[id]);
    }
}

/* ---- label maps ---- */

const char *const vp_labelmap_preset_names[] = {"spine25", "totalseg-v2", NULL};

void vp_labelmap_clear(vp_labelmap *m)
{
    for (int i = 0; i < m->nnames; i++) free(m->names[i].name);
    free(m->names);
    m->names = NULL;
    m->nnames = 0;
}

static void labelmap_init(vp_labelmap *m)
{
    memset(m->map, 0, sizeof m->map);
    m->keep_other = 0;
    m->other = 0;
    m->nnames = 0;
    m->names = NULL;
}

/* Index of id in the sorted name table, or -(insertion point) - 1. */
static int name_find(const vp_labelmap *m, int32_t id)
{
    int lo = 0, hi = m->nnames;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (m->names[mid].id == id) return mid;
        if (m->names[mid].id < id) lo = mid + 1;
        else hi = mid;
    }
    return -lo - 1;
}

const char *vp_labelmap_name(const vp_labelmap *m, int32_t id)
{
    int i = name_find(m, id);
    return i >= 0 ? m->names[i].name : NULL;
}

/* Set the name of output id; returns the existing different name on a conflict, else NULL. */
static const char *name_set(vp_labelmap *m, int32_t id, const char *name)
{
    int i = name_find(m, id);
    if (i >= 0) return strcmp(m->names[i].name, name) ? m->names[i].name : NULL;
    i = -i - 1;
    m->names = vp_realloc(m->names, (size_t)(m->nnames + 1) * sizeof *m->names);
    memmove(&m->names[i + 1], &m->names[i], (size_t)(m->nnames - i) * sizeof *m->names);
    m->names[i] = (vp_label_name){id, vp_strdup(name)};
    m->nnames++;
    return NULL;
}

int vp_labelmap_preset(const char *name, vp_labelmap *m)
{
    labelmap_init(m);
    char buf[32];
    if (!strcmp(name, "spine25")) {
        /* v2 ids: 50..44 = C1..C7, 43..32 = T1..T12, 31..27 = L1..L5, 26 = S1, 25 = sacrum */
        for (int k = 1; k <= 7; k++) {
            m->map[51 - k] = k;
            snprintf(buf, sizeof buf, "vertebrae_C%d", k);
            name_set(m, k, buf);
        }
        for (int k = 1; k <= 12; k++) {
            m->map[44 - k] = 7 + k;
            snprintf(buf, sizeof buf, "vertebrae_T%d", k);
            name_set(m, 7 + k, buf);
        }
        for (int k = 1; k <= 5; k++) {
            m->map[32 - k] = 19 + k;
            snprintf(buf, sizeof buf, "vertebrae_L%d", k);
            name_set(m, 19 + k, buf);
        }
        m->map[25] = 25;
        m->map[26] = 25;
        name_set(m, 25, "sacrum");
        return 0;
    }
    if (!strcmp(name, "totalseg-v2")) {
        for (int id = 1; id <= VP_TOTALSEG_V2_N; id++) {
            m->map[id] = id;
            name_set(m, id, totalseg_v2[id]);
        }
        return 0;
    }
    char list[256] = "";
    for (int i = 0; vp_labelmap_preset_names[i]; i++) {
        if (i) strncat(list, ", ", sizeof list - strlen(list) - 1);
        strncat(list, vp_labelmap_preset_names[i], sizeof list - strlen(list) - 1);
    }
    return vp_error("unknown label map preset '%s' (known: %s)", name, list);
}

/* ---- map files ---- */

static int parse_int(const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno == ERANGE || end == s || *end) return -1; /* not an integer */
    if (v < lo || v > hi) return -2;                    /* out of range */
    *out = v;
    return 0;
}

static char *skip_ws(char *s)
{
    while (*s == ' ' || *s == '\t') s++;
    return s;
}

/* Cut the next whitespace-delimited token out of *p; NULL at the end of the line. */
static char *next_token(char **p)
{
    char *s = skip_ws(*p);
    if (!*s) return NULL;
    char *e = s;
    while (*e && *e != ' ' && *e != '\t') e++;
    if (*e) *e++ = 0;
    *p = e;
    return s;
}

int vp_labelmap_load(const char *path, vp_labelmap *m)
{
    labelmap_init(m);
    FILE *f = fopen(path, "r");
    if (!f) return vp_error("%s: %s", path, strerror(errno));
    uint32_t *set_on = vp_calloc(VP_LABELMAP_N, sizeof *set_on); /* line that mapped each value */
    long star_line = 0;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long lineno = 0;
    int rc = 0;

    while ((len = getline(&line, &cap, f)) != -1) {
        lineno++;
        if ((size_t)len != strlen(line)) { rc = vp_error("%s:%ld: NUL byte in line", path, lineno); break; }
        char *hash = strchr(line, '#');
        if (hash) *hash = 0;
        size_t n = strlen(line);
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t'))
            line[--n] = 0;
        char *p = line;
        char *from_s = next_token(&p);
        if (!from_s) continue; /* blank or comment */
        char *to_s = next_token(&p);
        char *name = skip_ws(p);
        if (!to_s) {
            rc = vp_error("%s:%ld: expected 'FROM TO [NAME]', got '%s'", path, lineno, from_s);
            break;
        }
        long long to;

        if (!strcmp(from_s, "*")) {
            if (star_line) {
                rc = vp_error("%s:%ld: a second '*' line (the first is line %ld)", path, lineno, star_line);
                break;
            }
            if (*name) {
                rc = vp_error("%s:%ld: a '*' line takes no name, got '%s'", path, lineno, name);
                break;
            }
            star_line = lineno;
            if (!strcmp(to_s, "KEEP")) {
                m->keep_other = 1;
            } else if (parse_int(to_s, INT32_MIN, INT32_MAX, &to) == 0) {
                m->other = (int32_t)to;
            } else {
                rc = vp_error("%s:%ld: '* %s': expected '* KEEP' or '* N' with an int32 N", path, lineno, to_s);
                break;
            }
            continue;
        }

        long long from;
        int r = parse_int(from_s, 0, VP_LABELMAP_N - 1, &from);
        if (r == -2) {
            rc = vp_error("%s:%ld: FROM value %s is outside 0..%d", path, lineno, from_s, VP_LABELMAP_N - 1);
            break;
        }
        if (r == -1) {
            from = vp_totalseg_v2_id(from_s);
            if (from < 0) {
                rc = vp_error("%s:%ld: FROM '%s' is neither a number nor a TotalSegmentator v2 class name",
                              path, lineno, from_s);
                break;
            }
        }
        r = parse_int(to_s, INT32_MIN, INT32_MAX, &to);
        if (r) {
            rc = vp_error("%s:%ld: TO '%s' is not %s", path, lineno, to_s,
                          r == -1 ? "an integer" : "within the int32 range");
            break;
        }
        if (set_on[from]) {
            rc = vp_error("%s:%ld: value %lld is already mapped on line %u", path, lineno, from, set_on[from]);
            break;
        }
        set_on[from] = lineno > UINT32_MAX ? UINT32_MAX : (uint32_t)lineno;
        m->map[from] = (int32_t)to;
        if (*name) {
            const char *old = name_set(m, (int32_t)to, name);
            if (old) {
                rc = vp_error("%s:%ld: output %lld is named '%s' here but '%s' before", path, lineno, to, name, old);
                break;
            }
        }
    }
    if (!rc && ferror(f)) rc = vp_error("%s: %s", path, strerror(errno));
    free(line);
    fclose(f);
    if (!rc && !m->keep_other) {
        for (int v = 0; v < VP_LABELMAP_N; v++)
            if (!set_on[v]) m->map[v] = m->other;
    } else if (!rc) {
        for (int v = 0; v < VP_LABELMAP_N; v++)
            if (!set_on[v]) m->map[v] = v;
    }
    free(set_on);
    if (rc) vp_labelmap_clear(m);
    return rc;
}

void vp_labelmap_pack_names(const vp_labelmap *m, msgpack_packer *pk)
{
    msgpack_pack_map(pk, (size_t)m->nnames);
    for (int i = 0; i < m->nnames; i++) {
        pack_id_key(pk, m->names[i].id);
        vp_pack_cstr(pk, m->names[i].name);
    }
}

/* ---- applying ---- */

static int fits(enum vp_dtype t, int64_t lo, int64_t hi)
{
    switch (t) {
    case VP_U8: return lo >= 0 && hi <= UINT8_MAX;
    case VP_U16: return lo >= 0 && hi <= UINT16_MAX;
    case VP_I16: return lo >= INT16_MIN && hi <= INT16_MAX;
    case VP_I32: return lo >= INT32_MIN && hi <= INT32_MAX;
    default: return 0;
    }
}

int vp_labelmap_out_dtype(const vp_labelmap *m, enum vp_dtype t)
{
    int64_t lo = INT64_MAX, hi = INT64_MIN;
    int top; /* highest input value the dtype can hold within the table */
    switch (t) {
    case VP_U8: top = UINT8_MAX; break;
    case VP_U16: top = UINT16_MAX; break;
    case VP_I16: top = INT16_MAX; break;
    case VP_I32: return VP_I32;
    default: return -1;
    }
    for (int v = 0; v <= top; v++) {
        if (m->map[v] < lo) lo = m->map[v];
        if (m->map[v] > hi) hi = m->map[v];
    }
    if (t == VP_I16) { /* negative inputs go to `other` or stay */
        int64_t a = m->keep_other ? INT16_MIN : m->other, b = m->keep_other ? -1 : m->other;
        if (a < lo) lo = a;
        if (b > hi) hi = b;
    }
    if (fits(t, lo, hi)) return t;
    if (fits(VP_U16, lo, hi)) return VP_U16;
    if (fits(VP_I16, lo, hi)) return VP_I16;
    return VP_I32;
}

static inline int32_t map_value(const vp_labelmap *m, int64_t v)
{
    if (v >= 0 && v < VP_LABELMAP_N) return m->map[v];
    return m->keep_other ? (int32_t)v : m->other;
}

/* Remap n voxels of type IN from src into dst of type OUT through a lookup table indexed by the
 * input's bit pattern (256 or 65536 entries). src and dst may be the same buffer when IN == OUT. */
#define REMAP_LUT(IN, UIN, OUT, NLUT)                                           \
    do {                                                                        \
        OUT *lut = vp_malloc((NLUT) * sizeof *lut);                             \
        for (size_t u = 0; u < (NLUT); u++) lut[u] = (OUT)map_value(m, (IN)(UIN)u); \
        const UIN *s = src;                                                     \
        OUT *d = dst;                                                           \
        for (uint64_t i = 0; i < n; i++) d[i] = lut[s[i]];                      \
        free(lut);                                                              \
    } while (0)

int vp_labelmap_apply(const vp_labelmap *m, vp_vol *v, const char *ctx)
{
    int ot = vp_labelmap_out_dtype(m, v->dtype);
    if (ot < 0)
        return vp_error("%s: dtype %s is not an integer type; a label map applies to u8, u16, i16 or i32 volumes",
                        ctx, vp_dtype_name(v->dtype));
    uint64_t n = vp_vol_nvox(v);
    const void *src = v->data;
    void *dst = v->data, *newalloc = NULL;
    if ((enum vp_dtype)ot != v->dtype) {
        uint64_t bytes;
        if (vp_mul_overflow(n, vp_dtype_size((enum vp_dtype)ot), &bytes) || bytes > SIZE_MAX)
            return vp_error("%s: volume too large to widen to %s", ctx, vp_dtype_name((enum vp_dtype)ot));
        newalloc = dst = vp_malloc(bytes ? (size_t)bytes : 1);
        vp_debug("%s: label values need %s, widening from %s", ctx, vp_dtype_name((enum vp_dtype)ot),
                 vp_dtype_name(v->dtype));
    }
    switch (v->dtype) {
    case VP_U8:
        if (ot == VP_U8) REMAP_LUT(uint8_t, uint8_t, uint8_t, 256);
        else if (ot == VP_U16) REMAP_LUT(uint8_t, uint8_t, uint16_t, 256);
        else if (ot == VP_I16) REMAP_LUT(uint8_t, uint8_t, int16_t, 256);
        else REMAP_LUT(uint8_t, uint8_t, int32_t, 256);
        break;
    case VP_U16:
        if (ot == VP_U16) REMAP_LUT(uint16_t, uint16_t, uint16_t, 65536);
        else if (ot == VP_I16) REMAP_LUT(uint16_t, uint16_t, int16_t, 65536);
        else REMAP_LUT(uint16_t, uint16_t, int32_t, 65536);
        break;
    case VP_I16:
        if (ot == VP_I16) REMAP_LUT(int16_t, uint16_t, int16_t, 65536);
        else if (ot == VP_U16) REMAP_LUT(int16_t, uint16_t, uint16_t, 65536);
        else REMAP_LUT(int16_t, uint16_t, int32_t, 65536);
        break;
    case VP_I32: {
        int32_t *d = dst;
        const int32_t *s = src;
        for (uint64_t i = 0; i < n; i++) {
            int32_t x = s[i];
            d[i] = (uint32_t)x < VP_LABELMAP_N ? m->map[x] : (m->keep_other ? x : m->other);
        }
        break;
    }
    default: break;
    }
    if (newalloc) {
        free(v->alloc);
        v->alloc = v->data = newalloc;
        v->dtype = (enum vp_dtype)ot;
    }
    return 0;
}
