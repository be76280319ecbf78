// Activation panels and tile write-back for the structured sparse kernels (see sparse_panels.h).
// The panels put the samples an output tile needs side by side: a micro-kernel then multiplies one
// weight by a contiguous vector of samples of the feature that weight reads.
#include "sparse_panels.h"
#include <immintrin.h>
#include <string.h>

typedef struct {
    int fm;
    int64_t B, K, ldx, nr, kblocks;
    const float *X;
    float *P;
} panel_ctx;

// One 8-sample × 8-feature block: P rows k0..k0+7 (stride nr) at columns j0..j0+7 from X rows
// b0..b0+7 (batch-major), all inside X.
PK_TARGET_AVX2 static void transpose8_avx2(const float *x, int64_t ldx, float *p, int64_t nr) {
    __m256 r0 = _mm256_loadu_ps(x), r1 = _mm256_loadu_ps(x + ldx), r2 = _mm256_loadu_ps(x + 2 * ldx),
           r3 = _mm256_loadu_ps(x + 3 * ldx), r4 = _mm256_loadu_ps(x + 4 * ldx), r5 = _mm256_loadu_ps(x + 5 * ldx),
           r6 = _mm256_loadu_ps(x + 6 * ldx), r7 = _mm256_loadu_ps(x + 7 * ldx);
    __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1), t2 = _mm256_unpacklo_ps(r2, r3),
           t3 = _mm256_unpackhi_ps(r2, r3), t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5),
           t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE),
           s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE),
           s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE),
           s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    _mm256_store_ps(p, _mm256_permute2f128_ps(s0, s4, 0x20));
    _mm256_store_ps(p + nr, _mm256_permute2f128_ps(s1, s5, 0x20));
    _mm256_store_ps(p + 2 * nr, _mm256_permute2f128_ps(s2, s6, 0x20));
    _mm256_store_ps(p + 3 * nr, _mm256_permute2f128_ps(s3, s7, 0x20));
    _mm256_store_ps(p + 4 * nr, _mm256_permute2f128_ps(s0, s4, 0x31));
    _mm256_store_ps(p + 5 * nr, _mm256_permute2f128_ps(s1, s5, 0x31));
    _mm256_store_ps(p + 6 * nr, _mm256_permute2f128_ps(s2, s6, 0x31));
    _mm256_store_ps(p + 7 * nr, _mm256_permute2f128_ps(s3, s7, 0x31));
}

static void panel_range(void *v, int64_t q0, int64_t q1) {
    // items [q0, q1) = (panel, block of 64 features): P[p][k][j] for k in the block, every j < nr;
    // 8 × 8 transposes, samples outer, so each X row is read in runs of 256 bytes
    const panel_ctx *c = v;
    const int avx2 = pk_active_isa() >= PK_ISA_AVX2;
    for (int64_t q = q0; q < q1; q++) {
        const int64_t p = q / c->kblocks, k0 = (q % c->kblocks) * 64, nk = PK_MIN(64, c->K - k0);
        const int64_t b0 = p * c->nr, nb = PK_MIN(c->nr, c->B - b0);
        float *P = c->P + p * c->K * c->nr + k0 * c->nr;
        if (c->fm) {
            for (int64_t k = 0; k < nk; k++) {
                memcpy(P + k * c->nr, c->X + (k0 + k) * c->ldx + b0, (size_t)nb * sizeof(float));
                memset(P + k * c->nr + nb, 0, (size_t)(c->nr - nb) * sizeof(float));
            }
            continue;
        }
        const int64_t nk8 = avx2 ? nk / 8 * 8 : 0, nb8 = avx2 ? nb / 8 * 8 : 0;
        for (int64_t j = 0; j < nb8; j += 8)
            for (int64_t k = 0; k < nk8; k += 8) transpose8_avx2(c->X + (b0 + j) * c->ldx + k0 + k, c->ldx, P + k * c->nr + j, c->nr);
        for (int64_t k = 0; k < nk; k++) {
            // what the 8 × 8 blocks left: the last features, the last samples, the zero padding
            float *row = P + k * c->nr;
            for (int64_t jj = k < nk8 ? nb8 : 0; jj < nb; jj++) row[jj] = c->X[(b0 + jj) * c->ldx + k0 + k];
            for (int64_t jj = nb; jj < c->nr; jj++) row[jj] = 0.0f;
        }
    }
}

float *pk_sp_panels(int slot, int fm, int64_t B, int64_t K, const float *X, int64_t ldx, int64_t nr) {
    const int64_t np = (B + nr - 1) / nr;
    float *P = pk_scratch(slot, (size_t)PK_MAX(np * K * nr, 1) * sizeof(float));
    if (!P) return NULL;
    panel_ctx c = {fm, B, K, ldx, nr, (K + 63) / 64, X, P};
    pk_parallel_for(np * c.kblocks, 2, panel_range, &c);
    return P;
}

