// Mask-aware optimizer updates (SGD with momentum / Nesterov / weight decay, Adam, AdamW).
// Entries whose mask is 0 are skipped entirely: weight, state and gradient keep their bits.
#include "internal.h"
#include <math.h>

typedef struct {
    float lr, momentum, wd, beta1, beta2, eps, bc1, bc2;
    int nesterov, decoupled;
    const uint8_t *mask; const float *g; float *w, *m, *v;
} opt_ctx;

static void sgd_range(void *vc, int64_t b, int64_t e) {
    // elements [b, e): SGD update, skipping masked entries
    const opt_ctx *c = vc;
    for (int64_t i = b; i < e; i++) {
        if (c->mask && !c->mask[i]) continue;
        float g = c->g[i] + c->wd * c->w[i];
        float step = g;
        if (c->v) {
            float vel = c->momentum * c->v[i] + g;
            c->v[i] = vel;
            step = c->nesterov ? g + c->momentum * vel : vel;
        }
        c->w[i] -= c->lr * step;
    }
}

pk_status pk_sgd_step_f32(int64_t n, float lr, float momentum, float weight_decay, int nesterov,
                          const uint8_t *mask, const float *g, float *w, float *v) {
    if (n < 0) return PK_ERR_SHAPE;
    if (!isfinite(lr) || !isfinite(momentum) || !isfinite(weight_decay) || momentum < 0.0f) return PK_ERR_ARG;
    if (n == 0) return PK_OK;
    if (!g || !w || (momentum != 0.0f && !v)) return PK_ERR_NULL;
    if (pk_overlaps(w, (size_t)n * 4, g, (size_t)n * 4) || (v && pk_overlaps(w, (size_t)n * 4, v, (size_t)n * 4)))
        return PK_ERR_ALIAS;
    opt_ctx c = {lr, momentum, weight_decay, 0, 0, 0, 0, 0, nesterov, 0, mask, g, w, NULL,
                 momentum != 0.0f ? v : NULL};
    pk_parallel_for(n, 1 << 15, sgd_range, &c);
    return PK_OK;
}

static void adam_range(void *vc, int64_t b, int64_t e) {
    // elements [b, e): Adam / AdamW update, skipping masked entries
    const opt_ctx *c = vc;
    for (int64_t i = b; i < e; i++) {
        if (c->mask && !c->mask[i]) continue;
        float w = c->w[i];
        float g = c->g[i];
        if (c->decoupled) w -= c->lr * c->wd * w;
        else g += c->wd * w;
        float m = c->beta1 * c->m[i] + (1.0f - c->beta1) * g;
        float v = c->beta2 * c->v[i] + (1.0f - c->beta2) * g * g;
        c->m[i] = m;
        c->v[i] = v;
        // PyTorch's order: denom = sqrt(v)/sqrt(1−b2^t) + eps; w −= (lr/(1−b1^t))·m/denom
        float denom = sqrtf(v) / c->bc2 + c->eps;
        c->w[i] = w - c->bc1 * m / denom;
    }
}

pk_status pk_adam_step_f32(int64_t n, float lr, float beta1, float beta2, float eps,
                           float weight_decay, int decoupled, int64_t t,
                           const uint8_t *mask, const float *g, float *w, float *m, float *v) {
    if (n < 0) return PK_ERR_SHAPE;
    if (!isfinite(lr) || !(beta1 >= 0.0f && beta1 < 1.0f) || !(beta2 >= 0.0f && beta2 < 1.0f) ||
        !(eps >= 0.0f) || !isfinite(eps) || !isfinite(weight_decay) || t < 1)
        return PK_ERR_ARG;
    if (n == 0) return PK_OK;
    if (!g || !w || !m || !v) return PK_ERR_NULL;
    size_t nb = (size_t)n * 4;
    if (pk_overlaps(w, nb, g, nb) || pk_overlaps(w, nb, m, nb) || pk_overlaps(w, nb, v, nb) ||
        pk_overlaps(m, nb, v, nb) || pk_overlaps(m, nb, g, nb) || pk_overlaps(v, nb, g, nb))
        return PK_ERR_ALIAS;
    // bc1 holds the step size lr/(1−b1^t), bc2 holds sqrt(1−b2^t)
    float bc1 = (float)((double)lr / (1.0 - pow((double)beta1, (double)t)));
    float bc2 = (float)sqrt(1.0 - pow((double)beta2, (double)t));
    opt_ctx c = {lr, 0, weight_decay, beta1, beta2, eps, bc1, bc2, 0, decoupled, mask, g, w, m, v};
    pk_parallel_for(n, 1 << 14, adam_range, &c);
    return PK_OK;
}
