// Naive references of the packed N:M kernels: every kept slot visited in order, sums in double.
#include "prunekit_kernels.h"
#include <stdlib.h>

// Element (b, f) of B × F activations, batch-major or feature-major.
static double at(const float *X, int64_t ld, int fm, int64_t b, int64_t f) { return fm ? X[f * ld + b] : X[b * ld + f]; }
static float *cell(float *Y, int64_t ld, int fm, int64_t b, int64_t f) { return fm ? Y + f * ld + b : Y + b * ld + f; }

pk_status pk_ref_nm_forward_f32(const pk_nm *A, int layout, int64_t B, const float *X, int64_t ldx, const float *bias,
                                float *Y, int64_t ldy) {
    const int xf = (layout & PK_LAYOUT_X_FEATURES) != 0, yf = (layout & PK_LAYOUT_Y_FEATURES) != 0;
    const int64_t S = A->cols / A->m * A->n;
    for (int64_t b = 0; b < B; b++)
        for (int64_t r = 0; r < A->rows; r++) {
            double s = 0;
            for (int64_t j = 0; j < S; j++) {
                const uint8_t ix = A->idx[r * S + j];
                if (ix & PK_NM_PAD) continue;
                s += (double)A->val[r * S + j] * at(X, ldx, xf, b, (j / A->n) * A->m + ix);
            }
            *cell(Y, ldy, yf, b, r) = (float)(s + (bias ? bias[r] : 0.0));
        }
    return PK_OK;
}

pk_status pk_ref_nm_input_grad_f32(const pk_nm *A, int layout, int64_t B, const float *dY, int64_t lddy, float *dX,
                                   int64_t lddx) {
    const int xf = (layout & PK_LAYOUT_X_FEATURES) != 0, yf = (layout & PK_LAYOUT_Y_FEATURES) != 0;
    const int64_t S = A->cols / A->m * A->n;
    double *acc = calloc((size_t)(A->cols > 0 ? A->cols : 1), sizeof(double));
    if (!acc) return PK_ERR_NOMEM;
    for (int64_t b = 0; b < B; b++) {
        for (int64_t c = 0; c < A->cols; c++) acc[c] = 0;
        for (int64_t r = 0; r < A->rows; r++)
            for (int64_t j = 0; j < S; j++) {
                const uint8_t ix = A->idx[r * S + j];
                if (ix & PK_NM_PAD) continue;
                acc[(j / A->n) * A->m + ix] += (double)A->val[r * S + j] * at(dY, lddy, xf, b, r);
            }
        for (int64_t c = 0; c < A->cols; c++) *cell(dX, lddx, yf, b, c) = (float)acc[c];
    }
    free(acc);
    return PK_OK;
}

pk_status pk_ref_nm_weight_grad_f32(const pk_nm *A, int layout, int64_t B, const float *dY, int64_t lddy,
                                    const float *X, int64_t ldx, float *g) {
    const int fm = layout == PK_LAYOUT_FEATURES;
    const int64_t S = A->cols / A->m * A->n;
    for (int64_t r = 0; r < A->rows; r++)
        for (int64_t j = 0; j < S; j++) {
            const uint8_t ix = A->idx[r * S + j];
            double s = 0;
            if (!(ix & PK_NM_PAD))
                for (int64_t b = 0; b < B; b++) s += at(dY, lddy, fm, b, r) * at(X, ldx, fm, b, (j / A->n) * A->m + ix);
            g[r * S + j] = (float)s;
        }
    return PK_OK;
}

pk_status pk_ref_nm_max_kept(int64_t rows, int64_t cols, int64_t m, const uint8_t *M, int64_t ldm, int64_t *kept) {
    if (rows < 0 || cols < 0) return PK_ERR_SHAPE;
    if (m < 1) return PK_ERR_ARG;
    if (cols % m != 0 || ldm < cols) return PK_ERR_SHAPE;
    int64_t best = 0;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) {
            int64_t k = 0;
            for (int64_t j = c / m * m; j < c / m * m + m; j++) k += M[r * ldm + j] != 0;
            if (k > best) best = k;
        }
    *kept = best;
    return PK_OK;
}
