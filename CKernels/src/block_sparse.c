// Block-sparse weights (pk_bsr in the header): packing, and the three products of a pruned Linear.
//
// Forward, Yᵀ = W · Xᵀ: threads own groups of block-rows (about 32 rows). For each panel of 32
// samples (pk_sp_panels), each block of BS_KC input features (the panel rows they select stay in
// L2; measured faster than blocks sized for L1, which leave few blocks per line at high
// sparsity) and each block-row, the micro-kernel keeps RT rows × NVB vectors of sums in registers
// and walks the block-row's kept blocks in that feature block: for each column of a block it loads that column's panel
// row once and multiplies it by the RT weights of the column (a dense micro-GEMM per block, each
// panel load shared by RT FMAs). RT = 8, 4, 2 or 1 rows as br allows; with one row the columns
// alternate between two sets of sums (added at the end) so enough FMAs are in flight.
// Input gradient, dXᵀ = Wᵀ · dYᵀ: Wᵀ is block-sparse with W's block-columns as its block-rows (the
//   transposed index); its blocks, W's blocks transposed, are gathered once into that order and the
//   forward runs on them.
// Weight gradient, g = dYᵀ·X at the kept blocks: both operands become feature-major chunks of 256
//   samples; threads own groups of block-rows and walk the columns in windows of 256 features (the
//   window's rows of X stay in L2, the group's rows of dY in L1); each block is cut into tiles of
//   eight entries (1×8, 2×4, 4×2 or 8×1) whose dot products share their loads, the sums kept in
//   vector lanes and reduced once per chunk. After the last chunk each block takes its step.
// Every output element is summed by one thread in a fixed order: identical bits for any thread count.
#include "sparse_panels.h"
#include <stdlib.h>
#include <string.h>

#define BS_ROWS 32     // output rows per thread group (forward) / input columns (input gradient)
#define BS_AHEAD 2     // blocks ahead whose panel rows are prefetched
#define BS_KC 4096     // reduction features per block of the products (their panel rows, ≤ 512 KiB, in L2)
#define BS_TMAX 64     // the most rows of a tile: br, bc ≤ 64
#define BS_WROWS 64    // rows per thread group of the weight gradient
#define BS_WINDOW 256  // features per column window of the weight gradient

// ---- packing

static pk_status bsr_geometry(int64_t rows, int64_t cols, int64_t br, int64_t bc) {
    if (rows < 0 || cols < 0) return PK_ERR_SHAPE;
    if (br < 1 || bc < 1 || br > BS_TMAX || bc > BS_TMAX) return PK_ERR_ARG;
    if (rows % br != 0 || cols % bc != 0) return PK_ERR_SHAPE;
    return PK_OK;
}

// Block (i, c) of M: 0 = nothing kept, 1 = all kept, 2 = partly kept.
static int block_state(const uint8_t *M, int64_t ldm, int64_t i, int64_t c, int64_t br, int64_t bc) {
    int64_t kept = 0;
    for (int64_t r = 0; r < br; r++)
        for (int64_t k = 0; k < bc; k++) kept += M[(i * br + r) * ldm + c * bc + k] != 0;
    return kept == 0 ? 0 : kept == br * bc ? 1 : 2;
}

pk_status pk_bsr_count(int64_t rows, int64_t cols, int64_t br, int64_t bc, const uint8_t *M, int64_t ldm,
                       int64_t *nblocks, int *complete) {
    pk_status st = bsr_geometry(rows, cols, br, bc);
    if (st != PK_OK) return st;
    if (ldm < cols) return PK_ERR_SHAPE;
    if (!nblocks || !complete || (rows > 0 && cols > 0 && !M)) return PK_ERR_NULL;
    int64_t n = 0;
    int whole = 1;
    for (int64_t i = 0; i < rows / br; i++)
        for (int64_t c = 0; c < cols / bc; c++) {
            const int s = block_state(M, ldm, i, c, br, bc);
            n += s != 0;
            whole &= s != 2;
        }
    *nblocks = n;
    *complete = whole;
    return PK_OK;
}

