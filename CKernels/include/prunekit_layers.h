// PruneKit's C contract, continued: the kernels behind the graph layers (grouped and depthwise
// convolution, zero padding, average pooling, smooth activations, batch normalisation) and their
// naive references. Same conventions as prunekit_kernels.h: statuses, write-only outputs, fixed
// reduction orders (identical bits for any thread count).
#ifndef PRUNEKIT_LAYERS_H
#define PRUNEKIT_LAYERS_H
#include "prunekit_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/// pk_conv2d_grouped_forward_f32 — y := conv(x, W ⊙ M) + bias with G groups (C and OC multiples of G;
///           weight OC × C/G × K × K; depthwise when G = C = OC); NCHW, x already padded, stride s,
///           dilation d (tap (kh, kw) of output (oh, ow) reads (oh·s + kh·d, ow·s + kw·d));
///           OH = (H − d·(K−1) − 1)/s + 1. Direct loops, one thread per output plane; y write-only.
///           Reference pk_ref_conv2d_grouped_forward_f32. Errors PK_ERR_SHAPE, PK_ERR_NULL, PK_ERR_ALIAS.
pk_status pk_conv2d_grouped_forward_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t OC, int64_t K, int64_t s,
                                        int64_t d, int64_t G, const float *x, const float *w, const uint8_t *mask, const float *bias,
                                        float *y);
/// pk_conv2d_grouped_backward_f32 — dw := ∂L/∂W ⊙ M (when dw != NULL; images summed in order in double),
///           dx := ∂L/∂x of the padded input (when dx != NULL, write-only). Reference
///           pk_ref_conv2d_grouped_backward_f32.
pk_status pk_conv2d_grouped_backward_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t OC, int64_t K, int64_t s,
                                         int64_t d, int64_t G, const float *x, const float *w, const uint8_t *mask, const float *dy,
                                         float *dw, float *dx);
/// pk_avgpool2d_forward_f32 — average pooling of N×C×H×W over kh×kw windows, stride s, zero padding
///           p counted in the divisor kh·kw (PyTorch's AvgPool2d default); OH = (H + 2p − kh)/s + 1.
///           Global average pooling is kh = H, kw = W, s = 1, p = 0. y is write-only.
/// Errors    PK_ERR_SHAPE when a window exceeds the padded image, 2p > kh or kw, or s < 1.
///           Reference pk_ref_avgpool2d_forward_f32.
pk_status pk_avgpool2d_forward_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t kh, int64_t kw, int64_t s,
                                   int64_t p, const float *x, float *y);
/// pk_avgpool2d_backward_f32 — dx (N×C×H×W, write-only) of pk_avgpool2d_forward_f32 for upstream dy;
///           each input pixel gathers the windows covering it (one thread per plane).
pk_status pk_avgpool2d_backward_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t kh, int64_t kw, int64_t s,
                                    int64_t p, const float *dy, float *dx);
/// pk_conv2d_implicit_forward_f32 — y := act(scale ⊙ conv_p(x, W ⊙ M) + shift), per output channel o:
///           y[n,o,·] = act(scale[o]·(Σ W⊙M · x̃) + shift[o]), x̃ = x zero-padded by p on each side.
/// Shapes    x N×C×H×W (unpadded), W OC×C×KH×KW, M as W (uint8) or NULL, scale and shift OC or NULL
///           (NULL: 1 and 0), y N×OC×OH×OW with OH = (H+2p−KH)/s+1, OW = (W+2p−KW)/s+1. relu != 0 ⇒
///           act = max(·, 0) with NaN kept (pk_relu_forward_f32), else the identity. y is write-only.
/// Method    implicit GEMM: (W ⊙ M) packed once, input patches gathered (padding included) straight into
///           the packed panels, scale/shift/ReLU applied once per output in the epilogue. With scale
///           NULL and shift = bias it is a plain padded convolution; with BatchNorm's running
///           statistics folded into scale/shift it is conv + BatchNorm (+ ReLU) at inference.
/// Threads   column blocks in parallel, each output summed over k in a fixed order: identical bits
///           for any thread count. Errors PK_ERR_SHAPE (KH > H+2p, s < 1, p < 0, ...), PK_ERR_NULL,
///           PK_ERR_ALIAS, PK_ERR_NOMEM. Reference pk_ref_conv2d_implicit_forward_f32 (direct loops).
pk_status pk_conv2d_implicit_forward_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t OC, int64_t KH, int64_t KW,
                                         int64_t s, int64_t p, int relu, const float *x, const float *w,
                                         const uint8_t *mask, const float *scale, const float *shift, float *y);
