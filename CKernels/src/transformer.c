// Transformer encoder pieces (BERT): embeddings, layer normalisation, GELU, mean pooling and L2
// normalisation, forward and backward (attention is in attention.c). Rows of activations are
// tokens, B sequences of T tokens each.
#include "transformer_internal.h"
#include <math.h>
#include <stdlib.h>

// ---- embeddings

typedef struct {
    int64_t T, n, vocab, positions;
    const int32_t *ids;
    const float *word, *pos, *type0;
    float *out;
} embed_ctx;

static void embed_range(void *v, int64_t r0, int64_t r1) {
    // token rows [r0, r1): out = word[id] + pos[t] + type0
    embed_ctx *c = v;
    for (int64_t r = r0; r < r1; r++) {
        const int32_t id = c->ids[r];
        const int64_t t = r % c->T;
        float *o = c->out + r * c->n;
        const float *w = c->word + (int64_t)id * c->n, *p = c->pos + t * c->n;
        for (int64_t j = 0; j < c->n; j++) o[j] = w[j] + p[j] + c->type0[j];
    }
}

pk_status pk_bert_embeddings_f32(int64_t B, int64_t T, int64_t n, const int32_t *ids, int64_t vocab, const float *word,
                                 int64_t positions, const float *pos, const float *type0, float *out) {
    if (B < 0 || T < 0 || n < 0 || vocab < 0 || positions < 0) return PK_ERR_SHAPE;
    if (T > positions) return PK_ERR_SHAPE;
    if (B == 0 || T == 0 || n == 0) return PK_OK;
    if (!ids || !word || !pos || !type0 || !out) return PK_ERR_NULL;
    for (int64_t r = 0; r < B * T; r++)
        if (ids[r] < 0 || ids[r] >= vocab) return PK_ERR_ARG; // nothing written
    embed_ctx c = {T, n, vocab, positions, ids, word, pos, type0, out};
    pk_parallel_for(B * T, 16, embed_range, &c);
    return PK_OK;
}

// ---- layer normalisation

// Mean and 1/sqrt(var + eps) of a row of n (biased variance, in double): shared by forward and
// backward so both normalise identically.
static inline void row_stats(const float *x, int64_t n, float eps, double *mean, double *inv) {
    double s = 0, q = 0;
    for (int64_t j = 0; j < n; j++) s += x[j];
    *mean = s / (double)n;
    for (int64_t j = 0; j < n; j++) q += ((double)x[j] - *mean) * ((double)x[j] - *mean);
    *inv = 1.0 / sqrt(q / (double)n + (double)eps);
}

typedef struct {
    int64_t n, ldx, ldy;
    float eps;
    const float *x, *gamma, *beta;
    float *y;
} ln_ctx;

static void ln_range(void *v, int64_t r0, int64_t r1) {
    // rows [r0, r1): y = (x − mean) / sqrt(var + eps) · gamma + beta (statistics in double)
    const ln_ctx *c = v;
    for (int64_t r = r0; r < r1; r++) {
        const float *x = c->x + r * c->ldx;
        double mean, dinv;
        row_stats(x, c->n, c->eps, &mean, &dinv);
        const float inv = (float)dinv, m = (float)mean;
        float *y = c->y + r * c->ldy;
        for (int64_t j = 0; j < c->n; j++) y[j] = (x[j] - m) * inv * c->gamma[j] + c->beta[j];
    }
}

pk_status pk_layernorm_f32(int64_t rows, int64_t n, const float *x, int64_t ldx, const float *gamma, const float *beta,
                           float eps, float *y, int64_t ldy) {
    if (rows < 0 || n < 0 || ldx < n || ldy < n) return PK_ERR_SHAPE;
    if (!(eps >= 0.0f)) return PK_ERR_ARG;
    if (rows == 0 || n == 0) return PK_OK;
    if (!x || !gamma || !beta || !y) return PK_ERR_NULL;
    ln_ctx c = {n, ldx, ldy, eps, x, gamma, beta, y};
    pk_parallel_for(rows, 8, ln_range, &c);
    return PK_OK;
}

