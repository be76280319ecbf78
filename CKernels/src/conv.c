// Convolution helpers: im2col / col2im in the "patch-major" layout (stride s, dilation d: kernel tap
// (kh, kw) reads input pixel (oh·s + kh·d − p, ow·s + kw·d − p); zero padding p folded into the gather
// and the scatter, never materialised) and the NCHW → CNHW move used by the backward pass.
//
// cols has one row per patch element (c, kh, kw) and one column per output pixel (n, oh, ow):
// the forward convolution is then W (OC × C·KH·KW) · cols, a GEMM whose B operand is contiguous
// along its rows, and whose output columns land directly in NCHW through the GEMM's column blocks.
#include "internal.h"
#include "optim_internal.h"
#include <string.h>

#include <emmintrin.h>

typedef struct { int64_t N, C, H, W, KH, KW, s, p, d, OH, OW; const float *in; float *out; } conv_ctx;

// Copies a short row (an output row of OW pixels) without a libc call per row (the attribute keeps
// the compiler from turning the loop back into one).
#define PK_NO_LIBC_COPY __attribute__((no_builtin("memcpy", "memmove")))
static inline PK_NO_LIBC_COPY void copy_row(float *restrict dst, const float *restrict src, int64_t n) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) _mm_storeu_ps(dst + i, _mm_loadu_ps(src + i));
    for (; i < n; i++) dst[i] = src[i];
}

// Output size of a window of KH×KW taps spaced d apart (extent d·(K−1)+1) over the padded image.
static int conv_dims(int64_t N, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t s, int64_t p,
                     int64_t d, int64_t *OH, int64_t *OW) {
    if (N < 0 || C < 0 || H < 0 || W < 0 || KH < 1 || KW < 1 || s < 1 || p < 0 || d < 1) return 0;
    if (KH > (INT32_MAX - 1) / d || KW > (INT32_MAX - 1) / d) return 0;
    const int64_t EH = d * (KH - 1) + 1, EW = d * (KW - 1) + 1;
    if (EH > H + 2 * p || EW > W + 2 * p) return 0;
    *OH = (H + 2 * p - EH) / s + 1;
    *OW = (W + 2 * p - EW) / s + 1;
    return 1;
}

// Output columns [lo, hi) whose input column ow·s + kw·d − p lies inside [0, W).
static inline void valid_cols(const conv_ctx *x, int64_t kw, int64_t *lo, int64_t *hi) {
    int64_t a = x->p - kw * x->d; // ow·s ≥ a
    *lo = a <= 0 ? 0 : (a + x->s - 1) / x->s;
    int64_t b = x->W - 1 + x->p - kw * x->d; // ow·s ≤ b
    *hi = b < 0 ? 0 : PK_MIN(x->OW, b / x->s + 1);
    if (*lo > *hi) *lo = *hi;
}

static PK_NO_LIBC_COPY void im2col_range(void *v, int64_t b, int64_t e) {
    // rows [b, e) of cols: row (c, kh, kw) holds x[n, c, oh·s+kh·d−p, ow·s+kw·d−p] (0 in the padding)
    // for every (n, oh, ow)
    const conv_ctx *x = v;
    const int64_t P = x->OH * x->OW, NP = x->N * P;
    for (int64_t row = b; row < e; row++) {
        int64_t c = row / (x->KH * x->KW), kh = (row / x->KW) % x->KH, kw = row % x->KW, lo, hi;
        valid_cols(x, kw, &lo, &hi);
        float *dst = x->out + row * NP;
        for (int64_t n = 0; n < x->N; n++) {
            const float *img = x->in + (n * x->C + c) * x->H * x->W;
            for (int64_t oh = 0; oh < x->OH; oh++) {
                const int64_t ih = oh * x->s + kh * x->d - x->p;
                if (ih < 0 || ih >= x->H) {
                    for (int64_t ow = 0; ow < x->OW; ow++) dst[ow] = 0.0f;
                } else {
                    const float *src = img + ih * x->W + kw * x->d - x->p;
                    for (int64_t ow = 0; ow < lo; ow++) dst[ow] = 0.0f;
                    if (x->s == 1) copy_row(dst + lo, src + lo, hi - lo);
                    else for (int64_t ow = lo; ow < hi; ow++) dst[ow] = src[ow * x->s];
                    for (int64_t ow = hi; ow < x->OW; ow++) dst[ow] = 0.0f;
                }
                dst += x->OW;
            }
        }
    }
}

