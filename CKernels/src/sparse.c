// Sparse execution of pruned weights: the compressed form (CSR with a transposed index), sparse ×
// dense products for the forward pass and the input gradient, and the weight gradient at the kept
// entries only (SDDMM) fused with the optimizer step on compressed state.
//
// Layout of the products: activations are copied once into scratch as tile-major blocks (each tile
// of TILE = 32 batch rows is one contiguous cols × 32 block, batch rounded up to 16 and zero
// padded), so the 32 batch values an entry multiplies are contiguous. For each tile a thread walks
// the entries of its output rows: one broadcast weight × 32 activations (two 16-lane FMAs with
// AVX-512, two entries in flight) per entry, the row's sums in registers. A tile is cols × 32
// floats (512 KiB for 4096 inputs): it stays in each core's L2 while the entries stream by. The
// weight gradient uses tiles of STILE = 64 rows (fewer horizontal sums). Rows are split between threads by entry count (each row computed the same
// way by whoever owns it), so results never depend on the thread count.
#include "sparse_panels.h"
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#define TILE 32
#define GROUP 16
#define STILE 64 // the weight gradient: fewer, longer dot products (each ends in a horizontal sum)
#define MAX_PARTS 64

// ---- building and unpacking the compressed form

pk_status pk_csr_build_f32(pk_csr *A, const float *W, int64_t ldw, const uint8_t *M, int64_t ldm) {
    if (!A || !W || !M) return PK_ERR_NULL;
    const int64_t R = A->rows, C = A->cols;
    if (R < 0 || C < 0 || A->nnz < 0 || ldw < C || ldm < C) return PK_ERR_SHAPE;
    if (R >= ((int64_t)1 << 31) || C >= ((int64_t)1 << 31) || A->nnz >= ((int64_t)1 << 31)) return PK_ERR_ARG;
    if (!A->ptr || !A->tptr || (A->nnz > 0 && (!A->idx || !A->val || !A->tidx || !A->tperm))) return PK_ERR_NULL;
    int64_t n = 0;
    memset(A->tptr, 0, (size_t)(C + 1) * sizeof(int64_t));
    for (int64_t r = 0; r < R; r++) {
        A->ptr[r] = n;
        for (int64_t c = 0; c < C; c++)
            if (M[r * ldm + c]) {
                if (n < A->nnz) { A->idx[n] = (int32_t)c; A->val[n] = W[r * ldw + c]; }
                n++;
                A->tptr[c + 1]++;
            }
    }
    A->ptr[R] = n;
    if (n != A->nnz) return PK_ERR_SHAPE;
    for (int64_t c = 0; c < C; c++) A->tptr[c + 1] += A->tptr[c];
    // the transposed index: walking rows in order keeps each column's rows increasing
    int64_t *fill = malloc((size_t)PK_MAX(C, 1) * sizeof(int64_t));
    if (!fill) return PK_ERR_NOMEM;
    memcpy(fill, A->tptr, (size_t)C * sizeof(int64_t));
    for (int64_t r = 0; r < R; r++)
        for (int64_t j = A->ptr[r]; j < A->ptr[r + 1]; j++) {
            int64_t at = fill[A->idx[j]]++;
            A->tidx[at] = (int32_t)r;
            A->tperm[at] = (int32_t)j;
        }
    free(fill);
    return PK_OK;
}

pk_status pk_csr_to_dense_f32(const pk_csr *A, float *W, int64_t ldw, uint8_t *M, int64_t ldm) {
    if (!A || !W) return PK_ERR_NULL;
    if (ldw < A->cols || (M && ldm < A->cols)) return PK_ERR_SHAPE;
    for (int64_t r = 0; r < A->rows; r++) {
        memset(W + r * ldw, 0, (size_t)A->cols * sizeof(float));
        if (M) memset(M + r * ldm, 0, (size_t)A->cols);
        for (int64_t j = A->ptr[r]; j < A->ptr[r + 1]; j++) {
            W[r * ldw + A->idx[j]] = A->val[j];
            if (M) M[r * ldm + A->idx[j]] = 1;
        }
    }
    return PK_OK;
}

// ---- shared pieces of the products