// ---- GELU (the erf form BERT uses)
//
// erf from Abramowitz & Stegun 7.1.26 (|error| ≤ 1.5e-7), with e^(−x²) from a range-reduced
// polynomial: branch-free and free of libm calls, so the loop vectorises (libm's erff is scalar).

static PK_ALWAYS_INLINE float erf_as(float x) {
    const float a = x < 0 ? -x : x;
    const float t = 1.0f / (1.0f + 0.3275911f * a);
    const float poly = t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f + t * 1.061405429f))));
    const float m = a < 9.0f ? a : 9.0f; // e^(−81) underflows to 0 as it should
    const float e = 1.0f - poly * exp_neg(-m * m);
    return x < 0 ? -e : e;
}

typedef struct { const float *x; float *y; } gelu_ctx;

static PK_ALWAYS_INLINE void gelu_body(void *v, int64_t b, int64_t e) {
    // elements [b, e): y = x · Φ(x) = 0.5 · x · (1 + erf(x / √2))
    const gelu_ctx *c = v;
    for (int64_t i = b; i < e; i++) c->y[i] = 0.5f * c->x[i] * (1.0f + erf_as(c->x[i] * 0.70710678118654752f));
}
PK_TARGET_AVX512 static void gelu_avx512(void *v, int64_t b, int64_t e) { gelu_body(v, b, e); }
PK_TARGET_AVX2 static void gelu_avx2(void *v, int64_t b, int64_t e) { gelu_body(v, b, e); }
static void gelu_scalar(void *v, int64_t b, int64_t e) { gelu_body(v, b, e); }

pk_status pk_gelu_f32(int64_t n, const float *x, float *y) {
    if (n < 0) return PK_ERR_SHAPE;
    if (n == 0) return PK_OK;
    if (!x || !y) return PK_ERR_NULL;
    gelu_ctx c = {x, y};
    const pk_isa isa = pk_active_isa();
    pk_parallel_for(n, 1 << 14, isa == PK_ISA_AVX512 ? gelu_avx512 : isa == PK_ISA_AVX2 ? gelu_avx2 : gelu_scalar, &c);
    return PK_OK;
}

// ---- pooling

typedef struct { int64_t T, n; const float *x, *mask; float *out; int normalize; } pool_ctx;

static void pool_range(void *vc, int64_t b0, int64_t b1) {
    // sequences [b0, b1): out = Σ_t mask_t x_t / max(Σ mask, 1e-9), then / ‖out‖ (max 1e-12) if asked
    const pool_ctx *c = vc;
    for (int64_t b = b0; b < b1; b++) {
        float *o = c->out + b * c->n;
        memset(o, 0, (size_t)c->n * 4);
        double cnt = 0;
        for (int64_t t = 0; t < c->T; t++) {
            const float w = c->mask ? c->mask[b * c->T + t] : 1.0f;
            if (w == 0.0f) continue;
            cnt += w;
            const float *x = c->x + (b * c->T + t) * c->n;
            for (int64_t j = 0; j < c->n; j++) o[j] += w * x[j];
        }
        const float inv = (float)(1.0 / (cnt > 1e-9 ? cnt : 1e-9));
        for (int64_t j = 0; j < c->n; j++) o[j] *= inv;
        if (!c->normalize) continue;
        double q = 0;
        for (int64_t j = 0; j < c->n; j++) q += (double)o[j] * o[j];
        const float s = (float)(1.0 / fmax(sqrt(q), 1e-12));
        for (int64_t j = 0; j < c->n; j++) o[j] *= s;
    }
}

pk_status pk_mean_pool_f32(int64_t B, int64_t T, int64_t n, const float *x, const float *mask, int normalize, float *out) {
    if (B < 0 || T < 0 || n < 0) return PK_ERR_SHAPE;
    if (B == 0 || n == 0) return PK_OK;
    if ((T > 0 && !x) || !out) return PK_ERR_NULL;
    pool_ctx c = {T, n, x, mask, out, normalize};
    pk_parallel_for(B, 1, pool_range, &c);
    return PK_OK;
}

// ---- backward passes (fine-tuning)

typedef struct {
    int64_t n;
    float eps;
    const float *x, *gamma, *dy;
    float *dx;
} lnb_ctx;