pk_status pk_im2col_dilated_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                                int64_t s, int64_t p, int64_t d, const float *x, float *cols) {
    int64_t OH, OW;
    if (!conv_dims(N, C, H, W, KH, KW, s, p, d, &OH, &OW)) return PK_ERR_SHAPE;
    if (N == 0 || C == 0) return PK_OK;
    if (!x || !cols) return PK_ERR_NULL;
    if (pk_overlaps(x, (size_t)(N * C * H * W) * 4, cols, (size_t)(N * OH * OW * C * KH * KW) * 4))
        return PK_ERR_ALIAS;
    conv_ctx c = {N, C, H, W, KH, KW, s, p, d, OH, OW, x, cols};
    pk_parallel_for(C * KH * KW, 1, im2col_range, &c);
    return PK_OK;
}

pk_status pk_im2col_padded_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                               int64_t s, int64_t p, const float *x, float *cols) {
    return pk_im2col_dilated_f32(N, C, H, W, KH, KW, s, p, 1, x, cols);
}

pk_status pk_im2col_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                        int64_t s, const float *x, float *cols) {
    return pk_im2col_padded_f32(N, C, H, W, KH, KW, s, 0, x, cols);
}

static void col2im_range(void *v, int64_t b, int64_t e) {
    // images [b, e): dx[n] = Σ over the patch rows of dcols, added in row order; entries that fell
    // in the padding are dropped
    const conv_ctx *x = v;
    const int64_t P = x->OH * x->OW, NP = x->N * P, K = x->C * x->KH * x->KW;
    for (int64_t n = b; n < e; n++) {
        float *img0 = x->out + n * x->C * x->H * x->W;
        memset(img0, 0, (size_t)(x->C * x->H * x->W) * sizeof(float));
        for (int64_t row = 0; row < K; row++) {
            int64_t c = row / (x->KH * x->KW), kh = (row / x->KW) % x->KH, kw = row % x->KW, lo, hi;
            valid_cols(x, kw, &lo, &hi);
            const float *src = x->in + row * NP + n * P;
            float *img = img0 + c * x->H * x->W + kw * x->d - x->p;
            for (int64_t oh = 0; oh < x->OH; oh++, src += x->OW) {
                const int64_t ih = oh * x->s + kh * x->d - x->p;
                if (ih < 0 || ih >= x->H) continue;
                float *d = img + ih * x->W;
                if (x->s == 1) for (int64_t ow = lo; ow < hi; ow++) d[ow] += src[ow];
                else for (int64_t ow = lo; ow < hi; ow++) d[ow * x->s] += src[ow];
            }
        }
    }
}

pk_status pk_col2im_dilated_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                                int64_t s, int64_t p, int64_t d, const float *dcols, float *dx) {
    int64_t OH, OW;
    if (!conv_dims(N, C, H, W, KH, KW, s, p, d, &OH, &OW)) return PK_ERR_SHAPE;
    if (N == 0 || C == 0) return PK_OK;
    if (!dcols || !dx) return PK_ERR_NULL;
    if (pk_overlaps(dx, (size_t)(N * C * H * W) * 4, dcols, (size_t)(N * OH * OW * C * KH * KW) * 4))
        return PK_ERR_ALIAS;
    conv_ctx c = {N, C, H, W, KH, KW, s, p, d, OH, OW, dcols, dx};
    pk_parallel_for(N, 1, col2im_range, &c);
    return PK_OK;
}

pk_status pk_col2im_padded_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                               int64_t s, int64_t p, const float *dcols, float *dx) {
    return pk_col2im_dilated_f32(N, C, H, W, KH, KW, s, p, 1, dcols, dx);
}

pk_status pk_col2im_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                        int64_t s, const float *dcols, float *dx) {
    return pk_col2im_padded_f32(N, C, H, W, KH, KW, s, 0, dcols, dx);
}

typedef struct { int64_t N, C, P; const float *x; float *y; } move_ctx;

static void nchw_to_cnhw_range(void *v, int64_t b, int64_t e) {
    // planes [b, e) of C·N: y[c, n, :] = x[n, c, :]
    const move_ctx *m = v;
    for (int64_t q = b; q < e; q++) {
        int64_t c = q / m->N, n = q % m->N;
        memcpy(m->y + q * m->P, m->x + (n * m->C + c) * m->P, (size_t)m->P * sizeof(float));
    }
}

pk_status pk_nchw_to_cnhw_f32(int64_t N, int64_t C, int64_t P, const float *x, float *y) {
    if (N < 0 || C < 0 || P < 0) return PK_ERR_SHAPE;
    if (N == 0 || C == 0 || P == 0) return PK_OK;
    if (!x || !y) return PK_ERR_NULL;
    if (pk_overlaps(x, (size_t)(N * C * P) * 4, y, (size_t)(N * C * P) * 4)) return PK_ERR_ALIAS;
    move_ctx m = {N, C, P, x, y};
    pk_parallel_for(N * C, 16, nchw_to_cnhw_range, &m);
    return PK_OK;
}

