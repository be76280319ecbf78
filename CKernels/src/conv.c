// Convolution helpers: im2col / col2im (no padding, stride s) and NCHW <-> NHWC layout moves.
#include "internal.h"
#include <string.h>

typedef struct { int64_t N, C, H, W, KH, KW, s, OH, OW; const float *in; float *out; } conv_ctx;

static int conv_dims(int64_t N, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t s,
                     int64_t *OH, int64_t *OW) {
    if (N < 0 || C < 0 || H < 0 || W < 0 || KH < 1 || KW < 1 || s < 1) return 0;
    if (KH > H || KW > W) return 0;
    *OH = (H - KH) / s + 1;
    *OW = (W - KW) / s + 1;
    return 1;
}

static void im2col_range(void *v, int64_t b, int64_t e) {
    // rows [b, e) of cols: row r = (n, oh, ow), C·KH·KW columns in (c, kh, kw) order
    const conv_ctx *x = v;
    const int64_t K = x->C * x->KH * x->KW, P = x->OH * x->OW;
    for (int64_t r = b; r < e; r++) {
        int64_t n = r / P, pos = r % P, oh = pos / x->OW, ow = pos % x->OW;
        float *dst = x->out + r * K;
        for (int64_t c = 0; c < x->C; c++) {
            const float *img = x->in + ((n * x->C + c) * x->H + oh * x->s) * x->W + ow * x->s;
            for (int64_t kh = 0; kh < x->KH; kh++) {
                memcpy(dst, img + kh * x->W, (size_t)x->KW * sizeof(float));
                dst += x->KW;
            }
        }
    }
}

pk_status pk_im2col_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                        int64_t s, const float *x, float *cols) {
    int64_t OH, OW;
    if (!conv_dims(N, C, H, W, KH, KW, s, &OH, &OW)) return PK_ERR_SHAPE;
    if (N == 0 || C == 0) return PK_OK;
    if (!x || !cols) return PK_ERR_NULL;
    if (pk_overlaps(x, (size_t)(N * C * H * W) * 4, cols, (size_t)(N * OH * OW * C * KH * KW) * 4))
        return PK_ERR_ALIAS;
    conv_ctx c = {N, C, H, W, KH, KW, s, OH, OW, x, cols};
    pk_parallel_for(N * OH * OW, 64, im2col_range, &c);
    return PK_OK;
}

static void col2im_range(void *v, int64_t b, int64_t e) {
    // images [b, e): dx[n] = Σ over its rows of dcols, scattered in row order
    const conv_ctx *x = v;
    const int64_t K = x->C * x->KH * x->KW, P = x->OH * x->OW;
    for (int64_t n = b; n < e; n++) {
        float *img0 = x->out + n * x->C * x->H * x->W;
        memset(img0, 0, (size_t)(x->C * x->H * x->W) * sizeof(float));
        for (int64_t pos = 0; pos < P; pos++) {
            int64_t oh = pos / x->OW, ow = pos % x->OW;
            const float *src = x->in + (n * P + pos) * K;
            for (int64_t c = 0; c < x->C; c++) {
                float *img = img0 + (c * x->H + oh * x->s) * x->W + ow * x->s;
                for (int64_t kh = 0; kh < x->KH; kh++) {
                    for (int64_t kw = 0; kw < x->KW; kw++) img[kh * x->W + kw] += src[kw];
                    src += x->KW;
                }
            }
        }
    }
}

pk_status pk_col2im_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                        int64_t s, const float *dcols, float *dx) {
    int64_t OH, OW;
    if (!conv_dims(N, C, H, W, KH, KW, s, &OH, &OW)) return PK_ERR_SHAPE;
    if (N == 0 || C == 0) return PK_OK;
    if (!dcols || !dx) return PK_ERR_NULL;
    if (pk_overlaps(dx, (size_t)(N * C * H * W) * 4, dcols, (size_t)(N * OH * OW * C * KH * KW) * 4))
        return PK_ERR_ALIAS;
    conv_ctx c = {N, C, H, W, KH, KW, s, OH, OW, dcols, dx};
    pk_parallel_for(N, 1, col2im_range, &c);
    return PK_OK;
}

