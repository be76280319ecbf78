// Shared by the selection kernels (topk.c, patterns.c): the ordering key of a score.
#ifndef PK_SELECT_INTERNAL_H
#define PK_SELECT_INTERNAL_H
#include "internal.h"
#include <math.h>
#include <string.h>

// An unsigned key that orders like the score: |x| for magnitudes; for raw scores the IEEE bit
// pattern with negatives reversed, so any finite float array works as importance.
// Integer operations only: float arithmetic would flush denormals to zero inside kernel threads
// (FTZ/DAZ), so the key of a denormal would depend on the thread and the instruction set.
static inline uint32_t key_of(int use_abs, float x) {
    uint32_t b;
    memcpy(&b, &x, 4);
    if (use_abs) return b & 0x7FFFFFFFu;
    if (b == 0x80000000u) b = 0; // −0.0 and +0.0: equal scores, equal keys
    return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

#endif
