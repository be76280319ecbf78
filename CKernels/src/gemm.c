// Masked GEMM in the GotoBLAS/BLIS scheme: C := alpha·op(A)·op(B ⊙ M) + beta·C (+ bias) (⊙ Mc).
//
// Layers, outermost first:
//   jc: NC columns of C  →  pc: KC of the k dimension  →  pack B̃ (KC×NC, mask applied here)
//   ic: MC rows of C     →  pack Ã (MC×KC)             →  tiles MR×NR: micro-kernel + epilogue
// Packing absorbs every layout (transposes, leading dimensions) and the mask, so the micro-kernel is
// a dense FMA loop over contiguous panels and 0% sparsity costs exactly what plain SGEMM costs.
// Every C element is produced by one thread, summing k in the same blocked order whatever the
// thread count: bitwise reproducible. The blocking never depends on the thread count.
#include "internal.h"
#include <immintrin.h>
#include <string.h>

#define KC_MAX 256
#define MC_BLOCKS 40 // MC = MC_BLOCKS·MR
#define NC_MAX 4096

typedef struct {
    int64_t m, n, k;
    float alpha, beta;
    const float *A; int64_t rsa, csa;          // op(A)[i,p] = A[i·rsa + p·csa]
    const float *B; int64_t rsb, csb;          // op(B)[p,j] = B[p·rsb + j·csb]
    const uint8_t *MB; int64_t rsm, csm;       // mask of op(B), same indexing; NULL = dense
    float *C; int64_t ldc;
    const float *bias;                         // per column j, added with beta (first k block)
    const uint8_t *MC; int64_t ldmc;           // output mask; NULL = none
    int64_t out_P;                             // > 0: C(i,j) stored at [i/P][j][i%P] (NCHW), ldc ignored
} gemm_problem;

typedef void (*ukr_fn)(int64_t kc, const float *a, const float *b, float *acc);

// ---- micro-kernels: acc (MR×NR, row-major) := Σ_p a[p,:]ᵀ b[p,:]

