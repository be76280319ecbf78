// Per-element optimizer updates shared by the optimizer kernels (optim.c) and the fused
// gradient + update epilogues (gemm.c, conv.c), so fused and unfused steps give identical bits.
#ifndef PK_OPTIM_INTERNAL_H
#define PK_OPTIM_INTERNAL_H
#include "internal.h"
#include <math.h>

// sqrt without errno semantics, so loops using it vectorise (the value is the same IEEE sqrt).
#if defined(__has_builtin)
#if __has_builtin(__builtin_elementwise_sqrt)
#define PK_SQRTF(x) __builtin_elementwise_sqrt(x)
#endif
#endif
#ifndef PK_SQRTF
#define PK_SQRTF(x) sqrtf(x)
#endif

// Constants of one step, derived once from a pk_update_desc.
typedef struct {
    int kind;          // PK_UPDATE_SGD or PK_UPDATE_ADAM
    float lr, momentum, wd, beta1, beta2, eps;
    float step_size;   // Adam: lr / (1 − beta1^t)
    float bc2_sqrt;    // Adam: sqrt(1 − beta2^t)
    int nesterov, decoupled, has_momentum;
} pk_update_consts;

static inline pk_update_consts pk_update_prepare(const pk_update_desc *u) {
    pk_update_consts c = {u->kind, u->lr, u->momentum, u->weight_decay, u->beta1, u->beta2, u->eps, 0, 0,
                          u->nesterov, u->decoupled, u->momentum != 0.0f};
    if (u->kind == PK_UPDATE_ADAM) {
        c.step_size = (float)((double)u->lr / (1.0 - pow((double)u->beta1, (double)u->step)));
        c.bc2_sqrt = (float)sqrt(1.0 - pow((double)u->beta2, (double)u->step));
    }
    return c;
}

// Validates an update description; PK_OK or the failing status.
static inline pk_status pk_update_check(const pk_update_desc *u) {
    if (!u->w) return PK_ERR_NULL;
    if (!isfinite(u->lr) || !isfinite(u->weight_decay)) return PK_ERR_ARG;
    if (u->kind == PK_UPDATE_SGD) {
        if (!isfinite(u->momentum) || u->momentum < 0.0f) return PK_ERR_ARG;
        if (u->momentum != 0.0f && !u->m) return PK_ERR_NULL;
        return PK_OK;
    }
    if (u->kind == PK_UPDATE_ADAM) {
        if (!(u->beta1 >= 0.0f && u->beta1 < 1.0f) || !(u->beta2 >= 0.0f && u->beta2 < 1.0f) ||
            !(u->eps >= 0.0f) || !isfinite(u->eps) || u->step < 1)
            return PK_ERR_ARG;
        if (!u->m || !u->v) return PK_ERR_NULL;
        return PK_OK;
    }
    return PK_ERR_ARG;
}

// A contiguous run of n elements: gradient g[j], parameter w[j], state m[j] / v[j], kept where
// KEEP (an expression of j) holds. Branch-free so the compiler vectorises it; masked entries are
// rewritten with their own bits, so they never change.
#define PK_UPDATE_LOOPS(KEEP)                                                                        \
    if (c->kind == PK_UPDATE_ADAM) {                                                                 \
        const float b1 = c->beta1, b2 = c->beta2, lrwd = c->lr * c->wd, wd = c->wd, ss = c->step_size, \
                    bc = c->bc2_sqrt, eps = c->eps;                                                  \
        const int dec = c->decoupled;                                                                \
        for (int64_t j = 0; j < n; j++) {                                                            \
            int keep = (KEEP);                                                                       \
            float wv = w[j], gj = g[j], m0 = m[j], v0 = v[j];                                        \
            float wd_w = dec ? wv - lrwd * wv : wv;                                                  \
            float gg = dec ? gj : gj + wd * wv;                                                      \
            float mv = b1 * m0 + (1.0f - b1) * gg;                                                   \
            float vv = b2 * v0 + (1.0f - b2) * gg * gg;                                              \
            float denom = PK_SQRTF(vv) / bc + eps;                                                   \
            float nw = wd_w - ss * mv / denom;                                                       \
            w[j] = keep ? nw : wv;                                                                   \
            m[j] = keep ? mv : m0;                                                                   \
            v[j] = keep ? vv : v0;                                                                   \
        }                                                                                            \
    } else if (!c->has_momentum) {                                                                   \
        const float lr = c->lr, wd = c->wd;                                                          \
        for (int64_t j = 0; j < n; j++) {                                                            \
            int keep = (KEEP);                                                                       \
            float wv = w[j];                                                                         \
            float nw = wv - lr * (g[j] + wd * wv);                                                   \
            w[j] = keep ? nw : wv;                                                                   \
        }                                                                                            \
    } else {                                                                                         \
        const float lr = c->lr, wd = c->wd, mom = c->momentum;                                       \
        const int nest = c->nesterov;                                                                \
        for (int64_t j = 0; j < n; j++) {                                                            \
            int keep = (KEEP);                                                                       \
            float wv = w[j], m0 = m[j];                                                              \
            float gg = g[j] + wd * wv;                                                               \
            float vel = mom * m0 + gg;                                                               \
            float step = nest ? gg + mom * vel : vel;                                                \
            float nw = wv - lr * step;                                                               \
            m[j] = keep ? vel : m0;                                                                  \
            w[j] = keep ? nw : wv;                                                                   \
        }                                                                                            \
    }

static inline __attribute__((always_inline)) void pk_update_run_body(const pk_update_consts *c, int64_t n,
                                                                     const float *restrict g, float *restrict w,
                                                                     float *restrict m, float *restrict v,
                                                                     const uint8_t *restrict mask, int64_t ms) {
    if (!mask) { PK_UPDATE_LOOPS(1) }
    else if (ms == 1) { PK_UPDATE_LOOPS(mask[j] != 0) }
    else { PK_UPDATE_LOOPS(mask[j * ms] != 0) }
}

// pk_update_run_body compiled for the best vector ISA of the CPU (optim.c, chosen at load time).
void pk_update_run(const pk_update_consts *c, int64_t n, const float *g, float *w, float *m, float *v,
                   const uint8_t *mask, int64_t mask_stride);
#endif
