// Batch normalisation over N×C×S (S = H·W for images, 1 for features): statistics per channel over
// N·S values, accumulated in double in a fixed order (one thread per channel), so the result never
// depends on the thread count.
#include "internal.h"
#include <math.h>

typedef struct {
    int64_t N, C, S;
    const float *x, *gamma, *beta, *dy, *mean_in, *invstd_in;
    float eps, momentum;
    int training;
    float *y, *running_mean, *running_var, *save_mean, *save_invstd, *dx, *dgamma, *dbeta;
} bn_ctx;

static void bn_fwd_range(void *v, int64_t b, int64_t e) {
    const bn_ctx *c = v;
    for (int64_t ch = b; ch < e; ch++) {
        double mean, var;
        if (c->training) {
            double s = 0, ss = 0;
            for (int64_t n = 0; n < c->N; n++) {
                const float *p = c->x + (n * c->C + ch) * c->S;
                for (int64_t i = 0; i < c->S; i++) s += p[i];
            }
            int64_t m = c->N * c->S;
            mean = s / (double)m;
            for (int64_t n = 0; n < c->N; n++) {
                const float *p = c->x + (n * c->C + ch) * c->S;
                for (int64_t i = 0; i < c->S; i++) { double d = p[i] - mean; ss += d * d; }
            }
            var = ss / (double)m;
            if (c->running_mean) {
                // PyTorch: the running variance takes the unbiased estimate
                double unbiased = m > 1 ? ss / (double)(m - 1) : var;
                c->running_mean[ch] = (float)((1.0 - c->momentum) * c->running_mean[ch] + c->momentum * mean);
                c->running_var[ch] = (float)((1.0 - c->momentum) * c->running_var[ch] + c->momentum * unbiased);
            }
        } else {
            mean = c->running_mean[ch];
            var = c->running_var[ch];
        }
        float invstd = (float)(1.0 / sqrt(var + (double)c->eps));
        float g = c->gamma ? c->gamma[ch] : 1.0f, bb = c->beta ? c->beta[ch] : 0.0f;
        float scale = g * invstd, shift = bb - (float)mean * scale;
        if (c->save_mean) { c->save_mean[ch] = (float)mean; c->save_invstd[ch] = invstd; }
        for (int64_t n = 0; n < c->N; n++) {
            const float *p = c->x + (n * c->C + ch) * c->S;
            float *q = c->y + (n * c->C + ch) * c->S;
            for (int64_t i = 0; i < c->S; i++) q[i] = p[i] * scale + shift;
        }
    }
}

pk_status pk_batchnorm_forward_f32(int64_t N, int64_t C, int64_t S, const float *x, const float *gamma, const float *beta,
                                   float eps, int training, float momentum, float *running_mean, float *running_var,
                                   float *y, float *save_mean, float *save_invstd) {
    if (N < 0 || C < 0 || S < 0) return PK_ERR_SHAPE;
    if (!(eps > 0) || !(momentum >= 0 && momentum <= 1)) return PK_ERR_ARG;
    if (training && N * S == 0 && C > 0) return PK_ERR_SHAPE;
    if (N * C * S == 0) return PK_OK;
    if (!x || !y) return PK_ERR_NULL;
    if (!training && (!running_mean || !running_var)) return PK_ERR_NULL;
    if ((running_mean == NULL) != (running_var == NULL) || (save_mean == NULL) != (save_invstd == NULL)) return PK_ERR_NULL;
    size_t nb = (size_t)(N * C * S) * 4;
    if (y != x && pk_overlaps(y, nb, x, nb)) return PK_ERR_ALIAS;
    bn_ctx c = {.N = N, .C = C, .S = S, .x = x, .gamma = gamma, .beta = beta, .eps = eps, .momentum = momentum,
                .training = training, .y = y, .running_mean = running_mean, .running_var = running_var,
                .save_mean = save_mean, .save_invstd = save_invstd};
    pk_parallel_for(C, 1, bn_fwd_range, &c);
    return PK_OK;
}

static void bn_bwd_range(void *v, int64_t b, int64_t e) {
    const bn_ctx *c = v;
    int64_t m = c->N * c->S;
    for (int64_t ch = b; ch < e; ch++) {
        float mean = c->mean_in[ch], invstd = c->invstd_in[ch];
        double sdy = 0, sdyx = 0;
        for (int64_t n = 0; n < c->N; n++) {
            const float *p = c->x + (n * c->C + ch) * c->S, *d = c->dy + (n * c->C + ch) * c->S;
            for (int64_t i = 0; i < c->S; i++) { sdy += d[i]; sdyx += (double)d[i] * ((p[i] - mean) * invstd); }
        }
        if (c->dgamma) c->dgamma[ch] = (float)sdyx;
        if (c->dbeta) c->dbeta[ch] = (float)sdy;
        if (!c->dx) continue;
        float g = c->gamma ? c->gamma[ch] : 1.0f, k = g * invstd;
        if (c->training) {
            // dx = γ·invstd·(dy − mean(dy) − x̂·mean(dy·x̂))
            float a = (float)(sdy / (double)m), bq = (float)(sdyx / (double)m);
            for (int64_t n = 0; n < c->N; n++) {
                const float *p = c->x + (n * c->C + ch) * c->S, *d = c->dy + (n * c->C + ch) * c->S;
                float *q = c->dx + (n * c->C + ch) * c->S;
                for (int64_t i = 0; i < c->S; i++) q[i] = k * (d[i] - a - (p[i] - mean) * invstd * bq);
            }
        } else {
            for (int64_t n = 0; n < c->N; n++) {
                const float *d = c->dy + (n * c->C + ch) * c->S;
                float *q = c->dx + (n * c->C + ch) * c->S;
                for (int64_t i = 0; i < c->S; i++) q[i] = k * d[i];
            }
        }
    }
}

pk_status pk_batchnorm_backward_f32(int64_t N, int64_t C, int64_t S, const float *x, const float *gamma,
                                    const float *save_mean, const float *save_invstd, const float *dy, int training,
                                    float *dx, float *dgamma, float *dbeta) {
    if (N < 0 || C < 0 || S < 0) return PK_ERR_SHAPE;
    if (N * C * S == 0) {
        for (int64_t ch = 0; ch < C; ch++) { if (dgamma) dgamma[ch] = 0; if (dbeta) dbeta[ch] = 0; }
        return PK_OK;
    }
    if (!x || !save_mean || !save_invstd || !dy) return PK_ERR_NULL;
    size_t nb = (size_t)(N * C * S) * 4;
    if (dx && dx != dy && (pk_overlaps(dx, nb, dy, nb) || pk_overlaps(dx, nb, x, nb))) return PK_ERR_ALIAS;
    if (dx == dy && dx) return PK_ERR_ALIAS; // dy is read twice per channel
    bn_ctx c = {.N = N, .C = C, .S = S, .x = x, .gamma = gamma, .dy = dy, .mean_in = save_mean, .invstd_in = save_invstd,
                .training = training, .dx = dx, .dgamma = dgamma, .dbeta = dbeta};
    pk_parallel_for(C, 1, bn_bwd_range, &c);
    return PK_OK;
}
