// Packed N:M weights (pk_nm in the header): packing, and the three products of a pruned Linear.
//
// Forward, Yᵀ (rows × B) = W · Xᵀ: a GEMM whose left operand is sparse, blocked like gemm.c.
//   Threads own blocks of NM_MC output rows. For each block of 256 samples (eight panels of 32,
//   pk_sp_panels), each block of KC ≤ 128 input columns and each panel (its KC × 32 floats, ≤ 16
//   KiB, stay in L1), tiles of MR rows run the micro-kernel: MR × 32 sums in registers; for every
//   slot of a row it broadcasts the weight and multiplies it by the panel row its index selects
//   (the FMA reads that row from L1: one vector load per FMA, no gather, no permute). The block's
//   weights for the column block (NM_MC rows × 5 bytes a slot) stay in L1/L2 across the panels,
//   the block's sums (NM_MC × 256) in L2 across the column blocks, and every weight is read once
//   per 256 samples. Each output is summed over the column blocks in order by one thread:
//   identical bits for any thread count.
// Input gradient, dXᵀ (cols × B) = Wᵀ · dYᵀ: threads own blocks of up to 256 input columns; for
//   each block of 256 samples and each block of PK_NM_TBLOCK rows, the weights of the block's
//   entries are gathered once into the transposed order, then for each panel of dY (the row block's
//   panel rows, 16 KiB, in L1) each column walks its kept entries through the transposed index,
//   two entries in flight (two sets of sums, added when the row block ends: a fixed order).
// Weight gradient, g(r, c) = Σ_b dY[b, r]·X[b, c] at the kept slots: both operands become
//   feature-major chunks of 256 samples; threads own blocks of rows; eight slots of a row are
//   eight dot products over the chunk, the sums kept in vector lanes (one dY load per eight FMAs)
//   and reduced once per chunk. The sums of 64 slots × 64 rows are staged, then written row by
//   row; after the last chunk those slots take their optimizer step, so g, the weights and the
//   state are walked in contiguous runs.
#include "sparse_panels.h"
#include <stdlib.h>
#include <string.h>

#define NM_MR_LCM 6    // a multiple of every MR below
#define NM_MC 96       // output rows per thread block (a multiple of NM_MR_LCM)
#define NM_NC 256      // samples per block of the forward (its mc × NM_NC sums stay in L2)
#define NM_KC 128      // input columns per block of the forward (panel rows in L1)
#define NM_CB 256      // input columns per thread block of the input gradient (its sums: 256 KiB, L2)
#define NM_OR 64       // rows per thread block of the weight gradient
#define NM_WB 64       // slots per block of the weight gradient (a multiple of 8)

// ---- packing

static int nm_sizes_ok(const pk_nm *A) {
    return A->rows >= 0 && A->cols >= 0 && A->nnz >= 0 && A->n >= 1 && A->n <= A->m && A->m <= 127;
}

