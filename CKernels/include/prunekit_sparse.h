// PruneKit's C contract, continued: sparse execution of pruned weights in compressed form (CSR,
// packed N:M, block-sparse) and the naive references of those kernels. Same conventions as
// prunekit_kernels.h: statuses, write-only outputs, fixed reduction orders (identical bits for any
// thread count).
#ifndef PRUNEKIT_SPARSE_H
#define PRUNEKIT_SPARSE_H
#include "prunekit_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

// ------------------------------------------------------------------------------------------------
// Sparse execution (src/sparse.c; reference src/ref/sparse_ref.c)

/// pk_csr — a pruned weight W (rows × cols, e.g. a Linear's out × in) holding only its kept entries:
///   row r's entries are ptr[r] ..< ptr[r+1], at columns idx[j] (increasing), values val[j].
///   The transposed index serves products with W itself (dX = dY·W): column c's entries are
///   tptr[c] ..< tptr[c+1], at rows tidx[j] (increasing), values val[tperm[j]].
///   All arrays are owned by the caller; val is the live weight (optimizer updates write it).
/// Sizes    ptr rows+1, tptr cols+1 (int64); idx, tidx, tperm, val nnz entries.
typedef struct pk_csr {
    int64_t rows, cols, nnz;
    int64_t *ptr;
    int32_t *idx;
    float *val;
    int64_t *tptr;
    int32_t *tidx, *tperm;
} pk_csr;

/// pk_csr_build_f32 — fills A (rows, cols, nnz and every array allocated by the caller) from a
///   dense W (ldw) and mask M (ldm; 1 kept): entries in row-major order.
/// Errors    PK_ERR_SHAPE when the mask's kept count differs from A->nnz (nothing meaningful is
///           written then), PK_ERR_NULL, PK_ERR_ARG for rows, cols or nnz ≥ 2³¹.
pk_status pk_csr_build_f32(pk_csr *A, const float *W, int64_t ldw, const uint8_t *M, int64_t ldm);

/// pk_csr_to_dense_f32 — W (rows × cols, ldw) := the dense form (zeros where not kept); M (ldm) :=
///   the mask when not NULL.
pk_status pk_csr_to_dense_f32(const pk_csr *A, float *W, int64_t ldw, uint8_t *M, int64_t ldm);

/// pk_spmm_f32 — sparse × dense products with a pruned weight, for B rows of activations:
///   trans = 0  Y (B × rows) := X (B × cols) · Wᵀ (+ bias[r] on column r when bias is not NULL)
///   trans = 1  Y (B × cols) := X (B × rows) · W  (the input gradient dX = dY·W; bias must be NULL)
/// Method    X is copied once into scratch as tile-major blocks of 32 batch rows; for each tile each
///           thread walks its output rows' entries, one broadcast weight × 32 activations per entry
///           in registers (trans = 1 gathers the values into transposed order once first).
/// Threads   threads own disjoint output columns; identical bits for any thread count.
/// Errors    PK_ERR_SHAPE, PK_ERR_NULL, PK_ERR_NOMEM, PK_ERR_ALIAS (X and Y overlap), PK_ERR_ARG (bias
///           with trans = 1). Reference pk_ref_spmm_f32.
pk_status pk_spmm_f32(const pk_csr *A, int trans, int64_t B, const float *X, int64_t ldx, const float *bias,
                      float *Y, int64_t ldy);

/// Layouts of the activations for the _layout variants (convolutions keep features as rows):
///   PK_LAYOUT_X_FEATURES  X is in × B (ldx ≥ B) instead of B × in
///   PK_LAYOUT_Y_FEATURES  Y is out × B (ldy ≥ B) instead of B × out
///   PK_LAYOUT_FEATURES    both (for pk_sddmm_update_layout_f32: dY rows × B and X cols × B)
enum { PK_LAYOUT_X_FEATURES = 1, PK_LAYOUT_Y_FEATURES = 2, PK_LAYOUT_FEATURES = 3 };

/// pk_spmm_layout_f32 — pk_spmm_f32 with the activation layouts above (layout 0 = pk_spmm_f32;
///           PK_ERR_ARG for another value).
pk_status pk_spmm_layout_f32(const pk_csr *A, int trans, int layout, int64_t B, const float *X, int64_t ldx,
                             const float *bias, float *Y, int64_t ldy);

