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

pk_status pk_ref_linear_forward_nchw_f32(int64_t m, int64_t n, int64_t k, const float *X, int64_t ldx,
                                         const float *W, int64_t ldw, const uint8_t *M, int64_t ldm,
                                         const float *bias, int64_t P, float *Y) {
    if (m < 0 || n < 0 || k < 0 || P < 1 || m % P != 0) return PK_ERR_SHAPE;
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double acc = bias ? bias[j] : 0.0;
            for (int64_t p = 0; p < k; p++)
                if (!M || M[j * ldm + p]) acc += (double)X[i * ldx + p] * (double)W[j * ldw + p];
            Y[(i / P) * n * P + j * P + i % P] = (float)acc;
        }
    return PK_OK;
}