// Rows [0, n) split into parts of about equal entry counts, boundaries on multiples of `align`.
static int64_t split_rows(const int64_t *ptr, int64_t n, int64_t align, int64_t parts, int64_t *bounds) {
    const int64_t total = ptr[n];
    bounds[0] = 0;
    for (int64_t s = 1; s < parts; s++) {
        const int64_t want = total * s / parts;
        int64_t lo = bounds[s - 1], hi = n;
        while (lo < hi) { // first row whose start reaches the target
            int64_t mid = (lo + hi) / 2;
            if (ptr[mid] < want) lo = mid + 1; else hi = mid;
        }
        bounds[s] = PK_MIN(n, PK_MAX(bounds[s - 1], (lo + align - 1) / align * align));
    }
    bounds[parts] = n;
    return parts;
}

typedef struct { const float *X; int64_t ldx, B, Bp, cols, W; int fm; float *XT; } transpose_ctx;

// Where column c of batch tile b0 (a multiple of W) starts in a tile-major transpose: each tile of W
// batch rows is one contiguous block (cols × its width), so a tile's working set is contiguous.
static inline int64_t tile_at(int64_t b0, int64_t cols, int64_t tw, int64_t c) { return b0 * cols + c * tw; }

static void transpose_range(void *v, int64_t q0, int64_t q1) {
    // column blocks [q0, q1) of 16: XT[tile][c][b] = X[b][c], zero past B
    const transpose_ctx *t = v;
    for (int64_t q = q0; q < q1; q++) {
        const int64_t c0 = q * 16, nc = PK_MIN(16, t->cols - c0);
        for (int64_t b0 = 0; b0 < t->Bp; b0 += 16) {
            const int64_t t0 = b0 / t->W * t->W, tw = PK_MIN(t->W, t->Bp - t0);
            for (int64_t c = 0; c < nc; c++) {
                float *out = t->XT + tile_at(t0, t->cols, tw, c0 + c) + (b0 - t0);
                if (t->fm) // X already feature-major (cols × B): copy the run of batch values
                    for (int64_t b = 0; b < 16; b++) out[b] = b0 + b < t->B ? t->X[(c0 + c) * t->ldx + b0 + b] : 0.0f;
                else
                    for (int64_t b = 0; b < 16; b++) out[b] = b0 + b < t->B ? t->X[(b0 + b) * t->ldx + c0 + c] : 0.0f;
            }
        }
    }
}

// XT (tile-major, tiles of W batch rows; Bp = B rounded up to 16) from X (B × cols, or cols × B when
// fm), in the calling thread's scratch slot.
static float *transposed(int slot, const float *X, int64_t ldx, int fm, int64_t B, int64_t cols, int64_t W, int64_t *Bp) {
    *Bp = (B + 15) / 16 * 16;
    float *XT = pk_scratch(slot, (size_t)PK_MAX(cols * *Bp, 1) * sizeof(float));
    if (!XT) return NULL;
    transpose_ctx t = {X, ldx, B, *Bp, cols, W, fm, XT};
    pk_parallel_for((cols + 15) / 16, 8, transpose_range, &t);
    return XT;
}

// ---- Y = X·Wᵀ (or X·W)

typedef struct {
    const int64_t *ptr;
    const int32_t *idx, *perm;
    const float *val, *XT, *bias;
    int64_t B, Bp, nout, nin;
    int out_fm;
    float *Y;
    int64_t ldy;
    int64_t bounds[MAX_PARTS + 1];
} spmm_ctx;

// Writes a GROUP × TILE block of sums into Y: transposed (rows b0.., columns r0..), or as it is
// when Y is feature-major (rows r0.., columns b0..).
static PK_ALWAYS_INLINE void store_block(const spmm_ctx *c, float (*tile)[TILE], int64_t r0, int64_t nr, int64_t b0,
                                         int64_t nb) {
    if (c->out_fm) {
        for (int64_t r = 0; r < nr; r++) memcpy(c->Y + (r0 + r) * c->ldy + b0, tile[r], (size_t)nb * sizeof(float));
        return;
    }
    for (int64_t b = 0; b < nb; b++) {
        float *y = c->Y + (b0 + b) * c->ldy + r0;
        for (int64_t r = 0; r < nr; r++) y[r] = tile[r][b];
    }
}

