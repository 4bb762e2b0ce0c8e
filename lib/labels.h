/* labels.h - label tables: the TotalSegmentator v2 class names and label maps that remap the values
 * of an integer label volume (e.g. TotalSegmentator "total" ids to 25 spine classes).
 *
 * A label map sends every input value to an output value: values 0..VP_LABELMAP_N-1 through the
 * table `map`, any other value (negative, or beyond the table in an i32 volume) to `other`, or to
 * itself when `keep_other` is set. It carries a name table for its output ids, which filters store
 * as meta "labels": {"1": "vertebrae_C1", ...}.
 *
 * Ownership: a vp_labelmap owns its name strings; vp_labelmap_clear() releases them. preset/load
 * fill a caller-provided map completely (no prior initialisation needed; call clear on a map that
 * already holds names first). The struct is about 256 KiB: make it static or allocate it.
 */
#ifndef VP_LABELS_H
#define VP_LABELS_H

#include <stdint.h>
#include <msgpack.h>

#include "volume.h"

#define VP_TOTALSEG_V2_N 117 /* ids 1..117 of the "total" task */

/* Class name of a TotalSegmentator v2 "total" id, or NULL. */
const char *vp_totalseg_v2_name(int id);
/* Id of a TotalSegmentator v2 "total" class name (exact, case-sensitive), or -1. */
int vp_totalseg_v2_id(const char *name);
/* Pack the whole v2 name table as a msgpack map {"1": "spleen", ..., "117": "costal_cartilages"}. */
void vp_labels_pack_totalseg_v2(msgpack_packer *pk);

#define VP_LABELMAP_N 65536 /* input values with a table entry: 0..65535 */

typedef struct vp_label_name {
    int32_t id;
    char *name;
} vp_label_name;

typedef struct vp_labelmap {
    int32_t map[VP_LABELMAP_N]; /* output for input value v in 0..VP_LABELMAP_N-1 */
    int keep_other;             /* values outside the table keep their value ... */
    int32_t other;              /* ... or else become this */
    int nnames;
    vp_label_name *names; /* output id -> name, sorted by id, ids unique */
} vp_labelmap;

/* NULL-terminated list of preset names, for help texts. */
extern const char *const vp_labelmap_preset_names[];

/* Fill *m with a built-in map. 0 ok, -1 unknown name (printed).
 *   "spine25":     TotalSegmentator v2 ids -> C1..C7 = 1..7, T1..T12 = 8..19, L1..L5 = 20..24,
 *                  sacrum and vertebrae_S1 = 25, everything else 0; names vertebrae_C1 .. sacrum.
 *   "totalseg-v2": identity on 0..117 (other values -> 0), names of the v2 "total" task. */
int vp_labelmap_preset(const char *name, vp_labelmap *m);

/* Fill *m from a text map file. Lines are "FROM TO [NAME]", '#' starts a comment, blank lines are
 * skipped. FROM is a value 0..65535 or a TotalSegmentator v2 class name; TO an int32; NAME (the
 * rest of the line) names the output id TO. One line "* KEEP" makes unmapped values keep their
 * value, "* N" sends them to N; without it they become 0. Names come only from NAME columns.
 * Errors (printed as "PATH:LINE: why"): malformed line, FROM out of range or unknown, FROM given
 * twice, two different names for one output id, a second '*' line. 0 ok, -1 error (*m cleared). */
int vp_labelmap_load(const char *path, vp_labelmap *m);

/* Release the names; the map stays usable for apply with an empty name table. */
void vp_labelmap_clear(vp_labelmap *m);

/* Name of output id `id` in the map, or NULL. */
const char *vp_labelmap_name(const vp_labelmap *m, int32_t id);

/* Output dtype apply() gives a volume of dtype t: t itself when every output the map can produce
 * from t's value range fits in t; otherwise the first of u16, i16, i32 that holds them all (u8 input
 * with outputs above 255 becomes u16). The choice depends on the map, not on the voxels, so every
 * case of a stream gets the same dtype. -1 for a float dtype. */
int vp_labelmap_out_dtype(const vp_labelmap *m, enum vp_dtype t);

/* Remap the integer volume *v in place (u8, u16, i16, i32; widened as vp_labelmap_out_dtype says,
 * which replaces v->alloc). A float volume is an error: prints "<ctx>: ..." and returns -1. 0 ok. */
int vp_labelmap_apply(const vp_labelmap *m, vp_vol *v, const char *ctx);

/* Pack the output name table as a msgpack map with string keys {"1": "vertebrae_C1", ...},
 * ids ascending, only ids with names (an empty map when there are none). */
void vp_labelmap_pack_names(const vp_labelmap *m, msgpack_packer *pk);

#endif
