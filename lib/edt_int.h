/* edt_int.h - internal interface between edt.c (API, probe phase) and edt_sep.c (the exact
 * separable pass). Not for programs: use edt.h.
 *
 * Ownership: nothing is allocated for the caller.
 */
#ifndef VP_EDT_INT_H
#define VP_EDT_INT_H

#include <math.h>
#include <stdint.h>

#define GINF INT32_MAX /* no feature in the column */

/* the distance of an offset, as scipy sums it */
static inline double vp_edt_dist3(double dx, double dy, double dz)
{
    return sqrt(dx * dx + dy * dy + dz * dz);
}

/* Lower envelope of the parabolas f[p] + w (q - p)^2 over the finite f[p]: v[0..k] are their apexes,
 * z[0..k+1] the breakpoints; h (n doubles) is scratch. Returns k, or -1 when no f[p] is finite. */
int64_t vp_edt_envelope(const double *f, int64_t n, double w, int64_t *v, double *z, double *h);

/* The exact pass at the queries whose out value is NaN (nleft[z] of them in slice z, nleft_total in
 * all; off[z]: the first output of slice z; query NULL: every voxel is a query). */
void vp_edt_separable(const uint8_t *feat, const uint8_t *query, const uint64_t dims[3], const double sp[3],
                      const uint64_t *off, const uint64_t *nleft, uint64_t nleft_total, double *out);

#endif