PK_TARGET_AVX2 static void store8_avx2(const float *T, const float *bias, float *y, int64_t ldy) {
    // 8 features × 8 samples of T (row stride NR) into 8 rows of y (batch-major), bias added
    __m256 r[8];
    for (int i = 0; i < 8; i++) r[i] = _mm256_load_ps(T + i * PK_SP_NR);
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]), t2 = _mm256_unpacklo_ps(r[2], r[3]),
           t3 = _mm256_unpackhi_ps(r[2], r[3]), t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]),
           t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE),
           s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE),
           s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE),
           s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    const __m256 b = bias ? _mm256_loadu_ps(bias) : _mm256_setzero_ps();
    _mm256_storeu_ps(y, _mm256_add_ps(_mm256_permute2f128_ps(s0, s4, 0x20), b));
    _mm256_storeu_ps(y + ldy, _mm256_add_ps(_mm256_permute2f128_ps(s1, s5, 0x20), b));
    _mm256_storeu_ps(y + 2 * ldy, _mm256_add_ps(_mm256_permute2f128_ps(s2, s6, 0x20), b));
    _mm256_storeu_ps(y + 3 * ldy, _mm256_add_ps(_mm256_permute2f128_ps(s3, s7, 0x20), b));
    _mm256_storeu_ps(y + 4 * ldy, _mm256_add_ps(_mm256_permute2f128_ps(s0, s4, 0x31), b));
    _mm256_storeu_ps(y + 5 * ldy, _mm256_add_ps(_mm256_permute2f128_ps(s1, s5, 0x31), b));
    _mm256_storeu_ps(y + 6 * ldy, _mm256_add_ps(_mm256_permute2f128_ps(s2, s6, 0x31), b));
    _mm256_storeu_ps(y + 7 * ldy, _mm256_add_ps(_mm256_permute2f128_ps(s3, s7, 0x31), b));
}

void pk_sp_store_tile(const float *T, int64_t h, int64_t w, int64_t o0, int64_t b0, const float *bias, int fm,
                      float *Y, int64_t ldy) {
    // h features × w samples of T into Y (+ bias per feature); the sum and the bias are added the
    // same way on every path (t + bias), so the ISA does not change the bits
    if (fm) {
        for (int64_t i = 0; i < h; i++) {
            float *y = Y + (o0 + i) * ldy + b0;
            const float b = bias ? bias[o0 + i] : 0.0f;
            for (int64_t j = 0; j < w; j++) y[j] = T[i * PK_SP_NR + j] + b;
        }
        return;
    }
    int64_t i = 0;
    if (pk_active_isa() >= PK_ISA_AVX2 && w % 8 == 0)
        for (; i + 8 <= h; i += 8)
            for (int64_t j = 0; j < w; j += 8)
                store8_avx2(T + i * PK_SP_NR + j, bias ? bias + o0 + i : NULL, Y + (b0 + j) * ldy + o0 + i, ldy);
    for (int64_t j = 0; j < w; j++) {
        float *y = Y + (b0 + j) * ldy + o0;
        for (int64_t ii = i; ii < h; ii++) y[ii] = T[ii * PK_SP_NR + j] + (bias ? bias[o0 + ii] : 0.0f);
    }
}

pk_status pk_sp_layout_check(int layout, int64_t B, int64_t in, int64_t out, int64_t ldx, int64_t ldy) {
    if (layout < 0 || layout > PK_LAYOUT_FEATURES) return PK_ERR_ARG;
    if (B < 0) return PK_ERR_SHAPE;
    if (ldx < ((layout & PK_LAYOUT_X_FEATURES) ? B : in) || ldy < ((layout & PK_LAYOUT_Y_FEATURES) ? B : out))
        return PK_ERR_SHAPE;
    return PK_OK;
}

// Validates the optional update against values of `count` entries at w; fills *uc.
pk_status pk_sp_update_setup(const pk_update_desc *u, const float *w, int64_t count, const float *g,
                             pk_update_consts *uc) {
    if (!u) {
        if (g && pk_overlaps(g, (size_t)count * 4, w, (size_t)count * 4)) return PK_ERR_ALIAS;
        return PK_OK;
    }
    pk_status st = pk_update_check(u);
    if (st != PK_OK) return st;
    if (u->w != w) return PK_ERR_ARG;
    const size_t nb = (size_t)count * 4;
    const float *m = u->kind == PK_UPDATE_SGD && u->momentum == 0.0f ? NULL : u->m;
    const float *v = u->kind == PK_UPDATE_ADAM ? u->v : NULL;
    if (g && (pk_overlaps(g, nb, w, nb) || pk_overlaps(g, nb, m, nb) || pk_overlaps(g, nb, v, nb))) return PK_ERR_ALIAS;
    if (pk_overlaps(m, nb, w, nb) || pk_overlaps(v, nb, w, nb) || pk_overlaps(m, nb, v, nb)) return PK_ERR_ALIAS;
    *uc = pk_update_prepare(u);
    return PK_OK;
}

