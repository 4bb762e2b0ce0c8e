/* dicom_anatomy.c - coded anatomy and display colours of segments (dicom_seg.h).
 *
 * The SNOMED CT codes are those of DICOM PS3.16 CID 7603 "Vertebra" (C1..L5) and CID 4031
 * "Common Anatomic Region" (Sacrum 54735007); they were checked against two independent copies of
 * the standard's tables (pydicom's code dictionary and DCMTK's dcmsr/cmr/cid4031.h, and a FHIR
 * rendering of CID 7603). Nothing here is made up: a name outside this table gets the generic
 * "Anatomical Structure" code and keeps its name in SegmentLabel.
 */
#include "dicom_seg.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const struct { const char *level, *code; } vertebrae[] = {
    {"C1", "14806007"},  {"C2", "39976000"},  {"C3", "113205007"}, {"C4", "5329002"},  {"C5", "36978003"},
    {"C6", "36054005"},  {"C7", "87391001"},  {"T1", "64864005"},  {"T2", "53733008"}, {"T3", "1626008"},
    {"T4", "73071006"},  {"T5", "56401006"},  {"T6", "45296009"},  {"T7", "62487009"}, {"T8", "11068009"},
    {"T9", "82687006"},  {"T10", "7610001"},  {"T11", "12989004"}, {"T12", "23215003"}, {"L1", "66794005"},
    {"L2", "14293000"},  {"L3", "36470004"},  {"L4", "11994002"},  {"L5", "49668003"},
};
static const char *const vert_meaning[] = {
    "C1 vertebra", "C2 vertebra", "C3 vertebra", "C4 vertebra", "C5 vertebra", "C6 vertebra", "C7 vertebra",
    "T1 vertebra", "T2 vertebra", "T3 vertebra", "T4 vertebra", "T5 vertebra", "T6 vertebra", "T7 vertebra",
    "T8 vertebra", "T9 vertebra", "T10 vertebra", "T11 vertebra", "T12 vertebra", "L1 vertebra", "L2 vertebra",
    "L3 vertebra", "L4 vertebra", "L5 vertebra",
};

/* index of the level ("C1".."L5") ending a name like "vertebrae_C1", "vertebra L5", "T12", or -1 */
static int vertebra_index(const char *name)
{
    char low[64];
    size_t n = strlen(name);
    if (n >= sizeof low) return -1;
    for (size_t i = 0; i <= n; i++) low[i] = (char)tolower((unsigned char)name[i]);
    const char *lvl = low;
    if (!strncmp(low, "vertebrae", 9)) lvl = low + 9;
    else if (!strncmp(low, "vertebra", 8)) lvl = low + 8;
    while (*lvl == '_' || *lvl == ' ' || *lvl == '-') lvl++;
    for (size_t i = 0; i < sizeof vertebrae / sizeof *vertebrae; i++) {
        const char *v = vertebrae[i].level;
        if (tolower((unsigned char)v[0]) == lvl[0] && !strcmp(v + 1, lvl + 1)) return (int)i;
    }
    return -1;
}

int vp_seg_anatomy(const char *name, struct vp_code *category, struct vp_code *type)
{
    *category = (struct vp_code){"SCT", "91723000", "Anatomical Structure"};
    int v = name ? vertebra_index(name) : -1;
    if (v >= 0) {
        *type = (struct vp_code){"SCT", vertebrae[v].code, vert_meaning[v]};
        return 1;
    }
    if (name && !strcasecmp(name, "sacrum")) {
        *type = (struct vp_code){"SCT", "54735007", "Sacrum"};
        return 1;
    }
    *type = *category;
    return 0;
}

/* hue by the golden angle, full saturation, bright: neighbouring labels differ clearly */
void vp_seg_colour(int value, double rgb[3])
{
    double h = fmod(value * 137.508, 360.0) / 60.0, s = 0.75, l = 0.9;
    double c = l * s, x = c * (1 - fabs(fmod(h, 2.0) - 1)), m = l - c;
    double r = 0, g = 0, b = 0;
    switch ((int)h) {
    case 0: r = c; g = x; break;
    case 1: r = x; g = c; break;
    case 2: g = c; b = x; break;
    case 3: g = x; b = c; break;
    case 4: r = x; b = c; break;
    default: r = c; b = x; break;
    }
    rgb[0] = r + m; rgb[1] = g + m; rgb[2] = b + m;
}