typedef struct { int64_t N, A, B; const float *x; float *y; } tr_ctx;

static void transpose_range(void *v, int64_t b, int64_t e) {
    // images [b, e): y[n] (B×A) = x[n] (A×B)ᵀ, in 32×32 tiles
    const tr_ctx *t = v;
    for (int64_t n = b; n < e; n++) {
        const float *x = t->x + n * t->A * t->B;
        float *y = t->y + n * t->A * t->B;
        for (int64_t a0 = 0; a0 < t->A; a0 += 32)
            for (int64_t b0 = 0; b0 < t->B; b0 += 32)
                for (int64_t a = a0; a < PK_MIN(a0 + 32, t->A); a++)
                    for (int64_t c = b0; c < PK_MIN(b0 + 32, t->B); c++) y[c * t->A + a] = x[a * t->B + c];
    }
}

static pk_status batched_transpose(int64_t N, int64_t A, int64_t B, const float *x, float *y) {
    if (N < 0 || A < 0 || B < 0) return PK_ERR_SHAPE;
    if (N == 0 || A == 0 || B == 0) return PK_OK;
    if (!x || !y) return PK_ERR_NULL;
    if (pk_overlaps(x, (size_t)(N * A * B) * 4, y, (size_t)(N * A * B) * 4)) return PK_ERR_ALIAS;
    tr_ctx c = {N, A, B, x, y};
    pk_parallel_for(N, 1, transpose_range, &c);
    return PK_OK;
}

pk_status pk_nhwc_to_nchw_f32(int64_t N, int64_t P, int64_t C, const float *x, float *y) {
    return batched_transpose(N, P, C, x, y);
}

pk_status pk_nchw_to_nhwc_f32(int64_t N, int64_t C, int64_t P, const float *x, float *y) {
    return batched_transpose(N, C, P, x, y);
}

typedef struct { int64_t N, C, P; const float *bias; const float *dy; float *y; } bias_ctx;

static void bias_add_range(void *v, int64_t b, int64_t e) {
    // planes [b, e) of N·C: y[n,c,:] += bias[c]
    const bias_ctx *x = v;
    for (int64_t q = b; q < e; q++) {
        float bv = x->bias[q % x->C];
        float *y = x->y + q * x->P;
        for (int64_t p = 0; p < x->P; p++) y[p] += bv;
    }
}

pk_status pk_bias_add_nchw_f32(int64_t N, int64_t C, int64_t P, const float *bias, float *y) {
    if (N < 0 || C < 0 || P < 0) return PK_ERR_SHAPE;
    if (N == 0 || C == 0 || P == 0) return PK_OK;
    if (!bias || !y) return PK_ERR_NULL;
    if (pk_overlaps(bias, (size_t)C * 4, y, (size_t)(N * C * P) * 4)) return PK_ERR_ALIAS;
    bias_ctx c = {N, C, P, bias, NULL, y};
    pk_parallel_for(N * C, 16, bias_add_range, &c);
    return PK_OK;
}

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
        x->y[c] = s;
    }
}

pk_status pk_bias_grad_nchw_f32(int64_t N, int64_t C, int64_t P, const float *dy, float *db) {
    if (N < 0 || C < 0 || P < 0) return PK_ERR_SHAPE;
    if (C == 0) return PK_OK;
    if (!db || (N > 0 && P > 0 && !dy)) return PK_ERR_NULL;
    if (pk_overlaps(db, (size_t)C * 4, dy, (size_t)(N * C * P) * 4)) return PK_ERR_ALIAS;
    bias_ctx c = {N, C, P, NULL, dy, db};
    pk_parallel_for(C, 1, bias_grad_range, &c);
    return PK_OK;
}