static void lnb_range(void *v, int64_t r0, int64_t r1) {
    // rows [r0, r1): with x̂ = (x − mean)/σ and g = gamma·dy: dx = (g − mean(g) − x̂·mean(g·x̂)) / σ
    const lnb_ctx *c = v;
    for (int64_t r = r0; r < r1; r++) {
        const float *x = c->x + r * c->n, *dy = c->dy + r * c->n;
        double mean, inv;
        row_stats(x, c->n, c->eps, &mean, &inv);
        double sg = 0, sgx = 0;
        for (int64_t j = 0; j < c->n; j++) {
            const double g = (double)c->gamma[j] * dy[j], xh = ((double)x[j] - mean) * inv;
            sg += g;
            sgx += g * xh;
        }
        sg /= (double)c->n;
        sgx /= (double)c->n;
        float *dx = c->dx + r * c->n;
        for (int64_t j = 0; j < c->n; j++) {
            const double g = (double)c->gamma[j] * dy[j], xh = ((double)x[j] - mean) * inv;
            dx[j] = (float)((g - sg - xh * sgx) * inv);
        }
    }
}

pk_status pk_layernorm_backward_f32(int64_t rows, int64_t n, const float *x, const float *gamma, float eps, const float *dy,
                                    float *dx) {
    if (rows < 0 || n < 0) return PK_ERR_SHAPE;
    if (!(eps >= 0.0f)) return PK_ERR_ARG;
    if (rows == 0 || n == 0) return PK_OK;
    if (!x || !gamma || !dy || !dx) return PK_ERR_NULL;
    lnb_ctx c = {n, eps, x, gamma, dy, dx};
    pk_parallel_for(rows, 8, lnb_range, &c);
    return PK_OK;
}

typedef struct {
    int64_t rows, n;
    float eps;
    const float *x, *dy;
    const double *stats; // per row: mean, 1/sqrt(var + eps)
    float *dgamma, *dbeta;
} lnp_ctx;

static void lnp_stats(void *v, int64_t r0, int64_t r1) {
    lnp_ctx *c = v;
    double *st = (double *)c->stats;
    for (int64_t r = r0; r < r1; r++) row_stats(c->x + r * c->n, c->n, c->eps, &st[2 * r], &st[2 * r + 1]);
}

static void lnp_cols(void *v, int64_t j0, int64_t j1) {
    // columns [j0, j1): Σ over rows (in row order, in double) of dy·x̂ and dy
    const lnp_ctx *c = v;
    for (int64_t j = j0; j < j1; j++) {
        double g = 0, b = 0;
        for (int64_t r = 0; r < c->rows; r++) {
            const double dy = c->dy[r * c->n + j];
            g += dy * (((double)c->x[r * c->n + j] - c->stats[2 * r]) * c->stats[2 * r + 1]);
            b += dy;
        }
        if (c->dgamma) c->dgamma[j] = (float)g;
        if (c->dbeta) c->dbeta[j] = (float)b;
    }
}

pk_status pk_layernorm_param_grad_f32(int64_t rows, int64_t n, const float *x, float eps, const float *dy, float *dgamma,
                                      float *dbeta) {
    if (rows < 0 || n < 0) return PK_ERR_SHAPE;
    if (!(eps >= 0.0f)) return PK_ERR_ARG;
    if (n == 0) return PK_OK;
    if (!dgamma && !dbeta) return PK_OK;
    if (rows == 0) {
        for (int64_t j = 0; j < n; j++) { if (dgamma) dgamma[j] = 0; if (dbeta) dbeta[j] = 0; }
        return PK_OK;
    }
    if (!x || !dy) return PK_ERR_NULL;
    double *stats = malloc((size_t)rows * 2 * sizeof(double));
    if (!stats) return PK_ERR_NOMEM;
    lnp_ctx c = {rows, n, eps, x, dy, stats, dgamma, dbeta};
    pk_parallel_for(rows, 8, lnp_stats, &c);
    pk_parallel_for(n, 8, lnp_cols, &c);
    free(stats);
    return PK_OK;
}

typedef struct { const float *x, *dy; float *dx; } gelub_ctx;