pk_status pk_bsr_pack_f32(pk_bsr *A, const float *W, int64_t ldw, const uint8_t *M, int64_t ldm) {
    if (!A) return PK_ERR_NULL;
    pk_status st = bsr_geometry(A->rows, A->cols, A->br, A->bc);
    if (st != PK_OK) return st;
    if (A->nblocks < 0 || ldw < A->cols || ldm < A->cols) return PK_ERR_SHAPE;
    if (A->nblocks >= ((int64_t)1 << 31)) return PK_ERR_ARG;
    const int64_t br = A->br, bc = A->bc, nbr = A->rows / br, nbc = A->cols / bc, bsz = br * bc;
    if (!A->ptr || !A->tptr || (A->rows > 0 && A->cols > 0 && (!W || !M))) return PK_ERR_NULL;
    if (A->nblocks > 0 && (!A->bcol || !A->val || !A->tblk || !A->trow)) return PK_ERR_NULL;
    int64_t n = 0;
    memset(A->tptr, 0, (size_t)(nbc + 1) * sizeof(int64_t));
    for (int64_t i = 0; i < nbr; i++) {
        // block-rows × block-columns: kept blocks in column order
        A->ptr[i] = n;
        for (int64_t c = 0; c < nbc; c++) {
            const int s = block_state(M, ldm, i, c, br, bc);
            if (s == 0) continue;
            if (s == 2) return PK_ERR_ARG; // a block partly pruned: the mask is not block-structured
            if (n < A->nblocks) {
                A->bcol[n] = (int32_t)c;
                for (int64_t r = 0; r < br; r++)
                    memcpy(A->val + n * bsz + r * bc, W + (i * br + r) * ldw + c * bc, (size_t)bc * sizeof(float));
            }
            n++;
            A->tptr[c + 1]++;
        }
    }
    A->ptr[nbr] = n;
    if (n != A->nblocks) return PK_ERR_SHAPE;
    for (int64_t c = 0; c < nbc; c++) A->tptr[c + 1] += A->tptr[c];
    int64_t *fill = malloc((size_t)PK_MAX(nbc, 1) * sizeof(int64_t));
    if (!fill) return PK_ERR_NOMEM;
    memcpy(fill, A->tptr, (size_t)nbc * sizeof(int64_t));
    for (int64_t i = 0; i < nbr; i++)
        for (int64_t j = A->ptr[i]; j < A->ptr[i + 1]; j++) {
            const int64_t at = fill[A->bcol[j]]++;
            A->tblk[at] = (int32_t)j;
            A->trow[at] = (int32_t)i;
        }
    free(fill);
    return PK_OK;
}

pk_status pk_bsr_unpack_f32(const pk_bsr *A, float *W, int64_t ldw, uint8_t *M, int64_t ldm) {
    if (!A) return PK_ERR_NULL;
    pk_status st = bsr_geometry(A->rows, A->cols, A->br, A->bc);
    if (st != PK_OK) return st;
    if (ldw < A->cols || (M && ldm < A->cols)) return PK_ERR_SHAPE;
    if (A->rows > 0 && A->cols > 0 && !W) return PK_ERR_NULL;
    const int64_t br = A->br, bc = A->bc;
    for (int64_t r = 0; r < A->rows; r++) {
        memset(W + r * ldw, 0, (size_t)A->cols * sizeof(float));
        if (M) memset(M + r * ldm, 0, (size_t)A->cols);
    }
    for (int64_t i = 0; i < A->rows / br; i++)
        for (int64_t j = A->ptr[i]; j < A->ptr[i + 1]; j++)
            for (int64_t r = 0; r < br; r++) {
                const int64_t at = (i * br + r) * ldw + A->bcol[j] * bc;
                memcpy(W + at, A->val + j * br * bc + r * bc, (size_t)bc * sizeof(float));
                if (M) memset(M + (i * br + r) * ldm + A->bcol[j] * bc, 1, (size_t)bc);
            }
    return PK_OK;
}

// ---- micro-kernels, one body per ISA (vector type VT of VW floats)

// acc (RT rows × NVB vectors, row stride 32) := (first ? 0 : acc) + Σ over the nb blocks j = j0 + e
// Σ_k<kl w(i, k) · P[(xr[e]·kl + k)·32 + v], w(i, k) = val[j·bsz + woff + i·si + k·sk].
typedef void (*bs_tile_fn)(int64_t nb, int64_t j0, const int32_t *xr, const float *val, int64_t bsz, int64_t woff,
                           int64_t si, int64_t sk, int64_t kl, const float *P, float *acc, int first);