pk_status pk_nm_pack_f32(pk_nm *A, const float *W, int64_t ldw, const uint8_t *M, int64_t ldm) {
    if (!A) return PK_ERR_NULL;
    if (A->rows < 0 || A->cols < 0 || A->nnz < 0) return PK_ERR_SHAPE;
    if (!nm_sizes_ok(A)) return PK_ERR_ARG;
    const int64_t R = A->rows, C = A->cols, n = A->n, m = A->m;
    if (C % m != 0 || ldw < C || (M && ldm < C)) return PK_ERR_SHAPE;
    const int64_t G = C / m, S = G * n, nq = (R + PK_NM_TBLOCK - 1) / PK_NM_TBLOCK;
    if (R > 0 && C > 0 && (!W || !A->val || !A->idx)) return PK_ERR_NULL;
    if (!A->tptr || (A->nnz > 0 && !A->tent)) return PK_ERR_NULL;
    int64_t kept = 0;
    memset(A->tptr, 0, (size_t)(nq * C + 1) * sizeof(int64_t));
    for (int64_t r = 0; r < R; r++) {
        // rows × groups: the kept columns of each group fill its slots, padding after them
        const int64_t q = r / PK_NM_TBLOCK;
        for (int64_t g = 0; g < G; g++) {
            float *v = A->val + r * S + g * n;
            uint8_t *ix = A->idx + r * S + g * n;
            int64_t t = 0;
            for (int64_t j = 0; j < m; j++) {
                const int64_t c = g * m + j;
                const int keep = M ? M[r * ldm + c] != 0 : W[r * ldw + c] != 0.0f;
                if (!keep) continue;
                if (t == n) return PK_ERR_ARG; // more than n kept in a group: not N:M
                v[t] = W[r * ldw + c];
                ix[t] = (uint8_t)j;
                t++;
                A->tptr[q * C + c + 1]++;
            }
            kept += t;
            for (int64_t u = t; u < n; u++) { v[u] = 0.0f; ix[u] = (uint8_t)(PK_NM_PAD | 0); }
        }
    }
    if (kept != A->nnz) return PK_ERR_SHAPE;
    for (int64_t i = 0; i < nq * C; i++) A->tptr[i + 1] += A->tptr[i];
    // the transposed index: walking rows in order keeps each (block, column) list's rows increasing
    int64_t *fill = malloc((size_t)PK_MAX(nq * C, 1) * sizeof(int64_t));
    if (!fill) return PK_ERR_NOMEM;
    memcpy(fill, A->tptr, (size_t)(nq * C) * sizeof(int64_t));
    for (int64_t r = 0; r < R; r++) {
        const int64_t q = r / PK_NM_TBLOCK;
        for (int64_t s = 0; s < S; s++) {
            const uint8_t ix = A->idx[r * S + s];
            if (ix & PK_NM_PAD) continue;
            const int64_t c = (s / n) * m + ix;
            A->tent[fill[q * C + c]++] = (uint16_t)((r - q * PK_NM_TBLOCK) | ((s % n) << 8));
        }
    }
    free(fill);
    return PK_OK;
}

typedef struct { int64_t cols, m, ldm; const uint8_t *M; int64_t best; } maxkept_ctx;

