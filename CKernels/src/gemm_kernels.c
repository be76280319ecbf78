// Micro-kernels and the transposing pack of the masked GEMM (driver in gemm.c).
// Each micro-kernel computes one MR×NR tile over kc: acc (row-major MR×NR) := Σ_p Ã[p,:]ᵀ·B̃[p,:].
#include "gemm_internal.h"
#include <immintrin.h>
#include <string.h>


// ---- micro-kernels: acc (MR×NR, row-major) := Σ_p a[p,:]ᵀ b[p,:]

__attribute__((target("avx512f,avx512vl,fma")))
static void ukr_avx512(int64_t kc, const float *restrict a, const float *restrict b, float *restrict acc,
                       float *restrict c, int64_t ldc, int mode, const float *bias) {
    // kc × (12 rows of Ã) · (32 columns of B̃): 24 zmm accumulators.
    if (mode != PK_UKR_TO_ACC) // fetch the C tile's lines while the k loop runs (as in ukr_avx2)
        for (int r = 0; r < MR_512; r++) {
            __builtin_prefetch(c + r * ldc, 1);
            __builtin_prefetch(c + r * ldc + NR_512 - 1, 1);
        }
    __m512 c0a = _mm512_setzero_ps(), c0b = c0a, c1a = c0a, c1b = c0a, c2a = c0a, c2b = c0a,
           c3a = c0a, c3b = c0a, c4a = c0a, c4b = c0a, c5a = c0a, c5b = c0a, c6a = c0a, c6b = c0a,
           c7a = c0a, c7b = c0a, c8a = c0a, c8b = c0a, c9a = c0a, c9b = c0a, c10a = c0a, c10b = c0a,
           c11a = c0a, c11b = c0a;
    // unrolled: one compare-and-branch per four k steps, and room to issue the next B̃ loads early
    // (measured on Zen 3: the plain loop ran the tile at about 78% of the FMA peak, unrolled 87%)
#pragma GCC unroll 4
    for (int64_t p = 0; p < kc; p++) {
        __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
        _mm_prefetch((const char *)(b + 8 * NR_512), _MM_HINT_T0);
        __m512 x;
#define PK_ROW(r, ca, cb) x = _mm512_set1_ps(a[r]); ca = _mm512_fmadd_ps(x, b0, ca); cb = _mm512_fmadd_ps(x, b1, cb);
        PK_ROW(0, c0a, c0b) PK_ROW(1, c1a, c1b) PK_ROW(2, c2a, c2b) PK_ROW(3, c3a, c3b)
        PK_ROW(4, c4a, c4b) PK_ROW(5, c5a, c5b) PK_ROW(6, c6a, c6b) PK_ROW(7, c7a, c7b)
        PK_ROW(8, c8a, c8b) PK_ROW(9, c9a, c9b) PK_ROW(10, c10a, c10b) PK_ROW(11, c11a, c11b)
#undef PK_ROW
        a += MR_512;
        b += NR_512;
    }
    if (mode == PK_UKR_STORE_C && bias) {
        const __m512 ba = _mm512_loadu_ps(bias), bb = _mm512_loadu_ps(bias + 16);
#define PK_ST(r, ca, cb) _mm512_storeu_ps(c + (r) * ldc, _mm512_add_ps(ca, ba)); _mm512_storeu_ps(c + (r) * ldc + 16, _mm512_add_ps(cb, bb));
        PK_ST(0, c0a, c0b) PK_ST(1, c1a, c1b) PK_ST(2, c2a, c2b) PK_ST(3, c3a, c3b)
        PK_ST(4, c4a, c4b) PK_ST(5, c5a, c5b) PK_ST(6, c6a, c6b) PK_ST(7, c7a, c7b)
        PK_ST(8, c8a, c8b) PK_ST(9, c9a, c9b) PK_ST(10, c10a, c10b) PK_ST(11, c11a, c11b)
#undef PK_ST
        return;
    }
    if (mode == PK_UKR_STORE_C) {
#define PK_ST(r, ca, cb) _mm512_storeu_ps(c + (r) * ldc, ca); _mm512_storeu_ps(c + (r) * ldc + 16, cb);
        PK_ST(0, c0a, c0b) PK_ST(1, c1a, c1b) PK_ST(2, c2a, c2b) PK_ST(3, c3a, c3b)
        PK_ST(4, c4a, c4b) PK_ST(5, c5a, c5b) PK_ST(6, c6a, c6b) PK_ST(7, c7a, c7b)
        PK_ST(8, c8a, c8b) PK_ST(9, c9a, c9b) PK_ST(10, c10a, c10b) PK_ST(11, c11a, c11b)
#undef PK_ST
        return;
    }
    if (mode == PK_UKR_ADD_C) {
#define PK_ST(r, ca, cb) _mm512_storeu_ps(c + (r) * ldc, _mm512_add_ps(_mm512_loadu_ps(c + (r) * ldc), ca)); \
                         _mm512_storeu_ps(c + (r) * ldc + 16, _mm512_add_ps(_mm512_loadu_ps(c + (r) * ldc + 16), cb));
        PK_ST(0, c0a, c0b) PK_ST(1, c1a, c1b) PK_ST(2, c2a, c2b) PK_ST(3, c3a, c3b)
        PK_ST(4, c4a, c4b) PK_ST(5, c5a, c5b) PK_ST(6, c6a, c6b) PK_ST(7, c7a, c7b)
        PK_ST(8, c8a, c8b) PK_ST(9, c9a, c9b) PK_ST(10, c10a, c10b) PK_ST(11, c11a, c11b)
#undef PK_ST
        return;
    }
#define PK_ST(r, ca, cb) _mm512_store_ps(acc + (r) * NR_512, ca); _mm512_store_ps(acc + (r) * NR_512 + 16, cb);
    PK_ST(0, c0a, c0b) PK_ST(1, c1a, c1b) PK_ST(2, c2a, c2b) PK_ST(3, c3a, c3b)
    PK_ST(4, c4a, c4b) PK_ST(5, c5a, c5b) PK_ST(6, c6a, c6b) PK_ST(7, c7a, c7b)
    PK_ST(8, c8a, c8b) PK_ST(9, c9a, c9b) PK_ST(10, c10a, c10b) PK_ST(11, c11a, c11b)
#undef PK_ST
}