typedef struct { int64_t N, C, P; const float *dy; float *db; } bias_ctx;

static void bias_grad_range(void *v, int64_t b, int64_t e) {
    // channels [b, e): db[c] = Σ_n Σ_p dy[n,c,p], n then p order
    const bias_ctx *x = v;
    for (int64_t c = b; c < e; c++) {
        float s = 0.0f;
        for (int64_t n = 0; n < x->N; n++) {
            const float *d = x->dy + (n * x->C + c) * x->P;
            float t = 0.0f;
            for (int64_t p = 0; p < x->P; p++) t += d[p];
            s += t;
        }
        x->db[c] = s;
    }
}

pk_status pk_bias_grad_nchw_f32(int64_t N, int64_t C, int64_t P, const float *dy, float *db) {
    if (N < 0 || C < 0 || P < 0) return PK_ERR_SHAPE;
    if (C == 0) return PK_OK;
    if (!db || (N > 0 && P > 0 && !dy)) return PK_ERR_NULL;
    if (pk_overlaps(db, (size_t)C * 4, dy, (size_t)(N * C * P) * 4)) return PK_ERR_ALIAS;
    bias_ctx c = {N, C, P, dy, db};
    pk_parallel_for(C, 1, bias_grad_range, &c);
    return PK_OK;
}

// ---- fused convolution: image chunks, each im2col'd into per-thread scratch and multiplied there
//
// A chunk holds about 1 MiB of columns, so im2col output, GEMM operands and col2im input stay in
// cache instead of streaming a batch-sized column matrix through memory. The chunk size depends
// on the shape only. With at least CONV_MIN_CHUNKS chunks they run in parallel, one thread per
// chunk; otherwise the whole batch is one chunk and the GEMMs inside parallelise. Either way each
// output element is computed by one thread in a fixed order, and the weight gradient sums
// per-chunk partials in chunk order: identical bits for any thread count.
#define CONV_CHUNK_BYTES (1 << 20)
#define CONV_MIN_CHUNKS 8

typedef struct {
    int64_t N, C, H, W, OC, KH, KW, s, p, d, OH, OW, K, P, per, chunks;
    const float *x, *w, *bias, *dy;
    const float *scale; // forward epilogue: y = act(scale·conv + bias) when scale or relu is set
    int relu;
    const uint8_t *mask;
    float *y, *dx, *partials;
    pk_status *status;
} fused_ctx;

static void fused_plan(fused_ctx *f) {
    f->OH = (f->H + 2 * f->p - f->d * (f->KH - 1) - 1) / f->s + 1;
    f->OW = (f->W + 2 * f->p - f->d * (f->KW - 1) - 1) / f->s + 1;
    f->K = f->C * f->KH * f->KW;
    f->P = f->OH * f->OW;
    int64_t per = CONV_CHUNK_BYTES / PK_MAX((int64_t)1, f->K * f->P * (int64_t)sizeof(float));
    f->per = PK_MAX((int64_t)1, PK_MIN(per, f->N));
    f->chunks = (f->N + f->per - 1) / f->per;
    if (f->chunks < CONV_MIN_CHUNKS) { f->per = f->N; f->chunks = 1; }
}

typedef struct { const fused_ctx *f; int64_t n0; } epilogue_ctx;

static void conv_epilogue_range(void *v, int64_t b, int64_t e) {
    // output planes [b, e) of the chunk starting at image n0 (plane = image·OC + channel), in place:
    // y = act(scale·y + shift)
    const epilogue_ctx *x = v;
    const fused_ctx *f = x->f;
    for (int64_t t = b; t < e; t++) {
        const int64_t n = x->n0 + t / f->OC, o = t % f->OC;
        float *restrict yp = f->y + (n * f->OC + o) * f->P;
        const float sc = f->scale ? f->scale[o] : 1.0f, sh = f->scale && f->bias ? f->bias[o] : 0.0f;
        if (f->relu) for (int64_t i = 0; i < f->P; i++) yp[i] = pk_relu1(yp[i] * sc + sh);
        else for (int64_t i = 0; i < f->P; i++) yp[i] = yp[i] * sc + sh;
    }
}