static void maxkept_range(void *v, int64_t r0, int64_t r1) {
    // rows [r0, r1): the largest group count, merged into the shared maximum
    maxkept_ctx *c = v;
    int64_t best = 0;
    for (int64_t r = r0; r < r1; r++)
        for (int64_t g = 0; g < c->cols; g += c->m) {
            int64_t k = 0;
            for (int64_t j = 0; j < c->m; j++) k += c->M[r * c->ldm + g + j] != 0;
            best = PK_MAX(best, k);
        }
    int64_t seen = __atomic_load_n(&c->best, __ATOMIC_RELAXED);
    while (seen < best && !__atomic_compare_exchange_n(&c->best, &seen, best, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
}

pk_status pk_nm_max_kept(int64_t rows, int64_t cols, int64_t m, const uint8_t *M, int64_t ldm, int64_t *kept) {
    if (rows < 0 || cols < 0) return PK_ERR_SHAPE;
    if (m < 1) return PK_ERR_ARG;
    if (cols % m != 0 || ldm < cols) return PK_ERR_SHAPE;
    if (!kept || (rows > 0 && cols > 0 && !M)) return PK_ERR_NULL;
    maxkept_ctx c = {cols, m, ldm, M, 0};
    pk_parallel_for(rows, 64, maxkept_range, &c);
    *kept = c.best;
    return PK_OK;
}

pk_status pk_nm_unpack_f32(const pk_nm *A, float *W, int64_t ldw, uint8_t *M, int64_t ldm) {
    if (!A || (!W && A->rows > 0 && A->cols > 0)) return PK_ERR_NULL;
    if (!nm_sizes_ok(A)) return PK_ERR_ARG;
    if (A->cols % A->m != 0 || ldw < A->cols || (M && ldm < A->cols)) return PK_ERR_SHAPE;
    const int64_t G = A->cols / A->m, S = G * A->n;
    for (int64_t r = 0; r < A->rows; r++) {
        memset(W + r * ldw, 0, (size_t)A->cols * sizeof(float));
        if (M) memset(M + r * ldm, 0, (size_t)A->cols);
        for (int64_t s = 0; s < S; s++) {
            const uint8_t ix = A->idx[r * S + s];
            if (ix & PK_NM_PAD) continue;
            const int64_t c = (s / A->n) * A->m + ix;
            W[r * ldw + c] = A->val[r * S + s];
            if (M) M[r * ldm + c] = 1;
        }
    }
    return PK_OK;
}

// ---- micro-kernels, one body per ISA (vector type VT of VW floats)

// acc (MR × 32, row stride 32) := (first ? 0 : acc) + Σ over G groups of the tile's rows:
// rows r < h of the tile start at val/idx + r·S (rows ≥ h repeat row 0; their sums are not used).
typedef void (*nm_fwd_fn)(int64_t G, int64_t n, int64_t m, const float *val, const uint8_t *idx, int64_t S,
                          int64_t h, const float *xp, float *acc, int first);

#define NM_FWD_BODY(NAME, TARGET, VT, VW, SPLAT, MR)                                                          \
    TARGET static PK_ALWAYS_INLINE void NAME(int64_t G, int64_t n, int64_t m, const float *val, const uint8_t *idx, \
                                             int64_t S, int64_t h, const float *xp, float *acc, int first) {   \
        enum { NV = PK_SP_NR / VW };                                                                           \
        VT a[MR][NV];                                                                                          \
        const float *vr[MR];                                                                                   \
        const uint8_t *ir[MR];                                                                                 \
        for (int r = 0; r < MR; r++) {                                                                         \
            const int64_t rr = r < h ? r : 0;                                                                  \
            vr[r] = val + rr * S;                                                                              \
            ir[r] = idx + rr * S;                                                                              \
            for (int v = 0; v < NV; v++) a[r][v] = first ? (VT){0} : *(const VT *)(acc + r * PK_SP_NR + v * VW); \
        }                                                                                                      \
        for (int64_t g = 0; g < G; g++) {                                                                      \
            /* groups × tile rows × slots: weight broadcast × the panel row of its column */                  \
            const float *xg = xp + g * m * PK_SP_NR;                                                           \
            for (int r = 0; r < MR; r++)                                                                       \
                for (int64_t t = 0; t < n; t++) {                                                              \
                    const VT w = SPLAT(vr[r][g * n + t]);                                                      \
                    const VT *x = (const VT *)(xg + (int64_t)(ir[r][g * n + t] & 0x7f) * PK_SP_NR);            \
                    for (int v = 0; v < NV; v++) a[r][v] += w * x[v];                                          \
                }                                                                                              \
        }                                                                                                      \
        for (int r = 0; r < MR; r++)                                                                           \
            for (int v = 0; v < NV; v++) *(VT *)(acc + r * PK_SP_NR + v * VW) = a[r][v];                       \
    }

// acc (32) := (first ? 0 : acc) + Σ over the entries e of one column in one row block: weight
// w[e] × panel row (e[i] & 255) of dp; even and odd entries in separate sums (added at the end).
typedef void (*nm_col_fn)(const uint16_t *e, int64_t ne, const float *w, const float *dp, float *acc, int first);

#define NM_COL_BODY(NAME, TARGET, VT, VW, SPLAT)                                                               \
    TARGET static void NAME(const uint16_t *e, int64_t ne, const float *w, const float *dp, float *acc, int first) { \
        enum { NV = PK_SP_NR / VW };                                                                           \
        VT a[NV], b[NV];                                                                                       \
        for (int v = 0; v < NV; v++) {                                                                         \
            a[v] = first ? (VT){0} : *(const VT *)(acc + v * VW);                                              \
            b[v] = (VT){0};                                                                                    \
        }                                                                                                      \
        int64_t i = 0;                                                                                         \
        for (; i + 2 <= ne; i += 2) {                                                                          \
            /* entry pairs: two broadcasts, two panel rows */                                                  \
            const VT w0 = SPLAT(w[i]), w1 = SPLAT(w[i + 1]);                                                   \
            const VT *x0 = (const VT *)(dp + (int64_t)(e[i] & 255) * PK_SP_NR);                                \
            const VT *x1 = (const VT *)(dp + (int64_t)(e[i + 1] & 255) * PK_SP_NR);                            \
            for (int v = 0; v < NV; v++) a[v] += w0 * x0[v];                                                   \
            for (int v = 0; v < NV; v++) b[v] += w1 * x1[v];                                                   \
        }                                                                                                      \
        if (i < ne) {                                                                                          \
            const VT w0 = SPLAT(w[i]);                                                                         \
            const VT *x0 = (const VT *)(dp + (int64_t)(e[i] & 255) * PK_SP_NR);                                \
            for (int v = 0; v < NV; v++) a[v] += w0 * x0[v];                                                   \
        }                                                                                                      \
        for (int v = 0; v < NV; v++) *(VT *)(acc + v * VW) = a[v] + b[v];                                      \
    }

// out[0..7] := the dot products over bc samples (a multiple of VW) of dy with the feature-major
// rows xp + off[s] (s < 8), sums in vector lanes, reduced in a fixed order.
typedef void (*nm_dot8_fn)(const int64_t *off, const float *xp, const float *dy, int64_t bc, float *out);

#define NM_DOT8_BODY(NAME, TARGET, VT, VW, HSUM)                                                                \
    TARGET static void NAME(const int64_t *off, const float *xp, const float *dy, int64_t bc, float *out) {   \
        VT a[8];                                                                                               \
        const float *x[8];                                                                                     \
        for (int s = 0; s < 8; s++) { a[s] = (VT){0}; x[s] = xp + off[s]; }                                     \
        for (int64_t v = 0; v < bc; v += VW) {                                                                 \
            /* samples: one dY vector against eight feature rows */                                            \
            const VT d = *(const VT *)(dy + v);                                                                \
            for (int s = 0; s < 8; s++) a[s] += d * *(const VT *)(x[s] + v);                                   \
        }                                                                                                      \
        HSUM(a, out);                                                                                          \
    }

#define NM_NOTARGET
NM_FWD_BODY(nm_fwd_avx2, PK_TARGET_AVX2, pk_v8, 8, PK_SPLAT8, 3)
NM_FWD_BODY(nm_fwd_avx512, PK_TARGET_AVX512, pk_v16, 16, PK_SPLAT16, 6)
NM_FWD_BODY(nm_fwd_portable, NM_NOTARGET, pk_v16, 16, PK_SPLAT16, 6)
NM_COL_BODY(nm_col_avx2, PK_TARGET_AVX2, pk_v8, 8, PK_SPLAT8)
NM_COL_BODY(nm_col_avx512, PK_TARGET_AVX512, pk_v16, 16, PK_SPLAT16)
NM_COL_BODY(nm_col_portable, NM_NOTARGET, pk_v16, 16, PK_SPLAT16)
NM_DOT8_BODY(nm_dot8_avx2, PK_TARGET_AVX2, pk_v8, 8, PK_SP_HSUM8_V8)
NM_DOT8_BODY(nm_dot8_avx512, PK_TARGET_AVX512, pk_v16, 16, PK_SP_HSUM8_V16)
NM_DOT8_BODY(nm_dot8_portable, NM_NOTARGET, pk_v16, 16, PK_SP_HSUM8_V16)

// The forward micro-kernel specialised for the common patterns (constant n and m unroll the slots).
#define NM_FWD_VARIANT(ISA, TARGET, N, M)                                                                      \
    TARGET static void nm_fwd_##ISA##_##N##_##M(int64_t G, int64_t n, int64_t m, const float *val,            \
                                                const uint8_t *idx, int64_t S, int64_t h, const float *xp,    \
                                                float *acc, int first) {                                       \
        (void)n; (void)m;                                                                                      \
        nm_fwd_##ISA(G, N, M, val, idx, S, h, xp, acc, first);                                                 \
    }
#define NM_FWD_VARIANTS(ISA, TARGET)                                                                           \
    NM_FWD_VARIANT(ISA, TARGET, 1, 4)                                                                          \
    NM_FWD_VARIANT(ISA, TARGET, 2, 4)                                                                          \
    NM_FWD_VARIANT(ISA, TARGET, 2, 8)                                                                          \
    NM_FWD_VARIANT(ISA, TARGET, 4, 8)                                                                          \
    TARGET static void nm_fwd_##ISA##_any(int64_t G, int64_t n, int64_t m, const float *val, const uint8_t *idx, \
                                          int64_t S, int64_t h, const float *xp, float *acc, int first) {      \
        nm_fwd_##ISA(G, n, m, val, idx, S, h, xp, acc, first);                                                 \
    }                                                                                                          \
    static nm_fwd_fn nm_fwd_pick_##ISA(int64_t n, int64_t m) {                                                 \
        if (n == 1 && m == 4) return nm_fwd_##ISA##_1_4;                                                       \
        if (n == 2 && m == 4) return nm_fwd_##ISA##_2_4;                                                       \
        if (n == 2 && m == 8) return nm_fwd_##ISA##_2_8;                                                       \
        if (n == 4 && m == 8) return nm_fwd_##ISA##_4_8;                                                       \
        return nm_fwd_##ISA##_any;                                                                             \
    }