static PK_ALWAYS_INLINE void spmm_part_body(void *v, int64_t p0, int64_t p1) {
    const spmm_ctx *c = v;
    float tile[GROUP][TILE] __attribute__((aligned(64)));
    for (int64_t p = p0; p < p1; p++)
        for (int64_t b0 = 0; b0 < c->B; b0 += TILE) {
            const int64_t tw = PK_MIN(TILE, c->Bp - b0); // a multiple of 16
            for (int64_t r0 = c->bounds[p]; r0 < c->bounds[p + 1]; r0 += GROUP) {
                const int64_t nr = PK_MIN(GROUP, c->bounds[p + 1] - r0);
                for (int64_t i = 0; i < nr; i++) {
                    const int64_t r = r0 + i;
                    float acc[TILE];
                    const float b = c->bias ? c->bias[r] : 0.0f;
                    for (int t = 0; t < TILE; t++) acc[t] = b;
                    for (int64_t j = c->ptr[r]; j < c->ptr[r + 1]; j++) {
                        const float w = c->perm ? c->val[c->perm[j]] : c->val[j];
                        const float *x = c->XT + tile_at(b0, c->nin, tw, c->idx[j]);
                        for (int64_t t = 0; t < tw; t++) acc[t] += w * x[t];
                    }
                    memcpy(tile[i], acc, sizeof acc);
                }
                store_block(c, tile, r0, nr, b0, PK_MIN(TILE, c->B - b0));
            }
        }
}

// One output row over NV·16 batch rows with AVX-512: two entries per step into separate sums
// (added at the end, the same way for every row and thread count).
#define SPMM_W(j) _mm512_set1_ps(c->perm ? c->val[c->perm[j]] : c->val[j])
#define SPMM_X(j, TW) (c->XT + tile_at(b0, c->nin, (TW), c->idx[j]))
#define SPMM_ROW_AVX512(NV)                                                                          \
    PK_TARGET_AVX512 static void spmm_row_avx512_##NV(const spmm_ctx *c, int64_t r, int64_t b0, float *out) { \
        __m512 a[NV], e[NV];                                                                         \
        for (int q = 0; q < NV; q++) { a[q] = _mm512_set1_ps(c->bias ? c->bias[r] : 0.0f); e[q] = _mm512_setzero_ps(); } \
        int64_t j = c->ptr[r];                                                                       \
        const int64_t je = c->ptr[r + 1];                                                            \
        for (; j + 2 <= je; j += 2) {                                                                \
            const __m512 w = SPMM_W(j), u = SPMM_W(j + 1);                                           \
            const float *x = SPMM_X(j, 16 * NV), *y = SPMM_X(j + 1, 16 * NV);                                          \
            for (int q = 0; q < NV; q++) a[q] = _mm512_fmadd_ps(w, _mm512_load_ps(x + 16 * q), a[q]); \
            for (int q = 0; q < NV; q++) e[q] = _mm512_fmadd_ps(u, _mm512_load_ps(y + 16 * q), e[q]); \
        }                                                                                            \
        if (j < je) {                                                                                \
            const __m512 w = SPMM_W(j);                                                              \
            const float *x = SPMM_X(j, 16 * NV);                                                              \
            for (int q = 0; q < NV; q++) a[q] = _mm512_fmadd_ps(w, _mm512_load_ps(x + 16 * q), a[q]); \
        }                                                                                            \
        for (int q = 0; q < NV; q++) _mm512_store_ps(out + 16 * q, _mm512_add_ps(a[q], e[q]));       \
    }
SPMM_ROW_AVX512(1)
SPMM_ROW_AVX512(2)

