/* spineorder.h - make the vertebra labels of a spine25 label volume consistent along the body axis:
 * each vertebra one component, ordered C1 -> sacrum from head to feet (label-clean --spine-order).
 *
 * Labels are the spine25 ids (lib/labels.h): C1..C7 = 1..7, T1..T12 = 8..19, L1..L5 = 20..24,
 * sacrum = 25; other values are left alone (they are neither moved nor used). vp_spine_order():
 *   1. labels components (lib/ccl.h, the given connectivity); the "main" component of a vertebra
 *      class is its largest; `ref` is the median size of the mains.
 *   2. components holding two vertebrae (neighbours given one label touch and form one component):
 *      a vertebra component (not the sacrum) with at least MERGED (1.4) times the voxels of the
 *      largest main of the classes within 3 of its own is cut at its thinnest neck
 *      (lib/necksplit.h, erosion depth up to 4.5 mm, each part >= 1/4 of it); the cut is kept when
 *      the parts' centroids lie along S/I (|dS| >= 0.5 x their distance; two stacked vertebrae give
 *      0.6-0.96 on the shared labels, a vertebra's body and arch 0.03-0.26). The parts then count
 *      as two components of that class (the cut is approximate near the contacts: 1-6% of the
 *      voxels of the two vertebrae in the tests).
 *   3. fragments: a component that is not its class's main and has fewer than FRAG (0.5) times the
 *      main's voxels (a part cut off in step 2 never is one) joins the touching vertebra component
 *      it has the most contacts with (ccl.h contacts; ties: the lower component number) and takes
 *      that component's final label; one that touches no vertebra is an island and is removed.
 *   4. split vertebrae: two touching non-fragment components of different classes are one vertebra
 *      when their contact surface is as large as a cross-section of the larger one: contacts >=
 *      SPLIT_IFACE (0.5) x f x (larger size)^(2/3), f = the contacts a flat face gives per voxel
 *      (1, 5, 9 for 6-, 18-, 26-connectivity); on the shared TotalSegmentator labels neighbouring
 *      vertebrae give 0.06-0.1, a vertebra cut in two 1.3-1.9. Also, together they are at most
 *      SPLIT_MAX (1.5) times the larger of their sizes and their classes' mains. Pairs are joined
 *      in order of decreasing ratio; a group takes the class of its largest component.
 *   5. islands: a group smaller than ISLAND (0.05) x ref that touches no other vertebra and not the
 *      volume border is removed (a vertebra cut by the field of view touches the border and stays).
 *   6. order: the groups are sorted head to feet by the world S coordinate of their centroid (the
 *      affine's S row: any orientation, oblique included). If their labels do not increase strictly,
 *      labels 1..25 that do are chosen minimising, in this order: the number of groups whose label
 *      changes, the number of labels skipped between consecutive groups (missing vertebrae), the
 *      voxels relabelled. Conservative: nothing is reordered when that would change more than half
 *      of the groups, or when there are more than 25 groups.
 * Removed voxels become 0, or with `reassign` the touching kept class with the most contacts (see
 * labelclean.h). Every changed component is logged (vp_info on stderr, prefixed with ctx) and
 * appended to log with op "spine-order", its centroid, its S coordinate and why.
 * The thresholds were set and tested with 26-connectivity (label-clean's default); with 6 the
 * contact-based steps see fewer contacts (a 40% split of L1 is not repaired in the tests).
 *
 * Ownership: changes v in place; appends to the caller's log.
 */
#ifndef VP_SPINEORDER_H
#define VP_SPINEORDER_H

#include "labelclean.h"
#include "volume.h"

#define VP_SPINE_N 25

/* Full spine25 name of id 1..25 ("vertebrae_T12", "sacrum") into buf; "" for other ids. */
const char *vp_spine25_name(int64_t id, char buf[24]);

/* Steps 1-6 above on v. 0 ok (also when nothing changed); -1 after printing "<ctx>: why". */
int vp_spine_order(vp_vol *v, int conn, int reassign, struct vp_lc_log *log, const char *ctx);

#endif
