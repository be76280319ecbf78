// Naive references of the block-sparse kernels: every kept block entry visited in order, sums in double.
#include "prunekit_kernels.h"
#include <stdlib.h>

static double at(const float *X, int64_t ld, int fm, int64_t b, int64_t f) { return fm ? X[f * ld + b] : X[b * ld + f]; }
static float *cell(float *Y, int64_t ld, int fm, int64_t b, int64_t f) { return fm ? Y + f * ld + b : Y + b * ld + f; }

// Runs BODY for every kept entry of A: its row, col and value index vi.
#define BSR_FOR_EACH(A, BODY)                                                                         \
    for (int64_t i_ = 0; i_ < (A)->rows / (A)->br; i_++)                                             \
        for (int64_t j_ = (A)->ptr[i_]; j_ < (A)->ptr[i_ + 1]; j_++)                                 \
            for (int64_t a_ = 0; a_ < (A)->br; a_++)                                                 \
                for (int64_t b_ = 0; b_ < (A)->bc; b_++) {                                           \
                    const int64_t row = i_ * (A)->br + a_, col = (int64_t)(A)->bcol[j_] * (A)->bc + b_; \
                    const int64_t vi = (j_ * (A)->br + a_) * (A)->bc + b_;                           \
                    BODY                                                                              \
                }

pk_status pk_ref_bsr_forward_f32(const pk_bsr *A, int layout, int64_t B, const float *X, int64_t ldx, const float *bias,
                                 float *Y, int64_t ldy) {
    const int xf = (layout & PK_LAYOUT_X_FEATURES) != 0, yf = (layout & PK_LAYOUT_Y_FEATURES) != 0;
    double *acc = calloc((size_t)(A->rows > 0 ? A->rows : 1), sizeof(double));
    if (!acc) return PK_ERR_NOMEM;
    for (int64_t b = 0; b < B; b++) {
        for (int64_t r = 0; r < A->rows; r++) acc[r] = 0;
        BSR_FOR_EACH(A, { acc[row] += (double)A->val[vi] * at(X, ldx, xf, b, col); })
        for (int64_t r = 0; r < A->rows; r++) *cell(Y, ldy, yf, b, r) = (float)(acc[r] + (bias ? bias[r] : 0.0));
    }
    free(acc);
    return PK_OK;
}

pk_status pk_ref_bsr_input_grad_f32(const pk_bsr *A, int layout, int64_t B, const float *dY, int64_t lddy, float *dX,
                                    int64_t lddx) {
    const int xf = (layout & PK_LAYOUT_X_FEATURES) != 0, yf = (layout & PK_LAYOUT_Y_FEATURES) != 0;
    double *acc = calloc((size_t)(A->cols > 0 ? A->cols : 1), sizeof(double));
    if (!acc) return PK_ERR_NOMEM;
    for (int64_t b = 0; b < B; b++) {
        for (int64_t c = 0; c < A->cols; c++) acc[c] = 0;
        BSR_FOR_EACH(A, { acc[col] += (double)A->val[vi] * at(dY, lddy, xf, b, row); })
        for (int64_t c = 0; c < A->cols; c++) *cell(dX, lddx, yf, b, c) = (float)acc[c];
    }
    free(acc);
    return PK_OK;
}

pk_status pk_ref_bsr_weight_grad_f32(const pk_bsr *A, int layout, int64_t B, const float *dY, int64_t lddy,
                                     const float *X, int64_t ldx, float *g) {
    const int fm = layout == PK_LAYOUT_FEATURES;
    BSR_FOR_EACH(A, {
        double s = 0;
        for (int64_t b = 0; b < B; b++) s += at(dY, lddy, fm, b, row) * at(X, ldx, fm, b, col);
        g[vi] = (float)s;
    })
    return PK_OK;
}