static pk_status conv_forward_chunk(const fused_ctx *f, int64_t q) {
    // images [q·per, q·per + nb): cols (K × nb·P) then y = (W ⊙ M)·cols + bias, stored NCHW
    int64_t n0 = q * f->per, nb = PK_MIN(f->per, f->N - n0), np = nb * f->P;
    float *cols = pk_scratch(4, (size_t)(f->K * np) * sizeof(float));
    if (!cols) return PK_ERR_NOMEM;
    pk_status st = pk_im2col_dilated_f32(nb, f->C, f->H, f->W, f->KH, f->KW, f->s, f->p, f->d, f->x + n0 * f->C * f->H * f->W, cols);
    if (st != PK_OK) return st;
    pk_gemm_desc d = {.m = f->OC, .n = np, .k = f->K, .alpha = 1.0f, .beta = 0.0f,
                      .A = f->w, .a_rs = f->K, .a_cs = 1, .MA = f->mask, .ma_rs = f->K, .ma_cs = 1,
                      .B = cols, .b_rs = np, .b_cs = 1,
                      .C = f->y + n0 * f->OC * f->P, .c_rs = f->P, .c_cs = 1, .c_cblock = f->P,
                      .c_cblock_stride = f->OC * f->P, .bias_row = f->scale ? NULL : f->bias};
    if ((st = pk_gemm_f32(&d)) != PK_OK || (!f->scale && !f->relu)) return st;
    // the chunk's output planes are still in cache: y = act(scale·y + shift) per channel; a chunk
    // holding the whole batch (its GEMM ran on every thread) spreads this pass over them too
    epilogue_ctx ec = {f, n0};
    if (f->chunks == 1) pk_parallel_for(nb * f->OC, 8, conv_epilogue_range, &ec);
    else conv_epilogue_range(&ec, 0, nb * f->OC);
    return PK_OK;
}

static PK_NO_LIBC_COPY pk_status conv_backward_chunk(const fused_ctx *f, int64_t q) {
    // images [q·per, q·per + nb): partial dW_q = dYc·colsᵀ; dx = col2im((W ⊙ M)ᵀ·dYc)
    int64_t n0 = q * f->per, nb = PK_MIN(f->per, f->N - n0), np = nb * f->P;
    float *cols = pk_scratch(4, (size_t)(f->K * np) * sizeof(float));
    float *dyc = pk_scratch(5, (size_t)(f->OC * np) * sizeof(float));
    if (!cols || !dyc) return PK_ERR_NOMEM;
    pk_status st = pk_im2col_dilated_f32(nb, f->C, f->H, f->W, f->KH, f->KW, f->s, f->p, f->d, f->x + n0 * f->C * f->H * f->W, cols);
    if (st != PK_OK) return st;
    // dY of the chunk as channels × pixels
    for (int64_t oc = 0; oc < f->OC; oc++)
        for (int64_t n = 0; n < nb; n++)
            copy_row(dyc + oc * np + n * f->P, f->dy + ((n0 + n) * f->OC + oc) * f->P, f->P);
    pk_gemm_desc g = {.m = f->OC, .n = f->K, .k = np, .alpha = 1.0f, .beta = 0.0f,
                      .A = dyc, .a_rs = np, .a_cs = 1, .B = cols, .b_rs = 1, .b_cs = np,
                      .C = f->partials + q * f->OC * f->K, .c_rs = f->K, .c_cs = 1};
    if ((st = pk_gemm_f32(&g)) != PK_OK) return st;
    if (!f->dx) return PK_OK;
    // the columns are no longer needed: reuse them for dcols
    pk_gemm_desc h = {.m = f->K, .n = np, .k = f->OC, .alpha = 1.0f, .beta = 0.0f,
                      .A = f->w, .a_rs = 1, .a_cs = f->K, .MA = f->mask, .ma_rs = 1, .ma_cs = f->K,
                      .B = dyc, .b_rs = np, .b_cs = 1, .C = cols, .c_rs = np, .c_cs = 1};
    if ((st = pk_gemm_f32(&h)) != PK_OK) return st;
    return pk_col2im_dilated_f32(nb, f->C, f->H, f->W, f->KH, f->KW, f->s, f->p, f->d, cols, f->dx + n0 * f->C * f->H * f->W);
}

static void fused_forward_range(void *v, int64_t b, int64_t e) {
    // chunks [b, e)
    fused_ctx *f = v;
    for (int64_t q = b; q < e; q++) { pk_status st = conv_forward_chunk(f, q); if (st != PK_OK) f->status[q] = st; }
}

static void fused_backward_range(void *v, int64_t b, int64_t e) {
    // chunks [b, e)
    fused_ctx *f = v;
    for (int64_t q = b; q < e; q++) { pk_status st = conv_backward_chunk(f, q); if (st != PK_OK) f->status[q] = st; }
}

