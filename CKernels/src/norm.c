// Batch normalisation over N×C×S (S = H·W for images, 1 for features): statistics per channel over
// N·S values, accumulated in double over 8 lanes in a fixed order (one thread per channel), so the
// result never depends on the thread count.
#include "internal.h"
#include <math.h>

// Per-channel sums in double over 8 lanes: element k of each contiguous plane goes to lane k mod 8,
// the lanes are added in order at the end. The order depends on the shape only (one thread per
// channel), and the lanes let the compiler vectorise the float→double conversions and adds.
#define BN_LANES 8
// The lanes are kept in locals while a plane is summed (the caller's arrays may alias each other, which
// would keep the compiler from holding them in registers), and stored back at the end: the same
// additions in the same order.
static PK_ALWAYS_INLINE void lanes_sum_body(const float *p, int64_t n, double *l) {
    double a[BN_LANES];
    for (int k = 0; k < BN_LANES; k++) a[k] = l[k];
    int64_t i = 0;
    for (; i + BN_LANES <= n; i += BN_LANES)
        for (int k = 0; k < BN_LANES; k++) a[k] += p[i + k];
    for (int k = 0; i + k < n; k++) a[k] += p[i + k];
    for (int k = 0; k < BN_LANES; k++) l[k] = a[k];
}
static PK_ALWAYS_INLINE void lanes_sqdev_body(const float *p, int64_t n, double mean, double *l) {
    double a[BN_LANES];
    for (int k = 0; k < BN_LANES; k++) a[k] = l[k];
    int64_t i = 0;
    for (; i + BN_LANES <= n; i += BN_LANES)
        for (int k = 0; k < BN_LANES; k++) { double d = p[i + k] - mean; a[k] += d * d; }
    for (int k = 0; i + k < n; k++) { double d = p[i + k] - mean; a[k] += d * d; }
    for (int k = 0; k < BN_LANES; k++) l[k] = a[k];
}
// sdy += d, sdyx += d·x̂ with x̂ = (x − mean)·invstd in float, as before
static PK_ALWAYS_INLINE void lanes_bwd_body(const float *p, const float *d, int64_t n, float mean, float invstd,
                                            double *l, double *lx) {
    double a[BN_LANES], ax[BN_LANES];
    for (int k = 0; k < BN_LANES; k++) { a[k] = l[k]; ax[k] = lx[k]; }
    int64_t i = 0;
    for (; i + BN_LANES <= n; i += BN_LANES)
        for (int k = 0; k < BN_LANES; k++) { a[k] += d[i + k]; ax[k] += (double)d[i + k] * ((p[i + k] - mean) * invstd); }
    for (int k = 0; i + k < n; k++) { a[k] += d[i + k]; ax[k] += (double)d[i + k] * ((p[i + k] - mean) * invstd); }
    for (int k = 0; k < BN_LANES; k++) { l[k] = a[k]; lx[k] = ax[k]; }
}
PK_TARGET_AVX2 static void lanes_sum_avx2(const float *p, int64_t n, double *l) { lanes_sum_body(p, n, l); }
PK_TARGET_AVX2 static void lanes_sqdev_avx2(const float *p, int64_t n, double mean, double *l) { lanes_sqdev_body(p, n, mean, l); }
PK_TARGET_AVX2 static void lanes_bwd_avx2(const float *p, const float *d, int64_t n, float mean, float invstd, double *l,
                                          double *lx) { lanes_bwd_body(p, d, n, mean, invstd, l, lx); }
static void lanes_sum(const float *p, int64_t n, double *l) {
    if (pk_active_isa() >= PK_ISA_AVX2) lanes_sum_avx2(p, n, l); else lanes_sum_body(p, n, l);
}
static void lanes_sqdev(const float *p, int64_t n, double mean, double *l) {
    if (pk_active_isa() >= PK_ISA_AVX2) lanes_sqdev_avx2(p, n, mean, l); else lanes_sqdev_body(p, n, mean, l);
}
static void lanes_bwd(const float *p, const float *d, int64_t n, float mean, float invstd, double *l, double *lx) {
    if (pk_active_isa() >= PK_ISA_AVX2) lanes_bwd_avx2(p, d, n, mean, invstd, l, lx); else lanes_bwd_body(p, d, n, mean, invstd, l, lx);
}
static double lanes_total(const double *l) {
    double t = 0;
    for (int k = 0; k < BN_LANES; k++) t += l[k];
    return t;
}

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
            double l[BN_LANES] = {0}, l2[BN_LANES] = {0};
            for (int64_t n = 0; n < c->N; n++) lanes_sum(c->x + (n * c->C + ch) * c->S, c->S, l);
            int64_t m = c->N * c->S;
            mean = lanes_total(l) / (double)m;
            for (int64_t n = 0; n < c->N; n++) lanes_sqdev(c->x + (n * c->C + ch) * c->S, c->S, mean, l2);
            double ss = lanes_total(l2);
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
        double l[BN_LANES] = {0}, lx[BN_LANES] = {0};
        for (int64_t n = 0; n < c->N; n++)
            lanes_bwd(c->x + (n * c->C + ch) * c->S, c->dy + (n * c->C + ch) * c->S, c->S, mean, invstd, l, lx);
        double sdy = lanes_total(l), sdyx = lanes_total(lx);
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
