// PruneKit C kernels: the whole C contract.
//
// Conventions (see STYLE.md): C11; exported symbols pk_<op>[_<variant>]_<dtype>; the naive
// reference of each kernel is pk_ref_<op>... with the same signature (src/ref/). Sizes are int64_t,
// negative sizes are rejected. Parameter order: sizes, scalars, inputs, outputs, workspace.
// All matrices are row-major. Kernels never print, exit or abort; they return a pk_status.
// Threads own disjoint outputs and every output element is reduced in a fixed order, so results
// are bitwise identical for any thread count. Denormals are flushed to zero inside the kernels'
// threads (FTZ/DAZ); the caller's floating-point state is restored on return.
#ifndef PRUNEKIT_KERNELS_H
#define PRUNEKIT_KERNELS_H

#include <stdint.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum pk_status {
    PK_OK = 0,
    PK_ERR_NULL = 1,       // a required pointer is NULL
    PK_ERR_SHAPE = 2,      // a size is negative or a leading dimension too small
    PK_ERR_ALIAS = 3,      // an output overlaps an input it must not overlap
    PK_ERR_ARG = 4,        // a scalar argument is out of its domain
    PK_ERR_NONFINITE = 5,  // NaN or Inf where finite values are required
    PK_ERR_NOMEM = 6,      // workspace could not be allocated
    PK_STATUS_COUNT = 7
} pk_status;

/// pk_status_string — a static, human-readable description of a status (never NULL).
const char *pk_status_string(pk_status s);

// ------------------------------------------------------------------------------------------------
// Runtime: CPU features, threads (src/runtime.c, src/parallel.c)

typedef enum pk_isa { PK_ISA_SCALAR = 0, PK_ISA_AVX2 = 1, PK_ISA_AVX512 = 2 } pk_isa;

/// pk_cpu_isa — the best instruction set this CPU supports (detected once at run time).
pk_isa pk_cpu_isa(void);
/// pk_active_isa — the instruction set the kernels use: min(pk_cpu_isa(), limit set below).
pk_isa pk_active_isa(void);
/// pk_set_isa_limit — caps the kernels' instruction set (tests use it to cover every path).
void pk_set_isa_limit(pk_isa limit);
/// pk_isa_name — "avx512", "avx2" or "scalar".
const char *pk_isa_name(pk_isa isa);
/// pk_cpu_features — a static space-separated list of the detected CPU features.
const char *pk_cpu_features(void);

/// pk_openmp_enabled — 1 when the kernels were built with OpenMP, 0 when they use the portable
/// pthread pool (a versioned SwiftPM dependency builds without OpenMP).
int pk_openmp_enabled(void);
/// pk_get_num_threads — threads the kernels use (OMP_NUM_THREADS / PRUNEKIT_NUM_THREADS, else all cores).
int pk_get_num_threads(void);
/// pk_set_num_threads — sets that number (>= 1); results do not depend on it.
void pk_set_num_threads(int n);

/// pk_measure_peak_gflops — the fp32 FMA peak of `threads` threads with the active ISA's widest
/// vectors, measured for about `seconds` (src/peak.c). 0 on the scalar path. For reports only.
double pk_measure_peak_gflops(int threads, double seconds);

// ------------------------------------------------------------------------------------------------
// Masked GEMM (src/gemm.c; reference src/ref/gemm_ref.c)

/// pk_gemm_masked_f32 — C := alpha · A · (W ⊙ M)ᵀ + beta · C            (forward of a masked Linear)
/// Shapes    A m×k (lda ≥ k), W n×k (ldw ≥ k), M n×k uint8 (ldm ≥ k) or NULL (no mask), C m×n (ldc ≥ n).
/// Mask      M[j,p] != 0 keeps W[j,p]; the mask is applied while packing W.
/// beta      beta == 0 ⇒ C is write-only: NaN already in C never propagates.
/// Aliasing  C must not overlap A, W or M.
/// Edges     m == 0 || n == 0 ⇒ PK_OK, nothing read. k == 0 ⇒ C := beta·C.
/// Threads   OpenMP over tiles of C; each element written by one thread in a fixed k-order ⇒
///           identical bits for any thread count.
/// Errors    PK_ERR_SHAPE, PK_ERR_NULL, PK_ERR_ALIAS, PK_ERR_NOMEM.
/// Reference pk_ref_gemm_masked_f32.
pk_status pk_gemm_masked_f32(int64_t m, int64_t n, int64_t k, float alpha,
                             const float *A, int64_t lda, const float *W, int64_t ldw,
                             const uint8_t *M, int64_t ldm, float beta, float *C, int64_t ldc);

/// pk_gemm_masked_nn_f32 — C := alpha · A · (W ⊙ M) + beta · C          (input gradient dX = dY·(W⊙M))
/// Shapes    A m×k (lda ≥ k), W k×n (ldw ≥ n), M k×n uint8 (ldm ≥ n) or NULL, C m×n (ldc ≥ n).
/// Other     as pk_gemm_masked_f32.
/// Reference pk_ref_gemm_masked_nn_f32.
pk_status pk_gemm_masked_nn_f32(int64_t m, int64_t n, int64_t k, float alpha,
                                const float *A, int64_t lda, const float *W, int64_t ldw,
                                const uint8_t *M, int64_t ldm, float beta, float *C, int64_t ldc);