static pk_status conv_check(int64_t N, int64_t C, int64_t H, int64_t W, int64_t OC, int64_t KH, int64_t KW,
                            int64_t s, int64_t p, int64_t d) {
    int64_t OH, OW;
    if (OC < 0 || !conv_dims(N, C, H, W, KH, KW, s, p, d, &OH, &OW)) return PK_ERR_SHAPE;
    return PK_OK;
}

static pk_status run_chunks(fused_ctx *f, pk_range_fn fn) {
    pk_status *status = pk_scratch(7, (size_t)f->chunks * sizeof(pk_status));
    if (!status) return PK_ERR_NOMEM;
    for (int64_t q = 0; q < f->chunks; q++) status[q] = PK_OK;
    f->status = status;
    if (f->chunks == 1) fn(f, 0, 1); // one chunk: its GEMMs parallelise inside
    else pk_parallel_for(f->chunks, 1, fn, f);
    for (int64_t q = 0; q < f->chunks; q++) if (status[q] != PK_OK) return status[q];
    return PK_OK;
}

// Forward of a padded convolution with the per-channel epilogue of pk_conv2d_implicit_forward_f32.
// Narrow output rows with large weights go through the implicit GEMM, which packs the weights once
// for the whole batch (chunked im2col re-packs them for every chunk of a few small images) and whose
// patch gather does not depend on the row length. Other undilated stride-1 convolutions run the
// direct kernels of conv_direct.c on AVX2 machines (no patches at all). Everything else — wide rows
// with stride > 1, small weights (few output channels to share each gathered patch) and dilated
// kernels — runs chunked im2col + GEMM with the padding and the dilation folded into im2col.
#define CONV_WIDE_ROWS 20
// with the direct kernels available, only rows narrower than this stay with the implicit GEMM: from
// 14-pixel rows up the direct forward was as fast or faster (AVX2 EPYC, resnet18's 3×3 layers)
#define CONV_WIDE_ROWS_DIRECT 10
#define CONV_IMPLICIT_MIN_WEIGHTS (64 * 64 * 9)
// stride > 1 convolutions (which the direct kernels cannot run) with output rows of 5 to 9 pixels take the
// implicit GEMM from far fewer weights: chunked im2col re-packs the weights for every few images, and
// on 7-wide rows that dominated (AVX2 EPYC, 2 threads, 32 → 64 channels, stride 2, 14 → 7 pixels:
// 3 × 3 27-36 → 42-58 GMAC/s, 1 × 1 6-10 → 12-31, at batch 64 and 128; 64 → 128 1 × 1 10-26 → 41-43).
// At 14-wide rows neither path won consistently; at 4-wide ones im2col won for 1 × 1 kernels
// (128 → 256, 7 → 4 pixels: 48-50 against 26-27 GMAC/s).
#define CONV_IMPLICIT_NARROW_MIN_WEIGHTS 2048
#define CONV_IMPLICIT_NARROW_MIN_ROW 5

