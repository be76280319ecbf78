// Per-element optimizer updates shared by the optimizer kernels (optim.c) and the fused
// gradient + update epilogues (gemm.c, conv.c), so fused and unfused steps give identical bits.
#ifndef PK_OPTIM_INTERNAL_H
#define PK_OPTIM_INTERNAL_H
#include "internal.h"
#include <math.h>

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

// One element: gradient g, weight *w, state *m (SGD velocity / Adam first moment), *v (Adam).
static inline void pk_update_elem(const pk_update_consts *c, float g, float *w, float *m, float *v) {
    if (c->kind == PK_UPDATE_SGD) {
        g = g + c->wd * *w;
        float step = g;
        if (c->has_momentum) {
            float vel = c->momentum * *m + g;
            *m = vel;
            step = c->nesterov ? g + c->momentum * vel : vel;
        }
        *w -= c->lr * step;
        return;
    }
    float wv = *w;
    if (c->decoupled) wv -= c->lr * c->wd * wv;
    else g += c->wd * wv;
    float mv = c->beta1 * *m + (1.0f - c->beta1) * g;
    float vv = c->beta2 * *v + (1.0f - c->beta2) * g * g;
    *m = mv;
    *v = vv;
    // PyTorch's order: denom = sqrt(v)/sqrt(1−b2^t) + eps; w −= (lr/(1−b1^t))·m/denom
    float denom = sqrtf(vv) / c->bc2_sqrt + c->eps;
    *w = wv - c->step_size * mv / denom;
}
#endif