#define BS_TILE_BODY(NAME, TARGET, VT, VW, SPLAT, RT, NVB, SETS)                                              \
    TARGET static PK_ALWAYS_INLINE void NAME(int64_t nb, int64_t j0, const int32_t *xr, const float *val, int64_t bsz, \
                                             int64_t woff, int64_t si, int64_t sk, int64_t kl, const float *P, \
                                             float *acc, int first) {                                          \
        VT a[SETS][RT][NVB];                                                                                   \
        for (int s = 0; s < SETS; s++)                                                                         \
            for (int i = 0; i < RT; i++)                                                                       \
                for (int v = 0; v < NVB; v++)                                                                  \
                    a[s][i][v] = s > 0 || first ? (VT){0} : *(const VT *)(acc + i * PK_SP_NR + v * VW);        \
        for (int64_t e = 0; e < nb; e++) {                                                                     \
            /* blocks × columns of the block (SETS at a time) × the tile's rows */                            \
            const float *w = val + (j0 + e) * bsz + woff;                                                      \
            const float *xb = P + (int64_t)xr[e] * kl * PK_SP_NR;                                              \
            if (kl <= 8 && e + BS_AHEAD < nb) {                                                                \
                /* the few panel rows of a block BS_AHEAD on: scattered, no prefetcher predicts them */      \
                /* (a wide block's rows are one long run, which the hardware prefetcher follows) */         \
                const float *xn = P + (int64_t)xr[e + BS_AHEAD] * kl * PK_SP_NR;                              \
                for (int64_t kk = 0; kk < kl; kk++) __builtin_prefetch(xn + kk * PK_SP_NR);                    \
            }                                                                                                  \
            int64_t k = 0;                                                                                     \
            for (; k + SETS <= kl; k += SETS)                                                                  \
                for (int s = 0; s < SETS; s++) {                                                               \
                    const VT *x = (const VT *)(xb + (k + s) * PK_SP_NR);                                       \
                    VT xv[NVB];                                                                                \
                    for (int v = 0; v < NVB; v++) xv[v] = x[v];                                                \
                    for (int i = 0; i < RT; i++) {                                                             \
                        const VT wi = SPLAT(w[i * si + (k + s) * sk]);                                         \
                        for (int v = 0; v < NVB; v++) a[s][i][v] += wi * xv[v];                                \
                    }                                                                                          \
                }                                                                                              \
            for (; k < kl; k++) {                                                                              \
                const VT *x = (const VT *)(xb + k * PK_SP_NR);                                                 \
                for (int i = 0; i < RT; i++) {                                                                 \
                    const VT wi = SPLAT(w[i * si + k * sk]);                                                   \
                    for (int v = 0; v < NVB; v++) a[0][i][v] += wi * x[v];                                     \
                }                                                                                              \
            }                                                                                                  \
        }                                                                                                      \
        for (int i = 0; i < RT; i++)                                                                           \
            for (int v = 0; v < NVB; v++) {                                                                    \
                VT t = a[0][i][v];                                                                             \
                for (int s = 1; s < SETS; s++) t += a[s][i][v];                                                \
                *(VT *)(acc + i * PK_SP_NR + v * VW) = t;                                                      \
            }                                                                                                  \
    }

// A tile kernel: the body with its strides and block width fixed (KL, SI, SK constants for the common
// block shapes, so the block's loop unrolls with constant offsets) or left to the arguments.
#define BS_TILE_FN(NAME, TARGET, BODY, KL, SI, SK)                                                             \
    TARGET static void NAME(int64_t nb, int64_t j0, const int32_t *xr, const float *val, int64_t bsz, int64_t woff, \
                            int64_t si, int64_t sk, int64_t kl, const float *P, float *acc, int first) {       \
        (void)si; (void)sk; (void)kl;                                                                          \
        BODY(nb, j0, xr, val, bsz, woff, SI, SK, KL, P, acc, first);                                           \
    }