PK_TARGET_AVX512 static void spmm_part_avx512(void *v, int64_t p0, int64_t p1) {
    const spmm_ctx *c = v;
    float tile[GROUP][TILE] __attribute__((aligned(64)));
    for (int64_t p = p0; p < p1; p++)
        for (int64_t b0 = 0; b0 < c->B; b0 += TILE) {
            const int64_t nv = PK_MIN(TILE, c->Bp - b0) / 16;
            for (int64_t r0 = c->bounds[p]; r0 < c->bounds[p + 1]; r0 += GROUP) {
                const int64_t nr = PK_MIN(GROUP, c->bounds[p + 1] - r0);
                for (int64_t i = 0; i < nr; i++) {
                    if (nv == 1) spmm_row_avx512_1(c, r0 + i, b0, tile[i]);
                    else spmm_row_avx512_2(c, r0 + i, b0, tile[i]);
                }
                store_block(c, tile, r0, nr, b0, PK_MIN(TILE, c->B - b0));
            }
        }
}
// The same with AVX2: one output row over NV·8 batch rows, two entries per step into separate sums
// (2·NV independent FMA chains, enough to cover the FMA latency at NV = 4), added at the end. A
// 4096-input panel (512 KiB) does not stay in a Zen 3 core's L2, so for panels over
// SPMM_PREFETCH_PANEL the panel rows of the entries SPMM_AHEAD ahead are prefetched (the index is
// known well before the row is needed), across row ends: the entries of the rows that follow are
// the next ones walked. (At 4096 inputs the product ran 12 % faster; with a 384-input panel, which
// stays in L2, the extra loads made it 18 % slower, so smaller panels run without.)
#define SPMM_AHEAD 32
#define SPMM_PREFETCH_PANEL (256 * 1024)
#define SPMM_W8(j) _mm256_broadcast_ss(c->perm ? c->val + c->perm[j] : c->val + (j))
#define SPMM_ROW_AVX2(NV, PF, NAME)                                                                   \
    PK_TARGET_AVX2 static void NAME(const spmm_ctx *c, int64_t r, int64_t b0, float *out) {           \
        __m256 a[NV], e[NV];                                                                         \
        for (int q = 0; q < NV; q++) { a[q] = _mm256_setzero_ps(); e[q] = _mm256_setzero_ps(); }     \
        int64_t j = c->ptr[r];                                                                       \
        const int64_t je = c->ptr[r + 1], jn = c->ptr[c->nout];                                      \
        for (; j + 2 <= je; j += 2) {                                                                \
            if (PF && j + SPMM_AHEAD + 2 <= jn) {                                                    \
                /* the panel rows (two lines each) of the entry pair SPMM_AHEAD ahead, into the     \
                   next rows' entries (the rows that follow are walked next): L2/L3 latency */       \
                const char *p = (const char *)SPMM_X(j + SPMM_AHEAD, 8 * NV);                        \
                const char *q = (const char *)SPMM_X(j + SPMM_AHEAD + 1, 8 * NV);                    \
                _mm_prefetch(p, _MM_HINT_T0);                                                        \
                _mm_prefetch(p + 64, _MM_HINT_T0);                                                   \
                _mm_prefetch(q, _MM_HINT_T0);                                                        \
                _mm_prefetch(q + 64, _MM_HINT_T0);                                                   \
            }                                                                                        \
            const __m256 w = SPMM_W8(j), u = SPMM_W8(j + 1);                                         \
            const float *x = SPMM_X(j, 8 * NV), *y = SPMM_X(j + 1, 8 * NV);                          \
            for (int q = 0; q < NV; q++) a[q] = _mm256_fmadd_ps(w, _mm256_load_ps(x + 8 * q), a[q]); \
            for (int q = 0; q < NV; q++) e[q] = _mm256_fmadd_ps(u, _mm256_load_ps(y + 8 * q), e[q]); \
        }                                                                                            \
        if (j < je) {                                                                                \
            const __m256 w = SPMM_W8(j);                                                             \
            const float *x = SPMM_X(j, 8 * NV);                                                      \
            for (int q = 0; q < NV; q++) a[q] = _mm256_fmadd_ps(w, _mm256_load_ps(x + 8 * q), a[q]); \
        }                                                                                            \
        for (int q = 0; q < NV; q++) _mm256_store_ps(out + 8 * q, _mm256_add_ps(a[q], e[q]));        \
    }
SPMM_ROW_AVX2(4, 0, spmm_row_avx2_4)
SPMM_ROW_AVX2(4, 1, spmm_row_avx2_4_prefetch)

// AVX2 reads the activations as the structured kernels' panels (sparse_panels.h: every tile 32 wide,
// zero padded, built with 8 × 8 register transposes) and writes back through their tile store (bias
// added there), the transposes being a large part of a product at the encoder's shapes.
PK_TARGET_AVX2 static void spmm_part_avx2(void *v, int64_t p0, int64_t p1) {
    const spmm_ctx *c = v;
    float tile[GROUP][TILE] __attribute__((aligned(64)));
    for (int64_t p = p0; p < p1; p++)
        for (int64_t b0 = 0; b0 < c->B; b0 += TILE)
            for (int64_t r0 = c->bounds[p]; r0 < c->bounds[p + 1]; r0 += GROUP) {
                const int64_t nr = PK_MIN(GROUP, c->bounds[p + 1] - r0);
                if (c->nin * TILE * (int64_t)sizeof(float) > SPMM_PREFETCH_PANEL)
                    for (int64_t i = 0; i < nr; i++) spmm_row_avx2_4_prefetch(c, r0 + i, b0, tile[i]);
                else
                    for (int64_t i = 0; i < nr; i++) spmm_row_avx2_4(c, r0 + i, b0, tile[i]);
                pk_sp_store_tile(&tile[0][0], nr, PK_MIN(TILE, c->B - b0), r0, b0, c->bias, c->out_fm, c->Y, c->ldy);
            }
}
static void spmm_part_scalar(void *v, int64_t p0, int64_t p1) { spmm_part_body(v, p0, p1); }