/// pk_sddmm_update_f32 — the weight gradient at the kept entries only, g[j] = Σ_b dY[b, r]·X[b, c]
///   for entry j = (r, c) (a sampled dense-dense product), then optimizer step u applied to the
///   compressed weight A->val with compressed state u->m, u->v (nnz entries each; u->w must be
///   A->val, u->ld is ignored) — fused: each row is updated as soon as its gradient is complete.
///   u may be NULL (gradient only). g (nnz) receives the gradient when not NULL.
/// Shapes    dY B × rows (lddy), X B × cols (ldx).
/// Threads   identical bits for any thread count. Errors as pk_update_f32 (PK_ERR_ALIAS when g, m, v
///           and the values overlap; PK_ERR_ARG when u->w is not A->val), PK_ERR_NOMEM.
///   Reference pk_ref_sddmm_f32 (gradient only).
pk_status pk_sddmm_update_f32(const pk_csr *A, int64_t B, const float *dY, int64_t lddy, const float *X, int64_t ldx,
                              const pk_update_desc *u, float *g);
/// pk_sddmm_update_layout_f32 — pk_sddmm_update_f32 with layout 0 or PK_LAYOUT_FEATURES.
pk_status pk_sddmm_update_layout_f32(const pk_csr *A, int layout, int64_t B, const float *dY, int64_t lddy,
                                     const float *X, int64_t ldx, const pk_update_desc *u, float *g);

// ------------------------------------------------------------------------------------------------
// Structured sparse execution: packed N:M (src/nm_sparse.c; reference src/ref/nm_sparse_ref.c) and
// block-sparse (src/block_sparse.c; reference src/ref/block_sparse_ref.c). Both serve the three
// products of a pruned Linear (or a convolution's weight viewed as out × in) like pk_csr does:
// the forward Y = X·Wᵀ (+ bias), the input gradient dX = dY·W, and the weight gradient at the kept
// entries fused with an optimizer step. Activations are batch-major (B × features, ld ≥ features)
// unless the layout flags say feature-major (features × B, ld ≥ B): PK_LAYOUT_X_FEATURES for the
// product's input, PK_LAYOUT_Y_FEATURES for its output, PK_LAYOUT_FEATURES for both (the weight
// update takes 0 or PK_LAYOUT_FEATURES). Method: the input is copied into panels of 32 samples
// (feature-major inside a panel); each thread owns blocks of output features and computes a
// register tile of output features × 32 samples, the input features it reads in blocks that keep
// their panel rows in L1. Each output element is summed by one thread in a fixed order: identical
// bits for any thread count.

/// Rows per block of the N:M transposed index (pk_nm.tptr).
#define PK_NM_TBLOCK 128
/// Marks a padding slot of pk_nm.idx (a group with fewer than n kept entries).
#define PK_NM_PAD 0x80

/// pk_nm — a weight W (rows × cols) with at most n kept entries in every group of m consecutive
///   columns (N:M sparsity along the input dimension; cols % m == 0, 1 ≤ n ≤ m ≤ 127), packed:
///   row r holds G = cols/m groups of n slots; slot t of group g is entry s = (r·G + g)·n + t of
///   val (the value) and idx (its column within the group, increasing within the group). A group
///   with fewer than n kept entries ends in padding slots: idx = PK_NM_PAD | some column of the
///   group, value 0 — never a weight (updates skip it, unpacking drops it). val is the live weight.
///   The transposed index serves dX = dY·W: rows are cut into blocks of PK_NM_TBLOCK; for block q
///   and column c the kept entries (r, c) with r in block q are tent[tptr[q·cols + c] ..<
///   tptr[q·cols + c + 1]], each (r − q·PK_NM_TBLOCK) | (t << 8) with t the entry's slot in its
///   group, rows increasing.
/// Sizes    val, idx: slots = rows·(cols/m)·n; tptr: ceil(rows/PK_NM_TBLOCK)·cols + 1; tent: nnz
///           (the kept entries, padding excluded). Arrays are owned by the caller.
typedef struct pk_nm {
    int64_t rows, cols, n, m, nnz;
    float *val;
    uint8_t *idx;
    int64_t *tptr;
    uint16_t *tent;
} pk_nm;

