// Shared by the selection kernels (topk.c, patterns.c): the ordering key of a score.
#ifndef PK_SELECT_INTERNAL_H
#define PK_SELECT_INTERNAL_H
#include "internal.h"
#include <math.h>
#include <string.h>

// An unsigned key that orders like the score: |x| for magnitudes; for raw scores the IEEE bit
// pattern with negatives reversed, so any finite float array works as importance.
static inline uint32_t key_of(int use_abs, float x) {
    float v = use_abs ? fabsf(x) : x + 0.0f; // x + 0 turns −0.0 into +0.0: equal scores, equal keys
    uint32_t b;
    memcpy(&b, &v, 4);
    if (use_abs) return b;
    return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

#endif
