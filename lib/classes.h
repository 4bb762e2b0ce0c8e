/* classes.h - which classes a metric reports: class lists like "1-24,vertebrae_L5,25" (label ids,
 * inclusive id ranges and class names) resolved against a case's name table (meta "labels",
 * {"1": "vertebrae_C1", ...}), and named groups of classes ("vertebrae=1-24").
 *
 * Ownership: a vp_classnames owns its ids and name strings (vp_classnames_free); vp_classes_parse()
 * returns an array the caller frees with free(). A vp_group points into the string it was parsed
 * from (usually argv).
 */
#ifndef VP_CLASSES_H
#define VP_CLASSES_H

#include <stddef.h>
#include <stdint.h>

#include "frame.h"

#define VP_CLASSES_MAX_RANGE 65536 /* ids one range may span */

typedef struct vp_classnames {
    size_t n;
    int64_t *ids; /* ascending */
    char **names;
} vp_classnames;

/* The name table of meta "labels" of case c (empty when absent). Entries whose key is not a
 * decimal integer or whose value is not a string are skipped. */
void vp_classnames_from_case(const vp_case *c, vp_classnames *t);
const char *vp_classnames_get(const vp_classnames *t, int64_t id); /* NULL if unnamed */
void vp_classnames_free(vp_classnames *t);

/* Parse a class list into sorted, distinct ids (*ids, *n). Items are separated by commas: an
 * integer, an inclusive range A-B of non-negative integers (A <= B, at most VP_CLASSES_MAX_RANGE
 * ids), or a class name looked up in `names`. With names == NULL only the syntax is checked (names
 * are accepted). Returns 0 ok; -1 syntax error, -2 a name not in the table (why says which). */
int vp_classes_parse(const char *spec, const vp_classnames *names, int64_t **ids, size_t *n, char *why,
                     size_t whylen);

/* A named group "NAME=LIST": NAME must be non-empty, not a number, and free of tabs, newlines,
 * '=' and '"'. */
typedef struct vp_group {
    char name[128];
    const char *spec; /* the LIST part */
} vp_group;
int vp_group_parse(const char *arg, vp_group *g, char *why, size_t whylen); /* 0 ok, -1 bad */

#endif
