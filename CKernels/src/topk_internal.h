// Shared by the global selection's two files: topk.c (entry points, histogram fallback) and
// topk_bracket.c (the sampled-bracket fast path).
#ifndef PK_TOPK_INTERNAL_H
#define PK_TOPK_INTERNAL_H
#include "select_internal.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK ((int64_t)1 << 16)
#define HBITS 16
#define HBINS ((int64_t)1 << HBITS)
#define MAX_SLOTS 16

typedef struct {
    // problem
    int64_t T;
    const int64_t *sizes;
    const float *const *scores;
    uint8_t *const *masks;
    int use_abs;
    double fraction;            // ≥ 0: k = round-half-to-even(fraction × kept), known after counting
    int64_t nchunks, nslots;
    const int64_t *first_chunk; // per tensor
    const int64_t *base;        // global position of each tensor's element 0
    // pass 1
    uint32_t *hist;             // nslots × HBINS
    int64_t kept[MAX_SLOTS];
    int bad[MAX_SLOTS];
    // selection
    uint32_t bin;               // high bits of the threshold bin
    uint32_t thr;               // exact threshold bits (fallback)
    int64_t count[MAX_SLOTS];   // entries collected (or ties) per slot
    uint64_t *buf[MAX_SLOTS];   // per-slot collected entries
    int64_t ties_before[MAX_SLOTS];
    int64_t ties_to_prune;
} topk_ctx;

static inline void chunk_bounds(const topk_ctx *c, int64_t q, int64_t *t, int64_t *b, int64_t *e) {
    // chunk q → tensor t, element range [b, e)
    int64_t lo = 0, hi = c->T - 1;
    while (lo < hi) {
        int64_t mid = (lo + hi + 1) / 2;
        if (c->first_chunk[mid] <= q) lo = mid; else hi = mid - 1;
    }
    *t = lo;
    *b = (q - c->first_chunk[lo]) * CHUNK;
    *e = PK_MIN(*b + CHUNK, c->sizes[lo]);
}

// Visits the chunks of slot s in order, with t (tensor), b and e (its element range) in scope.
#define FOR_EACH_CHUNK(c, s, t, b, e)                                                              \
    for (int64_t q_ = (s) * (c)->nchunks / (c)->nslots, qe_ = ((s) + 1) * (c)->nchunks / (c)->nslots, \
                 t = 0, b = 0, e = 0;                                                              \
         q_ < qe_ && (chunk_bounds((c), q_, &t, &b, &e), 1); q_++)

// The tensor holding global position pos.
static inline int64_t tensor_of(const topk_ctx *c, int64_t pos) {
    int64_t lo = 0, hi = c->T - 1;
    while (lo < hi) {
        int64_t mid = (lo + hi + 1) / 2;
        if (c->base[mid] <= pos) lo = mid; else hi = mid - 1;
    }
    return lo;
}

// PyTorch's amount rule: round-half-to-even(fraction × kept) (the default rounding mode).
static inline int64_t count_of(double fraction, int64_t kept) { return (int64_t)nearbyint(fraction * (double)kept); }

// The fast path. Returns 1 when done, 0 to fall back, -1 on allocation failure, -2 for a non-finite
// kept score and -3 when k exceeds the kept count (the masks unchanged in every case but 1). With a
// fraction (c->fraction ≥ 0), *k receives the count it chose.
int pk_topk_bracket_select(topk_ctx *c, int64_t total, int64_t *k, int64_t *extra);

#endif
