/* pathpat.h - output file names from patterns like "seg/{id}_{vol}.nii.gz".
 *
 * Ownership: vp_path_expand() returns a string the caller frees.
 */
#ifndef VP_PATHPAT_H
#define VP_PATHPAT_H

/* 1 if s is safe as one file-name component: [A-Za-z0-9._+-], not starting with '.', at most 255. */
int vp_name_is_safe(const char *s);
/* Expand {id} and {vol}; NULL (after a message) if a value is unsafe or a brace is unknown. */
char *vp_path_expand(const char *pattern, const char *id, const char *vol);
/* 1 if the pattern contains the token (e.g. "{vol}"). */
int vp_path_has(const char *pattern, const char *token);
/* mkdir -p of the directory part of path. 0 ok, -1 after a message. */
int vp_mkdir_parents(const char *path);

#endif