NM_FWD_VARIANTS(avx2, PK_TARGET_AVX2)
NM_FWD_VARIANTS(avx512, PK_TARGET_AVX512)
NM_FWD_VARIANTS(portable, NM_NOTARGET)

typedef struct { nm_fwd_fn fwd; nm_col_fn col; nm_dot8_fn dot8; int mr; } nm_kernels;

static nm_kernels nm_select(int64_t n, int64_t m) {
    switch (pk_active_isa()) {
    case PK_ISA_AVX512: return (nm_kernels){nm_fwd_pick_avx512(n, m), nm_col_avx512, nm_dot8_avx512, 6};
    case PK_ISA_AVX2: return (nm_kernels){nm_fwd_pick_avx2(n, m), nm_col_avx2, nm_dot8_avx2, 3};
    default: return (nm_kernels){nm_fwd_pick_portable(n, m), nm_col_portable, nm_dot8_portable, 6};
    }
}

// ---- shared argument checks

static pk_status nm_check(const pk_nm *A) {
    if (!A) return PK_ERR_NULL;
    if (A->rows < 0 || A->cols < 0 || A->nnz < 0) return PK_ERR_SHAPE;
    if (!nm_sizes_ok(A)) return PK_ERR_ARG;
    if (A->cols % A->m != 0) return PK_ERR_SHAPE;
    return PK_OK;
}

