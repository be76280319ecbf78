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

typedef struct { int mr, nr; ukr_fn ukr; } ukr_info;

static ukr_info select_ukr(void) {
    switch (pk_active_isa()) {
    case PK_ISA_AVX512: return (ukr_info){MR_512, NR_512, ukr_avx512};
    case PK_ISA_AVX2: return (ukr_info){MR_256, NR_256, ukr_avx2};
    default: return (ukr_info){MR_SC, NR_SC, ukr_scalar};
    }
}

// ---- packing

typedef struct {
    const gemm_problem *P;
    ukr_info u;
    int64_t i0, j0, p0, mc, nc, kc;
    float *Ap, *Bp;
    int first, last;
} block_ctx;

static void pack_b_range(void *vctx, int64_t begin, int64_t end) {
    // panels [begin, end) of B̃: Bp[panel][p][c] = op(B)[p0+p, j0+panel·NR+c] (0 past n or if masked)
    const block_ctx *x = vctx;
    const gemm_problem *P = x->P;
    const int nr = x->u.nr;
    for (int64_t q = begin; q < end; q++) {
        float *dst = x->Bp + q * nr * x->kc;
        int64_t jb = x->j0 + q * nr;
        int64_t w = PK_MIN((int64_t)nr, x->j0 + x->nc - jb);
        if (P->csb == 1) {
            for (int64_t p = 0; p < x->kc; p++) {
                const float *src = P->B + (x->p0 + p) * P->rsb + jb;
                float *d = dst + p * nr;
                if (P->MB) {
                    const uint8_t *ms = P->MB + (x->p0 + p) * P->rsm + jb * P->csm;
                    for (int64_t c = 0; c < w; c++) d[c] = ms[c * P->csm] ? src[c] : 0.0f;
                } else {
                    for (int64_t c = 0; c < w; c++) d[c] = src[c];
                }
                for (int64_t c = w; c < nr; c++) d[c] = 0.0f;
            }
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
            for (int64_t r = 0; r < h; r++) {
                const float *src = P->A + (ib + r) * P->rsa + x->p0;
                for (int64_t p = 0; p < x->kc; p++) dst[p * mr + r] = src[p];
            }
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
                     int64_t h, int64_t w, int nr, const float *acc) {
    // h×w tile of C at (i0, j0)
    const float alpha = P->alpha, beta = P->beta;
    for (int64_t r = 0; r < h; r++) {
        float *c = P->C + (i0 + r) * P->ldc + j0;
        const float *t = acc + r * nr;
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
        x->u.ukr(x->kc, x->Ap + ir * mr * x->kc, x->Bp + jr * nr * x->kc, acc);
        int64_t i = x->i0 + ir * mr, j = x->j0 + jr * nr;
        epilogue(x->P, x->first, x->last, i, j, PK_MIN((int64_t)mr, x->i0 + x->mc - i),
                 PK_MIN((int64_t)nr, x->j0 + x->nc - j), nr, acc);
    }
}

static void k_zero_range(void *vctx, int64_t begin, int64_t end) {
    // rows [begin, end) of C when k == 0: C := beta·C + bias, then the output mask
    const gemm_problem *P = vctx;
    for (int64_t i = begin; i < end; i++) {
        float *c = P->C + i * P->ldc;
        for (int64_t j = 0; j < P->n; j++) {
            float v = P->beta == 0.0f ? 0.0f : P->beta * c[j];
            if (P->bias) v += P->bias[j];
            if (P->MC && !P->MC[i * P->ldmc + j]) v = 0.0f;
            c[j] = v;
        }
    }
}

static pk_status gemm_run(const gemm_problem *P) {
    if (P->m == 0 || P->n == 0) return PK_OK;
    if (P->k == 0) {
        pk_parallel_for(P->m, 64, k_zero_range, (void *)P);
        return PK_OK;
    }
    ukr_info u = select_ukr();
    const int64_t nkb = (P->k + KC_MAX - 1) / KC_MAX;
    const int64_t kcb = (P->k + nkb - 1) / nkb; // balanced k blocks, independent of threads
    const int64_t MC = (int64_t)MC_BLOCKS * u.mr;
    const int64_t ncmax = PK_MIN((int64_t)NC_MAX, ((P->n + u.nr - 1) / u.nr) * u.nr);
    float *Bp = pk_scratch(0, (size_t)kcb * ncmax * sizeof(float));
    float *Ap = pk_scratch(1, (size_t)kcb * PK_MIN(MC, ((P->m + u.mr - 1) / u.mr) * u.mr) * sizeof(float));
    if (!Bp || !Ap) return PK_ERR_NOMEM;
    for (int64_t j0 = 0; j0 < P->n; j0 += NC_MAX) {
        int64_t nc = PK_MIN((int64_t)NC_MAX, P->n - j0);
        int64_t njr = (nc + u.nr - 1) / u.nr;
        for (int64_t p0 = 0; p0 < P->k; p0 += kcb) {
            int64_t kc = PK_MIN(kcb, P->k - p0);
            block_ctx x = {P, u, 0, j0, p0, 0, nc, kc, Ap, Bp, p0 == 0, p0 + kc == P->k};
            pk_parallel_for(njr, 4, pack_b_range, &x);
            for (int64_t i0 = 0; i0 < P->m; i0 += MC) {
                x.i0 = i0;
                x.mc = PK_MIN(MC, P->m - i0);
                int64_t nir = (x.mc + u.mr - 1) / u.mr;
                pk_parallel_for(nir, 4, pack_a_range, &x);
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
    gemm_problem P = {m, n, k, alpha, beta, A, lda, 1, W, 1, ldw, M, 1, ldm, C, ldc, NULL, NULL, 0};
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
    gemm_problem P = {m, n, k, alpha, beta, A, lda, 1, W, ldw, 1, M, ldm, 1, C, ldc, NULL, NULL, 0};
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
    gemm_problem P = {m, n, k, alpha, beta, A, 1, lda, B, ldb, 1, NULL, 0, 0, C, ldc, NULL, M, ldm};
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
    gemm_problem P = {m, n, k, 1.0f, 0.0f, X, ldx, 1, W, 1, ldw, M, 1, ldm, Y, ldy, bias, NULL, 0};
    return gemm_run(&P);
}
