// Naive references of the masked GEMM family: triple loops, double accumulation, one thread.
#include "prunekit_kernels.h"

static pk_status ref_check(int64_t m, int64_t n, int64_t k, const void *C) {
    if (m < 0 || n < 0 || k < 0) return PK_ERR_SHAPE;
    if (m > 0 && n > 0 && !C) return PK_ERR_NULL;
    return PK_OK;
}

pk_status pk_ref_gemm_masked_f32(int64_t m, int64_t n, int64_t k, float alpha,
                                 const float *A, int64_t lda, const float *W, int64_t ldw,
                                 const uint8_t *M, int64_t ldm, float beta, float *C, int64_t ldc) {
    pk_status s = ref_check(m, n, k, C);
    if (s != PK_OK || m == 0 || n == 0) return s;
    if (k > 0 && (!A || !W)) return PK_ERR_NULL;
    if (ldc < n || (k > 0 && (lda < k || ldw < k || (M && ldm < k)))) return PK_ERR_SHAPE;
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double acc = 0.0;
            for (int64_t p = 0; p < k; p++)
                if (!M || M[j * ldm + p]) acc += (double)A[i * lda + p] * (double)W[j * ldw + p];
            double c = beta == 0.0f ? 0.0 : (double)beta * C[i * ldc + j];
            C[i * ldc + j] = (float)((double)alpha * acc + c);
        }
    return PK_OK;
}

pk_status pk_ref_gemm_masked_nn_f32(int64_t m, int64_t n, int64_t k, float alpha,
                                    const float *A, int64_t lda, const float *W, int64_t ldw,
                                    const uint8_t *M, int64_t ldm, float beta, float *C, int64_t ldc) {
    pk_status s = ref_check(m, n, k, C);
    if (s != PK_OK || m == 0 || n == 0) return s;
    if (k > 0 && (!A || !W)) return PK_ERR_NULL;
    if (ldc < n || (k > 0 && (lda < k || ldw < n || (M && ldm < n)))) return PK_ERR_SHAPE;
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double acc = 0.0;
            for (int64_t p = 0; p < k; p++)
                if (!M || M[p * ldm + j]) acc += (double)A[i * lda + p] * (double)W[p * ldw + j];
            double c = beta == 0.0f ? 0.0 : (double)beta * C[i * ldc + j];
            C[i * ldc + j] = (float)((double)alpha * acc + c);
        }
    return PK_OK;
}

pk_status pk_ref_gemm_masked_tn_f32(int64_t m, int64_t n, int64_t k, float alpha,
                                    const float *A, int64_t lda, const float *B, int64_t ldb,
                                    const uint8_t *M, int64_t ldm, float beta, float *C, int64_t ldc) {
    pk_status s = ref_check(m, n, k, C);
    if (s != PK_OK || m == 0 || n == 0) return s;
    if (k > 0 && (!A || !B)) return PK_ERR_NULL;
    if (ldc < n || (M && ldm < n) || (k > 0 && (lda < m || ldb < n))) return PK_ERR_SHAPE;
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            if (M && !M[i * ldm + j]) { C[i * ldc + j] = 0.0f; continue; }
            double acc = 0.0;
            for (int64_t p = 0; p < k; p++) acc += (double)A[p * lda + i] * (double)B[p * ldb + j];
            double c = beta == 0.0f ? 0.0 : (double)beta * C[i * ldc + j];
            C[i * ldc + j] = (float)((double)alpha * acc + c);
        }
    return PK_OK;
}

pk_status pk_ref_linear_forward_f32(int64_t m, int64_t n, int64_t k,
                                    const float *X, int64_t ldx, const float *W, int64_t ldw,
                                    const uint8_t *M, int64_t ldm, const float *bias,
                                    float *Y, int64_t ldy) {
    pk_status s = pk_ref_gemm_masked_f32(m, n, k, 1.0f, X, ldx, W, ldw, M, ldm, 0.0f, Y, ldy);
    if (s != PK_OK || !bias) return s;
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) Y[i * ldy + j] += bias[j];
    return PK_OK;
}

pk_status pk_ref_gemm_f32(const pk_gemm_desc *d) {
    if (!d) return PK_ERR_NULL;
    if (d->m < 0 || d->n < 0 || d->k < 0) return PK_ERR_SHAPE;
    if (d->m == 0 || d->n == 0) return PK_OK;
    if (!d->C || (d->k > 0 && (!d->A || !d->B))) return PK_ERR_NULL;
    for (int64_t i = 0; i < d->m; i++)
        for (int64_t j = 0; j < d->n; j++) {
            double acc = 0.0;
            for (int64_t p = 0; p < d->k; p++) {
                if (d->MA && !d->MA[i * d->ma_rs + p * d->ma_cs]) continue;
                if (d->MB && !d->MB[p * d->mb_rs + j * d->mb_cs]) continue;
                acc += (double)d->A[i * d->a_rs + p * d->a_cs] * (double)d->B[p * d->b_rs + j * d->b_cs];
            }
            int64_t ro = d->c_rblock > 0 ? (i / d->c_rblock) * d->c_rblock_stride + (i % d->c_rblock) * d->c_rs : i * d->c_rs;
            int64_t co = d->c_cblock > 0 ? (j / d->c_cblock) * d->c_cblock_stride + (j % d->c_cblock) * d->c_cs : j * d->c_cs;
            float *c = d->C + ro + co;
            double v = (double)d->alpha * acc + (d->beta == 0.0f ? 0.0 : (double)d->beta * *c);
            if (d->bias_row) v += d->bias_row[i];
            if (d->bias_col) v += d->bias_col[j];
            if (d->MC && !d->MC[i * d->mc_rs + j * d->mc_cs]) v = 0.0;
            *c = (float)v;
        }
    return PK_OK;
}