typedef struct { const float *val; const int32_t *perm; float *out; } gather_ctx;

static void gather_range(void *v, int64_t b, int64_t e) {
    const gather_ctx *g = v;
    for (int64_t j = b; j < e; j++) g->out[j] = g->val[g->perm[j]];
}

static int64_t parts_for(void) { return PK_MIN((int64_t)pk_get_num_threads(), (int64_t)MAX_PARTS); }

pk_status pk_spmm_f32(const pk_csr *A, int trans, int64_t B, const float *X, int64_t ldx, const float *bias,
                      float *Y, int64_t ldy) {
    return pk_spmm_layout_f32(A, trans, 0, B, X, ldx, bias, Y, ldy);
}

pk_status pk_spmm_layout_f32(const pk_csr *A, int trans, int layout, int64_t B, const float *X, int64_t ldx,
                             const float *bias, float *Y, int64_t ldy) {
    if (!A) return PK_ERR_NULL;
    const int in_fm = layout & PK_LAYOUT_X_FEATURES, out_fm = (layout & PK_LAYOUT_Y_FEATURES) != 0;
    const int64_t in = trans ? A->rows : A->cols, out = trans ? A->cols : A->rows;
    if (layout < 0 || layout > PK_LAYOUT_FEATURES) return PK_ERR_ARG;
    if (B < 0 || in < 0 || out < 0) return PK_ERR_SHAPE;
    if (ldx < (in_fm ? B : in) || ldy < (out_fm ? B : out)) return PK_ERR_SHAPE;
    if (trans && bias) return PK_ERR_ARG;
    if (B == 0 || out == 0) return PK_OK;
    if (!X || !Y || !A->ptr || !A->tptr || (A->nnz > 0 && (!A->idx || !A->val || !A->tidx || !A->tperm))) return PK_ERR_NULL;
    if (pk_overlaps(X, in_fm ? pk_span(in, B, ldx, 4) : pk_span(B, in, ldx, 4), Y,
                    out_fm ? pk_span(out, B, ldy, 4) : pk_span(B, out, ldy, 4)))
        return PK_ERR_ALIAS;
    pk_isa isa = pk_active_isa();
    int64_t Bp = (B + TILE - 1) / TILE * TILE;
    const float *XT = isa == PK_ISA_AVX2 ? pk_sp_panels(10, in_fm, B, in, X, ldx, TILE)
                                         : transposed(10, X, ldx, in_fm, B, in, TILE, &Bp);
    if (!XT) return PK_ERR_NOMEM;
    const float *val = A->val;
    if (trans && A->nnz > 0) {
        // the values in transposed order, gathered once (not once per batch tile)
        float *tv = pk_scratch(13, (size_t)A->nnz * sizeof(float));
        if (!tv) return PK_ERR_NOMEM;
        gather_ctx g = {A->val, A->tperm, tv};
        pk_parallel_for(A->nnz, 1 << 14, gather_range, &g);
        val = tv;
    }
    spmm_ctx c = {.ptr = trans ? A->tptr : A->ptr, .idx = trans ? A->tidx : A->idx, .perm = NULL,
                  .val = val, .XT = XT, .bias = bias, .B = B, .Bp = Bp, .nout = out, .nin = in, .out_fm = out_fm,
                  .Y = Y, .ldy = ldy};
    const int64_t parts = split_rows(c.ptr, out, GROUP, parts_for(), c.bounds);
    pk_parallel_for(parts, 1, isa == PK_ISA_AVX512 ? spmm_part_avx512 : isa == PK_ISA_AVX2 ? spmm_part_avx2 : spmm_part_scalar, &c);
    return PK_OK;
}

// ---- weight gradient at kept entries, fused with the update

