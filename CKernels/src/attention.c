// Masked multi-head self-attention of the BERT encoder with per-head masks: the forward pass (a
// general kernel and a vectorised fast path for heads whose transposed keys fit on the stack) and
// its backward pass. Reference: src/ref/transformer_ref.c.
#include "transformer_internal.h"
#include <math.h>
#include <stdlib.h>

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

// e^x for the softmax: exp_neg on x clamped to [-87, 0] (a masked key's score may lie above the live
// maximum, and NaN must not reach the float-to-int conversion; callers zero masked entries).
static PK_ALWAYS_INLINE float exp_nonpositive(float x) {
    x = x > -87.0f ? x : -87.0f;
    return exp_neg(x < 0.0f ? x : 0.0f);
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

// ---- attention backward

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