// ---- forward

typedef struct {
    const pk_nm *A;
    nm_kernels k;
    const float *P, *bias;
    int64_t B, G, S, kcg, mc;
    int out_fm;
    float *Y;
    int64_t ldy;
    int failed;
} nm_fwd_ctx;

static void nm_fwd_range(void *v, int64_t q0, int64_t q1) {
    // blocks [q0, q1) of mc rows: sample blocks (NM_NC) × column blocks × panels × MR-row tiles, the
    // block's sums for the sample block in T (mc × NM_NC, L2), then written out
    nm_fwd_ctx *c = v;
    const pk_nm *A = c->A;
    float *T = pk_scratch(PK_SP_SLOT_TILE, (size_t)(c->mc * NM_NC) * sizeof(float));
    if (!T) { __atomic_store_n(&c->failed, 1, __ATOMIC_RELAXED); return; }
    const int64_t np = (c->B + PK_SP_NR - 1) / PK_SP_NR, ppb = NM_NC / PK_SP_NR;
    for (int64_t q = q0; q < q1; q++) {
        const int64_t r0 = q * c->mc, h = PK_MIN(c->mc, A->rows - r0);
        for (int64_t p0 = 0; p0 < np; p0 += ppb) {
            const int64_t pn = PK_MIN(ppb, np - p0);
            if (c->G == 0) memset(T, 0, (size_t)(c->mc * NM_NC) * sizeof(float));
            for (int64_t g0 = 0; g0 < c->G; g0 += c->kcg) {
                const int64_t gn = PK_MIN(c->kcg, c->G - g0);
                for (int64_t p = 0; p < pn; p++) {
                    const float *P = c->P + ((p0 + p) * A->cols + g0 * A->m) * PK_SP_NR;
                    float *Tp = T + p * c->mc * PK_SP_NR;
                    for (int64_t i = 0; i < h; i += c->k.mr)
                        c->k.fwd(gn, A->n, A->m, A->val + (r0 + i) * c->S + g0 * A->n, A->idx + (r0 + i) * c->S + g0 * A->n,
                                 c->S, PK_MIN(c->k.mr, h - i), P, Tp + i * PK_SP_NR, g0 == 0);
                }
            }
            for (int64_t p = 0; p < pn; p++)
                pk_sp_store_tile(T + p * c->mc * PK_SP_NR, h, PK_MIN(PK_SP_NR, c->B - (p0 + p) * PK_SP_NR), r0,
                                 (p0 + p) * PK_SP_NR, c->bias, c->out_fm, c->Y, c->ldy);
        }
    }
}