/// pk_gemm_masked_tn_f32 — C := (alpha · Aᵀ · B + beta · C) ⊙ M         (weight gradient dW = dYᵀ·X ⊙ M)
/// Shapes    A k×m (lda ≥ m), B k×n (ldb ≥ n), M m×n uint8 (ldm ≥ n) or NULL, C m×n (ldc ≥ n).
/// Mask      entries with M[i,j] == 0 are written as exactly +0.0 (C is write-only there).
/// Other     as pk_gemm_masked_f32.
/// Reference pk_ref_gemm_masked_tn_f32.
pk_status pk_gemm_masked_tn_f32(int64_t m, int64_t n, int64_t k, float alpha,
                                const float *A, int64_t lda, const float *B, int64_t ldb,
                                const uint8_t *M, int64_t ldm, float beta, float *C, int64_t ldc);

/// pk_linear_forward_f32 — Y := X · (W ⊙ M)ᵀ + 1·biasᵀ                 (Linear forward, bias fused)
/// Shapes    X m×k (ldx ≥ k), W n×k (ldw ≥ k), M n×k or NULL, bias n or NULL, Y m×n (ldy ≥ n).
/// Y is write-only. Errors and threads as pk_gemm_masked_f32. Reference pk_ref_linear_forward_f32.
pk_status pk_linear_forward_f32(int64_t m, int64_t n, int64_t k,
                                const float *X, int64_t ldx, const float *W, int64_t ldw,
                                const uint8_t *M, int64_t ldm, const float *bias,
                                float *Y, int64_t ldy);

/// pk_gemm_desc — the general masked GEMM behind every product above and the convolutions:
///   C(i,j) := alpha · Σ_p opA(i,p)·opB(p,j) + beta · C(i,j) + bias_row[i] + bias_col[j], then
///   C(i,j) := 0 where MC(i,j) == 0.
/// opA(i,p) = A[i·a_rs + p·a_cs], 0 where MA(i,p) == 0 (MA indexed with ma_rs, ma_cs; NULL = none);
/// opB(p,j) = B[p·b_rs + j·b_cs], 0 where MB(p,j) == 0 (likewise). Masked entries are never used,
/// whatever their value (NaN included). C(i,j) lives at C[row(i) + col(j)] with
///   row(i) = c_rblock > 0 ? (i / c_rblock)·c_rblock_stride + (i % c_rblock)·c_rs : i·c_rs, and
///   col(j) = c_cblock > 0 ? (j / c_cblock)·c_cblock_stride + (j % c_cblock)·c_cs : j·c_cs,
/// so a product can land in NCHW layout directly. The caller guarantees the strides stay inside
/// its buffers; negative strides are rejected. Unused fields are 0 / NULL.
/// beta      beta == 0 ⇒ C is write-only. Aliasing: C must not overlap A, B, the masks or the biases.
/// Edges     m == 0 || n == 0 ⇒ PK_OK, nothing read. k == 0 ⇒ C := beta·C + biases (⊙ MC).
/// Threads   tiles of C (or, for a small C with a long k, fixed k chunks summed in order): identical
///           bits for any thread count. Errors PK_ERR_NULL, PK_ERR_SHAPE, PK_ERR_ALIAS, PK_ERR_NOMEM.
/// Reference pk_ref_gemm_f32.
struct pk_update_desc;
typedef struct pk_gemm_desc {
    int64_t m, n, k;
    float alpha, beta;
    const float *A; int64_t a_rs, a_cs;
    const uint8_t *MA; int64_t ma_rs, ma_cs;
    const float *B; int64_t b_rs, b_cs;
    const uint8_t *MB; int64_t mb_rs, mb_cs;
    float *C; int64_t c_rs, c_cs;
    int64_t c_rblock, c_rblock_stride, c_cblock, c_cblock_stride;
    const float *bias_row, *bias_col;
    const uint8_t *MC; int64_t mc_rs, mc_cs;
    /// Optional fused optimizer step: the final C(i,j) is the gradient of the parameter element
    /// at i·update->ld + j (C may then be NULL); entries masked by MC are skipped.
    const struct pk_update_desc *update;
} pk_gemm_desc;
pk_status pk_gemm_f32(const pk_gemm_desc *d);

// ------------------------------------------------------------------------------------------------
// Element-wise and reductions (src/elementwise.c; reference src/ref/elementwise_ref.c)

/// pk_relu_forward_f32 — y[i] := max(x[i], 0). Shapes x, y of n. y may equal x (in place).
pk_status pk_relu_forward_f32(int64_t n, const float *x, float *y);
/// pk_relu_backward_f32 — dx[i] := y[i] > 0 ? dy[i] : 0, y the forward output. dx may equal dy.
pk_status pk_relu_backward_f32(int64_t n, const float *y, const float *dy, float *dx);
/// pk_sum_rows_f32 — out[j] := beta·out[j] + Σ_i X[i,j]; X m×n (ldx ≥ n). Fixed i order per j.
pk_status pk_sum_rows_f32(int64_t m, int64_t n, float beta, const float *X, int64_t ldx, float *out);
/// pk_axpby_f32 — out[i] := alpha·x[i] + beta·y[i]. out may equal x or y.
pk_status pk_axpby_f32(int64_t n, float alpha, const float *x, float beta, const float *y, float *out);
/// pk_mul_f32 — out[i] := x[i]·y[i] (an element-by-element product, e.g. x · HardSigmoid(x)). out may
/// equal x or y. Reference pk_ref_mul_f32.
pk_status pk_mul_f32(int64_t n, const float *x, const float *y, float *out);
/// pk_add_relu_f32 — out[i] := max(x[i] + y[i], 0), NaN kept (a residual add and the ReLU after it in
/// one pass, as inference runs them). out may equal x or y. Reference pk_ref_add_relu_f32.
pk_status pk_add_relu_f32(int64_t n, const float *x, const float *y, float *out);
/// pk_mask_apply_f32 — w[i] := m[i] ? w[i] : 0 (exact zeros).
pk_status pk_mask_apply_f32(int64_t n, const uint8_t *m, float *w);
/// pk_count_nonzero_u8 — *count := #{i : m[i] != 0}.
pk_status pk_count_nonzero_u8(int64_t n, const uint8_t *m, int64_t *count);
/// pk_all_finite_f32 — *ok := 1 when every x[i] is finite, else 0.
pk_status pk_all_finite_f32(int64_t n, const float *x, int *ok);