__attribute__((target("avx512f,avx512vl,fma")))
static void ukr_avx512_rows(int64_t kc, const float *a, int64_t lda, int64_t h, const float *restrict b,
                            float *restrict acc) {
    // kc × (12 rows of A read in place, row r at a + r·lda; rows ≥ h repeat row h−1) · (32 columns of B̃)
    const float *r0 = a, *r1 = a + PK_MIN(1, h - 1) * lda, *r2 = a + PK_MIN(2, h - 1) * lda,
                *r3 = a + PK_MIN(3, h - 1) * lda, *r4 = a + PK_MIN(4, h - 1) * lda, *r5 = a + PK_MIN(5, h - 1) * lda,
                *r6 = a + PK_MIN(6, h - 1) * lda, *r7 = a + PK_MIN(7, h - 1) * lda, *r8 = a + PK_MIN(8, h - 1) * lda,
                *r9 = a + PK_MIN(9, h - 1) * lda, *r10 = a + PK_MIN(10, h - 1) * lda, *r11 = a + PK_MIN(11, h - 1) * lda;
    __m512 c0a = _mm512_setzero_ps(), c0b = c0a, c1a = c0a, c1b = c0a, c2a = c0a, c2b = c0a,
           c3a = c0a, c3b = c0a, c4a = c0a, c4b = c0a, c5a = c0a, c5b = c0a, c6a = c0a, c6b = c0a,
           c7a = c0a, c7b = c0a, c8a = c0a, c8b = c0a, c9a = c0a, c9b = c0a, c10a = c0a, c10b = c0a,
           c11a = c0a, c11b = c0a;
    // unrolled: one compare-and-branch per four k steps, and room to issue the next B̃ loads early
    // (measured on Zen 3: the plain loop ran the tile at about 78% of the FMA peak, unrolled 87%)
#pragma GCC unroll 4
    for (int64_t p = 0; p < kc; p++) {
        __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
        _mm_prefetch((const char *)(b + 8 * NR_512), _MM_HINT_T0);
        __m512 x;
#define PK_ROW(rp, ca, cb) x = _mm512_set1_ps(rp[p]); ca = _mm512_fmadd_ps(x, b0, ca); cb = _mm512_fmadd_ps(x, b1, cb);
        PK_ROW(r0, c0a, c0b) PK_ROW(r1, c1a, c1b) PK_ROW(r2, c2a, c2b) PK_ROW(r3, c3a, c3b)
        PK_ROW(r4, c4a, c4b) PK_ROW(r5, c5a, c5b) PK_ROW(r6, c6a, c6b) PK_ROW(r7, c7a, c7b)
        PK_ROW(r8, c8a, c8b) PK_ROW(r9, c9a, c9b) PK_ROW(r10, c10a, c10b) PK_ROW(r11, c11a, c11b)
#undef PK_ROW
        b += NR_512;
    }
#define PK_ST(r, ca, cb) _mm512_store_ps(acc + (r) * NR_512, ca); _mm512_store_ps(acc + (r) * NR_512 + 16, cb);
    PK_ST(0, c0a, c0b) PK_ST(1, c1a, c1b) PK_ST(2, c2a, c2b) PK_ST(3, c3a, c3b)
    PK_ST(4, c4a, c4b) PK_ST(5, c5a, c5b) PK_ST(6, c6a, c6b) PK_ST(7, c7a, c7b)
    PK_ST(8, c8a, c8b) PK_ST(9, c9a, c9b) PK_ST(10, c10a, c10b) PK_ST(11, c11a, c11b)
#undef PK_ST
}

