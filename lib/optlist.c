/* optlist.c - see optlist.h */
#include "optlist.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>


int vp_parse_dlist(const char *s, int n, double *out, const char *const *units, int *unit)
{
    *unit = -1;
    int k = 0;
    const char *p = s;
    for (;;) {
        char *end;
        double x = strtod(p, &end);
        if (end == p || !isfinite(x) || k >= n) return -1;
        out[k++] = x;
        p = end;
        if (*p == ',') { p++; continue; }
        if (*p && units) {
            for (int u = 0; units[u]; u++)
                if (!strcmp(p, units[u])) { *unit = u; p += strlen(units[u]); break; }
        }
        if (*p) return -1;
        break;
    }
    if (k == 1)
        for (int i = 1; i < n; i++) out[i] = out[0];
    else if (k != n) return -1;
    return 0;
}