typedef struct {
    const int64_t *ptr;
    const int32_t *idx;
    const float *XT, *DT;
    int64_t B, Bp, rows, cols;
    float *g, *w, *m, *v;
    const pk_update_consts *uc;
    int64_t bounds[MAX_PARTS + 1];
} sddmm_ctx;

static PK_ALWAYS_INLINE void sddmm_part_body(void *vc, int64_t p0, int64_t p1) {
    const sddmm_ctx *c = vc;
    for (int64_t p = p0; p < p1; p++)
        for (int64_t b0 = 0; b0 < c->B; b0 += STILE) {
            const int last = b0 + STILE >= c->B;
            const int64_t tw = PK_MIN(STILE, c->Bp - b0); // a multiple of 16, zero padded past B
            for (int64_t r = c->bounds[p]; r < c->bounds[p + 1]; r++) {
                const float *dy = c->DT + tile_at(b0, c->rows, tw, r);
                for (int64_t j = c->ptr[r]; j < c->ptr[r + 1]; j++) {
                    const float *x = c->XT + tile_at(b0, c->cols, tw, c->idx[j]);
                    float lane[16];
                    for (int l = 0; l < 16; l++) lane[l] = dy[l] * x[l];
                    for (int64_t t = 16; t < tw; t += 16)
                        for (int l = 0; l < 16; l++) lane[l] += dy[t + l] * x[t + l];
                    for (int h = 8; h >= 1; h /= 2)
                        for (int l = 0; l < h; l++) lane[l] += lane[l + h];
                    c->g[j] = b0 == 0 ? lane[0] : c->g[j] + lane[0];
                }
                if (last && c->uc) {
                    const int64_t j0 = c->ptr[r], n = c->ptr[r + 1] - j0;
                    pk_update_run(c->uc, n, c->g + j0, c->w + j0, c->m ? c->m + j0 : NULL, c->v ? c->v + j0 : NULL, NULL, 1);
                }
            }
        }
}

PK_TARGET_AVX512 static void sddmm_part_avx512(void *vc, int64_t p0, int64_t p1) {
    const sddmm_ctx *c = vc;
    for (int64_t p = p0; p < p1; p++)
        for (int64_t b0 = 0; b0 < c->B; b0 += STILE) {
            const int last = b0 + STILE >= c->B;
            const int64_t nv = PK_MIN(STILE, c->Bp - b0) / 16; // zero padded past B
            for (int64_t r = c->bounds[p]; r < c->bounds[p + 1]; r++) {
                const float *dy = c->DT + tile_at(b0, c->rows, 16 * nv, r);
                __m512 d[STILE / 16];
                for (int q = 0; q < STILE / 16; q++) d[q] = q < nv ? _mm512_load_ps(dy + 16 * q) : _mm512_setzero_ps();
                for (int64_t j = c->ptr[r]; j < c->ptr[r + 1]; j++) {
                    const float *x = c->XT + tile_at(b0, c->cols, 16 * nv, c->idx[j]);
                    __m512 s = _mm512_mul_ps(d[0], _mm512_load_ps(x)), s2 = _mm512_setzero_ps();
                    for (int q = 1; q < STILE / 16; q += 2) {
                        if (q < nv) s2 = _mm512_fmadd_ps(d[q], _mm512_load_ps(x + 16 * q), s2);
                        if (q + 1 < nv) s = _mm512_fmadd_ps(d[q + 1], _mm512_load_ps(x + 16 * q + 16), s);
                    }
                    s = _mm512_add_ps(s, s2);
                    const float t = _mm512_reduce_add_ps(s);
                    c->g[j] = b0 == 0 ? t : c->g[j] + t;
                }
                if (last && c->uc) {
                    const int64_t j0 = c->ptr[r], n = c->ptr[r + 1] - j0;
                    pk_update_run(c->uc, n, c->g + j0, c->w + j0, c->m ? c->m + j0 : NULL, c->v ? c->v + j0 : NULL, NULL, 1);
                }
            }
        }
}
// The same with AVX2: the row's dY tile (up to 64 samples) in eight registers, four entries at a time,
// each entry's dot product in two chains (even and odd vectors: eight chains in flight), the four sums
// reduced together by horizontal adds. An entry handled alone is reduced in the same order, so a
// gradient does not depend on how its row's entries fall into groups of four.
PK_TARGET_AVX2 static inline __m128 sddmm_reduce4_avx2(__m256 s0, __m256 s1, __m256 s2, __m256 s3) {
    const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(s0, s1), _mm256_hadd_ps(s2, s3));
    return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