__attribute__((target("avx2,fma")))
static void ukr_avx2(int64_t kc, const float *restrict a, const float *restrict b, float *restrict acc,
                     float *restrict c, int64_t ldc, int mode, const float *bias) {
    // kc × (6 rows of Ã) · (16 columns of B̃): 12 ymm accumulators.
    if (mode != PK_UKR_TO_ACC)
        // the tile of C is written (and, for ADD_C, read) at the end: fetch its lines now, while the
        // k loop runs, instead of stalling on them then (C is far larger than the caches)
        for (int r = 0; r < MR_256; r++) {
            __builtin_prefetch(c + r * ldc, 1);
            __builtin_prefetch(c + r * ldc + NR_256 - 1, 1);
        }
    __m256 c0a = _mm256_setzero_ps(), c0b = c0a, c1a = c0a, c1b = c0a, c2a = c0a, c2b = c0a,
           c3a = c0a, c3b = c0a, c4a = c0a, c4b = c0a, c5a = c0a, c5b = c0a;
    // unrolled: one compare-and-branch per four k steps, and room to issue the next B̃ loads early
    // (measured on Zen 3: the plain loop ran the tile at about 78% of the FMA peak, unrolled 87%)
#pragma GCC unroll 4
    for (int64_t p = 0; p < kc; p++) {
        __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
        __m256 x;
#define PK_ROW(r, ca, cb) x = _mm256_broadcast_ss(a + r); ca = _mm256_fmadd_ps(x, b0, ca); cb = _mm256_fmadd_ps(x, b1, cb);
        PK_ROW(0, c0a, c0b) PK_ROW(1, c1a, c1b) PK_ROW(2, c2a, c2b)
        PK_ROW(3, c3a, c3b) PK_ROW(4, c4a, c4b) PK_ROW(5, c5a, c5b)
#undef PK_ROW
        a += MR_256;
        b += NR_256;
    }
    if (mode == PK_UKR_STORE_C && bias) {
        const __m256 ba = _mm256_loadu_ps(bias), bb = _mm256_loadu_ps(bias + 8);
#define PK_ST(r, ca, cb) _mm256_storeu_ps(c + (r) * ldc, _mm256_add_ps(ca, ba)); _mm256_storeu_ps(c + (r) * ldc + 8, _mm256_add_ps(cb, bb));
        PK_ST(0, c0a, c0b) PK_ST(1, c1a, c1b) PK_ST(2, c2a, c2b)
        PK_ST(3, c3a, c3b) PK_ST(4, c4a, c4b) PK_ST(5, c5a, c5b)
#undef PK_ST
        return;
    }
    if (mode == PK_UKR_STORE_C) {
#define PK_ST(r, ca, cb) _mm256_storeu_ps(c + (r) * ldc, ca); _mm256_storeu_ps(c + (r) * ldc + 8, cb);
        PK_ST(0, c0a, c0b) PK_ST(1, c1a, c1b) PK_ST(2, c2a, c2b)
        PK_ST(3, c3a, c3b) PK_ST(4, c4a, c4b) PK_ST(5, c5a, c5b)
#undef PK_ST
        return;
    }
    if (mode == PK_UKR_ADD_C) {
#define PK_ST(r, ca, cb) _mm256_storeu_ps(c + (r) * ldc, _mm256_add_ps(_mm256_loadu_ps(c + (r) * ldc), ca)); \
                         _mm256_storeu_ps(c + (r) * ldc + 8, _mm256_add_ps(_mm256_loadu_ps(c + (r) * ldc + 8), cb));
        PK_ST(0, c0a, c0b) PK_ST(1, c1a, c1b) PK_ST(2, c2a, c2b)
        PK_ST(3, c3a, c3b) PK_ST(4, c4a, c4b) PK_ST(5, c5a, c5b)
#undef PK_ST
        return;
    }
#define PK_ST(r, ca, cb) _mm256_store_ps(acc + (r) * NR_256, ca); _mm256_store_ps(acc + (r) * NR_256 + 8, cb);
    PK_ST(0, c0a, c0b) PK_ST(1, c1a, c1b) PK_ST(2, c2a, c2b)
    PK_ST(3, c3a, c3b) PK_ST(4, c4a, c4b) PK_ST(5, c5a, c5b)
#undef PK_ST
}

