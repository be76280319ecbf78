// Naive reference of softmax cross-entropy: per-row softmax in double.
#include "prunekit_kernels.h"
#include <math.h>

pk_status pk_ref_softmax_xent_f32(int64_t m, int64_t n, const float *logits, const int32_t *labels,
                                  float *loss, float *dlogits, int64_t *correct) {
    if (m < 0 || n < 1) return PK_ERR_SHAPE;
    if (!loss) return PK_ERR_NULL;
    for (int64_t i = 0; i < m; i++) if (labels[i] < 0 || labels[i] >= n) return PK_ERR_ARG;
    double total = 0.0;
    int64_t ok = 0;
    for (int64_t i = 0; i < m; i++) {
        const float *z = logits + i * n;
        double mx = z[0];
        int64_t arg = 0;
        for (int64_t j = 1; j < n; j++) if (z[j] > mx) { mx = z[j]; arg = j; }
        double s = 0.0;
        for (int64_t j = 0; j < n; j++) s += exp(z[j] - mx);
        total += log(s) + mx - z[labels[i]];
        ok += arg == labels[i];
        if (dlogits)
            for (int64_t j = 0; j < n; j++)
                dlogits[i * n + j] = (float)((exp(z[j] - mx) / s - (j == labels[i])) / (double)m);
    }
    *loss = m > 0 ? (float)(total / (double)m) : 0.0f;
    if (correct) *correct = ok;
    return PK_OK;
}

pk_status pk_ref_distill_kl_f32(int64_t m, int64_t n, float T, const float *student, const float *teacher, float *loss,
                                float *dstudent) {
    double total = 0;
    for (int64_t i = 0; i < m; i++) {
        double zs = 0, zt = 0;
        for (int64_t j = 0; j < n; j++) { zs += exp(student[i * n + j] / T); zt += exp(teacher[i * n + j] / T); }
        for (int64_t j = 0; j < n; j++) {
            double q = exp(student[i * n + j] / T) / zs, p = exp(teacher[i * n + j] / T) / zt;
            total += (double)T * T * p * log(p / q);
            dstudent[i * n + j] = (float)(T * (q - p) / m);
        }
    }
    *loss = m > 0 ? (float)(total / m) : 0.0f;
    return PK_OK;
}

pk_status pk_ref_token_mse_f32(int64_t b, int64_t t, int64_t n, const float *s, const float *tch, const float *mask,
                               float weight, double *loss, float *grad) {
    *loss = 0;
    for (int64_t i = 0; i < b * t * n; i++) grad[i] = 0;
    for (int64_t i = 0; i < b; i++) {
        int64_t real = 0;
        for (int64_t r = 0; r < t; r++) real += mask[i * t + r] != 0;
        if (real == 0) continue;
        for (int64_t r = 0; r < t; r++) {
            if (mask[i * t + r] == 0) continue;
            for (int64_t j = 0; j < n; j++) {
                const int64_t o = (i * t + r) * n + j;
                const double d = (double)s[o] - (double)tch[o];
                *loss += weight * d * d / (double)(real * n);
                grad[o] = (float)(2.0 * weight * d / (double)(real * n * b));
            }
        }
    }
    return PK_OK;
}