/// pk_conv2d_padded_forward_f32 — the same operation and contract as pk_conv2d_implicit_forward_f32
///           (same reference), by the faster method for the shape: narrow output rows (OW < 20, or
///           OW < 10 where pk_conv2d_direct_eligible) with at least 64·64·9 weights, and rows with
///           5 ≤ OW < 10 and at least 2048 weights at stride > 1,
///           run pk_conv2d_implicit_forward_f32; other stride-1 shapes run pk_conv2d_direct_forward_f32
///           where pk_conv2d_direct_eligible; the rest run chunked
///           im2col (padding folded in) + the masked GEMM with the epilogue applied to each chunk in
///           cache. The method depends on the shape only: identical bits for any thread count.
pk_status pk_conv2d_padded_forward_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t OC, int64_t KH, int64_t KW,
                                       int64_t s, int64_t p, int relu, const float *x, const float *w,
                                       const uint8_t *mask, const float *scale, const float *shift, float *y);
/// pk_conv2d_direct_forward_f32 — pk_conv2d_implicit_forward_f32 with s = 1 (same contract and
///           reference) by direct convolution on the flattened zero-padded plane: each tap reads one
///           shifted contiguous range, no patches are gathered (src/conv_direct.c). AVX2 + FMA kernels;
///           callers check pk_conv2d_direct_eligible first. Identical bits for any thread count.
pk_status pk_conv2d_direct_forward_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t OC, int64_t KH, int64_t KW,
                                       int64_t p, int relu, const float *x, const float *w, const uint8_t *mask,
                                       const float *scale, const float *shift, float *y);
/// pk_conv2d_direct_input_grad_f32 — dx (N×C×H×W, write-only) := ∂L/∂x of a stride-1 convolution with
///           padding p for upstream dy (N×OC×OH×OW): the direct forward on dy with W ⊙ M flipped and
///           transposed. Reference pk_ref_conv2d_padded_backward_f32 (its dx).
pk_status pk_conv2d_direct_input_grad_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t OC, int64_t KH,
                                          int64_t KW, int64_t p, const float *w, const uint8_t *mask, const float *dy,
                                          float *dx);
/// pk_conv2d_direct_weight_grad_f32 — partials[q] (OC×C×KH×KW each, write-only) := Σ over images
///           [q·per, q·per + per) of ∂L/∂W (unmasked), for chunks q < ceil(N/per); the caller sums
///           the partials in chunk order. per from pk_conv2d_direct_wgrad_chunks (shape only).
pk_status pk_conv2d_direct_weight_grad_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t OC, int64_t KH,
                                           int64_t KW, int64_t p, const float *x, const float *dy, int64_t per,
                                           float *partials);
int64_t pk_conv2d_direct_wgrad_chunks(int64_t N, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t p);
/// pk_conv2d_direct_eligible — 1 when the direct kernels serve this convolution on the active ISA
///           (AVX2 without AVX-512, stride 1, a kernel larger than 1×1, p < KH and p < KW).
int pk_conv2d_direct_eligible(int64_t C, int64_t KH, int64_t KW, int64_t s, int64_t p);
/// pk_conv2d_set_direct — on = 0 routes every convolution through the im2col / implicit-GEMM paths
///           (for A/B measurements and tests of both paths); on by default. Process-wide.
void pk_conv2d_set_direct(int on);
/// pk_conv2d_dilated_forward_f32 — pk_conv2d_padded_forward_f32 with dilation d ≥ 1: tap (kh, kw) of
///           output (oh, ow) reads x̃[n, c, oh·s + kh·d − p, ow·s + kw·d − p]; OH = (H + 2p − d·(KH−1) − 1)/s + 1
///           (OW alike). d = 1 is pk_conv2d_padded_forward_f32 (same method choice); d > 1 always runs
///           chunked im2col (padding and dilation folded in) + the masked GEMM with the epilogue. The method
///           depends on the shape only: identical bits for any thread count. Errors as there (PK_ERR_SHAPE
///           also for d < 1 or a dilated window wider than the padded image). Reference
///           pk_ref_conv2d_dilated_forward_f32 (src/ref/conv_implicit_ref.c).
pk_status pk_conv2d_dilated_forward_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t OC, int64_t KH, int64_t KW,
                                        int64_t s, int64_t p, int64_t d, int relu, const float *x, const float *w,
                                        const uint8_t *mask, const float *scale, const float *shift, float *y);