__attribute__((target("avx2,fma")))
static void ukr_avx2_rows(int64_t kc, const float *a, int64_t lda, int64_t h, const float *restrict b,
                          float *restrict acc) {
    // kc × (6 rows of A read in place; rows ≥ h repeat row h−1) · (16 columns of B̃)
    const float *r0 = a, *r1 = a + PK_MIN(1, h - 1) * lda, *r2 = a + PK_MIN(2, h - 1) * lda,
                *r3 = a + PK_MIN(3, h - 1) * lda, *r4 = a + PK_MIN(4, h - 1) * lda, *r5 = a + PK_MIN(5, h - 1) * lda;
    __m256 c0a = _mm256_setzero_ps(), c0b = c0a, c1a = c0a, c1b = c0a, c2a = c0a, c2b = c0a,
           c3a = c0a, c3b = c0a, c4a = c0a, c4b = c0a, c5a = c0a, c5b = c0a;
    // unrolled: one compare-and-branch per four k steps, and room to issue the next B̃ loads early
    // (measured on Zen 3: the plain loop ran the tile at about 78% of the FMA peak, unrolled 87%)
#pragma GCC unroll 4
    for (int64_t p = 0; p < kc; p++) {
        __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
        __m256 x;
#define PK_ROW(rp, ca, cb) x = _mm256_broadcast_ss(rp + p); ca = _mm256_fmadd_ps(x, b0, ca); cb = _mm256_fmadd_ps(x, b1, cb);
        PK_ROW(r0, c0a, c0b) PK_ROW(r1, c1a, c1b) PK_ROW(r2, c2a, c2b)
        PK_ROW(r3, c3a, c3b) PK_ROW(r4, c4a, c4b) PK_ROW(r5, c5a, c5b)
#undef PK_ROW
        b += NR_256;
    }
#define PK_ST(r, ca, cb) _mm256_store_ps(acc + (r) * NR_256, ca); _mm256_store_ps(acc + (r) * NR_256 + 8, cb);
    PK_ST(0, c0a, c0b) PK_ST(1, c1a, c1b) PK_ST(2, c2a, c2b)
    PK_ST(3, c3a, c3b) PK_ST(4, c4a, c4b) PK_ST(5, c5a, c5b)
#undef PK_ST
}