/// pk_nm_pack_f32 — fills A (rows, cols, n, m, nnz set; arrays allocated) from a dense W (ldw) and
///   its mask M (ldm; nonzero = kept), or, when M is NULL, the nonzeros of W.
/// Errors    PK_ERR_SHAPE when cols % m != 0, a leading dimension is short or the kept count differs
///           from A->nnz; PK_ERR_ARG unless 1 ≤ n ≤ m ≤ 127, or when a group keeps more than n
///           entries (the mask is not N:M); PK_ERR_NULL, PK_ERR_NOMEM. On error A's arrays hold
///           nothing meaningful.
pk_status pk_nm_pack_f32(pk_nm *A, const float *W, int64_t ldw, const uint8_t *M, int64_t ldm);

/// pk_nm_max_kept — *kept := the most kept entries (M[r, c] != 0) in any group of m consecutive
///   columns of a row (rows × cols, ldm): the mask is n:m for every n ≥ *kept.
/// Errors    PK_ERR_SHAPE when cols % m != 0 or ldm < cols, PK_ERR_ARG when m < 1, PK_ERR_NULL.
///   Reference pk_ref_nm_max_kept.
pk_status pk_nm_max_kept(int64_t rows, int64_t cols, int64_t m, const uint8_t *M, int64_t ldm, int64_t *kept);

/// pk_nm_unpack_f32 — W (rows × cols, ldw) := the dense weight (zeros where not kept); M (ldm) :=
///   the mask when not NULL.
pk_status pk_nm_unpack_f32(const pk_nm *A, float *W, int64_t ldw, uint8_t *M, int64_t ldm);

/// pk_nm_forward_f32 — Y (B × rows) := X (B × cols) · Wᵀ + bias (bias per output feature, or NULL).
///   layout: PK_LAYOUT_* flags. Y is write-only.
/// Errors    PK_ERR_SHAPE, PK_ERR_NULL, PK_ERR_ARG (layout), PK_ERR_ALIAS (X and Y overlap),
///           PK_ERR_NOMEM. B == 0 or rows == 0 ⇒ PK_OK, nothing read. Reference pk_ref_nm_forward_f32.
pk_status pk_nm_forward_f32(const pk_nm *A, int layout, int64_t B, const float *X, int64_t ldx, const float *bias,
                            float *Y, int64_t ldy);

/// pk_nm_input_grad_f32 — dX (B × cols) := dY (B × rows) · W. layout as pk_nm_forward_f32 (its
///   X flag describes dY, its Y flag dX). Errors as pk_nm_forward_f32. Reference pk_ref_nm_input_grad_f32.
pk_status pk_nm_input_grad_f32(const pk_nm *A, int layout, int64_t B, const float *dY, int64_t lddy, float *dX,
                               int64_t lddx);

/// pk_nm_weight_update_f32 — the weight gradient at the kept entries, g[s] = Σ_b dY[b, r]·X[b, c]
///   for slot s = (r, c), then optimizer step u applied to A->val with state u->m, u->v of `slots`
///   entries each (u->w must be A->val; u->ld ignored; padding slots are never touched), fused: a
///   slot is updated as soon as its gradient is complete. u may be NULL (gradient only). g (slots)
///   receives the gradient when not NULL (0 at padding slots). B == 0: a zero gradient (the step
///   still applies weight decay and momentum).
/// Shapes    dY B × rows (lddy), X B × cols (ldx); layout 0 or PK_LAYOUT_FEATURES (dY rows × B, X cols × B).
/// Method    dot products over chunks of 256 samples, eight slots of a row at a time, the sums kept
///           in vector lanes and reduced once per chunk.
/// Errors    as pk_update_f32 (PK_ERR_ARG when u->w is not A->val, PK_ERR_ALIAS when g, m, v and the
///           values overlap), PK_ERR_SHAPE, PK_ERR_NOMEM. Reference pk_ref_nm_weight_grad_f32
///           (gradient only; the step as pk_update_f32).
pk_status pk_nm_weight_update_f32(const pk_nm *A, int layout, int64_t B, const float *dY, int64_t lddy,
                                  const float *X, int64_t ldx, const pk_update_desc *u, float *g);