/// pk_im2col_dilated_f32 / pk_col2im_dilated_f32 — pk_im2col_padded_f32 / pk_col2im_padded_f32 with
///           dilation d: row (c, kh, kw) of cols holds x̃[n, c, oh·s + kh·d − p, ow·s + kw·d − p].
///           References pk_ref_im2col_dilated_f32, pk_ref_col2im_dilated_f32.
pk_status pk_im2col_dilated_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t s, int64_t p,
                                int64_t d, const float *x, float *cols);
pk_status pk_col2im_dilated_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t s, int64_t p,
                                int64_t d, const float *dcols, float *dx);
/// pk_conv2d_dilated_backward_update_f32 — pk_conv2d_padded_backward_update_f32 with dilation d (the
///           same contract; d = 1 is that kernel). Reference pk_ref_conv2d_dilated_backward_f32.
pk_status pk_conv2d_dilated_backward_update_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t OC, int64_t KH,
                                                int64_t KW, int64_t s, int64_t p, int64_t d, const float *x, const float *w,
                                                const uint8_t *mask, const float *dy, float *dw, float *db, float *dx,
                                                const struct pk_update_desc *u);
/// pk_im2col_padded_f32 / pk_col2im_padded_f32 — pk_im2col_f32 and pk_col2im_f32 with zero padding p
///           folded in: x and dx are N×C×H×W unpadded, columns as for the padded image (entries in the
///           padding are 0 in cols; their gradients are dropped by col2im). References pk_ref_im2col_padded_f32,
///           pk_ref_col2im_padded_f32.
pk_status pk_im2col_padded_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t s, int64_t p,
                               const float *x, float *cols);
pk_status pk_col2im_padded_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t s, int64_t p,
                               const float *dcols, float *dx);
/// pk_conv2d_padded_backward_update_f32 — pk_conv2d_backward_update_f32 for a convolution with zero
///           padding p: x and dx unpadded (dx write-only, never a padded buffer), dw, db and the fused
///           optimizer step u as there (u may be NULL; then dw is required). Where
///           pk_conv2d_direct_eligible, dw and dx come from the direct kernels (conv_direct.c).
///           Reference pk_ref_conv2d_padded_backward_f32.
pk_status pk_conv2d_padded_backward_update_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t OC, int64_t KH,
                                               int64_t KW, int64_t s, int64_t p, const float *x, const float *w,
                                               const uint8_t *mask, const float *dy, float *dw, float *db, float *dx,
                                               const struct pk_update_desc *u);
/// pk_pad2d_f32 — y (N×C×(H+2p)×(W+2p), write-only) := x with a border of p zeros (padded convolution).
pk_status pk_pad2d_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t p, const float *x, float *y);
/// pk_crop2d_f32 — y (N×C×H×W) := the interior of x (N×C×(H+2p)×(W+2p)): the gradient of pk_pad2d_f32.
pk_status pk_crop2d_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t p, const float *x, float *y);

/// Activation kinds of pk_activation_forward_f32 / pk_activation_backward_f32.
enum { PK_ACT_SIGMOID = 1, PK_ACT_SILU = 2, PK_ACT_HARDSWISH = 3, PK_ACT_HARDSIGMOID = 4, PK_ACT_TANH = 5, PK_ACT_RELU6 = 6,
       PK_ACT_GELU_TANH = 7 };
/// pk_activation_forward_f32 — y := f(x) element-wise: sigmoid, SiLU x·σ(x), hard-swish x·relu6(x+3)/6,
///           hard-sigmoid relu6(x+3)/6, tanh, relu6 = min(max(x, 0), 6), GELU's tanh form
///           x/2·(1 + tanh(√(2/π)(x + 0.044715x³))). y may equal x. Errors PK_ERR_ARG for an unknown kind.
///           Reference pk_ref_activation_forward_f32 (double precision).
pk_status pk_activation_forward_f32(int64_t n, int kind, const float *x, float *y);
/// pk_activation_backward_f32 — dx := dy · f'(x), x the forward input (PyTorch's one-sided choices at
///           the kinks of the hard variants). dx may equal dy.
pk_status pk_activation_backward_f32(int64_t n, int kind, const float *x, const float *dy, float *dx);