static void ukr_scalar(int64_t kc, const float *restrict a, const float *restrict b, float *restrict acc,
                       float *restrict cm, int64_t ldc, int mode, const float *bias) {
    // kc × (4 rows of Ã) · (8 columns of B̃), plain multiply-add (no FMA contraction guarantee).
    float c[MR_SC * NR_SC] = {0};
    for (int64_t p = 0; p < kc; p++) {
        for (int r = 0; r < MR_SC; r++) {
            float x = a[r];
            for (int j = 0; j < NR_SC; j++) c[r * NR_SC + j] += x * b[j];
        }
        a += MR_SC;
        b += NR_SC;
    }
    if (mode == PK_UKR_STORE_C || mode == PK_UKR_ADD_C) {
        for (int r = 0; r < MR_SC; r++)
            for (int j = 0; j < NR_SC; j++)
                cm[r * ldc + j] = mode == PK_UKR_ADD_C ? cm[r * ldc + j] + c[r * NR_SC + j]
                                                       : (bias ? c[r * NR_SC + j] + bias[j] : c[r * NR_SC + j]);
        return;
    }
    memcpy(acc, c, sizeof c);
}

ukr_info pk_gemm_select_ukr(void) {
    switch (pk_active_isa()) {
    case PK_ISA_AVX512: return (ukr_info){MR_512, NR_512, ukr_avx512, ukr_avx512_rows};
    case PK_ISA_AVX2: return (ukr_info){MR_256, NR_256, ukr_avx2, ukr_avx2_rows};
    default: return (ukr_info){MR_SC, NR_SC, ukr_scalar, NULL};
    }
}

// ---- transposing pack: dst[p·R + r] = src[r·ld + p] (masked entries → 0), r < h; 0 for h ≤ r < R.
// Used when the packed dimension runs across rows of a row-major operand (A row-major into Ã,
// W row-major into B̃ for the forward product). 8×8 AVX and 4×4 SSE transposes do the bulk.

static void pack_transpose_scalar(const float *src, int64_t ld, const uint8_t *mk, int64_t ldm, int64_t r0,
                                  int64_t h, int64_t p0, int64_t kc, int R, float *dst) {
    // rows [r0, h) × columns [p0, kc)
    for (int64_t r = r0; r < h; r++)
        for (int64_t p = p0; p < kc; p++)
            dst[p * R + r] = (!mk || mk[r * ldm + p]) ? src[r * ld + p] : 0.0f;
}

__attribute__((target("avx2,fma")))
static inline __m256 load8_masked(const float *s, const uint8_t *m) {
    __m256 v = _mm256_loadu_ps(s);
    if (!m) return v;
    __m128i b = _mm_loadl_epi64((const __m128i *)m);
    __m256i k = _mm256_cmpeq_epi32(_mm256_cvtepu8_epi32(b), _mm256_setzero_si256());
    return _mm256_andnot_ps(_mm256_castsi256_ps(k), v);
}

__attribute__((target("avx2,fma")))
static inline __m128 load4_masked(const float *s, const uint8_t *m) {
    __m128 v = _mm_loadu_ps(s);
    if (!m) return v;
    int32_t bits;
    memcpy(&bits, m, 4);
    __m128i k = _mm_cmpeq_epi32(_mm_cvtepu8_epi32(_mm_cvtsi32_si128(bits)), _mm_setzero_si128());
    return _mm_andnot_ps(_mm_castsi128_ps(k), v);
}