// ------------------------------------------------------------------------------------------------
// Convolution helpers and pooling (src/conv.c, src/pool.c; references in src/ref/)

/// pk_im2col_f32 — patch-major columns for a batched convolution, no padding, stride s.
/// Shapes    x N×C×H×W; OH = (H−KH)/s+1, OW = (W−KW)/s+1; cols (C·KH·KW) × (N·OH·OW):
///           row (c,kh,kw) — PyTorch's weight order — and column (n,oh,ow).
/// Errors    PK_ERR_SHAPE when a kernel dimension exceeds the image or s < 1. Reference pk_ref_im2col_f32.
pk_status pk_im2col_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                        int64_t s, const float *x, float *cols);
/// pk_col2im_f32 — dx := scatter-add of dcols (layout of pk_im2col_f32) back into N×C×H×W.
/// dx is write-only; each image is summed by one thread in a fixed order. Reference pk_ref_col2im_f32.
pk_status pk_col2im_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                        int64_t s, const float *dcols, float *dx);
/// pk_nchw_to_cnhw_f32 — y[c,n,p] := x[n,c,p]; x N×C×P, y C×N×P (plane copies).
pk_status pk_nchw_to_cnhw_f32(int64_t N, int64_t C, int64_t P, const float *x, float *y);
/// pk_conv2d_forward_f32 — y := conv(x, W ⊙ M) + bias; NCHW, no padding, stride s.
/// Shapes    x N×C×H×W, W OC×C×KH×KW, M same as W (uint8) or NULL, bias OC or NULL, y N×OC×OH×OW.
/// Method    images in chunks of about 1 MiB of im2col columns (chunk size from the shape only), each
///           chunk im2col'd into per-thread scratch and multiplied by the masked GEMM; y is write-only.
/// Threads   chunks in parallel (or one chunk with parallel GEMMs when there are fewer than 8):
///           identical bits for any thread count. Errors PK_ERR_SHAPE, PK_ERR_NULL, PK_ERR_ALIAS, PK_ERR_NOMEM.
/// Reference pk_ref_conv2d_forward_f32 (direct six-deep loop).
pk_status pk_conv2d_forward_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t OC, int64_t KH, int64_t KW,
                                int64_t s, const float *x, const float *w, const uint8_t *mask,
                                const float *bias, float *y);
/// pk_conv2d_backward_f32 — gradients of pk_conv2d_forward_f32 for upstream gradient dy (N×OC×OH×OW):
///           dw := (Σ_n dy_n · cols_nᵀ) ⊙ M (masked entries exactly 0), db := Σ dy per channel
///           (when db != NULL), dx := col2im((W ⊙ M)ᵀ · dy) (when dx != NULL). All outputs write-only.
/// Threads   per-chunk partial dw summed in chunk order: identical bits for any thread count.
/// Reference pk_ref_conv2d_backward_f32.
pk_status pk_conv2d_backward_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t OC, int64_t KH, int64_t KW,
                                 int64_t s, const float *x, const float *w, const uint8_t *mask,
                                 const float *dy, float *dw, float *db, float *dx);
/// pk_conv2d_backward_update_f32 — as pk_conv2d_backward_f32, then the optimizer step u applied to
///           the weights (u->w, u->ld = C·KH·KW) while the per-chunk partial gradients are summed:
///           no separate pass over dW. dx is computed before the weights change. dw may be NULL.
pk_status pk_conv2d_backward_update_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t OC, int64_t KH,
                                        int64_t KW, int64_t s, const float *x, const float *w,
                                        const uint8_t *mask, const float *dy, float *dw, float *db, float *dx,
                                        const struct pk_update_desc *u);
/// pk_bias_grad_nchw_f32 — db[c] := Σ_{n,p} dy[n,c,p]; fixed order.
pk_status pk_bias_grad_nchw_f32(int64_t N, int64_t C, int64_t P, const float *dy, float *db);

/// pk_maxpool2d_forward_f32 — k×k max pooling with stride s and padding p (floor mode; PyTorch's
/// MaxPool2d(k, s, p), ONNX's MaxPool), x N×C×H×W → y N×C×OH×OW, OH = (H + 2p − k)/s + 1 (OW alike).
/// Output (oh, ow) is the maximum over the window's pixels inside the image (padding never wins);
/// idx (int32, same shape as y) receives the flat h·W+w of each max (first maximum in scan order
/// wins; NaN propagates). Errors PK_ERR_SHAPE when k < 1, s < 1, p < 0, 2p > k, k > H + 2p or W + 2p.
/// Reference pk_ref_maxpool2d_forward_f32.
pk_status pk_maxpool2d_forward_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t k, int64_t s, int64_t p,
                                   const float *x, float *y, int32_t *idx);
