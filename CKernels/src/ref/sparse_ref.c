// Naive references of the sparse kernels: every kept entry visited in order, sums in double.
#include "prunekit_kernels.h"
#include <stdlib.h>

pk_status pk_ref_spmm_f32(const pk_csr *A, int trans, int64_t B, const float *X, int64_t ldx, const float *bias,
                          float *Y, int64_t ldy) {
    const int64_t out = trans ? A->cols : A->rows;
    double *acc = calloc((size_t)(B * out > 0 ? B * out : 1), sizeof(double));
    if (!acc) return PK_ERR_NOMEM;
    for (int64_t r = 0; r < A->rows; r++)
        for (int64_t j = A->ptr[r]; j < A->ptr[r + 1]; j++) {
            const int64_t c = A->idx[j];
            for (int64_t b = 0; b < B; b++) {
                if (trans) acc[b * out + c] += (double)A->val[j] * X[b * ldx + r];
                else acc[b * out + r] += (double)A->val[j] * X[b * ldx + c];
            }
        }
    for (int64_t b = 0; b < B; b++)
        for (int64_t o = 0; o < out; o++) Y[b * ldy + o] = (float)(acc[b * out + o] + (bias ? bias[o] : 0.0));
    free(acc);
    return PK_OK;
}

pk_status pk_ref_sddmm_f32(const pk_csr *A, int64_t B, const float *dY, int64_t lddy, const float *X, int64_t ldx,
                           float *g) {
    for (int64_t r = 0; r < A->rows; r++)
        for (int64_t j = A->ptr[r]; j < A->ptr[r + 1]; j++) {
            double s = 0;
            for (int64_t b = 0; b < B; b++) s += (double)dY[b * lddy + r] * X[b * ldx + A->idx[j]];
            g[j] = (float)s;
        }
    return PK_OK;
}
