// Transformer encoder pieces (BERT): embeddings, layer normalisation, GELU, masked multi-head
// self-attention with per-head masks, mean pooling and L2 normalisation. Inference (forward)
// kernels; rows of activations are tokens, B sequences of T tokens each.
#include "internal.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_T 4096

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

static PK_ALWAYS_INLINE float exp_neg(float x) {
    // e^x for x ≤ 0 (x ≥ −88 here): x = k·ln2 + r, |r| ≤ ln2/2, e^r by a degree-6 polynomial, 2^k by
    // building the exponent bits
    const float kf = __builtin_roundf(x * 1.44269504088896341f);
    const float r = (x - kf * 0.693145751953125f) - kf * 1.428606765330187e-06f;
    float p = 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t bits = ((int32_t)kf + 127) << 23;
    float scale;
    memcpy(&scale, &bits, 4);
    return p * scale;
}

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

// ---- attention (query rows of padding are computed too: their keys are masked for real tokens)

typedef struct {
    int64_t B, T, H, D, ldq;
    const float *q, *k, *v, *mask, *head_mask;
    float *out;
    int64_t ldo;
} attn_ctx;

static PK_ALWAYS_INLINE void attn_body(void *vc, int64_t p0, int64_t p1) {
    // (sequence, head) pairs [p0, p1): for each query row t, softmax over keys s of
    // q_t·k_s / √D − ∞·(1 − mask_s), times head_mask[h], times v
    const attn_ctx *c = vc;
    float p[MAX_T];
    const float scale = 1.0f / sqrtf((float)c->D);
    for (int64_t pair = p0; pair < p1; pair++) {
        const int64_t b = pair / c->H, h = pair % c->H;
        const float hm = c->head_mask ? c->head_mask[h] : 1.0f;
        const float *m = c->mask ? c->mask + b * c->T : NULL;
        for (int64_t t = 0; t < c->T; t++) {
            const float *qt = c->q + (b * c->T + t) * c->ldq + h * c->D;
            float mx = -INFINITY;
            for (int64_t s = 0; s < c->T; s++) {
                if (m && m[s] == 0.0f) { p[s] = -INFINITY; continue; }
                const float *ks = c->k + (b * c->T + s) * c->ldq + h * c->D;
                float lane[8] = {0};
                int64_t d = 0;
                for (; d + 8 <= c->D; d += 8)
                    for (int l = 0; l < 8; l++) lane[l] += qt[d + l] * ks[d + l];
                float dot = ((lane[0] + lane[4]) + (lane[1] + lane[5])) + ((lane[2] + lane[6]) + (lane[3] + lane[7]));
                for (; d < c->D; d++) dot += qt[d] * ks[d];
                p[s] = dot * scale;
                mx = p[s] > mx ? p[s] : mx;
            }
            float *o = c->out + (b * c->T + t) * c->ldo + h * c->D;
            memset(o, 0, (size_t)c->D * 4);
            if (mx == -INFINITY) continue; // no key to attend to: zeros
            double sum = 0;
            for (int64_t s = 0; s < c->T; s++) {
                p[s] = p[s] == -INFINITY ? 0.0f : expf(p[s] - mx);
                sum += p[s];
            }
            const float inv = (float)(1.0 / sum) * hm;
            for (int64_t s = 0; s < c->T; s++) {
                if (p[s] == 0.0f) continue;
                const float w = p[s] * inv;
                const float *vs = c->v + (b * c->T + s) * c->ldq + h * c->D;
                for (int64_t d = 0; d < c->D; d++) o[d] += w * vs[d];
            }
        }
    }
}