__attribute__((target("avx2,fma")))
static void pack_transpose_avx2(const float *src, int64_t ld, const uint8_t *mk, int64_t ldm, int64_t h,
                                int64_t kc, int R, float *dst) {
    // (h rows × kc) → kc × R: blocks of 8 rows × 8 columns, then 4 × 4, then scalar edges
    int64_t r = 0;
    const int64_t kc8 = kc & ~(int64_t)7, kc4 = kc & ~(int64_t)3;
    for (; r + 8 <= h; r += 8) {
        for (int64_t p = 0; p < kc8; p += 8) {
            __m256 x0 = load8_masked(src + (r + 0) * ld + p, mk ? mk + (r + 0) * ldm + p : NULL);
            __m256 x1 = load8_masked(src + (r + 1) * ld + p, mk ? mk + (r + 1) * ldm + p : NULL);
            __m256 x2 = load8_masked(src + (r + 2) * ld + p, mk ? mk + (r + 2) * ldm + p : NULL);
            __m256 x3 = load8_masked(src + (r + 3) * ld + p, mk ? mk + (r + 3) * ldm + p : NULL);
            __m256 x4 = load8_masked(src + (r + 4) * ld + p, mk ? mk + (r + 4) * ldm + p : NULL);
            __m256 x5 = load8_masked(src + (r + 5) * ld + p, mk ? mk + (r + 5) * ldm + p : NULL);
            __m256 x6 = load8_masked(src + (r + 6) * ld + p, mk ? mk + (r + 6) * ldm + p : NULL);
            __m256 x7 = load8_masked(src + (r + 7) * ld + p, mk ? mk + (r + 7) * ldm + p : NULL);
            __m256 t0 = _mm256_unpacklo_ps(x0, x1), t1 = _mm256_unpackhi_ps(x0, x1);
            __m256 t2 = _mm256_unpacklo_ps(x2, x3), t3 = _mm256_unpackhi_ps(x2, x3);
            __m256 t4 = _mm256_unpacklo_ps(x4, x5), t5 = _mm256_unpackhi_ps(x4, x5);
            __m256 t6 = _mm256_unpacklo_ps(x6, x7), t7 = _mm256_unpackhi_ps(x6, x7);
            __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
            __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
            __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
            __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
            float *d = dst + p * R + r;
            _mm256_storeu_ps(d + 0 * R, _mm256_permute2f128_ps(u0, u4, 0x20));
            _mm256_storeu_ps(d + 1 * R, _mm256_permute2f128_ps(u1, u5, 0x20));
            _mm256_storeu_ps(d + 2 * R, _mm256_permute2f128_ps(u2, u6, 0x20));
            _mm256_storeu_ps(d + 3 * R, _mm256_permute2f128_ps(u3, u7, 0x20));
            _mm256_storeu_ps(d + 4 * R, _mm256_permute2f128_ps(u0, u4, 0x31));
            _mm256_storeu_ps(d + 5 * R, _mm256_permute2f128_ps(u1, u5, 0x31));
            _mm256_storeu_ps(d + 6 * R, _mm256_permute2f128_ps(u2, u6, 0x31));
            _mm256_storeu_ps(d + 7 * R, _mm256_permute2f128_ps(u3, u7, 0x31));
        }
        pack_transpose_scalar(src, ld, mk, ldm, r, r + 8, kc8, kc, R, dst);
    }
    for (; r + 4 <= h; r += 4) {
        for (int64_t p = 0; p < kc4; p += 4) {
            __m128 x0 = load4_masked(src + (r + 0) * ld + p, mk ? mk + (r + 0) * ldm + p : NULL);
            __m128 x1 = load4_masked(src + (r + 1) * ld + p, mk ? mk + (r + 1) * ldm + p : NULL);
            __m128 x2 = load4_masked(src + (r + 2) * ld + p, mk ? mk + (r + 2) * ldm + p : NULL);
            __m128 x3 = load4_masked(src + (r + 3) * ld + p, mk ? mk + (r + 3) * ldm + p : NULL);
            _MM_TRANSPOSE4_PS(x0, x1, x2, x3);
            float *d = dst + p * R + r;
            _mm_storeu_ps(d + 0 * R, x0);
            _mm_storeu_ps(d + 1 * R, x1);
            _mm_storeu_ps(d + 2 * R, x2);
            _mm_storeu_ps(d + 3 * R, x3);
        }
        pack_transpose_scalar(src, ld, mk, ldm, r, r + 4, kc4, kc, R, dst);
    }
    pack_transpose_scalar(src, ld, mk, ldm, r, h, 0, kc, R, dst);
}

void pk_gemm_pack_transpose(const float *src, int64_t ld, const uint8_t *mk, int64_t ldm, int64_t h, int64_t kc,
                           int R, float *dst) {
    if (pk_active_isa() >= PK_ISA_AVX2) pack_transpose_avx2(src, ld, mk, ldm, h, kc, R, dst);
    else pack_transpose_scalar(src, ld, mk, ldm, 0, h, 0, kc, R, dst);
    if (h < R)
        for (int64_t p = 0; p < kc; p++)
            for (int64_t r = h; r < R; r++) dst[p * R + r] = 0.0f;
}