#define MR_512 12
#define NR_512 32
__attribute__((target("avx512f,avx512vl,fma")))
static void ukr_avx512(int64_t kc, const float *restrict a, const float *restrict b, float *restrict acc) {
    // kc × (12 rows of Ã) · (32 columns of B̃): 24 zmm accumulators.
    __m512 c0a = _mm512_setzero_ps(), c0b = c0a, c1a = c0a, c1b = c0a, c2a = c0a, c2b = c0a,
           c3a = c0a, c3b = c0a, c4a = c0a, c4b = c0a, c5a = c0a, c5b = c0a, c6a = c0a, c6b = c0a,
           c7a = c0a, c7b = c0a, c8a = c0a, c8b = c0a, c9a = c0a, c9b = c0a, c10a = c0a, c10b = c0a,
           c11a = c0a, c11b = c0a;
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

#define MR_256 6
#define NR_256 16
__attribute__((target("avx2,fma")))
static void ukr_avx2(int64_t kc, const float *restrict a, const float *restrict b, float *restrict acc) {
    // kc × (6 rows of Ã) · (16 columns of B̃): 12 ymm accumulators.
    __m256 c0a = _mm256_setzero_ps(), c0b = c0a, c1a = c0a, c1b = c0a, c2a = c0a, c2b = c0a,
           c3a = c0a, c3b = c0a, c4a = c0a, c4b = c0a, c5a = c0a, c5b = c0a;
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

#define MR_SC 4
#define NR_SC 8
static void ukr_scalar(int64_t kc, const float *restrict a, const float *restrict b, float *restrict acc) {
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
    memcpy(acc, c, sizeof c);
}

typedef void (*ukr_rows_fn)(int64_t kc, const float *a, int64_t lda, int64_t h, const float *b, float *acc);
// ukr reads a packed Ã panel; ukr_rows (when not NULL) reads row-major A in place, no packing.
typedef struct { int mr, nr; ukr_fn ukr; ukr_rows_fn ukr_rows; } ukr_info;

static ukr_info select_ukr(void) {
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

static void pack_transpose(const float *src, int64_t ld, const uint8_t *mk, int64_t ldm, int64_t h, int64_t kc,
                           int R, float *dst) {
    if (pk_active_isa() >= PK_ISA_AVX2) pack_transpose_avx2(src, ld, mk, ldm, h, kc, R, dst);
    else pack_transpose_scalar(src, ld, mk, ldm, 0, h, 0, kc, R, dst);
    if (h < R)
        for (int64_t p = 0; p < kc; p++)
            for (int64_t r = h; r < R; r++) dst[p * R + r] = 0.0f;
}

// ---- packing

typedef struct {
    const gemm_problem *P;
    ukr_info u;
    int64_t i0, j0, p0, mc, nc, kc;
    float *Ap, *Bp;
    int first, last;
    int a_in_place; // A is row-major (csa == 1): the micro-kernel reads it without packing
} block_ctx;

static void pack_b_range(void *vctx, int64_t begin, int64_t end) {
    // panels [begin, end) of B̃: Bp[panel][p][c] = op(B)[p0+p, j0+panel·NR+c] (0 past n or if masked)
    const block_ctx *x = vctx;
    const gemm_problem *P = x->P;
    const int nr = x->u.nr;
    if (P->csb == 1) {
        // rows of B are contiguous: walk each row once across this thread's panels
        const int64_t jend = PK_MIN(x->j0 + end * nr, x->j0 + x->nc);
        for (int64_t p = 0; p < x->kc; p++) {
            const float *restrict src = P->B + (x->p0 + p) * P->rsb;
            const uint8_t *ms = P->MB ? P->MB + (x->p0 + p) * P->rsm : NULL;
            for (int64_t q = begin; q < end; q++) {
                int64_t jb = x->j0 + q * nr;
                int64_t w = PK_MIN((int64_t)nr, jend - jb);
                float *restrict d = x->Bp + q * nr * x->kc + p * nr;
                if (ms && P->csm == 1) {
                    for (int64_t c = 0; c < w; c++) d[c] = ms[jb + c] ? src[jb + c] : 0.0f;
                } else if (ms) {
                    for (int64_t c = 0; c < w; c++) d[c] = ms[(jb + c) * P->csm] ? src[jb + c] : 0.0f;
                } else {
                    memcpy(d, src + jb, (size_t)w * sizeof(float));
                }
                for (int64_t c = w; c < nr; c++) d[c] = 0.0f;
            }
        }
        return;
    }
    for (int64_t q = begin; q < end; q++) {
        float *dst = x->Bp + q * nr * x->kc;
        int64_t jb = x->j0 + q * nr;
        int64_t w = PK_MIN((int64_t)nr, x->j0 + x->nc - jb);
        if (P->rsb == 1 && (!P->MB || P->rsm == 1)) {
            pack_transpose(P->B + jb * P->csb + x->p0, P->csb, P->MB ? P->MB + jb * P->csm + x->p0 : NULL,
                           P->csm, w, x->kc, nr, dst);
        } else {
            for (int64_t c = 0; c < w; c++) {
                const float *src = P->B + (jb + c) * P->csb + x->p0 * P->rsb;
                if (P->MB) {
                    const uint8_t *ms = P->MB + (jb + c) * P->csm + x->p0 * P->rsm;
                    for (int64_t p = 0; p < x->kc; p++)
                        dst[p * nr + c] = ms[p * P->rsm] ? src[p * P->rsb] : 0.0f;
                } else {
                    for (int64_t p = 0; p < x->kc; p++) dst[p * nr + c] = src[p * P->rsb];
                }
            }
            for (int64_t c = w; c < nr; c++)
                for (int64_t p = 0; p < x->kc; p++) dst[p * nr + c] = 0.0f;
        }
    }
}

static void pack_a_range(void *vctx, int64_t begin, int64_t end) {
    // panels [begin, end) of Ã: Ap[panel][p][r] = op(A)[i0+panel·MR+r, p0+p] (0 past m)
    const block_ctx *x = vctx;
    const gemm_problem *P = x->P;
    const int mr = x->u.mr;
    for (int64_t q = begin; q < end; q++) {
        float *dst = x->Ap + q * mr * x->kc;
        int64_t ib = x->i0 + q * mr;
        int64_t h = PK_MIN((int64_t)mr, x->i0 + x->mc - ib);
        if (P->csa == 1) {
            pack_transpose(P->A + ib * P->rsa + x->p0, P->rsa, NULL, 0, h, x->kc, mr, dst);
            continue;
        } else {
            for (int64_t p = 0; p < x->kc; p++) {
                const float *src = P->A + (x->p0 + p) * P->csa + ib * P->rsa;
                for (int64_t r = 0; r < h; r++) dst[p * mr + r] = src[r * P->rsa];
            }
        }
        for (int64_t r = h; r < mr; r++)
            for (int64_t p = 0; p < x->kc; p++) dst[p * mr + r] = 0.0f;
    }
}

// ---- epilogue: one tile of C from the micro-kernel's accumulator

static void epilogue(const gemm_problem *P, int first, int last, int64_t i0, int64_t j0,
                     int64_t h, int64_t w, int64_t ldt, const float *acc) {
    // h×w tile of C at (i0, j0) from acc (row stride ldt)
    const float alpha = P->alpha, beta = P->beta;
    if (P->out_P > 0) {
        // NCHW store: row i = (image i/P, position i%P), column j = channel
        const int64_t Pp = P->out_P;
        for (int64_t r = 0; r < h; r++) {
            int64_t i = i0 + r;
            float *c = P->C + (i / Pp) * P->n * Pp + (i % Pp) + j0 * Pp;
            const float *t = acc + r * ldt;
            for (int64_t j = 0; j < w; j++) {
                float v = alpha * t[j];
                if (!first) v += c[j * Pp];
                else {
                    if (beta != 0.0f) v += beta * c[j * Pp];
                    if (P->bias) v += P->bias[j0 + j];
                }
                c[j * Pp] = v;
            }
        }
        return;
    }
    for (int64_t r = 0; r < h; r++) {
        float *restrict c = P->C + (i0 + r) * P->ldc + j0;
        const float *restrict t = acc + r * ldt;
        if (!first) {
            for (int64_t j = 0; j < w; j++) c[j] += alpha * t[j];
        } else if (beta == 0.0f) {
            if (P->bias) for (int64_t j = 0; j < w; j++) c[j] = alpha * t[j] + P->bias[j0 + j];
            else for (int64_t j = 0; j < w; j++) c[j] = alpha * t[j];
        } else {
            if (P->bias) for (int64_t j = 0; j < w; j++) c[j] = alpha * t[j] + beta * c[j] + P->bias[j0 + j];
            else for (int64_t j = 0; j < w; j++) c[j] = alpha * t[j] + beta * c[j];
        }
        if (last && P->MC) {
            const uint8_t *mk = P->MC + (i0 + r) * P->ldmc + j0;
            for (int64_t j = 0; j < w; j++) if (!mk[j]) c[j] = 0.0f;
        }
    }
}

static void compute_range(void *vctx, int64_t begin, int64_t end) {
    // tiles [begin, end) of the mc×nc block, jr-major so a thread reuses its B̃ micro-panel
    const block_ctx *x = vctx;
    const int mr = x->u.mr, nr = x->u.nr;
    const int64_t nir = (x->mc + mr - 1) / mr;
    float acc[MR_512 * NR_512] __attribute__((aligned(64)));
    for (int64_t t = begin; t < end; t++) {
        int64_t jr = t / nir, ir = t % nir;
        int64_t i = x->i0 + ir * mr, j = x->j0 + jr * nr;
        int64_t h = PK_MIN((int64_t)mr, x->i0 + x->mc - i);
        if (x->a_in_place)
            x->u.ukr_rows(x->kc, x->P->A + i * x->P->rsa + x->p0, x->P->rsa, h, x->Bp + jr * nr * x->kc, acc);
        else
            x->u.ukr(x->kc, x->Ap + ir * mr * x->kc, x->Bp + jr * nr * x->kc, acc);
        epilogue(x->P, x->first, x->last, i, j, h, PK_MIN((int64_t)nr, x->j0 + x->nc - j), nr, acc);
    }
}

static void k_zero_range(void *vctx, int64_t begin, int64_t end) {
    // rows [begin, end) of C when k == 0: C := beta·C + bias, then the output mask
    const gemm_problem *P = vctx;
    for (int64_t i = begin; i < end; i++) {
        float *c = P->out_P > 0 ? P->C + (i / P->out_P) * P->n * P->out_P + i % P->out_P : P->C + i * P->ldc;
        int64_t cs = P->out_P > 0 ? P->out_P : 1;
        for (int64_t j = 0; j < P->n; j++) {
            float v = P->beta == 0.0f ? 0.0f : P->beta * c[j * cs];
            if (P->bias) v += P->bias[j];
            if (P->MC && !P->MC[i * P->ldmc + j]) v = 0.0f;
            c[j * cs] = v;
        }
    }
}

static pk_status gemm_blocked(const gemm_problem *P);

// Split-K: when C is small and k long (a convolution's weight gradient), the k range is cut into
// S chunks — S from the shape only, never from the thread count — whose partial products are
// computed in parallel and then summed in chunk order: still bitwise reproducible.
#define SPLITK_CHUNK 4096
#define SPLITK_MAX 32

typedef struct { const gemm_problem *P; int64_t S, chunk; float *partials; pk_status *status; } split_ctx;

static void split_range(void *vctx, int64_t begin, int64_t end) {
    // chunks [begin, end): partial_s (m×n) := op(A)[:, ks] · op(B)[ks, :]
    const split_ctx *x = vctx;
    const gemm_problem *P = x->P;
    for (int64_t s = begin; s < end; s++) {
        int64_t k0 = s * x->chunk, kl = PK_MIN(x->chunk, P->k - k0);
        gemm_problem sub = *P;
        sub.k = kl;
        sub.A = P->A + k0 * P->csa;
        sub.B = P->B + k0 * P->rsb;
        if (P->MB) sub.MB = P->MB + k0 * P->rsm;
        sub.alpha = 1.0f;
        sub.beta = 0.0f;
        sub.bias = NULL;
        sub.MC = NULL;
        sub.out_P = 0;
        sub.C = x->partials + s * P->m * P->n;
        sub.ldc = P->n;
        pk_status st = gemm_blocked(&sub);
        if (st != PK_OK) x->status[s] = st;
    }
}

typedef struct { const gemm_problem *P; int64_t S; const float *partials; float *sum; } reduce_ctx;

static void reduce_range(void *vctx, int64_t begin, int64_t end) {
    // rows [begin, end): sum the S partials in order, then the usual epilogue
    const reduce_ctx *x = vctx;
    const gemm_problem *P = x->P;
    const int64_t mn = P->m * P->n;
    for (int64_t i = begin; i < end; i++) {
        float *row = x->sum + i * P->n;
        for (int64_t j = 0; j < P->n; j++) row[j] = x->partials[i * P->n + j];
        for (int64_t s = 1; s < x->S; s++) {
            const float *ps = x->partials + s * mn + i * P->n;
            for (int64_t j = 0; j < P->n; j++) row[j] += ps[j];
        }
        epilogue(P, 1, 1, i, 0, 1, P->n, P->n, row);
    }
}

static pk_status gemm_run(const gemm_problem *P) {
    if (P->m == 0 || P->n == 0) return PK_OK;
    if (P->k == 0) {
        pk_parallel_for(P->m, 64, k_zero_range, (void *)P);
        return PK_OK;
    }
    if (P->m * P->n <= 64 * 1024 && P->k >= 2 * SPLITK_CHUNK) {
        int64_t S = PK_MIN((int64_t)SPLITK_MAX, (P->k + SPLITK_CHUNK - 1) / SPLITK_CHUNK);
        int64_t chunk = (P->k + S - 1) / S;
        S = (P->k + chunk - 1) / chunk;
        float *buf = pk_scratch(3, (size_t)(S + 1) * P->m * P->n * sizeof(float));
        if (!buf) return PK_ERR_NOMEM;
        pk_status status[SPLITK_MAX];
        for (int64_t s = 0; s < S; s++) status[s] = PK_OK;
        split_ctx sc = {P, S, chunk, buf, status};
        pk_parallel_for(S, 1, split_range, &sc);
        for (int64_t s = 0; s < S; s++) if (status[s] != PK_OK) return status[s];
        reduce_ctx rc = {P, S, buf, buf + S * P->m * P->n};
        pk_parallel_for(P->m, 16, reduce_range, &rc);
        return PK_OK;
    }
    return gemm_blocked(P);
}

static pk_status gemm_blocked(const gemm_problem *P) {
    ukr_info u = select_ukr();
    // a handful of rows: read A in place (packing it would cost more than it saves)
    const int a_in_place = P->csa == 1 && u.ukr_rows != NULL && P->m <= 2 * u.mr;
    const int64_t nkb = (P->k + KC_MAX - 1) / KC_MAX;
    const int64_t kcb = (P->k + nkb - 1) / nkb; // balanced k blocks, independent of threads
    const int64_t MC = (int64_t)MC_BLOCKS * u.mr;
    const int64_t ncmax = PK_MIN((int64_t)NC_MAX, ((P->n + u.nr - 1) / u.nr) * u.nr);
    float *Bp = pk_scratch(0, (size_t)kcb * ncmax * sizeof(float));
    float *Ap = a_in_place ? NULL
                           : pk_scratch(1, (size_t)kcb * PK_MIN(MC, ((P->m + u.mr - 1) / u.mr) * u.mr) * sizeof(float));
    if (!Bp || (!a_in_place && !Ap)) return PK_ERR_NOMEM;
    for (int64_t j0 = 0; j0 < P->n; j0 += NC_MAX) {
        int64_t nc = PK_MIN((int64_t)NC_MAX, P->n - j0);
        int64_t njr = (nc + u.nr - 1) / u.nr;
        for (int64_t p0 = 0; p0 < P->k; p0 += kcb) {
            int64_t kc = PK_MIN(kcb, P->k - p0);
            block_ctx x = {P, u, 0, j0, p0, 0, nc, kc, Ap, Bp, p0 == 0, p0 + kc == P->k, a_in_place};
            pk_parallel_for(njr, 4, pack_b_range, &x);
            for (int64_t i0 = 0; i0 < P->m; i0 += MC) {
                x.i0 = i0;
                x.mc = PK_MIN(MC, P->m - i0);
                int64_t nir = (x.mc + u.mr - 1) / u.mr;
                if (!a_in_place) pk_parallel_for(nir, 4, pack_a_range, &x);
                // each tile is ~2·MR·NR·kc flops; keep at least a few per thread
                pk_parallel_for(njr * nir, 2, compute_range, &x);
            }
        }
    }
    return PK_OK;
}

// ---- public entry points: validate, then describe the problem by strides

static pk_status check_common(int64_t m, int64_t n, int64_t k) {
    if (m < 0 || n < 0 || k < 0) return PK_ERR_SHAPE;
    return PK_OK;
}

pk_status pk_gemm_masked_f32(int64_t m, int64_t n, int64_t k, float alpha,
                             const float *A, int64_t lda, const float *W, int64_t ldw,
                             const uint8_t *M, int64_t ldm, float beta, float *C, int64_t ldc) {
    pk_status s = check_common(m, n, k);
    if (s != PK_OK) return s;
    if (m == 0 || n == 0) return PK_OK;
    if (!C || (k > 0 && (!A || !W))) return PK_ERR_NULL;
    if (ldc < n || (k > 0 && (lda < k || ldw < k || (M && ldm < k)))) return PK_ERR_SHAPE;
    size_t cb = pk_span(m, n, ldc, 4);
    if (k > 0 && (pk_overlaps(C, cb, A, pk_span(m, k, lda, 4)) || pk_overlaps(C, cb, W, pk_span(n, k, ldw, 4)) ||
                  (M && pk_overlaps(C, cb, M, pk_span(n, k, ldm, 1)))))
        return PK_ERR_ALIAS;
    gemm_problem P = {m, n, k, alpha, beta, A, lda, 1, W, 1, ldw, M, 1, ldm, C, ldc, NULL, NULL, 0, 0};
    return gemm_run(&P);
}

pk_status pk_gemm_masked_nn_f32(int64_t m, int64_t n, int64_t k, float alpha,
                                const float *A, int64_t lda, const float *W, int64_t ldw,
                                const uint8_t *M, int64_t ldm, float beta, float *C, int64_t ldc) {
    pk_status s = check_common(m, n, k);
    if (s != PK_OK) return s;
    if (m == 0 || n == 0) return PK_OK;
    if (!C || (k > 0 && (!A || !W))) return PK_ERR_NULL;
    if (ldc < n || (k > 0 && (lda < k || ldw < n || (M && ldm < n)))) return PK_ERR_SHAPE;
    size_t cb = pk_span(m, n, ldc, 4);
    if (k > 0 && (pk_overlaps(C, cb, A, pk_span(m, k, lda, 4)) || pk_overlaps(C, cb, W, pk_span(k, n, ldw, 4)) ||
                  (M && pk_overlaps(C, cb, M, pk_span(k, n, ldm, 1)))))
        return PK_ERR_ALIAS;
    gemm_problem P = {m, n, k, alpha, beta, A, lda, 1, W, ldw, 1, M, ldm, 1, C, ldc, NULL, NULL, 0, 0};
    return gemm_run(&P);
}

pk_status pk_gemm_masked_tn_f32(int64_t m, int64_t n, int64_t k, float alpha,
                                const float *A, int64_t lda, const float *B, int64_t ldb,
                                const uint8_t *M, int64_t ldm, float beta, float *C, int64_t ldc) {
    pk_status s = check_common(m, n, k);
    if (s != PK_OK) return s;
    if (m == 0 || n == 0) return PK_OK;
    if (!C || (k > 0 && (!A || !B))) return PK_ERR_NULL;
    if (ldc < n || (M && ldm < n) || (k > 0 && (lda < m || ldb < n))) return PK_ERR_SHAPE;
    size_t cb = pk_span(m, n, ldc, 4);
    if ((k > 0 && (pk_overlaps(C, cb, A, pk_span(k, m, lda, 4)) || pk_overlaps(C, cb, B, pk_span(k, n, ldb, 4)))) ||
        (M && pk_overlaps(C, cb, M, pk_span(m, n, ldm, 1))))
        return PK_ERR_ALIAS;
    gemm_problem P = {m, n, k, alpha, beta, A, 1, lda, B, ldb, 1, NULL, 0, 0, C, ldc, NULL, M, ldm, 0};
    return gemm_run(&P);
}

pk_status pk_linear_forward_f32(int64_t m, int64_t n, int64_t k,
                                const float *X, int64_t ldx, const float *W, int64_t ldw,
                                const uint8_t *M, int64_t ldm, const float *bias,
                                float *Y, int64_t ldy) {
    pk_status s = check_common(m, n, k);
    if (s != PK_OK) return s;
    if (m == 0 || n == 0) return PK_OK;
    if (!Y || (k > 0 && (!X || !W))) return PK_ERR_NULL;
    if (ldy < n || (k > 0 && (ldx < k || ldw < k || (M && ldm < k)))) return PK_ERR_SHAPE;
    size_t yb = pk_span(m, n, ldy, 4);
    if ((k > 0 && (pk_overlaps(Y, yb, X, pk_span(m, k, ldx, 4)) || pk_overlaps(Y, yb, W, pk_span(n, k, ldw, 4)) ||
                   (M && pk_overlaps(Y, yb, M, pk_span(n, k, ldm, 1))))) ||
        (bias && pk_overlaps(Y, yb, bias, (size_t)n * 4)))
        return PK_ERR_ALIAS;
    gemm_problem P = {m, n, k, 1.0f, 0.0f, X, ldx, 1, W, 1, ldw, M, 1, ldm, Y, ldy, bias, NULL, 0, 0};
    return gemm_run(&P);
}

pk_status pk_linear_forward_nchw_f32(int64_t m, int64_t n, int64_t k, const float *X, int64_t ldx,
                                     const float *W, int64_t ldw, const uint8_t *M, int64_t ldm,
                                     const float *bias, int64_t P, float *Y) {
    pk_status s = check_common(m, n, k);
    if (s != PK_OK) return s;
    if (P < 1 || m % P != 0) return PK_ERR_SHAPE;
    if (m == 0 || n == 0) return PK_OK;
    if (!Y || (k > 0 && (!X || !W))) return PK_ERR_NULL;
    if (k > 0 && (ldx < k || ldw < k || (M && ldm < k))) return PK_ERR_SHAPE;
    size_t yb = (size_t)(m * n) * 4;
    if ((k > 0 && (pk_overlaps(Y, yb, X, pk_span(m, k, ldx, 4)) || pk_overlaps(Y, yb, W, pk_span(n, k, ldw, 4)) ||
                   (M && pk_overlaps(Y, yb, M, pk_span(n, k, ldm, 1))))) ||
        (bias && pk_overlaps(Y, yb, bias, (size_t)n * 4)))
        return PK_ERR_ALIAS;
    gemm_problem Pr = {m, n, k, 1.0f, 0.0f, X, ldx, 1, W, 1, ldw, M, 1, ldm, Y, n, bias, NULL, 0, P};
    return gemm_run(&Pr);
}