pk_status pk_conv2d_dilated_forward_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t OC, int64_t KH, int64_t KW,
                                        int64_t s, int64_t p, int64_t d, int relu, const float *x, const float *w,
                                        const uint8_t *mask, const float *scale, const float *shift, float *y) {
    pk_status st = conv_check(N, C, H, W, OC, KH, KW, s, p, d);
    if (st != PK_OK) return st;
    const int64_t OW = (W + 2 * p - d * (KW - 1) - 1) / s + 1;
    const int direct = d == 1 && pk_conv2d_direct_eligible(C, KH, KW, s, p);
    const int64_t weights = OC * C * KH * KW;
    const int implicit = d == 1 && ((OW < (direct ? CONV_WIDE_ROWS_DIRECT : CONV_WIDE_ROWS) &&
                                     weights >= CONV_IMPLICIT_MIN_WEIGHTS) ||
                                    (s > 1 && !direct && OW >= CONV_IMPLICIT_NARROW_MIN_ROW && OW < CONV_WIDE_ROWS_DIRECT &&
                                     weights >= CONV_IMPLICIT_NARROW_MIN_WEIGHTS));
    if (direct && !implicit) {
        if (N == 0 || OC == 0) return PK_OK;
        if (!x || !w || !y) return PK_ERR_NULL;
        const int64_t OH = (H + 2 * p - KH) / s + 1;
        size_t yb = (size_t)(N * OC * OH * OW) * 4;
        if (pk_overlaps(y, yb, x, (size_t)(N * C * H * W) * 4) || pk_overlaps(y, yb, w, (size_t)(OC * C * KH * KW) * 4) ||
            (shift && pk_overlaps(y, yb, shift, (size_t)OC * 4)) || (scale && pk_overlaps(y, yb, scale, (size_t)OC * 4)) ||
            (mask && pk_overlaps(y, yb, mask, (size_t)(OC * C * KH * KW))))
            return PK_ERR_ALIAS;
        return pk_conv2d_direct_forward_f32(N, C, H, W, OC, KH, KW, p, relu, x, w, mask, scale, shift, y);
    }
    if (implicit)
        return pk_conv2d_implicit_forward_f32(N, C, H, W, OC, KH, KW, s, p, relu, x, w, mask, scale, shift, y);
    // no input channel: y = act(shift) whatever the taps, so the window's extent stands for the kernel
    if (C == 0)
        return pk_conv2d_implicit_forward_f32(N, C, H, W, OC, d * (KH - 1) + 1, d * (KW - 1) + 1, s, p, relu, x, w, mask,
                                              scale, shift, y);
    if (N == 0 || OC == 0) return PK_OK;
    if (!x || !w || !y) return PK_ERR_NULL;
    fused_ctx f = {.N = N, .C = C, .H = H, .W = W, .OC = OC, .KH = KH, .KW = KW, .s = s, .p = p, .d = d,
                   .x = x, .w = w, .bias = shift, .scale = scale, .relu = relu != 0, .mask = mask, .y = y};
    fused_plan(&f);
    size_t yb = (size_t)(N * OC * f.P) * 4;
    if (pk_overlaps(y, yb, x, (size_t)(N * C * H * W) * 4) || pk_overlaps(y, yb, w, (size_t)(OC * f.K) * 4) ||
        (shift && pk_overlaps(y, yb, shift, (size_t)OC * 4)) || (scale && pk_overlaps(y, yb, scale, (size_t)OC * 4)) ||
        (mask && pk_overlaps(y, yb, mask, (size_t)(OC * f.K))))
        return PK_ERR_ALIAS;
    return run_chunks(&f, fused_forward_range);
}

pk_status pk_conv2d_padded_forward_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t OC, int64_t KH, int64_t KW,
                                       int64_t s, int64_t p, int relu, const float *x, const float *w,
                                       const uint8_t *mask, const float *scale, const float *shift, float *y) {
    return pk_conv2d_dilated_forward_f32(N, C, H, W, OC, KH, KW, s, p, 1, relu, x, w, mask, scale, shift, y);
}

pk_status pk_conv2d_forward_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t OC, int64_t KH, int64_t KW,
                                int64_t s, const float *x, const float *w, const uint8_t *mask,
                                const float *bias, float *y) {
    pk_status st = conv_check(N, C, H, W, OC, KH, KW, s, 0, 1);
    if (st != PK_OK) return st;
    if (N == 0 || OC == 0) return PK_OK;
    if (!x || !w || !y) return PK_ERR_NULL;
    fused_ctx f = {.N = N, .C = C, .H = H, .W = W, .OC = OC, .KH = KH, .KW = KW, .s = s, .d = 1,
                   .x = x, .w = w, .bias = bias, .mask = mask, .y = y};
    fused_plan(&f);
    size_t yb = (size_t)(N * OC * f.P) * 4;
    if (pk_overlaps(y, yb, x, (size_t)(N * C * H * W) * 4) || pk_overlaps(y, yb, w, (size_t)(OC * f.K) * 4) ||
        (bias && pk_overlaps(y, yb, bias, (size_t)OC * 4)) || (mask && pk_overlaps(y, yb, mask, (size_t)(OC * f.K))))
        return PK_ERR_ALIAS;
    return run_chunks(&f, fused_forward_range);
}

typedef struct {
    int64_t chunks, count;
    const float *partials;
    const uint8_t *mask;
    float *dw;
    const pk_update_desc *u;
    pk_update_consts uc;
} dw_reduce_ctx;

static void dw_reduce_range(void *v, int64_t b, int64_t e) {
    // weights [b, e): g = Σ_q partial_q in chunk order; masked entries: dw = 0, no update;
    // kept entries: dw = g and, when fused, the optimizer step from g
    const dw_reduce_ctx *r = v;
    float g[256];
    for (int64_t i0 = b; i0 < e; i0 += 256) {
        const int64_t n = PK_MIN((int64_t)256, e - i0);
        for (int64_t j = 0; j < n; j++) g[j] = r->partials[i0 + j];
        for (int64_t q = 1; q < r->chunks; q++) {
            const float *p = r->partials + q * r->count + i0;
            for (int64_t j = 0; j < n; j++) g[j] += p[j];
        }
        if (r->dw)
            for (int64_t j = 0; j < n; j++) r->dw[i0 + j] = (!r->mask || r->mask[i0 + j]) ? g[j] : 0.0f;
        if (r->u)
            pk_update_run(&r->uc, n, g, r->u->w + i0, r->u->m ? r->u->m + i0 : NULL, r->u->v ? r->u->v + i0 : NULL,
                          r->mask ? r->mask + i0 : NULL, 1);
    }
}