/// pk_bsr — a weight W (rows × cols) kept in dense br × bc blocks (rows % br == 0, cols % bc == 0):
///   block-row i holds blocks j = ptr[i] ..< ptr[i+1] at block-columns bcol[j] (increasing), the
///   block's values row-major at val[j·br·bc ...]; br, bc ≤ 64. val is the live weight. The transposed
///   index serves dX = dY·W: block-column c holds the blocks tblk[e] of block-rows trow[e] for
///   e = tptr[c] ..< tptr[c+1] (block-rows increasing).
/// Sizes    ptr rows/br + 1, tptr cols/bc + 1 (int64); bcol, tblk, trow nblocks; val nblocks·br·bc.
typedef struct pk_bsr {
    int64_t rows, cols, br, bc, nblocks;
    int64_t *ptr;
    int32_t *bcol;
    float *val;
    int64_t *tptr;
    int32_t *tblk, *trow;
} pk_bsr;

/// pk_bsr_count — *nblocks := the number of br × bc blocks of M (rows × cols, ldm) holding a kept
///   entry; *complete := 1 when each of them is kept whole (the mask is block-structured), else 0.
/// Errors    PK_ERR_SHAPE when br or bc does not tile rows × cols; PK_ERR_ARG unless 1 ≤ br, bc ≤ 64;
///           PK_ERR_NULL.
pk_status pk_bsr_count(int64_t rows, int64_t cols, int64_t br, int64_t bc, const uint8_t *M, int64_t ldm,
                       int64_t *nblocks, int *complete);

/// pk_bsr_pack_f32 — fills A (rows, cols, br, bc, nblocks set; arrays allocated) from W (ldw) and
///   its mask M (ldm): the blocks with a kept entry, each of which must be kept whole.
/// Errors    PK_ERR_SHAPE when the blocks do not tile the weight or the count differs from
///           A->nblocks; PK_ERR_ARG when a kept block has a pruned entry (the mask is not
///           block-structured); PK_ERR_NULL, PK_ERR_NOMEM, PK_ERR_ARG for sizes ≥ 2³¹ blocks.
pk_status pk_bsr_pack_f32(pk_bsr *A, const float *W, int64_t ldw, const uint8_t *M, int64_t ldm);

/// pk_bsr_unpack_f32 — W (ldw) := the dense weight (zeros outside kept blocks); M := the mask when not NULL.
pk_status pk_bsr_unpack_f32(const pk_bsr *A, float *W, int64_t ldw, uint8_t *M, int64_t ldm);

/// pk_bsr_forward_f32 — Y := X · Wᵀ + bias, as pk_nm_forward_f32. Method: per kept block a dense
///   micro-GEMM (block rows × 32 samples) over the block's columns. Reference pk_ref_bsr_forward_f32.
pk_status pk_bsr_forward_f32(const pk_bsr *A, int layout, int64_t B, const float *X, int64_t ldx, const float *bias,
                             float *Y, int64_t ldy);

/// pk_bsr_input_grad_f32 — dX := dY · W, as pk_nm_input_grad_f32 (blocks walked by block-column).
///   Reference pk_ref_bsr_input_grad_f32.
pk_status pk_bsr_input_grad_f32(const pk_bsr *A, int layout, int64_t B, const float *dY, int64_t lddy, float *dX,
                                int64_t lddx);

/// pk_bsr_weight_update_f32 — the gradient of every kept block (nblocks·br·bc, in val's order),
///   fused with the step u (state u->m, u->v in val's order), as pk_nm_weight_update_f32.
///   Reference pk_ref_bsr_weight_grad_f32.
pk_status pk_bsr_weight_update_f32(const pk_bsr *A, int layout, int64_t B, const float *dY, int64_t lddy,
                                   const float *X, int64_t ldx, const pk_update_desc *u, float *g);

// ------------------------------------------------------------------------------------------------
// References (src/ref/sparse_ref.c, nm_sparse_ref.c, block_sparse_ref.c): same contracts, naive loops.
pk_status pk_ref_spmm_f32(const pk_csr *A, int trans, int64_t B, const float *X, int64_t ldx, const float *bias,
                          float *Y, int64_t ldy);