/// pk_maxpool2d_backward_f32 — dx := 0 everywhere except dx[n,c,idx] += dy, outputs added in order
/// (write-only dx; one thread per plane). Reference pk_ref_maxpool2d_backward_f32.
pk_status pk_maxpool2d_backward_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t k, int64_t s, int64_t p,
                                    const float *dy, const int32_t *idx, float *dx);

// ------------------------------------------------------------------------------------------------
// Loss (src/loss.c; reference src/ref/loss_ref.c)

/// pk_softmax_xent_f32 — mean softmax cross-entropy over m rows of n logits.
/// Shapes    logits m×n, labels m (int32 in [0, n)), dlogits m×n or NULL, *loss scalar.
/// Output    *loss := (1/m) Σ_i −log softmax(logits_i)[labels_i]; dlogits := (softmax − onehot)/m.
///           *correct := #{i : argmax_i == labels_i} when correct != NULL (first max wins).
/// Errors    PK_ERR_ARG for a label out of range (nothing written), PK_ERR_SHAPE for n < 1.
pk_status pk_softmax_xent_f32(int64_t m, int64_t n, const float *logits, const int32_t *labels,
                              float *loss, float *dlogits, int64_t *correct);

/// pk_token_mse_f32 — token-row distillation term for b sequences of t rows of n features (s, tch, grad
///   b·t × n; mask b×t, nonzero = real token): loss := Σ_i weight·mean over real rows r and features j of
///   (s − tch)² (summed over the sequences); grad := 2·weight·(s − tch)/(real_i·n·b) on real rows, 0 on
///   padding rows and on sequences without a real row. Reference pk_ref_token_mse_f32.
pk_status pk_token_mse_f32(int64_t b, int64_t t, int64_t n, const float *s, const float *tch, const float *mask, float weight,
                           double *loss, float *grad);

/// pk_distill_kl_f32 — distillation term T²·KL(softmax(teacher/T) ‖ softmax(student/T)), mean over m rows
///   of n logits, and its gradient T·(softmax(student/T) − softmax(teacher/T))/m in dstudent.
/// Errors    PK_ERR_ARG unless T > 0. Reference pk_ref_distill_kl_f32.
pk_status pk_distill_kl_f32(int64_t m, int64_t n, float T, const float *student, const float *teacher, float *loss,
                            float *dstudent);

// ------------------------------------------------------------------------------------------------
// Mask-aware optimizer updates (src/optim.c; reference src/ref/optim_ref.c)
// mask may be NULL (all kept). Entries with mask[i] == 0 are not touched at all: the weight, its
// optimizer state and the gradient keep their bits (the weight is 0 by the masking invariant).

typedef enum pk_update_kind { PK_UPDATE_SGD = 1, PK_UPDATE_ADAM = 2 } pk_update_kind;

/// pk_update_desc — one optimizer step for a parameter, applied element-wise from its gradient g:
///   SGD    g' = g + wd·w; m := momentum·m + g' (m = velocity, may be NULL when momentum == 0);
///          w −= lr·(nesterov ? g' + momentum·m : (momentum ? m : g')).
///   Adam   decoupled = 0: g' = g + wd·w (torch.optim.Adam); decoupled = 1: w −= lr·wd·w first (AdamW).
///          m := b1·m + (1−b1)·g'; v := b2·v + (1−b2)·g'²; w −= lr/(1−b1^t) · m / (sqrt(v)/sqrt(1−b2^t) + eps).
/// Element (i, j) of a matrix parameter lives at i·ld + j in w, m and v (fused GEMM epilogues);
/// pk_update_f32 treats them as flat arrays. step is t ≥ 1, the step number after this update.
typedef struct pk_update_desc {
    pk_update_kind kind;
    float lr, momentum, weight_decay, beta1, beta2, eps;
    int nesterov, decoupled;
    int64_t step;
    float *w, *m, *v;
    int64_t ld;
} pk_update_desc;

/// pk_update_f32 — applies u to n elements from gradient g, skipping entries whose mask is 0.
/// Errors    PK_ERR_ARG (hyper-parameters out of domain), PK_ERR_NULL, PK_ERR_ALIAS, PK_ERR_SHAPE.
/// Threads   element-wise, any split gives the same bits. Reference: pk_ref_sgd_step_f32 / pk_ref_adam_step_f32.
pk_status pk_update_f32(int64_t n, const pk_update_desc *u, const uint8_t *mask, const float *g);

/// pk_sgd_step_f32 — pk_update_f32 with an SGD description (v: the velocity).
pk_status pk_sgd_step_f32(int64_t n, float lr, float momentum, float weight_decay, int nesterov,
                          const uint8_t *mask, const float *g, float *w, float *v);
/// pk_adam_step_f32 — pk_update_f32 with an Adam (decoupled = 0) or AdamW (decoupled = 1) description.
pk_status pk_adam_step_f32(int64_t n, float lr, float beta1, float beta2, float eps,
                           float weight_decay, int decoupled, int64_t t,
                           const uint8_t *mask, const float *g, float *w, float *m, float *v);

