// Naive references of the transformer pieces, in double.
#include "prunekit_kernels.h"
#include <math.h>
#include <stdlib.h>

pk_status pk_ref_layernorm_f32(int64_t rows, int64_t n, const float *x, int64_t ldx, const float *gamma,
                               const float *beta, float eps, float *y, int64_t ldy) {
    for (int64_t r = 0; r < rows; r++) {
        double s = 0, q = 0;
        for (int64_t j = 0; j < n; j++) s += x[r * ldx + j];
        double mean = s / (double)n;
        for (int64_t j = 0; j < n; j++) q += (x[r * ldx + j] - mean) * (x[r * ldx + j] - mean);
        double inv = 1.0 / sqrt(q / (double)n + eps);
        for (int64_t j = 0; j < n; j++) y[r * ldy + j] = (float)((x[r * ldx + j] - mean) * inv * gamma[j] + beta[j]);
    }
    return PK_OK;
}

pk_status pk_ref_layernorm_param_grad_f32(int64_t rows, int64_t n, const float *x, float eps, const float *dy, float *dgamma,
                                          float *dbeta) {
    for (int64_t j = 0; j < n; j++) { dgamma[j] = 0; dbeta[j] = 0; }
    double *g = calloc((size_t)(n > 0 ? n : 1), sizeof(double)), *b = calloc((size_t)(n > 0 ? n : 1), sizeof(double));
    if (!g || !b) { free(g); free(b); return PK_ERR_NOMEM; }
    for (int64_t r = 0; r < rows; r++) {
        double s = 0, q = 0;
        for (int64_t j = 0; j < n; j++) s += x[r * n + j];
        const double mean = s / (double)n;
        for (int64_t j = 0; j < n; j++) q += (x[r * n + j] - mean) * (x[r * n + j] - mean);
        const double inv = 1.0 / sqrt(q / (double)n + eps);
        for (int64_t j = 0; j < n; j++) { g[j] += dy[r * n + j] * (x[r * n + j] - mean) * inv; b[j] += dy[r * n + j]; }
    }
    for (int64_t j = 0; j < n; j++) { dgamma[j] = (float)g[j]; dbeta[j] = (float)b[j]; }
    free(g);
    free(b);
    return PK_OK;
}

pk_status pk_ref_gelu_f32(int64_t n, const float *x, float *y) {
    for (int64_t i = 0; i < n; i++) y[i] = (float)(0.5 * x[i] * (1.0 + erf(x[i] / sqrt(2.0))));
    return PK_OK;
}

pk_status pk_ref_attention_f32(int64_t B, int64_t T, int64_t H, int64_t D, const float *q, const float *k, const float *v,
                               int64_t ldq, const float *mask, const float *head_mask, float *out, int64_t ldo) {
    double *p = malloc((size_t)(T > 0 ? T : 1) * sizeof(double));
    if (!p) return PK_ERR_NOMEM;
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t t = 0; t < T; t++) {
                double mx = -INFINITY, sum = 0;
                for (int64_t s = 0; s < T; s++) {
                    if (mask && mask[b * T + s] == 0.0f) { p[s] = -INFINITY; continue; }
                    double dot = 0;
                    for (int64_t d = 0; d < D; d++) dot += (double)q[(b * T + t) * ldq + h * D + d] * k[(b * T + s) * ldq + h * D + d];
                    p[s] = dot / sqrt((double)D);
                    if (p[s] > mx) mx = p[s];
                }
                for (int64_t s = 0; s < T; s++) { p[s] = p[s] == -INFINITY ? 0 : exp(p[s] - mx); sum += p[s]; }
                for (int64_t d = 0; d < D; d++) {
                    double o = 0;
                    if (sum > 0)
                        for (int64_t s = 0; s < T; s++) o += p[s] / sum * v[(b * T + s) * ldq + h * D + d];
                    out[(b * T + t) * ldo + h * D + d] = (float)(o * (head_mask ? head_mask[h] : 1.0));
                }
            }
    free(p);
    return PK_OK;
}
