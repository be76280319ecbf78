// Convolution helpers: im2col / col2im in the "patch-major" layout (no padding, stride s) and the
// NCHW → CNHW move used by the backward pass.
//
// cols has one row per patch element (c, kh, kw) and one column per output pixel (n, oh, ow):
// the forward convolution is then W (OC × C·KH·KW) · cols, a GEMM whose B operand is contiguous
// along its rows, and whose output columns land directly in NCHW through the GEMM's column blocks.
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
    // rows [b, e) of cols: row (c, kh, kw) holds x[n, c, oh·s+kh, ow·s+kw] for every (n, oh, ow)
    const conv_ctx *x = v;
    const int64_t P = x->OH * x->OW, NP = x->N * P;
    for (int64_t row = b; row < e; row++) {
        int64_t c = row / (x->KH * x->KW), kh = (row / x->KW) % x->KH, kw = row % x->KW;
        float *dst = x->out + row * NP;
        for (int64_t n = 0; n < x->N; n++) {
            const float *img = x->in + (n * x->C + c) * x->H * x->W + kh * x->W + kw;
            for (int64_t oh = 0; oh < x->OH; oh++) {
                const float *src = img + oh * x->s * x->W;
                if (x->s == 1) memcpy(dst, src, (size_t)x->OW * sizeof(float));
                else for (int64_t ow = 0; ow < x->OW; ow++) dst[ow] = src[ow * x->s];
                dst += x->OW;
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
    pk_parallel_for(C * KH * KW, 1, im2col_range, &c);
    return PK_OK;
}

static void col2im_range(void *v, int64_t b, int64_t e) {
    // images [b, e): dx[n] = Σ over the patch rows of dcols, added in row order
    const conv_ctx *x = v;
    const int64_t P = x->OH * x->OW, NP = x->N * P, K = x->C * x->KH * x->KW;
    for (int64_t n = b; n < e; n++) {
        float *img0 = x->out + n * x->C * x->H * x->W;
        memset(img0, 0, (size_t)(x->C * x->H * x->W) * sizeof(float));
        for (int64_t row = 0; row < K; row++) {
            int64_t c = row / (x->KH * x->KW), kh = (row / x->KW) % x->KH, kw = row % x->KW;
            const float *src = x->in + row * NP + n * P;
            float *img = img0 + c * x->H * x->W + kh * x->W + kw;
            for (int64_t oh = 0; oh < x->OH; oh++) {
                float *d = img + oh * x->s * x->W;
                if (x->s == 1) for (int64_t ow = 0; ow < x->OW; ow++) d[ow] += src[ow];
                else for (int64_t ow = 0; ow < x->OW; ow++) d[ow * x->s] += src[ow];
                src += x->OW;
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
