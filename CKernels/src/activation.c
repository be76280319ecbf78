// Smooth and piecewise activations (sigmoid, SiLU, hard-swish, hard-sigmoid, tanh, relu6, GELU's tanh
// form) and their derivatives, element-wise, in parallel chunks. Formulas as PyTorch's: hardsigmoid(x) =
// relu6(x + 3)/6, hardswish(x) = x·hardsigmoid(x), gelu(x, approximate="tanh") =
// x/2·(1 + tanh(√(2/π)·(x + 0.044715·x³))) (HuggingFace's gelu_new and gelu_pytorch_tanh).
#include "internal.h"
#include <math.h>

typedef struct { int kind; const float *x, *dy; float *y, *dx; } act_ctx;

static inline float sigmoidf_(float x) { return 1.0f / (1.0f + expf(-x)); }

#define GELU_K 0.7978845608028654f /* √(2/π) */
#define GELU_C 0.044715f

static void act_fwd_range(void *v, int64_t b, int64_t e) {
    const act_ctx *c = v;
    const float *x = c->x;
    float *y = c->y;
    switch (c->kind) {
    case PK_ACT_SIGMOID: for (int64_t i = b; i < e; i++) y[i] = sigmoidf_(x[i]); break;
    case PK_ACT_SILU: for (int64_t i = b; i < e; i++) y[i] = x[i] * sigmoidf_(x[i]); break;
    case PK_ACT_HARDSIGMOID: for (int64_t i = b; i < e; i++) y[i] = fminf(fmaxf(x[i] + 3.0f, 0.0f), 6.0f) / 6.0f; break;
    case PK_ACT_HARDSWISH: for (int64_t i = b; i < e; i++) y[i] = x[i] * (fminf(fmaxf(x[i] + 3.0f, 0.0f), 6.0f) / 6.0f); break;
    case PK_ACT_TANH: for (int64_t i = b; i < e; i++) y[i] = tanhf(x[i]); break;
    case PK_ACT_RELU6: for (int64_t i = b; i < e; i++) y[i] = fminf(fmaxf(x[i], 0.0f), 6.0f); break;
    case PK_ACT_GELU_TANH:
        for (int64_t i = b; i < e; i++) {
            float v = x[i];
            y[i] = 0.5f * v * (1.0f + tanhf(GELU_K * (v + GELU_C * v * v * v)));
        }
        break;
    }
}

static void act_bwd_range(void *v, int64_t b, int64_t e) {
    const act_ctx *c = v;
    const float *x = c->x, *dy = c->dy;
    float *dx = c->dx;
    switch (c->kind) {
    case PK_ACT_SIGMOID:
        for (int64_t i = b; i < e; i++) { float s = sigmoidf_(x[i]); dx[i] = dy[i] * s * (1.0f - s); }
        break;
    case PK_ACT_SILU:
        for (int64_t i = b; i < e; i++) { float s = sigmoidf_(x[i]); dx[i] = dy[i] * s * (1.0f + x[i] * (1.0f - s)); }
        break;
    case PK_ACT_HARDSIGMOID:
        for (int64_t i = b; i < e; i++) dx[i] = (x[i] > -3.0f && x[i] < 3.0f) ? dy[i] / 6.0f : 0.0f;
        break;
    case PK_ACT_HARDSWISH:
        for (int64_t i = b; i < e; i++)
            dx[i] = x[i] < -3.0f ? 0.0f : (x[i] <= 3.0f ? dy[i] * (2.0f * x[i] + 3.0f) / 6.0f : dy[i]);
        break;
    case PK_ACT_TANH:
        for (int64_t i = b; i < e; i++) { float t = tanhf(x[i]); dx[i] = dy[i] * (1.0f - t * t); }
        break;
    case PK_ACT_RELU6:
        for (int64_t i = b; i < e; i++) dx[i] = (x[i] > 0.0f && x[i] < 6.0f) ? dy[i] : 0.0f;
        break;
    case PK_ACT_GELU_TANH:
        for (int64_t i = b; i < e; i++) {
            float v = x[i], t = tanhf(GELU_K * (v + GELU_C * v * v * v));
            dx[i] = dy[i] * (0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * GELU_K * (1.0f + 3.0f * GELU_C * v * v));
        }
        break;
    }
}

static int act_kind_ok(int kind) { return kind >= PK_ACT_SIGMOID && kind <= PK_ACT_GELU_TANH; }

pk_status pk_activation_forward_f32(int64_t n, int kind, const float *x, float *y) {
    if (n < 0) return PK_ERR_SHAPE;
    if (!act_kind_ok(kind)) return PK_ERR_ARG;
    if (n == 0) return PK_OK;
    if (!x || !y) return PK_ERR_NULL;
    if (y != x && pk_overlaps(y, (size_t)n * 4, x, (size_t)n * 4)) return PK_ERR_ALIAS;
    act_ctx c = {kind, x, NULL, y, NULL};
    pk_parallel_for(n, 1 << 14, act_fwd_range, &c);
    return PK_OK;
}

pk_status pk_activation_backward_f32(int64_t n, int kind, const float *x, const float *dy, float *dx) {
    if (n < 0) return PK_ERR_SHAPE;
    if (!act_kind_ok(kind)) return PK_ERR_ARG;
    if (n == 0) return PK_OK;
    if (!x || !dy || !dx) return PK_ERR_NULL;
    size_t nb = (size_t)n * 4;
    if ((dx != dy && pk_overlaps(dx, nb, dy, nb)) || (dx != x && pk_overlaps(dx, nb, x, nb))) return PK_ERR_ALIAS;
    act_ctx c = {kind, x, dy, NULL, dx};
    pk_parallel_for(n, 1 << 14, act_bwd_range, &c);
    return PK_OK;
}