pk_status pk_conv2d_dilated_backward_update_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t OC, int64_t KH,
                                                int64_t KW, int64_t s, int64_t p, int64_t d, const float *x, const float *w,
                                                const uint8_t *mask, const float *dy, float *dw, float *db, float *dx,
                                                const pk_update_desc *u) {
    pk_status st = conv_check(N, C, H, W, OC, KH, KW, s, p, d);
    if (st != PK_OK) return st;
    if (u && (st = pk_update_check(u)) != PK_OK) return st;
    if (OC == 0) return PK_OK;
    if (!w || (!dw && !u) || (N > 0 && (!x || !dy))) return PK_ERR_NULL;
    fused_ctx f = {.N = N, .C = C, .H = H, .W = W, .OC = OC, .KH = KH, .KW = KW, .s = s, .p = p, .d = d,
                   .x = x, .w = w, .dy = dy, .mask = mask, .dx = dx};
    fused_plan(&f);
    size_t wb = (size_t)(OC * f.K) * 4, xb = (size_t)(N * C * H * W) * 4, yb = (size_t)(N * OC * f.P) * 4;
    if ((dw && (pk_overlaps(dw, wb, w, wb) || pk_overlaps(dw, wb, x, xb) || pk_overlaps(dw, wb, dy, yb))) ||
        (dx && (pk_overlaps(dx, xb, x, xb) || pk_overlaps(dx, xb, dy, yb) || pk_overlaps(dx, xb, w, wb) ||
                (dw && pk_overlaps(dx, xb, dw, wb)))) ||
        (db && (pk_overlaps(db, (size_t)OC * 4, dy, yb) || (dw && pk_overlaps(db, (size_t)OC * 4, dw, wb)))))
        return PK_ERR_ALIAS;
    if (u) {
        if (u->ld != f.K) return PK_ERR_SHAPE;
        // the parameter and its state must not overlap each other or any other operand
        // (u->w may be the very weights w: they are read for dx before the step)
        const float *st[3] = {u->w, u->m, u->v};
        for (int a = 0; a < 3; a++) {
            if (!st[a]) continue;
            if ((st[a] != w || a > 0) && pk_overlaps(st[a], wb, w, wb)) return PK_ERR_ALIAS;
            if (pk_overlaps(st[a], wb, x, xb) || pk_overlaps(st[a], wb, dy, yb) || (dx && pk_overlaps(st[a], wb, dx, xb)) ||
                (dw && pk_overlaps(st[a], wb, dw, wb)) || (db && pk_overlaps(st[a], wb, db, (size_t)OC * 4)))
                return PK_ERR_ALIAS;
            for (int b2 = a + 1; b2 < 3; b2++) if (st[b2] && pk_overlaps(st[a], wb, st[b2], wb)) return PK_ERR_ALIAS;
        }
    }
    if (db) {
        if (N == 0 || f.P == 0) { for (int64_t i = 0; i < OC; i++) db[i] = 0.0f; }
        else if ((st = pk_bias_grad_nchw_f32(N, OC, f.P, dy, db)) != PK_OK) return st;
    }
    float *partials;
    if (N == 0 || f.P == 0) {
        partials = pk_scratch(6, (size_t)(OC * f.K) * sizeof(float));
        if (!partials) return PK_ERR_NOMEM;
        for (int64_t i = 0; i < OC * f.K; i++) partials[i] = 0.0f;
        f.chunks = 1;
    } else {
        if (d == 1 && pk_conv2d_direct_eligible(C, KH, KW, s, p)) {
            const int64_t per = pk_conv2d_direct_wgrad_chunks(N, C, H, W, KH, KW, p);
            f.chunks = (N + per - 1) / per;
            partials = pk_scratch(6, (size_t)(f.chunks * OC * f.K) * sizeof(float));
            if (!partials) return PK_ERR_NOMEM;
            if ((st = pk_conv2d_direct_weight_grad_f32(N, C, H, W, OC, KH, KW, p, x, dy, per, partials)) != PK_OK) return st;
            if (dx && (st = pk_conv2d_direct_input_grad_f32(N, C, H, W, OC, KH, KW, p, w, mask, dy, dx)) != PK_OK) return st;
        } else {
            partials = pk_scratch(6, (size_t)(f.chunks * OC * f.K) * sizeof(float));
            if (!partials) return PK_ERR_NOMEM;
            f.partials = partials;
            if ((st = run_chunks(&f, fused_backward_range)) != PK_OK) return st;
        }
    }
    // dx is complete: the weights may change now
    dw_reduce_ctx r = {f.chunks, OC * f.K, partials, mask, dw, u, {0}};
    if (u) r.uc = pk_update_prepare(u);
    pk_parallel_for(OC * f.K, 4096, dw_reduce_range, &r);
    return PK_OK;
}

