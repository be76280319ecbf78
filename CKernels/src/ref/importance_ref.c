// Naive references of the importance kernels.
#include "prunekit_kernels.h"
#include <math.h>

pk_status pk_ref_abs_mul_acc_f32(int64_t n, const float *a, const float *b, float *acc) {
    for (int64_t i = 0; i < n; i++) acc[i] += fabsf(a[i] * b[i]);
    return PK_OK;
}

pk_status pk_ref_col_sumsq_acc_f32(int64_t m, int64_t n, const float *x, int64_t ld, float *acc) {
    for (int64_t j = 0; j < n; j++) {
        float s = acc[j];
        for (int64_t i = 0; i < m; i++) s += x[i * ld + j] * x[i * ld + j];
        acc[j] = s;
    }
    return PK_OK;
}

pk_status pk_ref_wanda_scores_f32(int64_t rows, int64_t cols, int64_t group, const float *w, const float *sumsq,
                                  float *out) {
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < cols; j++) out[r * cols + j] = fabsf(w[r * cols + j]) * sqrtf(sumsq[j / group]);
    return PK_OK;
}

pk_status pk_ref_block_norms_f32(int64_t rows, int64_t cols, int64_t bh, int64_t bw, const float *x,
                                 const uint8_t *mask, float *out) {
    int64_t nbr = (rows + bh - 1) / bh, nbc = (cols + bw - 1) / bw;
    for (int64_t i = 0; i < nbr * nbc; i++) {
        int64_t br = i / nbc, bc = i % nbc, n = 0;
        double s = 0.0;
        for (int64_t r = 0; r < rows; r++)
            for (int64_t q = 0; q < cols; q++)
                if (r / bh == br && q / bw == bc && (!mask || mask[r * cols + q])) { s += fabs((double)x[r * cols + q]); n++; }
        out[i] = n ? (float)(s / (double)n) : 0.0f;
    }
    return PK_OK;
}

pk_status pk_ref_col_dot_f32(int64_t m, int64_t n, const float *a, const float *b, float *out) {
    for (int64_t j = 0; j < n; j++) {
        double s = 0;
        for (int64_t i = 0; i < m; i++) s += (double)a[i * n + j] * (double)b[i * n + j];
        out[j] = (float)s;
    }
    return PK_OK;
}

pk_status pk_ref_channel_dot_f32(int64_t N, int64_t C, int64_t S, const float *a, const float *b, float *out) {
    for (int64_t c = 0; c < C; c++) {
        double s = 0;
        for (int64_t n = 0; n < N; n++)
            for (int64_t i = 0; i < S; i++) s += (double)a[(n * C + c) * S + i] * (double)b[(n * C + c) * S + i];
        out[c] = (float)s;
    }
    return PK_OK;
}
