// Pieces shared by the transformer kernels (transformer.c, attention.c). Not part of the C contract.
#ifndef PK_TRANSFORMER_INTERNAL_H
#define PK_TRANSFORMER_INTERNAL_H
#include "internal.h"
#include <string.h>

// Longest sequence the attention kernels take (their per-query score rows live on the stack).
#define MAX_T 4096

static PK_ALWAYS_INLINE float exp_neg(float x) {
    // e^x for x ≤ 0 (x ≥ −88 here): x = k·ln2 + r, |r| ≤ ln2/2, e^r by a degree-6 polynomial, 2^k by
    // building the exponent bits
    const float kf = __builtin_roundf(x * 1.44269504088896341f);
    const float r = (x - kf * 0.693145751953125f) - kf * 1.428606765330187e-06f;
    float p = 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t bits = ((int32_t)kf + 127) << 23;
    float scale;
    memcpy(&scale, &bits, 4);
    return p * scale;
}

#endif