// out[a·C + c] := Σ over n samples (a multiple of VW) of dy[a·ld + ·] · x[c·ld + ·], a < A, c < C, A·C = 8
// (column c ≥ cmax repeats column cmax − 1; its sums are not used).
typedef void (*bs_dot_fn)(const float *dy, const float *x, int64_t ld, int64_t cmax, int64_t n, float *out);

#define BS_DOT_BODY(NAME, TARGET, VT, VW, HSUM, A, C)                                                          \
    TARGET static void NAME(const float *dy, const float *x, int64_t ld, int64_t cmax, int64_t n, float *out) { \
        VT s[8];                                                                                               \
        const float *xc[C];                                                                                    \
        for (int c = 0; c < C; c++) xc[c] = x + PK_MIN((int64_t)c, cmax - 1) * ld;                             \
        for (int i = 0; i < 8; i++) s[i] = (VT){0};                                                            \
        for (int64_t v = 0; v < n; v += VW) {                                                                  \
            /* samples: A rows of dY against C rows of X */                                                    \
            VT xv[C];                                                                                          \
            for (int c = 0; c < C; c++) xv[c] = *(const VT *)(xc[c] + v);                                      \
            for (int a = 0; a < A; a++) {                                                                      \
                const VT d = *(const VT *)(dy + a * ld + v);                                                   \
                for (int c = 0; c < C; c++) s[a * C + c] += d * xv[c];                                         \
            }                                                                                                  \
        }                                                                                                      \
        HSUM(s, out);                                                                                          \
    }