// e^x for x ≤ 0 in straight-line arithmetic the compiler vectorizes: x = n·ln 2 + r with |r| ≤ ln 2 / 2
// (ln 2 split in two for an exact n·ln 2), a degree-6 polynomial for e^r, 2^n put in the exponent
// bits. Relative error about 2e-7; below -87 (or NaN) it returns e^-87, above 0 it returns 1 (callers
// zero masked entries).
static PK_ALWAYS_INLINE float exp_nonpositive(float x) {
    x = x > -87.0f ? x : -87.0f; // NaN too: no out-of-range conversion below
    x = x < 0.0f ? x : 0.0f;     // a masked key's score may lie above the live maximum: it is zeroed later
    const float n = __builtin_rintf(x * 1.44269504088896341f);
    const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
    float y = 1.9875691500e-4f;
    y = y * r + 1.3981999507e-3f;
    y = y * r + 8.3334519073e-3f;
    y = y * r + 4.1665795894e-2f;
    y = y * r + 1.6666665459e-1f;
    y = y * r + 5.0000001201e-1f;
    y = y * r * r + r + 1.0f;
    const int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, 4);
    return y * scale;
}

// The same attention, each (sequence, head) pair as three small dense steps the compiler vectorizes
// along the keys or the features: the scaled keys transposed once (D × Tp, Tp = T rounded up to 32),
// two queries' scores at a time as D broadcast-multiply-adds over 32 keys held in registers, the softmax with a vector
// exponential, and the weighted sum of value rows. For D·Tp ≤ ATTN_FAST floats (the transpose lives
// on the worker's stack); attn_body otherwise.
#define ATTN_FAST 16384
#define ATTN_KB 32 // keys per block of scores: 4 AVX2 registers of sums per query
// Scores of queries qa and qb against keys [s0, s0 + ATTN_KB) of kt (D × Tp) into pa, pb.
static PK_ALWAYS_INLINE void attn_scores2(const float *qa, const float *qb, const float *kt, int64_t D, int64_t Tp, int64_t s0,
                                          float *pa, float *pb) {
    float a[ATTN_KB] __attribute__((aligned(64))) = {0}, e[ATTN_KB] __attribute__((aligned(64))) = {0};
    for (int64_t d = 0; d < D; d++) {
        const float x = qa[d], y = qb[d];
        const float *kr = kt + d * Tp + s0;
        for (int j = 0; j < ATTN_KB; j++) { a[j] += x * kr[j]; e[j] += y * kr[j]; }
    }
    memcpy(pa + s0, a, sizeof a);
    memcpy(pb + s0, e, sizeof e);
}

typedef float attn_v8 __attribute__((vector_size(32)));
#define ATTN_SH(a, b, ...) __builtin_shufflevector(a, b, __VA_ARGS__)
// kt[(d0 + i)·Tp + s0 + j] = scale · (key s0 + j)[d0 + i] for an 8 × 8 block (rows of keys at k, stride ldk).
static PK_ALWAYS_INLINE void attn_kt8(const float *k, int64_t ldk, int64_t rows, float scale, float *kt, int64_t Tp) {
    attn_v8 r[8];
    for (int i = 0; i < 8; i++) {
        if (i < rows) memcpy(&r[i], k + i * ldk, 32);
        else r[i] = (attn_v8){0, 0, 0, 0, 0, 0, 0, 0};
    }
    const attn_v8 t0 = ATTN_SH(r[0], r[1], 0, 8, 1, 9, 4, 12, 5, 13), t1 = ATTN_SH(r[0], r[1], 2, 10, 3, 11, 6, 14, 7, 15),
                  t2 = ATTN_SH(r[2], r[3], 0, 8, 1, 9, 4, 12, 5, 13), t3 = ATTN_SH(r[2], r[3], 2, 10, 3, 11, 6, 14, 7, 15),
                  t4 = ATTN_SH(r[4], r[5], 0, 8, 1, 9, 4, 12, 5, 13), t5 = ATTN_SH(r[4], r[5], 2, 10, 3, 11, 6, 14, 7, 15),
                  t6 = ATTN_SH(r[6], r[7], 0, 8, 1, 9, 4, 12, 5, 13), t7 = ATTN_SH(r[6], r[7], 2, 10, 3, 11, 6, 14, 7, 15);
    const attn_v8 u0 = ATTN_SH(t0, t2, 0, 1, 8, 9, 4, 5, 12, 13), u1 = ATTN_SH(t0, t2, 2, 3, 10, 11, 6, 7, 14, 15),
                  u2 = ATTN_SH(t1, t3, 0, 1, 8, 9, 4, 5, 12, 13), u3 = ATTN_SH(t1, t3, 2, 3, 10, 11, 6, 7, 14, 15),
                  u4 = ATTN_SH(t4, t6, 0, 1, 8, 9, 4, 5, 12, 13), u5 = ATTN_SH(t4, t6, 2, 3, 10, 11, 6, 7, 14, 15),
                  u6 = ATTN_SH(t5, t7, 0, 1, 8, 9, 4, 5, 12, 13), u7 = ATTN_SH(t5, t7, 2, 3, 10, 11, 6, 7, 14, 15);
    const attn_v8 sc = {scale, scale, scale, scale, scale, scale, scale, scale};
    const attn_v8 o[8] = {ATTN_SH(u0, u4, 0, 1, 2, 3, 8, 9, 10, 11), ATTN_SH(u1, u5, 0, 1, 2, 3, 8, 9, 10, 11),
                          ATTN_SH(u2, u6, 0, 1, 2, 3, 8, 9, 10, 11), ATTN_SH(u3, u7, 0, 1, 2, 3, 8, 9, 10, 11),
                          ATTN_SH(u0, u4, 4, 5, 6, 7, 12, 13, 14, 15), ATTN_SH(u1, u5, 4, 5, 6, 7, 12, 13, 14, 15),
                          ATTN_SH(u2, u6, 4, 5, 6, 7, 12, 13, 14, 15), ATTN_SH(u3, u7, 4, 5, 6, 7, 12, 13, 14, 15)};
    for (int i = 0; i < 8; i++) {
        const attn_v8 v = o[i] * sc;
        memcpy(kt + i * Tp, &v, 32);
    }
}