static PK_ALWAYS_INLINE void gelub_body(void *v, int64_t b, int64_t e) {
    // elements [b, e): dx = dy · (Φ(x) + x·φ(x)), φ the standard normal density
    const gelub_ctx *c = v;
    for (int64_t i = b; i < e; i++) {
        const float x = c->x[i];
        const float cdf = 0.5f * (1.0f + erf_as(x * 0.70710678118654752f));
        const float pdf = 0.39894228040143268f * exp_neg(-0.5f * (x * x < 170.0f ? x * x : 170.0f));
        c->dx[i] = c->dy[i] * (cdf + x * pdf);
    }
}
PK_TARGET_AVX512 static void gelub_avx512(void *v, int64_t b, int64_t e) { gelub_body(v, b, e); }
PK_TARGET_AVX2 static void gelub_avx2(void *v, int64_t b, int64_t e) { gelub_body(v, b, e); }
static void gelub_scalar(void *v, int64_t b, int64_t e) { gelub_body(v, b, e); }

pk_status pk_gelu_backward_f32(int64_t n, const float *x, const float *dy, float *dx) {
    if (n < 0) return PK_ERR_SHAPE;
    if (n == 0) return PK_OK;
    if (!x || !dy || !dx) return PK_ERR_NULL;
    gelub_ctx c = {x, dy, dx};
    const pk_isa isa = pk_active_isa();
    pk_parallel_for(n, 1 << 14, isa == PK_ISA_AVX512 ? gelub_avx512 : isa == PK_ISA_AVX2 ? gelub_avx2 : gelub_scalar, &c);
    return PK_OK;
}

typedef struct { int64_t T, n; const float *x, *mask, *dout; float *dx; int nomem; } poolb_ctx;

static void poolb_range(void *vc, int64_t b0, int64_t b1) {
    // sequences [b0, b1): e = m/‖m‖, m = Σ mask·x / Σ mask. dm = (de − e·(e·de)) / ‖m‖, dx_t = mask_t·dm / Σ mask
    poolb_ctx *c = vc;
    float *m = pk_scratch(9, (size_t)c->n * 2 * sizeof(float));
    if (!m) { c->nomem = 1; return; }
    float *dm = m + c->n;
    for (int64_t b = b0; b < b1; b++) {
        memset(m, 0, (size_t)c->n * 4);
        double cnt = 0;
        for (int64_t t = 0; t < c->T; t++) {
            const float w = c->mask ? c->mask[b * c->T + t] : 1.0f;
            cnt += w;
            if (w != 0.0f) for (int64_t j = 0; j < c->n; j++) m[j] += w * c->x[(b * c->T + t) * c->n + j];
        }
        const double invc = 1.0 / (cnt > 1e-9 ? cnt : 1e-9);
        double q = 0, ed = 0;
        for (int64_t j = 0; j < c->n; j++) { m[j] = (float)(m[j] * invc); q += (double)m[j] * m[j]; }
        const double norm = fmax(sqrt(q), 1e-12);
        for (int64_t j = 0; j < c->n; j++) ed += m[j] / norm * c->dout[b * c->n + j];
        for (int64_t j = 0; j < c->n; j++) dm[j] = (float)((c->dout[b * c->n + j] - m[j] / norm * ed) / norm * invc);
        for (int64_t t = 0; t < c->T; t++) {
            const float w = c->mask ? c->mask[b * c->T + t] : 1.0f;
            float *dx = c->dx + (b * c->T + t) * c->n;
            for (int64_t j = 0; j < c->n; j++) dx[j] = w * dm[j];
        }
    }
}

pk_status pk_mean_pool_backward_f32(int64_t B, int64_t T, int64_t n, const float *x, const float *mask, const float *dout,
                                    float *dx) {
    if (B < 0 || T < 0 || n < 0) return PK_ERR_SHAPE;
    if (B == 0 || T == 0 || n == 0) return PK_OK;
    if (!x || !dout || !dx) return PK_ERR_NULL;
    poolb_ctx c = {T, n, x, mask, dout, dx, 0};
    pk_parallel_for(B, 1, poolb_range, &c);
    return c.nomem ? PK_ERR_NOMEM : PK_OK;
}