pk_status pk_nm_forward_f32(const pk_nm *A, int layout, int64_t B, const float *X, int64_t ldx, const float *bias,
                            float *Y, int64_t ldy) {
    pk_status st = nm_check(A);
    if (st != PK_OK) return st;
    if ((st = pk_sp_layout_check(layout, B, A->cols, A->rows, ldx, ldy)) != PK_OK) return st;
    if (B == 0 || A->rows == 0) return PK_OK;
    if (!Y || (A->cols > 0 && (!X || !A->val || !A->idx))) return PK_ERR_NULL;
    const int in_fm = layout & PK_LAYOUT_X_FEATURES, out_fm = (layout & PK_LAYOUT_Y_FEATURES) != 0;
    if (pk_overlaps(X, pk_sp_act_span(in_fm, B, A->cols, ldx), Y, pk_sp_act_span(out_fm, B, A->rows, ldy))) return PK_ERR_ALIAS;
    const float *P = pk_sp_panels(PK_SP_SLOT_A, in_fm, B, A->cols, X, ldx, PK_SP_NR);
    if (!P) return PK_ERR_NOMEM;
    // row blocks: NM_MC rows, fewer when that leaves a thread without work (the split of rows never
    // changes a sum: each row is computed the same way in any block)
    const int64_t per_thread = (A->rows + pk_get_num_threads() - 1) / pk_get_num_threads();
    const int64_t mc = PK_MIN(NM_MC, PK_MAX(NM_MR_LCM, (per_thread + NM_MR_LCM - 1) / NM_MR_LCM * NM_MR_LCM));
    nm_fwd_ctx c = {A, nm_select(A->n, A->m), P, bias, B, A->cols / A->m, A->cols / A->m * A->n,
                    PK_MAX(1, NM_KC / A->m), mc, out_fm, Y, ldy, 0};
    pk_parallel_for((A->rows + mc - 1) / mc, 1, nm_fwd_range, &c);
    return c.failed ? PK_ERR_NOMEM : PK_OK;
}

// ---- input gradient

typedef struct {
    const pk_nm *A;
    nm_kernels k;
    const float *P;
    int64_t B, S, cb;
    int out_fm;
    float *dX;
    int64_t lddx;
    int failed;
} nm_bwd_ctx;

static void nm_bwd_range(void *v, int64_t q0, int64_t q1) {
    // blocks [q0, q1) of cb input columns: sample blocks (NM_NC) × row blocks (their weights gathered
    // in the transposed order once) × panels × columns; the block's sums in T (cb × NM_NC, L2)
    nm_bwd_ctx *c = v;
    const pk_nm *A = c->A;
    const int64_t np = (c->B + PK_SP_NR - 1) / PK_SP_NR, ppb = NM_NC / PK_SP_NR, nq = (A->rows + PK_NM_TBLOCK - 1) / PK_NM_TBLOCK;
    float *T = pk_scratch(PK_SP_SLOT_TILE, (size_t)(c->cb * NM_NC + c->cb * PK_NM_TBLOCK) * sizeof(float));
    if (!T) { __atomic_store_n(&c->failed, 1, __ATOMIC_RELAXED); return; }
    float *tv = T + c->cb * NM_NC; // the weights of one row block's entries, in the transposed order
    for (int64_t q = q0; q < q1; q++) {
        const int64_t c0 = q * c->cb, w = PK_MIN(c->cb, A->cols - c0);
        for (int64_t p0 = 0; p0 < np; p0 += ppb) {
            const int64_t pn = PK_MIN(ppb, np - p0);
            if (nq == 0) memset(T, 0, (size_t)(c->cb * NM_NC) * sizeof(float));
            for (int64_t rb = 0; rb < nq; rb++) {
                const int64_t *tp = A->tptr + rb * A->cols + c0, e0 = tp[0];
                for (int64_t j = 0; j < w; j++) {
                    // columns × their entries: slot t of the entry's row in the column's group
                    const float *vb = A->val + rb * PK_NM_TBLOCK * c->S + ((c0 + j) / A->m) * A->n;
                    for (int64_t e = tp[j]; e < tp[j + 1]; e++)
                        tv[e - e0] = vb[(int64_t)(A->tent[e] & 255) * c->S + (A->tent[e] >> 8)];
                }
                for (int64_t p = 0; p < pn; p++) {
                    const float *dp = c->P + ((p0 + p) * A->rows + rb * PK_NM_TBLOCK) * PK_SP_NR;
                    float *Tp = T + p * c->cb * PK_SP_NR;
                    for (int64_t j = 0; j < w; j++)
                        c->k.col(A->tent + tp[j], tp[j + 1] - tp[j], tv + (tp[j] - e0), dp, Tp + j * PK_SP_NR, rb == 0);
                }
            }
            for (int64_t p = 0; p < pn; p++)
                pk_sp_store_tile(T + p * c->cb * PK_SP_NR, w, PK_MIN(PK_SP_NR, c->B - (p0 + p) * PK_SP_NR), c0,
                                 (p0 + p) * PK_SP_NR, NULL, c->out_fm, c->dX, c->lddx);
        }
    }
}

