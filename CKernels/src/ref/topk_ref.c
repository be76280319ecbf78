// Naive references of the selection kernels: sort everything, take the first k.
#include "prunekit_kernels.h"
#include <math.h>
#include <stdlib.h>

typedef struct { double score; int64_t tensor, index; } entry;

static int cmp_entry(const void *a, const void *b) {
    const entry *x = a, *y = b;
    if (x->score != y->score) return x->score < y->score ? -1 : 1;
    if (x->tensor != y->tensor) return x->tensor < y->tensor ? -1 : 1;
    return x->index < y->index ? -1 : (x->index > y->index);
}

pk_status pk_ref_prune_smallest_f32(int64_t T, const int64_t *sizes, const float *const *scores, uint8_t *const *masks,
                                    int use_abs, int64_t k, int64_t *extra_bytes) {
    int64_t n = 0;
    for (int64_t t = 0; t < T; t++)
        for (int64_t i = 0; i < sizes[t]; i++)
            if (masks[t][i]) {
                if (!isfinite(scores[t][i])) return PK_ERR_NONFINITE;
                n++;
            }
    if (k < 0 || k > n) return PK_ERR_ARG;
    entry *e = malloc((size_t)(n > 0 ? n : 1) * sizeof(entry));
    if (!e) return PK_ERR_NOMEM;
    int64_t at = 0;
    for (int64_t t = 0; t < T; t++)
        for (int64_t i = 0; i < sizes[t]; i++)
            if (masks[t][i]) e[at++] = (entry){use_abs ? fabs((double)scores[t][i]) : (double)scores[t][i], t, i};
    qsort(e, (size_t)n, sizeof(entry), cmp_entry);
    for (int64_t i = 0; i < k; i++) masks[e[i].tensor][e[i].index] = 0;
    free(e);
    if (extra_bytes) *extra_bytes = n * (int64_t)sizeof(entry);
    return PK_OK;
}

pk_status pk_ref_prune_fraction_f32(int64_t T, const int64_t *sizes, const float *const *scores, uint8_t *const *masks,
                                    int use_abs, double fraction, int64_t *pruned, int64_t *extra_bytes) {
    if (pruned) *pruned = 0;
    if (!(fraction >= 0.0 && fraction <= 1.0)) return PK_ERR_ARG;
    int64_t kept = 0;
    for (int64_t t = 0; t < T; t++)
        for (int64_t i = 0; i < sizes[t]; i++) kept += masks[t][i] != 0;
    // round half to even, written out rather than relying on the rounding mode
    double x = fraction * (double)kept, f = floor(x);
    int64_t k = (int64_t)f + (x - f > 0.5 || (x - f == 0.5 && fmod(f, 2.0) != 0.0));
    pk_status st = pk_ref_prune_smallest_f32(T, sizes, scores, masks, use_abs, k, extra_bytes);
    if (st == PK_OK && pruned) *pruned = k;
    return st;
}
