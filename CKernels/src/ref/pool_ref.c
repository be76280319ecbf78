// Naive references of max pooling: every window position tested against the image bounds (the
// padding never wins), first maximum in scan order, NaN propagates.
#include "prunekit_kernels.h"

static int ref_pool_dims(int64_t N, int64_t C, int64_t H, int64_t W, int64_t k, int64_t s, int64_t p, int64_t *OH, int64_t *OW) {
    if (N < 0 || C < 0 || H < 1 || W < 1 || k < 1 || s < 1 || p < 0 || 2 * p > k || k > H + 2 * p || k > W + 2 * p) return 0;
    *OH = (H + 2 * p - k) / s + 1;
    *OW = (W + 2 * p - k) / s + 1;
    return 1;
}

pk_status pk_ref_maxpool2d_forward_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t k, int64_t s, int64_t p,
                                       const float *x, float *y, int32_t *idx) {
    int64_t OH, OW;
    if (!ref_pool_dims(N, C, H, W, k, s, p, &OH, &OW)) return PK_ERR_SHAPE;
    for (int64_t q = 0; q < N * C; q++)
        for (int64_t oh = 0; oh < OH; oh++)
            for (int64_t ow = 0; ow < OW; ow++) {
                int64_t best = -1;
                for (int64_t i = 0; i < k; i++)
                    for (int64_t j = 0; j < k; j++) {
                        int64_t h = oh * s - p + i, w = ow * s - p + j;
                        if (h < 0 || h >= H || w < 0 || w >= W) continue;
                        int64_t at = h * W + w;
                        float t = x[q * H * W + at];
                        if (best < 0) { best = at; continue; }
                        float b = x[q * H * W + best];
                        if (b != b) continue;
                        if (t != t || t > b) best = at;
                    }
                y[(q * OH + oh) * OW + ow] = x[q * H * W + best];
                idx[(q * OH + oh) * OW + ow] = (int32_t)best;
            }
    return PK_OK;
}

pk_status pk_ref_maxpool2d_backward_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t k, int64_t s, int64_t p,
                                        const float *dy, const int32_t *idx, float *dx) {
    int64_t OH, OW;
    if (!ref_pool_dims(N, C, H, W, k, s, p, &OH, &OW)) return PK_ERR_SHAPE;
    for (int64_t i = 0; i < N * C * H * W; i++) dx[i] = 0.0f;
    for (int64_t q = 0; q < N * C; q++)
        for (int64_t o = 0; o < OH * OW; o++) dx[q * H * W + idx[q * OH * OW + o]] += dy[q * OH * OW + o];
    return PK_OK;
}

// Average pooling (zero padding counted in the divisor): windows summed directly; the backward
// scatters each output gradient over its window.
pk_status pk_ref_avgpool2d_forward_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t kh, int64_t kw, int64_t s,
                                       int64_t p, const float *x, float *y) {
    if (N < 0 || C < 0 || H < 1 || W < 1 || kh < 1 || kw < 1 || s < 1 || p < 0 || 2 * p > kh || 2 * p > kw ||
        kh > H + 2 * p || kw > W + 2 * p) return PK_ERR_SHAPE;
    int64_t OH = (H + 2 * p - kh) / s + 1, OW = (W + 2 * p - kw) / s + 1;
    for (int64_t q = 0; q < N * C; q++)
        for (int64_t oh = 0; oh < OH; oh++)
            for (int64_t ow = 0; ow < OW; ow++) {
                double acc = 0;
                for (int64_t i = 0; i < kh; i++)
                    for (int64_t j = 0; j < kw; j++) {
                        int64_t h = oh * s - p + i, w = ow * s - p + j;
                        if (h >= 0 && h < H && w >= 0 && w < W) acc += x[(q * H + h) * W + w];
                    }
                y[(q * OH + oh) * OW + ow] = (float)(acc / (double)(kh * kw));
            }
    return PK_OK;
}

pk_status pk_ref_avgpool2d_backward_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t kh, int64_t kw, int64_t s,
                                        int64_t p, const float *dy, float *dx) {
    if (N < 0 || C < 0 || H < 1 || W < 1 || kh < 1 || kw < 1 || s < 1 || p < 0 || 2 * p > kh || 2 * p > kw ||
        kh > H + 2 * p || kw > W + 2 * p) return PK_ERR_SHAPE;
    int64_t OH = (H + 2 * p - kh) / s + 1, OW = (W + 2 * p - kw) / s + 1;
    for (int64_t i = 0; i < N * C * H * W; i++) dx[i] = 0.0f;
    for (int64_t q = 0; q < N * C; q++)
        for (int64_t oh = 0; oh < OH; oh++)
            for (int64_t ow = 0; ow < OW; ow++)
                for (int64_t i = 0; i < kh; i++)
                    for (int64_t j = 0; j < kw; j++) {
                        int64_t h = oh * s - p + i, w = ow * s - p + j;
                        if (h >= 0 && h < H && w >= 0 && w < W)
                            dx[(q * H + h) * W + w] += dy[(q * OH + oh) * OW + ow] / (float)(kh * kw);
                    }
    return PK_OK;
}