/// pk_batchnorm_forward_f32 — batch normalisation of x (N×C×S; S = H·W, or 1 for features) per
///           channel: y := (x − μ)·γ/√(σ² + eps) + β. training ≠ 0: μ, σ² (biased) over the N·S values
///           of each channel (accumulated in double, one thread per channel); running_mean/var (both or
///           neither) move by momentum, the variance as the unbiased estimate (PyTorch's rule).
///           training = 0: μ, σ² are running_mean/var (required). save_mean/save_invstd (both or
///           neither) receive μ and 1/√(σ² + eps) for the backward pass. gamma/beta may be NULL (1, 0).
/// Errors    PK_ERR_ARG for eps ≤ 0 or momentum outside [0, 1]; PK_ERR_SHAPE for training with N·S = 0.
///           Reference pk_ref_batchnorm_forward_f32.
pk_status pk_batchnorm_forward_f32(int64_t N, int64_t C, int64_t S, const float *x, const float *gamma, const float *beta,
                                   float eps, int training, float momentum, float *running_mean, float *running_var,
                                   float *y, float *save_mean, float *save_invstd);
/// pk_batchnorm_backward_f32 — for upstream dy: dgamma := Σ dy·x̂, dbeta := Σ dy per channel (each may be
///           NULL), dx (may be NULL, must not alias dy or x) := γ·invstd·(dy − mean(dy) − x̂·mean(dy·x̂)) when
///           the forward pass used batch statistics (training ≠ 0), γ·invstd·dy when it used running ones.
///           Reference pk_ref_batchnorm_backward_f32.
pk_status pk_batchnorm_backward_f32(int64_t N, int64_t C, int64_t S, const float *x, const float *gamma,
                                    const float *save_mean, const float *save_invstd, const float *dy, int training,
                                    float *dx, float *dgamma, float *dbeta);

// ---- naive references

pk_status pk_ref_conv2d_grouped_forward_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t OC, int64_t K, int64_t s,
                                            int64_t d, int64_t G, const float *x, const float *w, const uint8_t *mask,
                                            const float *bias, float *y);
pk_status pk_ref_conv2d_grouped_backward_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t OC, int64_t K, int64_t s,
                                             int64_t d, int64_t G, const float *x, const float *w, const uint8_t *mask,
                                             const float *dy, float *dw, float *dx);
pk_status pk_ref_conv2d_implicit_forward_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t OC, int64_t KH,
                                             int64_t KW, int64_t s, int64_t p, int relu, const float *x, const float *w,
                                             const uint8_t *mask, const float *scale, const float *shift, float *y);
pk_status pk_ref_conv2d_dilated_forward_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t OC, int64_t KH,
                                            int64_t KW, int64_t s, int64_t p, int64_t d, int relu, const float *x,
                                            const float *w, const uint8_t *mask, const float *scale, const float *shift,
                                            float *y);
pk_status pk_ref_im2col_dilated_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t s,
                                    int64_t p, int64_t d, const float *x, float *cols);
pk_status pk_ref_col2im_dilated_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t s,
                                    int64_t p, int64_t d, const float *dcols, float *dx);
pk_status pk_ref_conv2d_dilated_backward_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t OC, int64_t KH, int64_t KW,
                                             int64_t s, int64_t p, int64_t d, const float *x, const float *w,
                                             const uint8_t *mask, const float *dy, float *dw, float *db, float *dx);
pk_status pk_ref_im2col_padded_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t s, int64_t p,
                                   const float *x, float *cols);
pk_status pk_ref_col2im_padded_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t s, int64_t p,
                                   const float *dcols, float *dx);
pk_status pk_ref_conv2d_padded_backward_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t OC, int64_t KH, int64_t KW,
                                            int64_t s, int64_t p, const float *x, const float *w, const uint8_t *mask,
                                            const float *dy, float *dw, float *db, float *dx);
pk_status pk_ref_pad2d_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t p, const float *x, float *y);
pk_status pk_ref_crop2d_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t p, const float *x, float *y);
pk_status pk_ref_activation_forward_f32(int64_t n, int kind, const float *x, float *y);
pk_status pk_ref_activation_backward_f32(int64_t n, int kind, const float *x, const float *dy, float *dx);
pk_status pk_ref_batchnorm_forward_f32(int64_t N, int64_t C, int64_t S, const float *x, const float *gamma,
                                       const float *beta, float eps, int training, float momentum, float *running_mean,
                                       float *running_var, float *y, float *save_mean, float *save_invstd);
pk_status pk_ref_batchnorm_backward_f32(int64_t N, int64_t C, int64_t S, const float *x, const float *gamma,
                                        const float *save_mean, const float *save_invstd, const float *dy, int training,
                                        float *dx, float *dgamma, float *dbeta);

#ifdef __cplusplus
}
#endif
#endif