pk_status pk_nm_input_grad_f32(const pk_nm *A, int layout, int64_t B, const float *dY, int64_t lddy, float *dX,
                               int64_t lddx) {
    pk_status st = nm_check(A);
    if (st != PK_OK) return st;
    if ((st = pk_sp_layout_check(layout, B, A->rows, A->cols, lddy, lddx)) != PK_OK) return st;
    if (B == 0 || A->cols == 0) return PK_OK;
    if (!dX || !A->tptr || (A->rows > 0 && (!dY || !A->val)) || (A->nnz > 0 && !A->tent)) return PK_ERR_NULL;
    const int in_fm = layout & PK_LAYOUT_X_FEATURES, out_fm = (layout & PK_LAYOUT_Y_FEATURES) != 0;
    if (pk_overlaps(dY, pk_sp_act_span(in_fm, B, A->rows, lddy), dX, pk_sp_act_span(out_fm, B, A->cols, lddx))) return PK_ERR_ALIAS;
    const float *P = pk_sp_panels(PK_SP_SLOT_A, in_fm, B, A->rows, dY, lddy, PK_SP_NR);
    if (!P) return PK_ERR_NOMEM;
    // column blocks: NM_CB columns, fewer when that leaves a thread without work (the split never
    // changes a sum: each column is computed the same way in any block)
    const int64_t per_thread = (A->cols + pk_get_num_threads() - 1) / pk_get_num_threads();
    const int64_t cb = PK_MIN(NM_CB, PK_MAX(8, (per_thread + 7) / 8 * 8));
    nm_bwd_ctx c = {A, nm_select(A->n, A->m), P, B, A->cols / A->m * A->n, cb, out_fm, dX, lddx, 0};
    pk_parallel_for((A->cols + cb - 1) / cb, 1, nm_bwd_range, &c);
    return c.failed ? PK_ERR_NOMEM : PK_OK;
}

// ---- weight gradient fused with the update

typedef struct {
    const pk_nm *A;
    nm_kernels k;
    const float *PX, *PD; // feature-major chunks of X (cols × bc) and dY (rows × bc)
    int64_t B, bc, nch, S;
    float *g, *w, *m, *v;
    const pk_update_consts *uc;
} nm_upd_ctx;