#define BS_NOTARGET
// Per ISA: tile bodies of RT = 8, 4, 2, 1 rows (NVB vectors each, at most 12 sums on AVX2 and 16 with
// 32 registers; one row alternates two sets of sums), their generic kernels, kernels for the rows of
// the 4×4, 8×8, 16×1 and 1×16 blocks (KL = bc, SI = bc, SK = 1), and the dot kernels of the weight
// gradient.
#define BS_KERNELS(ISA, TARGET, VT, VW, SPLAT, HSUM, R8, N8, N4, N2, N1)                                        \
    BS_TILE_BODY(bs_body_##ISA##_8, TARGET, VT, VW, SPLAT, R8, N8, 1)                                          \
    BS_TILE_BODY(bs_body_##ISA##_4, TARGET, VT, VW, SPLAT, 4, N4, 1)                                           \
    BS_TILE_BODY(bs_body_##ISA##_2, TARGET, VT, VW, SPLAT, 2, N2, 1)                                           \
    BS_TILE_BODY(bs_body_##ISA##_1, TARGET, VT, VW, SPLAT, 1, N1, 2)                                           \
    BS_TILE_FN(bs_tile_##ISA##_8, TARGET, bs_body_##ISA##_8, kl, si, sk)                                       \
    BS_TILE_FN(bs_tile_##ISA##_4, TARGET, bs_body_##ISA##_4, kl, si, sk)                                       \
    BS_TILE_FN(bs_tile_##ISA##_2, TARGET, bs_body_##ISA##_2, kl, si, sk)                                       \
    BS_TILE_FN(bs_tile_##ISA##_1, TARGET, bs_body_##ISA##_1, kl, si, sk)                                       \
    BS_TILE_FN(bs_fwd_##ISA##_4x4, TARGET, bs_body_##ISA##_4, 4, 4, 1)                                         \
    BS_TILE_FN(bs_fwd_##ISA##_8x8, TARGET, bs_body_##ISA##_##R8, 8, 8, 1)                                      \
    BS_TILE_FN(bs_fwd_##ISA##_16x1, TARGET, bs_body_##ISA##_##R8, 1, 1, 1)                                     \
    BS_TILE_FN(bs_fwd_##ISA##_1x16, TARGET, bs_body_##ISA##_1, 16, 16, 1)                                      \
    BS_DOT_BODY(bs_dot_##ISA##_1x8, TARGET, VT, VW, HSUM, 1, 8)                                                \
    BS_DOT_BODY(bs_dot_##ISA##_2x4, TARGET, VT, VW, HSUM, 2, 4)                                                \
    BS_DOT_BODY(bs_dot_##ISA##_4x2, TARGET, VT, VW, HSUM, 4, 2)                                                \
    BS_DOT_BODY(bs_dot_##ISA##_8x1, TARGET, VT, VW, HSUM, 8, 1)
// AVX2 (16 registers): the 8-row tile is two 4-row tiles (R8 = 4), 4 rows × 2 vectors, 2 × 4, 1 × 4.
BS_KERNELS(avx2, PK_TARGET_AVX2, pk_v8, 8, PK_SPLAT8, PK_SP_HSUM8_V8, 4, 2, 2, 4, 4)
BS_KERNELS(avx512, PK_TARGET_AVX512, pk_v16, 16, PK_SPLAT16, PK_SP_HSUM8_V16, 8, 2, 2, 2, 2)
BS_KERNELS(portable, BS_NOTARGET, pk_v16, 16, PK_SPLAT16, PK_SP_HSUM8_V16, 8, 2, 2, 2, 2)

// The tile kernel for the products of a br × bc block and the dot kernel of its weight gradient, for
// the active ISA.
// rt: rows per tile; nvb: vectors per tile; a, c: the dot tile.
typedef struct { bs_tile_fn tile; int rt, nvb, vw; } bs_tile_pick;
typedef struct { bs_dot_fn dot; int a, c; } bs_dot_pick;

#define BS_PICK_ISA(ISA, R8, N8, N4, N2, N1)                                                                   \
    static bs_tile_pick bs_pick_##ISA(int64_t br, int64_t bc, int vw) {                                        \
        if (br == 4 && bc == 4) return (bs_tile_pick){bs_fwd_##ISA##_4x4, 4, N4, vw};                          \
        if (br == 8 && bc == 8) return (bs_tile_pick){bs_fwd_##ISA##_8x8, R8, N8, vw};                         \
        if (br == 16 && bc == 1) return (bs_tile_pick){bs_fwd_##ISA##_16x1, R8, N8, vw};                       \
        if (br == 1 && bc == 16) return (bs_tile_pick){bs_fwd_##ISA##_1x16, 1, N1, vw};                        \
        if (br % R8 == 0) return (bs_tile_pick){bs_tile_##ISA##_8, R8, N8, vw};                                \
        if (br % 4 == 0) return (bs_tile_pick){bs_tile_##ISA##_4, 4, N4, vw};                                  \
        if (br % 2 == 0) return (bs_tile_pick){bs_tile_##ISA##_2, 2, N2, vw};                                  \
        return (bs_tile_pick){bs_tile_##ISA##_1, 1, N1, vw};                                                   \
    }
BS_PICK_ISA(avx2, 4, 2, 2, 4, 4)
BS_PICK_ISA(avx512, 8, 2, 2, 2, 2)
BS_PICK_ISA(portable, 8, 2, 2, 2, 2)

static bs_tile_pick bs_pick_tile(int64_t br, int64_t bc) {
    switch (pk_active_isa()) {
    case PK_ISA_AVX512: return bs_pick_avx512(br, bc, 16);
    case PK_ISA_AVX2: return bs_pick_avx2(br, bc, 8);
    default: return bs_pick_portable(br, bc, 16);
    }
}

static bs_dot_pick bs_pick_dot(int64_t br, int64_t bc) {
    const pk_isa isa = pk_active_isa();
#define BS_DPICK(A, C)                                                                                         \
    return (bs_dot_pick){isa == PK_ISA_AVX512 ? bs_dot_avx512_##A##x##C : isa == PK_ISA_AVX2 ? bs_dot_avx2_##A##x##C \
                                                                                            : bs_dot_portable_##A##x##C, \
                         A, C}
    if (bc % 8 == 0) BS_DPICK(1, 8);
    if (bc % 4 == 0 && br % 2 == 0) BS_DPICK(2, 4);
    if (bc % 2 == 0 && br % 4 == 0) BS_DPICK(4, 2);
    if (bc == 1 && br % 8 == 0) BS_DPICK(8, 1);
    BS_DPICK(1, 8); // columns past bc repeat the last one
#undef BS_DPICK
}

static pk_status bsr_check(const pk_bsr *A) {
    if (!A) return PK_ERR_NULL;
    pk_status st = bsr_geometry(A->rows, A->cols, A->br, A->bc);
    if (st != PK_OK) return st;
    return A->nblocks < 0 ? PK_ERR_SHAPE : PK_OK;
}

// ---- forward and input gradient

typedef struct {
    const pk_bsr *A;
    bs_tile_pick k;
    const float *P, *bias;
    int64_t B;
    int out_fm;
    float *Y;
    int64_t ldy;
} bs_prod_ctx;

static void bs_prod_range(void *v, int64_t q0, int64_t q1) {
    // groups [q0, q1) of block-rows: panels × blocks of BS_KC input features × block-rows × tiles
    const bs_prod_ctx *c = v;
    const pk_bsr *A = c->A;
    const int64_t br = A->br, bc = A->bc, per = PK_MAX(1, BS_ROWS / br), nl = A->rows / br, nred = A->cols / bc;
    const int64_t kcl = PK_MAX(1, BS_KC / bc), np = (c->B + PK_SP_NR - 1) / PK_SP_NR, bsz = br * bc;
    float T[BS_TMAX * PK_SP_NR] __attribute__((aligned(64))); // per·br ≤ max(BS_ROWS, br) ≤ BS_TMAX rows
    int64_t cur[BS_ROWS];
    for (int64_t p = 0; p < np; p++) {
        const float *P = c->P + p * A->cols * PK_SP_NR;
        for (int64_t q = q0; q < q1; q++) {
            const int64_t l0 = q * per, l1 = PK_MIN(nl, l0 + per);
            if (nred == 0) memset(T, 0, sizeof T);
            for (int64_t l = l0; l < l1; l++) cur[l - l0] = A->ptr[l];
            for (int64_t k0 = 0; k0 < nred; k0 += kcl)
                for (int64_t l = l0; l < l1; l++) {
                    // the block-row's blocks whose block-column lies in [k0, k0 + kcl)
                    const int64_t e0 = cur[l - l0];
                    int64_t e1 = e0;
                    while (e1 < A->ptr[l + 1] && A->bcol[e1] < k0 + kcl) e1++;
                    cur[l - l0] = e1;
                    if (e1 == e0 && k0 > 0) continue;
                    for (int64_t i = 0; i < br; i += c->k.rt)
                        for (int64_t v0 = 0; v0 < PK_SP_NR / c->k.vw; v0 += c->k.nvb)
                            c->k.tile(e1 - e0, e0, A->bcol + e0, A->val, bsz, i * bc, bc, 1, bc, P + v0 * c->k.vw,
                                      T + ((l - l0) * br + i) * PK_SP_NR + v0 * c->k.vw, k0 == 0);
                }
            pk_sp_store_tile(T, (l1 - l0) * br, PK_MIN(PK_SP_NR, c->B - p * PK_SP_NR), l0 * br, p * PK_SP_NR, c->bias,
                             c->out_fm, c->Y, c->ldy);
        }
    }
}

// Y := X·Aᵀ (+ bias) for a block-sparse A whose forward arrays (ptr, bcol, val) are set.
static pk_status bs_product(const pk_bsr *A, int layout, int64_t B, const float *X, int64_t ldx, const float *bias,
                            float *Y, int64_t ldy) {
    const int in_fm = layout & PK_LAYOUT_X_FEATURES, out_fm = (layout & PK_LAYOUT_Y_FEATURES) != 0;
    if (pk_overlaps(X, pk_sp_act_span(in_fm, B, A->cols, ldx), Y, pk_sp_act_span(out_fm, B, A->rows, ldy))) return PK_ERR_ALIAS;
    const float *P = pk_sp_panels(PK_SP_SLOT_A, in_fm, B, A->cols, X, ldx, PK_SP_NR);
    if (!P) return PK_ERR_NOMEM;
    bs_prod_ctx c = {A, bs_pick_tile(A->br, A->bc), P, bias, B, out_fm, Y, ldy};
    const int64_t per = PK_MAX(1, BS_ROWS / A->br);
    pk_parallel_for((A->rows / A->br + per - 1) / per, 1, bs_prod_range, &c);
    return PK_OK;
}

static pk_status bs_args(const pk_bsr *A, int layout, int64_t B, int64_t nin, int64_t nout, const float *X, int64_t ldx,
                         float *Y, int64_t ldy) {
    pk_status st = bsr_check(A);
    if (st != PK_OK) return st;
    if ((st = pk_sp_layout_check(layout, B, nin, nout, ldx, ldy)) != PK_OK) return st;
    if (B == 0 || nout == 0) return PK_OK;
    if (!Y || !A->ptr || !A->tptr || (nin > 0 && !X)) return PK_ERR_NULL;
    if (A->nblocks > 0 && (!A->bcol || !A->val || !A->tblk || !A->trow)) return PK_ERR_NULL;
    return PK_OK;
}

pk_status pk_bsr_forward_f32(const pk_bsr *A, int layout, int64_t B, const float *X, int64_t ldx, const float *bias,
                             float *Y, int64_t ldy) {
    pk_status st = bs_args(A, layout, B, A ? A->cols : 0, A ? A->rows : 0, X, ldx, Y, ldy);
    if (st != PK_OK || B == 0 || A->rows == 0) return st;
    return bs_product(A, layout, B, X, ldx, bias, Y, ldy);
}

typedef struct { const pk_bsr *A; float *tv; } bs_transpose_ctx;

static void bs_transpose_range(void *v, int64_t e0, int64_t e1) {
    // entries [e0, e1) of the transposed index: block tblk[e] transposed (bc × br) into tv[e]
    const bs_transpose_ctx *c = v;
    const int64_t br = c->A->br, bc = c->A->bc;
    for (int64_t e = e0; e < e1; e++) {
        const float *w = c->A->val + (int64_t)c->A->tblk[e] * br * bc;
        float *t = c->tv + e * br * bc;
        for (int64_t a = 0; a < bc; a++)
            for (int64_t b = 0; b < br; b++) t[a * br + b] = w[b * bc + a];
    }
}

pk_status pk_bsr_input_grad_f32(const pk_bsr *A, int layout, int64_t B, const float *dY, int64_t lddy, float *dX,
                                int64_t lddx) {
    pk_status st = bs_args(A, layout, B, A ? A->rows : 0, A ? A->cols : 0, dY, lddy, dX, lddx);
    if (st != PK_OK || B == 0 || A->cols == 0) return st;
    // Wᵀ is block-sparse too: its block-rows are W's block-columns (the transposed index), its blocks
    // W's blocks transposed, gathered once into that order so the forward kernels stream them
    const int64_t count = A->nblocks * A->br * A->bc;
    float *tv = pk_scratch(PK_SP_SLOT_B, (size_t)PK_MAX(count, 1) * sizeof(float));
    if (!tv) return PK_ERR_NOMEM;
    bs_transpose_ctx tc = {A, tv};
    pk_parallel_for(A->nblocks, 256, bs_transpose_range, &tc);
    const pk_bsr T = {A->cols, A->rows, A->bc, A->br, A->nblocks, A->tptr, A->trow, tv, A->ptr, A->bcol, A->bcol};
    return bs_product(&T, layout, B, dY, lddy, NULL, dX, lddx);
}

// ---- weight gradient fused with the update

typedef struct {
    const pk_bsr *A;
    bs_dot_pick k;
    const float *PX, *PD; // feature-major chunks of X (cols × bc) and dY (rows × bc)
    int64_t nch, bchunk;
    float *g, *w, *m, *v;
    const pk_update_consts *uc;
} bs_upd_ctx;

static void bs_upd_range(void *vc, int64_t q0, int64_t q1) {
    // groups [q0, q1) of block-rows: chunks of samples × column windows × block-rows × kept blocks
    const bs_upd_ctx *c = vc;
    const pk_bsr *A = c->A;
    const int64_t br = A->br, bc = A->bc, bsz = br * bc, per = PK_MAX(1, BS_WROWS / br), nbr = A->rows / br;
    const int64_t wcols = PK_MAX(1, BS_WINDOW / bc), nbc = A->cols / bc, ld = c->bchunk;
    int64_t cur[BS_WROWS];
    for (int64_t q = q0; q < q1; q++) {
        const int64_t i0 = q * per, i1 = PK_MIN(nbr, i0 + per);
        for (int64_t ch = 0; ch < c->nch; ch++) {
            const float *PX = c->PX + ch * A->cols * ld, *PD = c->PD + ch * A->rows * ld;
            const int last = ch == c->nch - 1;
            for (int64_t i = i0; i < i1; i++) cur[i - i0] = A->ptr[i];
            for (int64_t w0 = 0; w0 < nbc; w0 += wcols)
                for (int64_t i = i0; i < i1; i++)
                    for (int64_t j = cur[i - i0]; j < A->ptr[i + 1] && A->bcol[j] < w0 + wcols; j++, cur[i - i0]++) {
                        // one kept block: tiles of a × cc entries
                        float *g = c->g + j * bsz;
                        const float *dy = PD + i * br * ld, *x = PX + (int64_t)A->bcol[j] * bc * ld;
                        for (int64_t r = 0; r < br; r += c->k.a)
                            for (int64_t k = 0; k < bc; k += c->k.c) {
                                float s[8];
                                c->k.dot(dy + r * ld, x + k * ld, ld, bc - k, ld, s);
                                for (int64_t a = 0; a < c->k.a; a++)
                                    for (int64_t t = 0; t < c->k.c && k + t < bc; t++) {
                                        float *gt = g + (r + a) * bc + k + t;
                                        *gt = ch == 0 ? s[a * c->k.c + t] : *gt + s[a * c->k.c + t];
                                    }
                            }
                        if (last && c->uc)
                            pk_update_run(c->uc, bsz, g, c->w + j * bsz, c->m ? c->m + j * bsz : NULL,
                                          c->v ? c->v + j * bsz : NULL, NULL, 1);
                    }
        }
    }
}

pk_status pk_bsr_weight_update_f32(const pk_bsr *A, int layout, int64_t B, const float *dY, int64_t lddy,
                                   const float *X, int64_t ldx, const pk_update_desc *u, float *g) {
    pk_status st = bsr_check(A);
    if (st != PK_OK) return st;
    const int fm = layout == PK_LAYOUT_FEATURES;
    if (layout != 0 && !fm) return PK_ERR_ARG;
    if (B < 0 || lddy < (fm ? B : A->rows) || ldx < (fm ? B : A->cols)) return PK_ERR_SHAPE;
    const int64_t count = A->nblocks * A->br * A->bc;
    pk_update_consts uc;
    if ((st = pk_sp_update_setup(u, A->val, count, g, &uc)) != PK_OK) return st;
    if (count == 0) return PK_OK;
    if (!A->val || !A->ptr || !A->bcol) return PK_ERR_NULL;
    float *gb = g ? g : pk_scratch(PK_SP_SLOT_GRAD, (size_t)count * sizeof(float));
    if (!gb) return PK_ERR_NOMEM;
    float *mm = u && !(u->kind == PK_UPDATE_SGD && u->momentum == 0.0f) ? u->m : NULL;
    float *vv = u && u->kind == PK_UPDATE_ADAM ? u->v : NULL;
    if (B == 0) {
        // no samples: a zero gradient (the step still applies weight decay and momentum)
        memset(gb, 0, (size_t)count * sizeof(float));
        if (u) pk_update_run(&uc, count, gb, A->val, mm, vv, NULL, 1);
        return PK_OK;
    }
    if (!dY || !X) return PK_ERR_NULL;
    const int64_t bchunk = PK_MIN(PK_SP_BCHUNK, (B + 15) / 16 * 16);
    const float *PX = pk_sp_panels(PK_SP_SLOT_A, fm, B, A->cols, X, ldx, bchunk);
    const float *PD = PX ? pk_sp_panels(PK_SP_SLOT_B, fm, B, A->rows, dY, lddy, bchunk) : NULL;
    if (!PX || !PD) return PK_ERR_NOMEM;
    bs_upd_ctx c = {A, bs_pick_dot(A->br, A->bc), PX, PD, (B + bchunk - 1) / bchunk, bchunk, gb, A->val, mm, vv,
                    u ? &uc : NULL};
    const int64_t per = PK_MAX(1, BS_WROWS / A->br);
    pk_parallel_for((A->rows / A->br + per - 1) / per, 1, bs_upd_range, &c);
    return PK_OK;
}
