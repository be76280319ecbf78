// Max pooling: k×k windows with stride s and implicit padding p (floor mode, PyTorch's MaxPool2d and
// ONNX's MaxPool): output (oh, ow) takes the maximum of the pixels (oh·s − p + i, ow·s − p + j),
// i, j < k, that lie inside the image (the padding never wins: it acts as −∞), with its argmax index
// for the backward pass. 2p ≤ k keeps at least one real pixel in every window.
#include "internal.h"
#include <string.h>

typedef struct { int64_t N, C, H, W, k, s, p, OH, OW; const float *x; const float *dy; float *y; int32_t *idx; const int32_t *cidx; } pool_ctx;

// Window update: t replaces the running max when larger, or when it is the first NaN seen.
#define PK_POOL_TAKE(t, bv) ((t) > (bv) || ((t) != (t) && (bv) == (bv)))

static void pool2_fwd_plane(const float *x, float *y, int32_t *id, int64_t W, int64_t OH, int64_t OW) {
    // OH×OW outputs of one plane, 2×2 windows with stride 2, no padding: (0,0) (0,1) (1,0) (1,1) in scan order
    for (int64_t oh = 0; oh < OH; oh++) {
        const float *r0 = x + 2 * oh * W, *r1 = r0 + W;
        for (int64_t ow = 0; ow < OW; ow++) {
            int64_t at = 2 * oh * W + 2 * ow;
            float bv = r0[2 * ow];
            int64_t best = at;
            float t = r0[2 * ow + 1];
            if (PK_POOL_TAKE(t, bv)) { bv = t; best = at + 1; }
            t = r1[2 * ow];
            if (PK_POOL_TAKE(t, bv)) { bv = t; best = at + W; }
            t = r1[2 * ow + 1];
            if (PK_POOL_TAKE(t, bv)) { bv = t; best = at + W + 1; }
            y[oh * OW + ow] = bv;
            id[oh * OW + ow] = (int32_t)best;
        }
    }
}

static void pool_fwd_range(void *v, int64_t b, int64_t e) {
    // planes [b, e) of N·C: each OH×OW output scans the in-image part of its window in row order
    const pool_ctx *c = v;
    if (c->k == 2 && c->s == 2 && c->p == 0) {
        for (int64_t q = b; q < e; q++)
            pool2_fwd_plane(c->x + q * c->H * c->W, c->y + q * c->OH * c->OW, c->idx + q * c->OH * c->OW, c->W,
                            c->OH, c->OW);
        return;
    }
    for (int64_t q = b; q < e; q++) {
        const float *x = c->x + q * c->H * c->W;
        float *y = c->y + q * c->OH * c->OW;
        int32_t *id = c->idx + q * c->OH * c->OW;
        for (int64_t oh = 0; oh < c->OH; oh++) {
            const int64_t h0 = PK_MAX(oh * c->s - c->p, (int64_t)0), h1 = PK_MIN(oh * c->s - c->p + c->k, c->H);
            for (int64_t ow = 0; ow < c->OW; ow++) {
                const int64_t w0 = PK_MAX(ow * c->s - c->p, (int64_t)0), w1 = PK_MIN(ow * c->s - c->p + c->k, c->W);
                int64_t best = h0 * c->W + w0;
                float bv = x[best];
                for (int64_t i = h0; i < h1; i++)
                    for (int64_t j = w0; j < w1; j++) {
                        int64_t at = i * c->W + j;
                        float t = x[at];
                        if (PK_POOL_TAKE(t, bv)) { bv = t; best = at; }
                    }
                y[oh * c->OW + ow] = bv;
                id[oh * c->OW + ow] = (int32_t)best;
            }
        }
    }
}

static int pool_dims(int64_t N, int64_t C, int64_t H, int64_t W, int64_t k, int64_t s, int64_t p, int64_t *OH, int64_t *OW) {
    if (N < 0 || C < 0 || H < 1 || W < 1 || k < 1 || s < 1 || p < 0 || 2 * p > k) return 0;
    if (k > H + 2 * p || k > W + 2 * p || H * W > INT32_MAX) return 0;
    *OH = (H + 2 * p - k) / s + 1;
    *OW = (W + 2 * p - k) / s + 1;
    return 1;
}

pk_status pk_maxpool2d_forward_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t k, int64_t s, int64_t p,
                                   const float *x, float *y, int32_t *idx) {
    int64_t OH, OW;
    if (!pool_dims(N, C, H, W, k, s, p, &OH, &OW)) return PK_ERR_SHAPE;
    if (N == 0 || C == 0) return PK_OK;
    if (!x || !y || !idx) return PK_ERR_NULL;
    if (pk_overlaps(x, (size_t)(N * C * H * W) * 4, y, (size_t)(N * C * OH * OW) * 4)) return PK_ERR_ALIAS;
    pool_ctx c = {N, C, H, W, k, s, p, OH, OW, x, NULL, y, idx, NULL};
    pk_parallel_for(N * C, 8, pool_fwd_range, &c);
    return PK_OK;
}

static void pool_bwd_range(void *v, int64_t b, int64_t e) {
    // planes [b, e): zero the plane, then add each output gradient at its argmax, outputs in order
    // (overlapping windows, s < k, may share an argmax)
    const pool_ctx *c = v;
    for (int64_t q = b; q < e; q++) {
        float *dx = c->y + q * c->H * c->W;
        memset(dx, 0, (size_t)(c->H * c->W) * sizeof(float));
        const float *dy = c->dy + q * c->OH * c->OW;
        const int32_t *id = c->cidx + q * c->OH * c->OW;
        for (int64_t o = 0; o < c->OH * c->OW; o++) {
            int32_t at = id[o];
            if (at >= 0 && at < c->H * c->W) dx[at] += dy[o];
        }
    }
}