static void nm_upd_range(void *vc, int64_t q0, int64_t q1) {
    // blocks [q0, q1) of NM_OR rows: chunks of samples × blocks of NM_WB slots × windows of eight
    // slots × rows; a block's sums are staged in gt (rows × NM_WB) and then written (and stepped)
    // row by row, so g, the weights and the state are walked in contiguous runs
    const nm_upd_ctx *c = vc;
    const pk_nm *A = c->A;
    const int64_t n = A->n, m = A->m, S = c->S;
    float gt[NM_OR * NM_WB] __attribute__((aligned(64)));
    uint8_t keep[NM_WB];
    for (int64_t q = q0; q < q1; q++) {
        const int64_t r0 = q * NM_OR, r1 = PK_MIN(A->rows, r0 + NM_OR);
        for (int64_t ch = 0; ch < c->nch; ch++) {
            const float *PX = c->PX + ch * A->cols * c->bc, *PD = c->PD + ch * A->rows * c->bc;
            const int last = ch == c->nch - 1;
            for (int64_t wb = 0; wb < S; wb += NM_WB) {
                const int64_t nwb = PK_MIN(NM_WB, S - wb);
                for (int64_t s0 = wb; s0 < wb + nwb; s0 += 8) {
                    const int64_t ns = PK_MIN(8, wb + nwb - s0);
                    int64_t gcol[8];
                    for (int64_t j = 0; j < 8; j++) gcol[j] = ((s0 + PK_MIN(j, ns - 1)) / n) * m;
                    for (int64_t r = r0; r < r1; r++) {
                        const uint8_t *ix = A->idx + r * S + s0;
                        int64_t off[8];
                        for (int64_t j = 0; j < 8; j++) off[j] = (gcol[j] + (ix[PK_MIN(j, ns - 1)] & 0x7f)) * c->bc;
                        c->k.dot8(off, PX, PD + r * c->bc, c->bc, gt + (r - r0) * NM_WB + (s0 - wb));
                    }
                }
                for (int64_t r = r0; r < r1; r++) {
                    // the block's slots of row r: padding gets 0, the sums are added over the chunks
                    const uint8_t *ix = A->idx + r * S + wb;
                    const float *t = gt + (r - r0) * NM_WB;
                    float *g = c->g + r * S + wb;
                    for (int64_t j = 0; j < nwb; j++) keep[j] = !(ix[j] & PK_NM_PAD);
                    if (ch == 0) for (int64_t j = 0; j < nwb; j++) g[j] = keep[j] ? t[j] : 0.0f;
                    else for (int64_t j = 0; j < nwb; j++) g[j] += keep[j] ? t[j] : 0.0f;
                    if (last && c->uc)
                        pk_update_run(c->uc, nwb, g, c->w + r * S + wb, c->m ? c->m + r * S + wb : NULL,
                                      c->v ? c->v + r * S + wb : NULL, keep, 1);
                }
            }
        }
    }
}

pk_status pk_nm_weight_update_f32(const pk_nm *A, int layout, int64_t B, const float *dY, int64_t lddy,
                                  const float *X, int64_t ldx, const pk_update_desc *u, float *g) {
    pk_status st = nm_check(A);
    if (st != PK_OK) return st;
    const int fm = layout == PK_LAYOUT_FEATURES;
    if (layout != 0 && !fm) return PK_ERR_ARG;
    if (B < 0 || lddy < (fm ? B : A->rows) || ldx < (fm ? B : A->cols)) return PK_ERR_SHAPE;
    const int64_t S = A->cols / A->m * A->n, slots = A->rows * S;
    pk_update_consts uc;
    if ((st = pk_sp_update_setup(u, A->val, slots, g, &uc)) != PK_OK) return st;
    if (slots == 0) return PK_OK;
    if (!A->val || !A->idx) return PK_ERR_NULL;
    float *gb = g ? g : pk_scratch(PK_SP_SLOT_GRAD, (size_t)slots * sizeof(float));
    if (!gb) return PK_ERR_NOMEM;
    float *mm = u && !(u->kind == PK_UPDATE_SGD && u->momentum == 0.0f) ? u->m : NULL;
    float *vv = u && u->kind == PK_UPDATE_ADAM ? u->v : NULL;
    if (B == 0) {
        // no samples: a zero gradient (the step still applies weight decay and momentum)
        memset(gb, 0, (size_t)slots * sizeof(float));
        if (u) {
            uint8_t *keep = pk_scratch(PK_SP_SLOT_TILE, (size_t)slots);
            if (!keep) return PK_ERR_NOMEM;
            for (int64_t s = 0; s < slots; s++) keep[s] = !(A->idx[s] & PK_NM_PAD);
            pk_update_run(&uc, slots, gb, A->val, mm, vv, keep, 1);
        }
        return PK_OK;
    }
    if (!dY || !X) return PK_ERR_NULL;
    const int64_t bc = PK_MIN(PK_SP_BCHUNK, (B + 15) / 16 * 16);
    const float *PX = pk_sp_panels(PK_SP_SLOT_A, fm, B, A->cols, X, ldx, bc);
    const float *PD = PX ? pk_sp_panels(PK_SP_SLOT_B, fm, B, A->rows, dY, lddy, bc) : NULL;
    if (!PX || !PD) return PK_ERR_NOMEM;
    nm_upd_ctx c = {A, nm_select(A->n, A->m), PX, PD, B, bc, (B + bc - 1) / bc, S, gb, A->val, mm, vv, u ? &uc : NULL};
    pk_parallel_for((A->rows + NM_OR - 1) / NM_OR, 1, nm_upd_range, &c);
    return PK_OK;
}