/// pk_linear_weight_update_f32 — fused weight gradient and optimizer step of a masked Linear:
///   g := (dYᵀ · X) ⊙ M (O×I), then u applied to every kept entry of the weight (u->ld ≥ I), in the
///   GEMM's epilogue while the tile of g is in registers; dW (O×I, ldd) receives g when not NULL.
///   Masked entries: weight and state untouched, dW written as 0.
/// Shapes    dY B×O (lddy ≥ O), X B×I (ldx ≥ I), M O×I (ldm ≥ I) or NULL.
/// Method    for B ≤ 1024 the whole batch is one k block, so no gradient buffer exists at all.
/// Threads   identical bits for any thread count. For B ≤ 256 also identical to pk_gemm_masked_tn_f32
///           followed by pk_update_f32 (same k blocking); for larger B the fused path sums the batch in
///           one block and agrees within rounding. Errors as pk_gemm_f32 and pk_update_f32.
pk_status pk_linear_weight_update_f32(int64_t O, int64_t I, int64_t B, const float *dY, int64_t lddy,
                                      const float *X, int64_t ldx, const uint8_t *M, int64_t ldm,
                                      const pk_update_desc *u, float *dW, int64_t ldd);

// ------------------------------------------------------------------------------------------------
// Transformer encoder pieces (src/transformer.c, attention in src/attention.c; reference src/ref/transformer_ref.c). Activations
// are token rows: B sequences of T tokens, row b·T + t.

/// pk_bert_embeddings_f32 — out[b·T + t] := word[ids[b·T + t]] + pos[t] + type0 (n each).
/// Shapes    ids B·T (int32), word vocab × n, pos positions × n (T ≤ positions), type0 n, out B·T × n.
/// Errors    PK_ERR_ARG when an id is outside [0, vocab) (nothing written), PK_ERR_SHAPE, PK_ERR_NULL.
pk_status pk_bert_embeddings_f32(int64_t B, int64_t T, int64_t n, const int32_t *ids, int64_t vocab, const float *word,
                                 int64_t positions, const float *pos, const float *type0, float *out);

/// pk_layernorm_f32 — y := (x − mean) / sqrt(var + eps) · gamma + beta per row of n (biased variance,
///   statistics in double). rows × n, ldx, ldy ≥ n; y may equal x (in place).
pk_status pk_layernorm_f32(int64_t rows, int64_t n, const float *x, int64_t ldx, const float *gamma, const float *beta,
                           float eps, float *y, int64_t ldy);

/// pk_gelu_f32 — y := x · Φ(x) = 0.5·x·(1 + erf(x/√2)) (BERT's GELU), erf to within 1.5e-7
///   (Abramowitz & Stegun 7.1.26, vectorised); y may equal x.
pk_status pk_gelu_f32(int64_t n, const float *x, float *y);

/// pk_attention_f32 — multi-head self-attention of B sequences of T tokens, H heads of D:
///   for token t, head h: out[t, h] := head_mask[h] · Σ_s softmax_s(q_t,h · k_s,h / √D) · v_s,h,
///   keys with mask[b·T + s] == 0 excluded (a row with no key gives zeros).
/// Shapes    q, k, v B·T × (H·D) with row stride ldq; out B·T × (H·D), ldo; mask B·T (1/0) or NULL;
///           head_mask H or NULL (ones). T ≤ 4096.
/// Threads   one (sequence, head) pair per task; identical bits for any thread count.
pk_status pk_attention_f32(int64_t B, int64_t T, int64_t H, int64_t D, const float *q, const float *k, const float *v,
                           int64_t ldq, const float *mask, const float *head_mask, float *out, int64_t ldo);

/// pk_mean_pool_f32 — out[b] := Σ_t mask[b·T+t]·x[b·T+t] / Σ_t mask (x B·T × n, out B × n), then
///   divided by its L2 norm when normalize (sentence-transformers' mean pooling + Normalize).
pk_status pk_mean_pool_f32(int64_t B, int64_t T, int64_t n, const float *x, const float *mask, int normalize, float *out);

/// pk_layernorm_backward_f32 — dx for y = layernorm(x) (gamma fixed) and upstream dy; rows × n, dense.
pk_status pk_layernorm_backward_f32(int64_t rows, int64_t n, const float *x, const float *gamma, float eps, const float *dy,
                                    float *dx);
/// pk_layernorm_param_grad_f32 — dgamma[j] := Σ_r dy[r,j]·x̂[r,j], dbeta[j] := Σ_r dy[r,j] for y =
///   layernorm(x) (x̂ the normalised row); rows × n, dense; either output may be NULL (not computed).
/// Threads   columns split across threads, each summed over rows in order in double: identical bits
///           for any thread count. Errors PK_ERR_SHAPE, PK_ERR_ARG (eps), PK_ERR_NULL, PK_ERR_NOMEM.
pk_status pk_layernorm_param_grad_f32(int64_t rows, int64_t n, const float *x, float eps, const float *dy, float *dgamma,
                                      float *dbeta);