pk_status pk_conv2d_padded_backward_update_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t OC, int64_t KH,
                                               int64_t KW, int64_t s, int64_t p, const float *x, const float *w,
                                               const uint8_t *mask, const float *dy, float *dw, float *db, float *dx,
                                               const pk_update_desc *u) {
    return pk_conv2d_dilated_backward_update_f32(N, C, H, W, OC, KH, KW, s, p, 1, x, w, mask, dy, dw, db, dx, u);
}

pk_status pk_conv2d_backward_update_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t OC, int64_t KH,
                                        int64_t KW, int64_t s, const float *x, const float *w,
                                        const uint8_t *mask, const float *dy, float *dw, float *db, float *dx,
                                        const pk_update_desc *u) {
    return pk_conv2d_padded_backward_update_f32(N, C, H, W, OC, KH, KW, s, 0, x, w, mask, dy, dw, db, dx, u);
}

pk_status pk_conv2d_backward_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t OC, int64_t KH, int64_t KW,
                                 int64_t s, const float *x, const float *w, const uint8_t *mask,
                                 const float *dy, float *dw, float *db, float *dx) {
    if (!dw && OC > 0) return PK_ERR_NULL;
    return pk_conv2d_backward_update_f32(N, C, H, W, OC, KH, KW, s, x, w, mask, dy, dw, db, dx, NULL);
}

// ---- zero padding for padded convolutions: y (N×C×(H+2p)×(W+2p)) := x with a border of p zeros,
// and the inverse crop of a padded gradient.

typedef struct { int64_t H, W, p; const float *x; float *y; } pad_ctx;

static void pad_range(void *v, int64_t b, int64_t e) {
    const pad_ctx *c = v;
    int64_t PH = c->H + 2 * c->p, PW = c->W + 2 * c->p;
    for (int64_t q = b; q < e; q++) {
        float *y = c->y + q * PH * PW;
        const float *x = c->x + q * c->H * c->W;
        memset(y, 0, (size_t)(c->p * PW) * 4);
        for (int64_t i = 0; i < c->H; i++) {
            float *row = y + (c->p + i) * PW;
            for (int64_t j = 0; j < c->p; j++) { row[j] = 0.0f; row[c->p + c->W + j] = 0.0f; }
            memcpy(row + c->p, x + i * c->W, (size_t)c->W * 4);
        }
        memset(y + (c->p + c->H) * PW, 0, (size_t)(c->p * PW) * 4);
    }
}

static void crop_range(void *v, int64_t b, int64_t e) {
    const pad_ctx *c = v;
    int64_t PH = c->H + 2 * c->p, PW = c->W + 2 * c->p;
    for (int64_t q = b; q < e; q++)
        for (int64_t i = 0; i < c->H; i++)
            memcpy(c->y + (q * c->H + i) * c->W, c->x + q * PH * PW + (c->p + i) * PW + c->p, (size_t)c->W * 4);
}

pk_status pk_pad2d_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t p, const float *x, float *y) {
    if (N < 0 || C < 0 || H < 0 || W < 0 || p < 0) return PK_ERR_SHAPE;
    if (N * C == 0) return PK_OK;
    if (!x || !y) return PK_ERR_NULL;
    if (pk_overlaps(x, (size_t)(N * C * H * W) * 4, y, (size_t)(N * C * (H + 2 * p) * (W + 2 * p)) * 4)) return PK_ERR_ALIAS;
    pad_ctx c = {H, W, p, x, y};
    pk_parallel_for(N * C, 16, pad_range, &c);
    return PK_OK;
}

pk_status pk_crop2d_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t p, const float *x, float *y) {
    if (N < 0 || C < 0 || H < 0 || W < 0 || p < 0) return PK_ERR_SHAPE;
    if (N * C * H * W == 0) return PK_OK;
    if (!x || !y) return PK_ERR_NULL;
    if (pk_overlaps(y, (size_t)(N * C * H * W) * 4, x, (size_t)(N * C * (H + 2 * p) * (W + 2 * p)) * 4)) return PK_ERR_ALIAS;
    pad_ctx c = {H, W, p, x, y};
    pk_parallel_for(N * C, 16, crop_range, &c);
    return PK_OK;
}