// o[0..DC) += Σ_s w_s · v_s over the keys with a weight, the sums in registers (DC a constant).
#define ATTN_PV(DC)                                                                                   \
    do {                                                                                              \
        float acc_[DC] __attribute__((aligned(64))) = {0};                                            \
        for (int64_t s = 0; s < T; s++) {                                                             \
            if (p[s] == 0.0f) continue;                                                               \
            const float w = p[s] * inv;                                                               \
            const float *vs = c->v + (b * T + s) * c->ldq + h * D;                                    \
            for (int j = 0; j < DC; j++) acc_[j] += w * vs[j];                                        \
        }                                                                                             \
        memcpy(o, acc_, sizeof acc_);                                                                 \
    } while (0)

static PK_ALWAYS_INLINE void attn_fast_body(void *vc, int64_t p0, int64_t p1) {
    const attn_ctx *c = vc;
    const int64_t T = c->T, D = c->D, Tp = (T + ATTN_KB - 1) / ATTN_KB * ATTN_KB;
    float kt[ATTN_FAST] __attribute__((aligned(64)));
    float pp[2][MAX_T + ATTN_KB] __attribute__((aligned(64)));
    const float scale = 1.0f / sqrtf((float)D);
    for (int64_t pair = p0; pair < p1; pair++) {
        const int64_t b = pair / c->H, h = pair % c->H;
        const float hm = c->head_mask ? c->head_mask[h] : 1.0f;
        const float *m = c->mask ? c->mask + b * T : NULL;
        if (D % 8 == 0) {
            for (int64_t s = 0; s < Tp; s += 8)
                for (int64_t d = 0; d < D; d += 8)
                    attn_kt8(c->k + (b * T + (s < T ? s : 0)) * c->ldq + h * D + d, c->ldq, T - s, scale, kt + d * Tp + s, Tp);
        } else {
            for (int64_t s = 0; s < T; s++) {
                const float *ks = c->k + (b * T + s) * c->ldq + h * D;
                for (int64_t d = 0; d < D; d++) kt[d * Tp + s] = ks[d] * scale;
            }
            for (int64_t d = 0; d < D; d++)
                for (int64_t s = T; s < Tp; s++) kt[d * Tp + s] = 0.0f;
        }
        int64_t live = 0; // keys to attend to
        for (int64_t s = 0; s < T; s++) live += !m || m[s] != 0.0f;
        for (int64_t t0 = 0; t0 < T; t0 += 2) {
            const int64_t nt = T - t0 < 2 ? 1 : 2;
            const float *qa = c->q + (b * T + t0) * c->ldq + h * D, *qb = nt == 2 ? qa + c->ldq : qa;
            if (live > 0)
                for (int64_t s0 = 0; s0 < Tp; s0 += ATTN_KB) attn_scores2(qa, qb, kt, D, Tp, s0, pp[0], pp[1]);
            for (int64_t i = 0; i < nt; i++) {
                float *p = pp[i];
                float *o = c->out + (b * T + t0 + i) * c->ldo + h * D;
                memset(o, 0, (size_t)D * 4);
                if (live == 0) continue; // no key to attend to: zeros
                float mx = -INFINITY;
                for (int64_t s = 0; s < T; s++) {
                    const float v = m && m[s] == 0.0f ? -INFINITY : p[s];
                    mx = v > mx ? v : mx;
                }
                for (int64_t s = 0; s < T; s++) p[s] = exp_nonpositive(p[s] - mx);
                if (m)
                    for (int64_t s = 0; s < T; s++) p[s] = m[s] == 0.0f ? 0.0f : p[s];
                float sum = 0.0f;
                for (int64_t s = 0; s < T; s++) sum += p[s];
                const float inv = 1.0f / sum * hm;
                if (D == 32) ATTN_PV(32);
                else if (D == 64) ATTN_PV(64);
                else
                    for (int64_t s = 0; s < T; s++) {
                        if (p[s] == 0.0f) continue;
                        const float w = p[s] * inv;
                        const float *vs = c->v + (b * T + s) * c->ldq + h * D;
                        for (int64_t d = 0; d < D; d++) o[d] += w * vs[d];
                    }
            }
        }
    }
}