/// pk_gelu_backward_f32 — dx := dy · (Φ(x) + x·φ(x)); dx may equal dy.
pk_status pk_gelu_backward_f32(int64_t n, const float *x, const float *dy, float *dx);
/// pk_attention_backward_f32 — dq, dk, dv (layout of q, k, v; write-only) of pk_attention_f32 for the
///   upstream gradient dout (B·T × H·D, row stride ldq), recomputing the attention weights.
/// Threads   one (sequence, head) pair per task, T × T scratch per thread; identical bits for any
///           thread count. Errors PK_ERR_SHAPE, PK_ERR_NULL, PK_ERR_NOMEM.
pk_status pk_attention_backward_f32(int64_t B, int64_t T, int64_t H, int64_t D, const float *q, const float *k,
                                    const float *v, int64_t ldq, const float *mask, const float *head_mask,
                                    const float *dout, float *dq, float *dk, float *dv);
/// pk_mean_pool_backward_f32 — dx (B·T × n, write-only) of pk_mean_pool_f32 with normalize = 1 for
///   the upstream gradient dout (B × n).
pk_status pk_mean_pool_backward_f32(int64_t B, int64_t T, int64_t n, const float *x, const float *mask, const float *dout,
                                    float *dx);

// ------------------------------------------------------------------------------------------------
// Selection for pruning (src/topk.c, src/topk_bracket.c, src/patterns.c; references src/ref/topk_ref.c, src/ref/patterns_ref.c)

/// pk_prune_smallest_f32 — prunes exactly k of the currently kept entries of T tensors together:
///   those with the smallest score (|score| when use_abs), ties broken by lowest (tensor, flat index).
/// Shapes    tensor t has sizes[t] scores (scores[t]) and a mask (masks[t], updated in place:
///           1 = kept, 0 = pruned; pruned entries are ignored and stay pruned).
/// Method    a sampled bracket around the k-th smallest key, applied in one pass over scores and masks
///           (which also validates and counts), then one pass over the mask bytes; the masks hold
///           provisional states (2, 3) during the call only. When the sample misleads: radix
///           selection on the scores' bit patterns (16-bit histograms). No concatenation;
///           *extra_bytes (if not NULL) receives the peak extra memory, bounded independently of the
///           number of weights (< 16 MiB).
/// Errors    PK_ERR_NONFINITE when a kept score is NaN or infinite, PK_ERR_ARG when k < 0 or k exceeds
///           the kept count — in both cases no mask is changed; PK_ERR_NULL, PK_ERR_SHAPE, PK_ERR_NOMEM.
/// Threads   the masks never depend on the thread count. Reference pk_ref_prune_smallest_f32 (sort).
pk_status pk_prune_smallest_f32(int64_t T, const int64_t *sizes, const float *const *scores, uint8_t *const *masks,
                                int use_abs, int64_t k, int64_t *extra_bytes);

/// pk_prune_fraction_f32 — pk_prune_smallest_f32 with k = round-half-to-even(fraction × kept entries)
///   (PyTorch's amount rule), the kept count taken by the selection's own pass; *pruned (if not NULL)
///   receives k. PK_ERR_ARG unless 0 ≤ fraction ≤ 1. Reference pk_ref_prune_fraction_f32.
pk_status pk_prune_fraction_f32(int64_t T, const int64_t *sizes, const float *const *scores, uint8_t *const *masks,
                                int use_abs, double fraction, int64_t *pruned, int64_t *extra_bytes);

/// pk_nm_mask_f32 — N:M sparsity: in every group of M consecutive entries of each row (the input
///   dimension), prune kept entries, smallest score first (lower index first among equals), until
///   at most N stay. A short last group keeps at most N too. mask (rows×cols, ld) updated in place.
/// Errors    PK_ERR_ARG unless 0 ≤ N ≤ M and M ≥ 1; PK_ERR_NONFINITE (nothing changed). Reference pk_ref_nm_mask_f32.
pk_status pk_nm_mask_f32(int64_t rows, int64_t cols, int64_t N, int64_t M, const float *x, int64_t ld, int use_abs,
                         uint8_t *mask);

/// pk_unit_norms_f32 — out[d] := ‖x[:, d, :]‖_p for x viewed as A×D×B (the norm of every slice along
///   one dimension: output units, channels, filters), over kept entries when mask != NULL.
///   p = 1, 2, any p > 0, +inf (max) or 0 (count of nonzeros). Errors PK_ERR_ARG (p < 0 or NaN),
///   PK_ERR_NONFINITE. Reference pk_ref_unit_norms_f32.
pk_status pk_unit_norms_f32(int64_t A, int64_t D, int64_t B, double p, const float *x, const uint8_t *mask,
                            float *out);

// ------------------------------------------------------------------------------------------------
// Importance scores (src/importance.c; reference src/ref/importance_ref.c)

/// pk_abs_mul_acc_f32 — acc[i] += |a[i]·b[i]| (Taylor importance: a = weights, b = gradients).
pk_status pk_abs_mul_acc_f32(int64_t n, const float *a, const float *b, float *acc);
/// pk_col_sumsq_acc_f32 — acc[j] += Σ_i x[i,j]² over m rows (x m×n, ld): input-feature energy for Wanda.
pk_status pk_col_sumsq_acc_f32(int64_t m, int64_t n, const float *x, int64_t ld, float *acc);
/// pk_wanda_scores_f32 — out[r,j] := |w[r,j]| · sqrt(sumsq[j / group]) (w, out rows×cols; group ≥ 1
///   lets one statistic serve `group` consecutive columns, e.g. a convolution's k×k kernel).
pk_status pk_wanda_scores_f32(int64_t rows, int64_t cols, int64_t group, const float *w, const float *sumsq,
                              float *out);
