/* fuzz_safetensors.c - libFuzzer target for the model file reader (lib/nn_safetensors.c): open and
 * validate, walk the tensor list and metadata, and load every tensor as f32 (what infer-* and the
 * trainers' --init/--resume do). */
#include "fuzz_common.h"
#include "nn_safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int init;
    if (!init) { fz_init("fuzz_safetensors"); init = 1; }
    const char *path = fz_file(0, ".safetensors", data, size);
    vp_safetensors *st = vp_st_open(path);
    if (!st) return 0;
    int n = vp_st_count(st);
    for (int i = 0; i < n; i++) {
        const vp_st_tensor *t = vp_st_at(st, i);
        if (vp_st_find(st, t->name) != t) abort(); /* names are unique: the lookup finds this one */
        vp_tensor *x = vp_st_load(st, t->name);
        if (x) vp_tensor_free(&x);
    }
    for (int i = 0; i < vp_st_meta_count(st); i++) {
        const char *k, *v;
        vp_st_meta_at(st, i, &k, &v);
        if (vp_st_meta(st, k) == NULL) abort();
    }
    vp_st_close(&st);
    return 0;
}