pk_status pk_ref_sddmm_f32(const pk_csr *A, int64_t B, const float *dY, int64_t lddy, const float *X, int64_t ldx,
                           float *g);
pk_status pk_ref_nm_max_kept(int64_t rows, int64_t cols, int64_t m, const uint8_t *M, int64_t ldm, int64_t *kept);
pk_status pk_ref_nm_forward_f32(const pk_nm *A, int layout, int64_t B, const float *X, int64_t ldx, const float *bias,
                                float *Y, int64_t ldy);
pk_status pk_ref_nm_input_grad_f32(const pk_nm *A, int layout, int64_t B, const float *dY, int64_t lddy, float *dX,
                                   int64_t lddx);
pk_status pk_ref_nm_weight_grad_f32(const pk_nm *A, int layout, int64_t B, const float *dY, int64_t lddy,
                                    const float *X, int64_t ldx, float *g);
pk_status pk_ref_bsr_forward_f32(const pk_bsr *A, int layout, int64_t B, const float *X, int64_t ldx, const float *bias,
                                 float *Y, int64_t ldy);
pk_status pk_ref_bsr_input_grad_f32(const pk_bsr *A, int layout, int64_t B, const float *dY, int64_t lddy, float *dX,
                                    int64_t lddx);
pk_status pk_ref_bsr_weight_grad_f32(const pk_bsr *A, int layout, int64_t B, const float *dY, int64_t lddy,
                                     const float *X, int64_t ldx, float *g);

// ------------------------------------------------------------------------------------------------
// Sparse direct convolution at inference (src/conv_sparse.c; reference src/ref/conv_sparse_ref.c)

/// pk_conv2d_sparse_forward_f32 — y := act(scale ⊙ conv(x̃, W) + shift) with the pruned weight W
///           given by its kept entries only: A is CSR over OC rows × C·KH·KW columns (column
///           c·KH·KW + a·KW + b, as a Conv2d's OC × C × KH × KW weight flattens). Stride s, zero
///           padding p, dilation d exactly as pk_conv2d_dilated_forward_f32; scale and shift per output
///           channel or NULL (1 and 0); relu != 0 ⇒ act = max(·, 0), NaN kept. y write-only.
/// Shapes    x N×C×H×W (unpadded), y N×OC×OH×OW with OC = A->rows, OH = (H + 2p − d·(KH−1) − 1)/s + 1
///           (OW alike).
/// Method    direct, no column matrix: each image copied once into s² phase planes per channel
///           (padding folded in), so every kept entry is one shift on a flat output grid; the kept
///           entries of an output channel accumulate 32 outputs in registers. Inference only (no
///           backward; training keeps im2col + pk_spmm_layout_f32).
/// Edges     N == 0 or A->rows == 0 ⇒ PK_OK, nothing read; nnz == 0 ⇒ y = act(shift).
/// Threads   tasks = (image, block of output channels); every output summed by one task in the row's
///           entry order: identical bits for any thread count.
/// Errors    PK_ERR_SHAPE (A->cols != C·KH·KW, a window wider than the padded image, s, d < 1, p < 0),
///           PK_ERR_NULL, PK_ERR_ALIAS (x and y overlap), PK_ERR_NOMEM. Reference
///           pk_ref_conv2d_sparse_forward_f32 (src/ref/conv_sparse_ref.c).
pk_status pk_conv2d_sparse_forward_f32(const pk_csr *A, int64_t N, int64_t C, int64_t H, int64_t W, int64_t KH,
                                       int64_t KW, int64_t s, int64_t p, int64_t d, int relu, const float *x,
                                       const float *scale, const float *shift, float *y);
pk_status pk_ref_conv2d_sparse_forward_f32(const pk_csr *A, int64_t N, int64_t C, int64_t H, int64_t W, int64_t KH,
                                           int64_t KW, int64_t s, int64_t p, int64_t d, int relu, const float *x,
                                           const float *scale, const float *shift, float *y);

#ifdef __cplusplus
}
#endif
#endif