/// pk_col_dot_f32 — out[j] := Σ_i a[i,j]·b[i,j] over m rows (a, b m×n, contiguous): the gradient of a
///   mask that scales column j (a = the column's values, b = ∂L/∂ of the scaled values).
pk_status pk_col_dot_f32(int64_t m, int64_t n, const float *a, const float *b, float *out);
/// pk_channel_dot_f32 — out[c] := Σ_n Σ_s a[n,c,s]·b[n,c,s] for a, b N×C×S (NCHW with S = H·W; S = 1
///   is pk_col_dot_f32): the gradient of a per-channel mask on a layer's input (unit Taylor).
/// Threads   channels split across threads, each summed in order in double: identical bits for any
///           thread count. Errors PK_ERR_SHAPE, PK_ERR_NULL, PK_ERR_ALIAS. Reference pk_ref_channel_dot_f32.
pk_status pk_channel_dot_f32(int64_t N, int64_t C, int64_t S, const float *a, const float *b, float *out);
/// pk_gram_acc_f32 — g[i, j] += Σ_r x[r, i]·x[r, j] over m rows (x m×n with leading dimension ld; g n×n):
///   the Gram matrix of a Linear's calibration inputs, for SparseGPT. Computed as the GEMM
///   pk_gemm_masked_tn_f32 (XᵀX, beta 1): identical bits for any thread count. Errors PK_ERR_SHAPE,
///   PK_ERR_NULL, PK_ERR_ALIAS (g overlapping x), PK_ERR_NOMEM.
pk_status pk_gram_acc_f32(int64_t m, int64_t n, const float *x, int64_t ld, float *g);
/// pk_sparsegpt_f32 — SparseGPT (Frantar & Alistarh 2023) on w (rows×cols, in place) with the Gram
///   matrix `gram` (cols×cols) of its inputs: H = gram + damp·mean(diag)·I (an input whose diagonal is
///   0 gets 1 and its weights 0). Columns are settled left to right; settling column i zeroes the
///   pruned entries and moves every row's later weights by the OBS update, err/U[i,i]·U[i, i+1..]
///   with U the upper Cholesky factor of H⁻¹ (U ᵀU = H⁻¹), err = w[r,i] − kept value. Which entries
///   are pruned: with m > 0, n of every m consecutive inputs are kept (cols % m == 0, m ≤ 256), chosen
///   when a group starts; otherwise each row prunes llround(sparsity·i2) − llround(sparsity·i1) of the
///   columns [i1, i2) of each `block` (1..256), chosen when the block starts. Both choose by the
///   smallest w²/U[j,j]² with the weights as updated so far, the earlier column first on ties.
///   mask (rows×cols) := 1 kept, 0 pruned; pruned weights are exactly 0. PK_ERR_ARG when H is not
///   positive definite (use damp > 0) or an argument is out of range (m < 0 included); PK_ERR_NONFINITE
///   for NaN/Inf. On any error w and mask are left as they were.
pk_status pk_sparsegpt_f32(int64_t rows, int64_t cols, float *w, const float *gram, float damp, double sparsity,
                           int64_t n, int64_t m, int64_t block, uint8_t *mask);
/// pk_block_norms_f32 — out[br, bc] := mean |x| over the kept entries of each bh×bw block of x
///   (rows×cols; edge blocks may be smaller; 0 for a block with nothing kept).
pk_status pk_block_norms_f32(int64_t rows, int64_t cols, int64_t bh, int64_t bw, const float *x, const uint8_t *mask,
                             float *out);

// ------------------------------------------------------------------------------------------------
// References (src/ref/): same contracts, naive loops, single-threaded.
pk_status pk_ref_gemm_masked_f32(int64_t m, int64_t n, int64_t k, float alpha,
                                 const float *A, int64_t lda, const float *W, int64_t ldw,
                                 const uint8_t *M, int64_t ldm, float beta, float *C, int64_t ldc);
pk_status pk_ref_gemm_masked_nn_f32(int64_t m, int64_t n, int64_t k, float alpha,
                                    const float *A, int64_t lda, const float *W, int64_t ldw,
                                    const uint8_t *M, int64_t ldm, float beta, float *C, int64_t ldc);
pk_status pk_ref_gemm_masked_tn_f32(int64_t m, int64_t n, int64_t k, float alpha,
                                    const float *A, int64_t lda, const float *B, int64_t ldb,
                                    const uint8_t *M, int64_t ldm, float beta, float *C, int64_t ldc);
pk_status pk_ref_linear_forward_f32(int64_t m, int64_t n, int64_t k,
                                    const float *X, int64_t ldx, const float *W, int64_t ldw,
                                    const uint8_t *M, int64_t ldm, const float *bias,
                                    float *Y, int64_t ldy);
pk_status pk_ref_gemm_f32(const pk_gemm_desc *d);
pk_status pk_ref_mul_f32(int64_t n, const float *x, const float *y, float *out);
pk_status pk_ref_add_relu_f32(int64_t n, const float *x, const float *y, float *out);
pk_status pk_ref_relu_forward_f32(int64_t n, const float *x, float *y);
pk_status pk_ref_relu_backward_f32(int64_t n, const float *y, const float *dy, float *dx);
pk_status pk_ref_sum_rows_f32(int64_t m, int64_t n, float beta, const float *X, int64_t ldx, float *out);
pk_status pk_ref_im2col_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                            int64_t s, const float *x, float *cols);
pk_status pk_ref_col2im_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                            int64_t s, const float *dcols, float *dx);
pk_status pk_ref_conv2d_forward_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t OC, int64_t KH, int64_t KW,
                                    int64_t s, const float *x, const float *w, const uint8_t *mask,
                                    const float *bias, float *y);