PK_TARGET_AVX512 static void attn_avx512(void *v, int64_t b, int64_t e) { attn_body(v, b, e); }
PK_TARGET_AVX2 static void attn_avx2(void *v, int64_t b, int64_t e) { attn_body(v, b, e); }
PK_TARGET_AVX512 static void attn_fast_avx512(void *v, int64_t b, int64_t e) { attn_fast_body(v, b, e); }
PK_TARGET_AVX2 static void attn_fast_avx2(void *v, int64_t b, int64_t e) { attn_fast_body(v, b, e); }
static void attn_scalar(void *v, int64_t b, int64_t e) { attn_body(v, b, e); }

pk_status pk_attention_f32(int64_t B, int64_t T, int64_t H, int64_t D, const float *q, const float *k, const float *v,
                           int64_t ldq, const float *mask, const float *head_mask, float *out, int64_t ldo) {
    if (B < 0 || T < 0 || H < 0 || D < 0 || ldq < H * D || ldo < H * D) return PK_ERR_SHAPE;
    if (T > MAX_T) return PK_ERR_SHAPE;
    if (B == 0 || T == 0 || H == 0 || D == 0) return PK_OK;
    if (!q || !k || !v || !out) return PK_ERR_NULL;
    attn_ctx c = {B, T, H, D, ldq, q, k, v, mask, head_mask, out, ldo};
    const pk_isa isa = pk_active_isa();
    if (D * ((T + ATTN_KB - 1) / ATTN_KB * ATTN_KB) <= ATTN_FAST && isa != PK_ISA_SCALAR) {
        pk_parallel_for(B * H, 1, isa == PK_ISA_AVX512 ? attn_fast_avx512 : attn_fast_avx2, &c);
        return PK_OK;
    }
    pk_parallel_for(B * H, 1, isa == PK_ISA_AVX512 ? attn_avx512 : isa == PK_ISA_AVX2 ? attn_avx2 : attn_scalar, &c);
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

typedef struct {
    int64_t B, T, H, D, ldq;
    const float *q, *k, *v, *mask, *head_mask, *dout;
    float *dq, *dk, *dv;
    int nomem;
} attnb_ctx;

static void attnb_range(void *vc, int64_t p0, int64_t p1) {
    // (sequence, head) pairs [p0, p1): recompute P = softmax(q·kᵀ/√D) (T × T, masked keys 0), then
    // dV = hm·Pᵀ·dO, dP = hm·dO·Vᵀ, dS = P ⊙ (dP − rowsum(P ⊙ dP)), dQ = dS·K/√D, dK = dSᵀ·Q/√D
    attnb_ctx *c = vc;
    const int64_t T = c->T, D = c->D;
    float *P = pk_scratch(9, (size_t)(2 * T * T) * sizeof(float));
    if (!P) { c->nomem = 1; return; }
    float *dS = P + T * T;
    const float scale = 1.0f / sqrtf((float)D);
    for (int64_t pair = p0; pair < p1; pair++) {
        const int64_t b = pair / c->H, h = pair % c->H;
        const float hm = c->head_mask ? c->head_mask[h] : 1.0f;
        const float *m = c->mask ? c->mask + b * T : NULL;
#define ROW(ptr, t) ((ptr) + (b * T + (t)) * c->ldq + h * D)
        for (int64_t t = 0; t < T; t++) {
            float mx = -INFINITY, *pt = P + t * T;
            for (int64_t s = 0; s < T; s++) {
                if (m && m[s] == 0.0f) { pt[s] = -INFINITY; continue; }
                float dot = 0;
                for (int64_t d = 0; d < D; d++) dot += ROW(c->q, t)[d] * ROW(c->k, s)[d];
                pt[s] = dot * scale;
                mx = pt[s] > mx ? pt[s] : mx;
            }
            double sum = 0;
            for (int64_t s = 0; s < T; s++) { pt[s] = (mx == -INFINITY || pt[s] == -INFINITY) ? 0.0f : expf(pt[s] - mx); sum += pt[s]; }
            const float inv = sum > 0 ? (float)(1.0 / sum) : 0.0f;
            for (int64_t s = 0; s < T; s++) pt[s] *= inv;
        }
        for (int64_t s = 0; s < T; s++) { memset(ROW(c->dv, s), 0, (size_t)D * 4); memset(ROW(c->dk, s), 0, (size_t)D * 4); }
        for (int64_t t = 0; t < T; t++) {
            const float *pt = P + t * T, *dot = ROW(c->dout, t);
            float *ds = dS + t * T;
            double acc = 0;
            for (int64_t s = 0; s < T; s++) {
                float dp = 0;
                for (int64_t d = 0; d < D; d++) dp += dot[d] * ROW(c->v, s)[d];
                ds[s] = hm * dp;
                acc += (double)pt[s] * ds[s];
                const float w = hm * pt[s];
                if (w != 0.0f) for (int64_t d = 0; d < D; d++) ROW(c->dv, s)[d] += w * dot[d];
            }
            for (int64_t s = 0; s < T; s++) ds[s] = pt[s] * (ds[s] - (float)acc) * scale;
            float *dq = ROW(c->dq, t);
            memset(dq, 0, (size_t)D * 4);
            for (int64_t s = 0; s < T; s++)
                if (ds[s] != 0.0f)
                    for (int64_t d = 0; d < D; d++) dq[d] += ds[s] * ROW(c->k, s)[d];
        }
        for (int64_t s = 0; s < T; s++) {
            float *dk = ROW(c->dk, s);
            for (int64_t t = 0; t < T; t++) {
                const float w = dS[t * T + s];
                if (w != 0.0f) for (int64_t d = 0; d < D; d++) dk[d] += w * ROW(c->q, t)[d];
            }
        }
#undef ROW
    }
}

pk_status pk_attention_backward_f32(int64_t B, int64_t T, int64_t H, int64_t D, const float *q, const float *k,
                                    const float *v, int64_t ldq, const float *mask, const float *head_mask,
                                    const float *dout, float *dq, float *dk, float *dv) {
    if (B < 0 || T < 0 || H < 0 || D < 0 || ldq < H * D || T > MAX_T) return PK_ERR_SHAPE;
    if (B == 0 || T == 0 || H == 0 || D == 0) return PK_OK;
    if (!q || !k || !v || !dout || !dq || !dk || !dv) return PK_ERR_NULL;
    attnb_ctx c = {B, T, H, D, ldq, q, k, v, mask, head_mask, dout, dq, dk, dv, 0};
    pk_parallel_for(B * H, 1, attnb_range, &c);
    return c.nomem ? PK_ERR_NOMEM : PK_OK;
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