PK_TARGET_AVX2 static void sddmm_part_avx2(void *vc, int64_t p0, int64_t p1) {
    const sddmm_ctx *c = vc;
    for (int64_t p = p0; p < p1; p++)
        for (int64_t b0 = 0; b0 < c->B; b0 += STILE) {
            const int last = b0 + STILE >= c->B;
            const int64_t tw = PK_MIN(STILE, c->Bp - b0), nv = tw / 8; // tw a multiple of 16: nv even, 2..8
            for (int64_t r = c->bounds[p]; r < c->bounds[p + 1]; r++) {
                const float *dy = c->DT + tile_at(b0, c->rows, tw, r);
                __m256 d[STILE / 8];
                for (int q = 0; q < STILE / 8; q++) d[q] = q < nv ? _mm256_load_ps(dy + 8 * q) : _mm256_setzero_ps();
                int64_t j = c->ptr[r];
                const int64_t je = c->ptr[r + 1];
                for (; j + 4 <= je; j += 4) {
                    const float *x0 = c->XT + tile_at(b0, c->cols, tw, c->idx[j]), *x1 = c->XT + tile_at(b0, c->cols, tw, c->idx[j + 1]),
                                *x2 = c->XT + tile_at(b0, c->cols, tw, c->idx[j + 2]), *x3 = c->XT + tile_at(b0, c->cols, tw, c->idx[j + 3]);
                    __m256 a0 = _mm256_mul_ps(d[0], _mm256_load_ps(x0)), e0 = _mm256_mul_ps(d[1], _mm256_load_ps(x0 + 8));
                    __m256 a1 = _mm256_mul_ps(d[0], _mm256_load_ps(x1)), e1 = _mm256_mul_ps(d[1], _mm256_load_ps(x1 + 8));
                    __m256 a2 = _mm256_mul_ps(d[0], _mm256_load_ps(x2)), e2 = _mm256_mul_ps(d[1], _mm256_load_ps(x2 + 8));
                    __m256 a3 = _mm256_mul_ps(d[0], _mm256_load_ps(x3)), e3 = _mm256_mul_ps(d[1], _mm256_load_ps(x3 + 8));
                    for (int64_t q = 2; q < nv; q += 2) {
                        a0 = _mm256_fmadd_ps(d[q], _mm256_load_ps(x0 + 8 * q), a0);
                        e0 = _mm256_fmadd_ps(d[q + 1], _mm256_load_ps(x0 + 8 * q + 8), e0);
                        a1 = _mm256_fmadd_ps(d[q], _mm256_load_ps(x1 + 8 * q), a1);
                        e1 = _mm256_fmadd_ps(d[q + 1], _mm256_load_ps(x1 + 8 * q + 8), e1);
                        a2 = _mm256_fmadd_ps(d[q], _mm256_load_ps(x2 + 8 * q), a2);
                        e2 = _mm256_fmadd_ps(d[q + 1], _mm256_load_ps(x2 + 8 * q + 8), e2);
                        a3 = _mm256_fmadd_ps(d[q], _mm256_load_ps(x3 + 8 * q), a3);
                        e3 = _mm256_fmadd_ps(d[q + 1], _mm256_load_ps(x3 + 8 * q + 8), e3);
                    }
                    const __m128 t = sddmm_reduce4_avx2(_mm256_add_ps(a0, e0), _mm256_add_ps(a1, e1), _mm256_add_ps(a2, e2),
                                                        _mm256_add_ps(a3, e3));
                    _mm_storeu_ps(c->g + j, b0 == 0 ? t : _mm_add_ps(_mm_loadu_ps(c->g + j), t));
                }
                for (; j < je; j++) {
                    const float *x = c->XT + tile_at(b0, c->cols, tw, c->idx[j]);
                    __m256 a = _mm256_mul_ps(d[0], _mm256_load_ps(x)), e = _mm256_mul_ps(d[1], _mm256_load_ps(x + 8));
                    for (int64_t q = 2; q < nv; q += 2) {
                        a = _mm256_fmadd_ps(d[q], _mm256_load_ps(x + 8 * q), a);
                        e = _mm256_fmadd_ps(d[q + 1], _mm256_load_ps(x + 8 * q + 8), e);
                    }
                    const __m256 s = _mm256_add_ps(a, e);
                    const float t = _mm_cvtss_f32(sddmm_reduce4_avx2(s, s, s, s));
                    c->g[j] = b0 == 0 ? t : c->g[j] + t;
                }
                if (last && c->uc) {
                    const int64_t j0 = c->ptr[r], n = c->ptr[r + 1] - j0;
                    pk_update_run(c->uc, n, c->g + j0, c->w + j0, c->m ? c->m + j0 : NULL, c->v ? c->v + j0 : NULL, NULL, 1);
                }
            }
        }
}
static void sddmm_part_scalar(void *v, int64_t p0, int64_t p1) { sddmm_part_body(v, p0, p1); }