pk_status pk_maxpool2d_backward_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t k, int64_t s, int64_t p,
                                    const float *dy, const int32_t *idx, float *dx) {
    int64_t OH, OW;
    if (!pool_dims(N, C, H, W, k, s, p, &OH, &OW)) return PK_ERR_SHAPE;
    if (N == 0 || C == 0) return PK_OK;
    if (!dy || !idx || !dx) return PK_ERR_NULL;
    if (pk_overlaps(dx, (size_t)(N * C * H * W) * 4, dy, (size_t)(N * C * OH * OW) * 4)) return PK_ERR_ALIAS;
    pool_ctx c = {N, C, H, W, k, s, p, OH, OW, NULL, dy, dx, NULL, idx};
    pk_parallel_for(N * C, 8, pool_bwd_range, &c);
    return PK_OK;
}

// ---- average pooling: kh×kw windows, stride s, zero padding p counted in the divisor (PyTorch's
// AvgPool2d default, count_include_pad=True); global average pooling is kh = H, kw = W.

typedef struct { int64_t N, C, H, W, kh, kw, s, p, OH, OW; const float *x; float *y; } avg_ctx;

static void avg_fwd_range(void *v, int64_t b, int64_t e) {
    const avg_ctx *c = v;
    float inv = 1.0f / (float)(c->kh * c->kw);
    for (int64_t q = b; q < e; q++) {
        const float *x = c->x + q * c->H * c->W;
        float *y = c->y + q * c->OH * c->OW;
        for (int64_t oh = 0; oh < c->OH; oh++)
            for (int64_t ow = 0; ow < c->OW; ow++) {
                int64_t h0 = oh * c->s - c->p, w0 = ow * c->s - c->p;
                float acc = 0.0f;
                for (int64_t i = h0 < 0 ? 0 : h0; i < h0 + c->kh && i < c->H; i++)
                    for (int64_t j = w0 < 0 ? 0 : w0; j < w0 + c->kw && j < c->W; j++) acc += x[i * c->W + j];
                y[oh * c->OW + ow] = acc * inv;
            }
    }
}

static void avg_bwd_range(void *v, int64_t b, int64_t e) {
    // planes [b, e): each input pixel gathers the gradients of the windows that cover it (no
    // scatter, so one thread owns each dx plane)
    const avg_ctx *c = v;
    float inv = 1.0f / (float)(c->kh * c->kw);
    for (int64_t q = b; q < e; q++) {
        const float *dy = c->x + q * c->OH * c->OW;
        float *dx = c->y + q * c->H * c->W;
        for (int64_t i = 0; i < c->H; i++)
            for (int64_t j = 0; j < c->W; j++) {
                // windows oh with oh·s − p ≤ i < oh·s − p + kh
                int64_t ohi = i + c->p - c->kh + 1, oho = i + c->p;
                int64_t oh0 = ohi <= 0 ? 0 : (ohi + c->s - 1) / c->s, oh1 = oho / c->s;
                int64_t owi = j + c->p - c->kw + 1, owo = j + c->p;
                int64_t ow0 = owi <= 0 ? 0 : (owi + c->s - 1) / c->s, ow1 = owo / c->s;
                float acc = 0.0f;
                for (int64_t oh = oh0; oh <= oh1 && oh < c->OH; oh++)
                    for (int64_t ow = ow0; ow <= ow1 && ow < c->OW; ow++) acc += dy[oh * c->OW + ow];
                dx[i * c->W + j] = acc * inv;
            }
    }
}

static int avg_dims(int64_t N, int64_t C, int64_t H, int64_t W, int64_t kh, int64_t kw, int64_t s, int64_t p,
                    int64_t *OH, int64_t *OW) {
    if (N < 0 || C < 0 || H < 1 || W < 1 || kh < 1 || kw < 1 || s < 1 || p < 0) return 0;
    if (2 * p > kh || 2 * p > kw || kh > H + 2 * p || kw > W + 2 * p) return 0;
    *OH = (H + 2 * p - kh) / s + 1;
    *OW = (W + 2 * p - kw) / s + 1;
    return 1;
}

pk_status pk_avgpool2d_forward_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t kh, int64_t kw, int64_t s,
                                   int64_t p, const float *x, float *y) {
    int64_t OH, OW;
    if (!avg_dims(N, C, H, W, kh, kw, s, p, &OH, &OW)) return PK_ERR_SHAPE;
    if (N * C == 0) return PK_OK;
    if (!x || !y) return PK_ERR_NULL;
    if (pk_overlaps(x, (size_t)(N * C * H * W) * 4, y, (size_t)(N * C * OH * OW) * 4)) return PK_ERR_ALIAS;
    avg_ctx c = {N, C, H, W, kh, kw, s, p, OH, OW, x, y};
    pk_parallel_for(N * C, 8, avg_fwd_range, &c);
    return PK_OK;
}

pk_status pk_avgpool2d_backward_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t kh, int64_t kw, int64_t s,
                                    int64_t p, const float *dy, float *dx) {
    int64_t OH, OW;
    if (!avg_dims(N, C, H, W, kh, kw, s, p, &OH, &OW)) return PK_ERR_SHAPE;
    if (N * C == 0) return PK_OK;
    if (!dy || !dx) return PK_ERR_NULL;
    if (pk_overlaps(dx, (size_t)(N * C * H * W) * 4, dy, (size_t)(N * C * OH * OW) * 4)) return PK_ERR_ALIAS;
    avg_ctx c = {N, C, H, W, kh, kw, s, p, OH, OW, dy, dx};
    pk_parallel_for(N * C, 8, avg_bwd_range, &c);
    return PK_OK;
}
