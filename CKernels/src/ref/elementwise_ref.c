// Naive references of the element-wise kernels.
#include "prunekit_kernels.h"

pk_status pk_ref_mul_f32(int64_t n, const float *x, const float *y, float *out) {
    if (n < 0) return PK_ERR_SHAPE;
    if (n > 0 && (!x || !y || !out)) return PK_ERR_NULL;
    for (int64_t i = 0; i < n; i++) out[i] = x[i] * y[i];
    return PK_OK;
}

pk_status pk_ref_add_relu_f32(int64_t n, const float *x, const float *y, float *out) {
    if (n < 0) return PK_ERR_SHAPE;
    if (n > 0 && (!x || !y || !out)) return PK_ERR_NULL;
    for (int64_t i = 0; i < n; i++) {
        float t = x[i] + y[i];
        out[i] = t != t ? t : (t > 0.0f ? t : 0.0f);
    }
    return PK_OK;
}

pk_status pk_ref_relu_forward_f32(int64_t n, const float *x, float *y) {
    if (n < 0) return PK_ERR_SHAPE;
    if (n > 0 && (!x || !y)) return PK_ERR_NULL;
    for (int64_t i = 0; i < n; i++) y[i] = x[i] != x[i] ? x[i] : (x[i] > 0.0f ? x[i] : 0.0f);
    return PK_OK;
}

pk_status pk_ref_relu_backward_f32(int64_t n, const float *y, const float *dy, float *dx) {
    if (n < 0) return PK_ERR_SHAPE;
    if (n > 0 && (!y || !dy || !dx)) return PK_ERR_NULL;
    for (int64_t i = 0; i < n; i++) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
    return PK_OK;
}

pk_status pk_ref_sum_rows_f32(int64_t m, int64_t n, float beta, const float *X, int64_t ldx, float *out) {
    if (m < 0 || n < 0) return PK_ERR_SHAPE;
    if (n == 0) return PK_OK;
    if (!out || (m > 0 && !X)) return PK_ERR_NULL;
    for (int64_t j = 0; j < n; j++) {
        double s = beta == 0.0f ? 0.0 : (double)beta * out[j];
        for (int64_t i = 0; i < m; i++) s += X[i * ldx + j];
        out[j] = (float)s;
    }
    return PK_OK;
}

// ---- smooth activations: the formulas in double
#include <math.h>

static double ref_act(int kind, double x) {
    double hs = fmin(fmax(x + 3, 0), 6) / 6;
    switch (kind) {
    case PK_ACT_SIGMOID: return 1 / (1 + exp(-x));
    case PK_ACT_SILU: return x / (1 + exp(-x));
    case PK_ACT_HARDSIGMOID: return hs;
    case PK_ACT_HARDSWISH: return x * hs;
    case PK_ACT_RELU6: return fmin(fmax(x, 0), 6);
    case PK_ACT_GELU_TANH: return 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
    default: return tanh(x);
    }
}

static double ref_act_grad(int kind, double x) {
    double s = 1 / (1 + exp(-x)), t = tanh(x);
    switch (kind) {
    case PK_ACT_SIGMOID: return s * (1 - s);
    case PK_ACT_SILU: return s + x * s * (1 - s);
    case PK_ACT_HARDSIGMOID: return (x > -3 && x < 3) ? 1.0 / 6 : 0;
    case PK_ACT_HARDSWISH: return x < -3 ? 0 : (x <= 3 ? (2 * x + 3) / 6 : 1);
    case PK_ACT_RELU6: return (x > 0 && x < 6) ? 1 : 0;
    case PK_ACT_GELU_TANH: {
        const double k = sqrt(2 / M_PI), u = tanh(k * (x + 0.044715 * x * x * x));
        return 0.5 * (1 + u) + 0.5 * x * (1 - u * u) * k * (1 + 3 * 0.044715 * x * x);
    }
    default: return 1 - t * t;
    }
}

pk_status pk_ref_activation_forward_f32(int64_t n, int kind, const float *x, float *y) {
    if (n < 0) return PK_ERR_SHAPE;
    if (kind < PK_ACT_SIGMOID || kind > PK_ACT_GELU_TANH) return PK_ERR_ARG;
    for (int64_t i = 0; i < n; i++) y[i] = (float)ref_act(kind, x[i]);
    return PK_OK;
}

pk_status pk_ref_activation_backward_f32(int64_t n, int kind, const float *x, const float *dy, float *dx) {
    if (n < 0) return PK_ERR_SHAPE;
    if (kind < PK_ACT_SIGMOID || kind > PK_ACT_GELU_TANH) return PK_ERR_ARG;
    for (int64_t i = 0; i < n; i++) dx[i] = (float)(dy[i] * ref_act_grad(kind, x[i]));
    return PK_OK;
}