pk_status pk_sddmm_update_f32(const pk_csr *A, int64_t B, const float *dY, int64_t lddy, const float *X, int64_t ldx,
                              const pk_update_desc *u, float *g) {
    return pk_sddmm_update_layout_f32(A, 0, B, dY, lddy, X, ldx, u, g);
}

pk_status pk_sddmm_update_layout_f32(const pk_csr *A, int layout, int64_t B, const float *dY, int64_t lddy,
                                     const float *X, int64_t ldx, const pk_update_desc *u, float *g) {
    if (!A) return PK_ERR_NULL;
    const int fm = layout == PK_LAYOUT_FEATURES;
    if (layout != 0 && !fm) return PK_ERR_ARG;
    if (B < 0 || A->rows < 0 || A->cols < 0 || lddy < (fm ? B : A->rows) || ldx < (fm ? B : A->cols)) return PK_ERR_SHAPE;
    pk_update_consts uc;
    if (u) {
        pk_status st = pk_update_check(u);
        if (st != PK_OK) return st;
        if (u->w != A->val) return PK_ERR_ARG;
        uc = pk_update_prepare(u);
    }
    if (A->nnz == 0) return PK_OK;
    if (!dY || !X || !A->ptr || !A->idx || !A->val) return PK_ERR_NULL;
    const size_t nb = (size_t)A->nnz * 4;
    if (g && (pk_overlaps(g, nb, A->val, nb) || (u && (pk_overlaps(g, nb, u->m, nb) || pk_overlaps(g, nb, u->v, nb)))))
        return PK_ERR_ALIAS;
    if (u && (pk_overlaps(u->m, nb, A->val, nb) || pk_overlaps(u->v, nb, A->val, nb) ||
              (u->kind == PK_UPDATE_ADAM && pk_overlaps(u->m, nb, u->v, nb))))
        return PK_ERR_ALIAS;
    if (B == 0) {
        // no samples: a zero gradient (the step still applies weight decay and momentum)
        float *z = g ? g : pk_scratch(12, nb);
        if (!z) return PK_ERR_NOMEM;
        memset(z, 0, nb);
        if (u) pk_update_run(&uc, A->nnz, z, A->val, u->m, u->v, NULL, 1);
        return PK_OK;
    }
    int64_t Bp;
    const float *XT = transposed(10, X, ldx, fm, B, A->cols, STILE, &Bp);
    const float *DT = XT ? transposed(11, dY, lddy, fm, B, A->rows, STILE, &Bp) : NULL;
    float *gb = g ? g : pk_scratch(12, nb);
    if (!XT || !DT || !gb) return PK_ERR_NOMEM;
    const int sgd_plain = u && u->kind == PK_UPDATE_SGD && u->momentum == 0.0f;
    sddmm_ctx c = {.ptr = A->ptr, .idx = A->idx, .XT = XT, .DT = DT, .B = B, .Bp = Bp, .rows = A->rows, .cols = A->cols,
                   .g = gb, .w = A->val,
                   .m = u && !sgd_plain ? u->m : NULL, .v = u && u->kind == PK_UPDATE_ADAM ? u->v : NULL,
                   .uc = u ? &uc : NULL};
    const int64_t parts = split_rows(A->ptr, A->rows, 1, parts_for(), c.bounds);
    pk_isa isa = pk_active_isa();
    pk_parallel_for(parts, 1, isa == PK_ISA_AVX512 ? sddmm_part_avx512 : isa == PK_ISA_AVX2 ? sddmm_part_avx2 : sddmm_part_scalar, &c);
    return PK_OK;
}
