// Naive references of the element-wise kernels.
#include "prunekit_kernels.h"

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