pk_status pk_ref_conv2d_backward_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t OC, int64_t KH, int64_t KW,
                                     int64_t s, const float *x, const float *w, const uint8_t *mask,
                                     const float *dy, float *dw, float *db, float *dx);
pk_status pk_ref_maxpool2d_forward_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t k, int64_t s, int64_t p,
                                       const float *x, float *y, int32_t *idx);
pk_status pk_ref_avgpool2d_forward_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t kh, int64_t kw, int64_t s,
                                       int64_t p, const float *x, float *y);
pk_status pk_ref_avgpool2d_backward_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t kh, int64_t kw, int64_t s,
                                        int64_t p, const float *dy, float *dx);
pk_status pk_ref_maxpool2d_backward_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t k, int64_t s, int64_t p,
                                        const float *dy, const int32_t *idx, float *dx);
pk_status pk_ref_softmax_xent_f32(int64_t m, int64_t n, const float *logits, const int32_t *labels,
                                  float *loss, float *dlogits, int64_t *correct);
pk_status pk_ref_token_mse_f32(int64_t b, int64_t t, int64_t n, const float *s, const float *tch, const float *mask,
                               float weight, double *loss, float *grad);
pk_status pk_ref_distill_kl_f32(int64_t m, int64_t n, float T, const float *student, const float *teacher, float *loss,
                                float *dstudent);
pk_status pk_ref_sgd_step_f32(int64_t n, float lr, float momentum, float weight_decay, int nesterov,
                              const uint8_t *mask, const float *g, float *w, float *v);
pk_status pk_ref_adam_step_f32(int64_t n, float lr, float beta1, float beta2, float eps,
                               float weight_decay, int decoupled, int64_t t,
                               const uint8_t *mask, const float *g, float *w, float *m, float *v);

pk_status pk_ref_layernorm_f32(int64_t rows, int64_t n, const float *x, int64_t ldx, const float *gamma,
                               const float *beta, float eps, float *y, int64_t ldy);
pk_status pk_ref_layernorm_param_grad_f32(int64_t rows, int64_t n, const float *x, float eps, const float *dy, float *dgamma,
                                          float *dbeta);
pk_status pk_ref_gelu_f32(int64_t n, const float *x, float *y);
pk_status pk_ref_attention_f32(int64_t B, int64_t T, int64_t H, int64_t D, const float *q, const float *k, const float *v,
                               int64_t ldq, const float *mask, const float *head_mask, float *out, int64_t ldo);
pk_status pk_ref_prune_smallest_f32(int64_t T, const int64_t *sizes, const float *const *scores, uint8_t *const *masks,
                                    int use_abs, int64_t k, int64_t *extra_bytes);
pk_status pk_ref_prune_fraction_f32(int64_t T, const int64_t *sizes, const float *const *scores, uint8_t *const *masks,
                                    int use_abs, double fraction, int64_t *pruned, int64_t *extra_bytes);
pk_status pk_ref_nm_mask_f32(int64_t rows, int64_t cols, int64_t N, int64_t M, const float *x, int64_t ld, int use_abs,
                             uint8_t *mask);
pk_status pk_ref_unit_norms_f32(int64_t A, int64_t D, int64_t B, double p, const float *x, const uint8_t *mask,
                                float *out);

pk_status pk_ref_abs_mul_acc_f32(int64_t n, const float *a, const float *b, float *acc);
pk_status pk_ref_col_dot_f32(int64_t m, int64_t n, const float *a, const float *b, float *out);
pk_status pk_ref_channel_dot_f32(int64_t N, int64_t C, int64_t S, const float *a, const float *b, float *out);
pk_status pk_ref_col_sumsq_acc_f32(int64_t m, int64_t n, const float *x, int64_t ld, float *acc);
/// Reference of pk_sparsegpt_f32 in its original OBS form, in double: before settling column i the
/// inverse of H's trailing block H[i.., i..] is formed explicitly (Gauss–Jordan), and the selection
/// scores use w_j² / (H[j.., j..])⁻¹[0, 0]. O(cols⁴): for small tests only.
pk_status pk_ref_sparsegpt_f32(int64_t rows, int64_t cols, float *w, const float *gram, float damp, double sparsity,
                               int64_t n, int64_t m, int64_t block, uint8_t *mask);
pk_status pk_ref_wanda_scores_f32(int64_t rows, int64_t cols, int64_t group, const float *w, const float *sumsq,
                                  float *out);
pk_status pk_ref_block_norms_f32(int64_t rows, int64_t cols, int64_t bh, int64_t bw, const float *x,
                                 const uint8_t *mask, float *out);

// The kernels behind the graph layers (BatchNorm, activations, average pooling, padding, grouped
// convolution) and the sparse formats (CSR, packed N:M, block-sparse) are declared in their own
// headers, part of the same contract.
#include "prunekit_layers.h"
#include "prunekit_sparse.h"

#ifdef __cplusplus
}
#endif
#endif
