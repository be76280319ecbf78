// Naive reference of batch normalisation: the textbook formulas, channel by channel, in double.
#include "prunekit_kernels.h"
#include <math.h>

pk_status pk_ref_batchnorm_forward_f32(int64_t N, int64_t C, int64_t S, const float *x, const float *gamma,
                                       const float *beta, float eps, int training, float momentum, float *running_mean,
                                       float *running_var, float *y, float *save_mean, float *save_invstd) {
    if (N < 0 || C < 0 || S < 0) return PK_ERR_SHAPE;
    for (int64_t ch = 0; ch < C; ch++) {
        double mean = 0, var = 0;
        int64_t m = N * S;
        if (training) {
            for (int64_t n = 0; n < N; n++) for (int64_t i = 0; i < S; i++) mean += x[(n * C + ch) * S + i];
            mean /= (double)m;
            for (int64_t n = 0; n < N; n++) for (int64_t i = 0; i < S; i++) {
                double d = x[(n * C + ch) * S + i] - mean;
                var += d * d;
            }
            double biased = var / (double)m, unbiased = m > 1 ? var / (double)(m - 1) : biased;
            var = biased;
            if (running_mean) {
                running_mean[ch] = (float)((1 - (double)momentum) * running_mean[ch] + (double)momentum * mean);
                running_var[ch] = (float)((1 - (double)momentum) * running_var[ch] + (double)momentum * unbiased);
            }
        } else {
            mean = running_mean[ch];
            var = running_var[ch];
        }
        double invstd = 1.0 / sqrt(var + (double)eps);
        if (save_mean) { save_mean[ch] = (float)mean; save_invstd[ch] = (float)invstd; }
        for (int64_t n = 0; n < N; n++)
            for (int64_t i = 0; i < S; i++) {
                int64_t at = (n * C + ch) * S + i;
                y[at] = (float)((x[at] - mean) * invstd * (gamma ? gamma[ch] : 1.0f) + (beta ? beta[ch] : 0.0f));
            }
    }
    return PK_OK;
}

pk_status pk_ref_batchnorm_backward_f32(int64_t N, int64_t C, int64_t S, const float *x, const float *gamma,
                                        const float *save_mean, const float *save_invstd, const float *dy, int training,
                                        float *dx, float *dgamma, float *dbeta) {
    if (N < 0 || C < 0 || S < 0) return PK_ERR_SHAPE;
    for (int64_t ch = 0; ch < C; ch++) {
        double m = (double)(N * S), mean = save_mean[ch], invstd = save_invstd[ch], g = gamma ? gamma[ch] : 1.0;
        double sdy = 0, sdyx = 0;
        for (int64_t n = 0; n < N; n++)
            for (int64_t i = 0; i < S; i++) {
                int64_t at = (n * C + ch) * S + i;
                sdy += dy[at];
                sdyx += dy[at] * (x[at] - mean) * invstd;
            }
        if (dgamma) dgamma[ch] = (float)sdyx;
        if (dbeta) dbeta[ch] = (float)sdy;
        if (!dx) continue;
        for (int64_t n = 0; n < N; n++)
            for (int64_t i = 0; i < S; i++) {
                int64_t at = (n * C + ch) * S + i;
                double xh = (x[at] - mean) * invstd;
                dx[at] = training ? (float)(g * invstd / m * (m * dy[at] - sdy - xh * sdyx)) : (float)(g * invstd * dy[at]);
            }
    }
    return PK_OK;
}
