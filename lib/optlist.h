/* optlist.h - number lists in option values: "1.5", "1,1,2.5", "10,10,4mm".
 *
 * Ownership: nothing is allocated; results go to caller arrays.
 */
#ifndef VP_OPTLIST_H
#define VP_OPTLIST_H

/* Parse "a,b,c" (or one value "a", repeated) into n doubles; an optional unit suffix from `units`
 * (e.g. {"mm", "vox", NULL}) directly after the last number is returned in *unit as its index, or
 * -1 without one. Returns 0, or -1 for a malformed list. */
int vp_parse_dlist(const char *s, int n, double *out, const char *const *units, int *unit);

#endif
