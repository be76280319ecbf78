// Naive references of the convolution helpers: direct index arithmetic, one element at a time.
#include "prunekit_kernels.h"

pk_status pk_ref_im2col_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                            int64_t s, const float *x, float *cols) {
    if (N < 0 || C < 0 || KH < 1 || KW < 1 || s < 1 || KH > H || KW > W) return PK_ERR_SHAPE;
    int64_t OH = (H - KH) / s + 1, OW = (W - KW) / s + 1, NP = N * OH * OW;
    for (int64_t c = 0; c < C; c++)
        for (int64_t kh = 0; kh < KH; kh++)
            for (int64_t kw = 0; kw < KW; kw++)
                for (int64_t n = 0; n < N; n++)
                    for (int64_t oh = 0; oh < OH; oh++)
                        for (int64_t ow = 0; ow < OW; ow++)
                            cols[((c * KH + kh) * KW + kw) * NP + (n * OH + oh) * OW + ow] =
                                x[((n * C + c) * H + oh * s + kh) * W + ow * s + kw];
    return PK_OK;
}

pk_status pk_ref_col2im_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                            int64_t s, const float *dcols, float *dx) {
    if (N < 0 || C < 0 || KH < 1 || KW < 1 || s < 1 || KH > H || KW > W) return PK_ERR_SHAPE;
    int64_t OH = (H - KH) / s + 1, OW = (W - KW) / s + 1, NP = N * OH * OW;
    for (int64_t i = 0; i < N * C * H * W; i++) dx[i] = 0.0f;
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t kh = 0; kh < KH; kh++)
                for (int64_t kw = 0; kw < KW; kw++)
                    for (int64_t oh = 0; oh < OH; oh++)
                        for (int64_t ow = 0; ow < OW; ow++)
                            dx[((n * C + c) * H + oh * s + kh) * W + ow * s + kw] +=
                                dcols[((c * KH + kh) * KW + kw) * NP + (n * OH + oh) * OW + ow];
    return PK_OK;
}

// Direct convolution, the textbook six-deep loop.
pk_status pk_ref_conv2d_forward_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t OC, int64_t KH, int64_t KW,
                                    int64_t s, const float *x, const float *w, const uint8_t *mask,
                                    const float *bias, float *y) {
    if (N < 0 || C < 0 || OC < 0 || KH < 1 || KW < 1 || s < 1 || KH > H || KW > W) return PK_ERR_SHAPE;
    int64_t OH = (H - KH) / s + 1, OW = (W - KW) / s + 1;
    for (int64_t n = 0; n < N; n++)
        for (int64_t o = 0; o < OC; o++)
            for (int64_t oh = 0; oh < OH; oh++)
                for (int64_t ow = 0; ow < OW; ow++) {
                    double acc = bias ? bias[o] : 0.0;
                    for (int64_t c = 0; c < C; c++)
                        for (int64_t kh = 0; kh < KH; kh++)
                            for (int64_t kw = 0; kw < KW; kw++) {
                                int64_t wi = ((o * C + c) * KH + kh) * KW + kw;
                                if (mask && !mask[wi]) continue;
                                acc += (double)w[wi] * x[((n * C + c) * H + oh * s + kh) * W + ow * s + kw];
                            }
                    y[((n * OC + o) * OH + oh) * OW + ow] = (float)acc;
                }
    return PK_OK;
}

pk_status pk_ref_conv2d_backward_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t OC, int64_t KH, int64_t KW,
                                     int64_t s, const float *x, const float *w, const uint8_t *mask,
                                     const float *dy, float *dw, float *db, float *dx) {
    if (N < 0 || C < 0 || OC < 0 || KH < 1 || KW < 1 || s < 1 || KH > H || KW > W) return PK_ERR_SHAPE;
    int64_t OH = (H - KH) / s + 1, OW = (W - KW) / s + 1, K = C * KH * KW;
    for (int64_t i = 0; i < OC * K; i++) {
        double acc = 0.0;
        int64_t o = i / K, c = (i / (KH * KW)) % C, kh = (i / KW) % KH, kw = i % KW;
        if (!mask || mask[i])
            for (int64_t n = 0; n < N; n++)
                for (int64_t oh = 0; oh < OH; oh++)
                    for (int64_t ow = 0; ow < OW; ow++)
                        acc += (double)dy[((n * OC + o) * OH + oh) * OW + ow] * x[((n * C + c) * H + oh * s + kh) * W + ow * s + kw];
        dw[i] = (float)acc;
    }
    if (db)
        for (int64_t o = 0; o < OC; o++) {
            double acc = 0.0;
            for (int64_t n = 0; n < N; n++)
                for (int64_t p = 0; p < OH * OW; p++) acc += dy[(n * OC + o) * OH * OW + p];
            db[o] = (float)acc;
        }
    if (dx) {
        for (int64_t i = 0; i < N * C * H * W; i++) dx[i] = 0.0f;
        for (int64_t n = 0; n < N; n++)
            for (int64_t o = 0; o < OC; o++)
                for (int64_t oh = 0; oh < OH; oh++)
                    for (int64_t ow = 0; ow < OW; ow++)
                        for (int64_t c = 0; c < C; c++)
                            for (int64_t kh = 0; kh < KH; kh++)
                                for (int64_t kw = 0; kw < KW; kw++) {
                                    int64_t wi = ((o * C + c) * KH + kh) * KW + kw;
                                    if (mask && !mask[wi]) continue;
                                    dx[((n * C + c) * H + oh * s + kh) * W + ow * s + kw] +=
                                        w[wi] * dy[((n * OC + o) * OH + oh) * OW + ow];
                                }
    }
    return PK_OK;
}

// Zero padding and its crop, element by element.
pk_status pk_ref_pad2d_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t p, const float *x, float *y) {
    if (N < 0 || C < 0 || H < 0 || W < 0 || p < 0) return PK_ERR_SHAPE;
    int64_t PH = H + 2 * p, PW = W + 2 * p;
    for (int64_t q = 0; q < N * C; q++)
        for (int64_t i = 0; i < PH; i++)
            for (int64_t j = 0; j < PW; j++) {
                int64_t h = i - p, w = j - p;
                y[(q * PH + i) * PW + j] = (h >= 0 && h < H && w >= 0 && w < W) ? x[(q * H + h) * W + w] : 0.0f;
            }
    return PK_OK;
}

pk_status pk_ref_crop2d_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t p, const float *x, float *y) {
    if (N < 0 || C < 0 || H < 0 || W < 0 || p < 0) return PK_ERR_SHAPE;
    int64_t PH = H + 2 * p, PW = W + 2 * p;
    for (int64_t q = 0; q < N * C; q++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t w = 0; w < W; w++) y[(q * H + h) * W + w] = x[(q * PH + h + p) * PW + w + p];
    return PK_OK;
}

// Grouped convolution (input already padded, dilation d), the seven-deep loop of its definition in double.
pk_status pk_ref_conv2d_grouped_forward_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t OC, int64_t K, int64_t s,
                                            int64_t d, int64_t G, const float *x, const float *w, const uint8_t *mask,
                                            const float *bias, float *y) {
    if (N < 0 || C < 1 || OC < 1 || K < 1 || s < 1 || d < 1 || G < 1 || C % G || OC % G || H < d * (K - 1) + 1 ||
        W < d * (K - 1) + 1) return PK_ERR_SHAPE;
    int64_t OH = (H - d * (K - 1) - 1) / s + 1, OW = (W - d * (K - 1) - 1) / s + 1, CG = C / G, OCG = OC / G;
    for (int64_t n = 0; n < N; n++)
        for (int64_t oc = 0; oc < OC; oc++)
            for (int64_t oh = 0; oh < OH; oh++)
                for (int64_t ow = 0; ow < OW; ow++) {
                    double acc = bias ? bias[oc] : 0.0;
                    for (int64_t j = 0; j < CG; j++)
                        for (int64_t kh = 0; kh < K; kh++)
                            for (int64_t kw = 0; kw < K; kw++) {
                                int64_t wi = ((oc * CG + j) * K + kh) * K + kw;
                                if (mask && !mask[wi]) continue;
                                acc += (double)w[wi] * x[((n * C + (oc / OCG) * CG + j) * H + oh * s + kh * d) * W + ow * s + kw * d];
                            }
                    y[((n * OC + oc) * OH + oh) * OW + ow] = (float)acc;
                }
    return PK_OK;
}

pk_status pk_ref_conv2d_grouped_backward_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t OC, int64_t K, int64_t s,
                                             int64_t d, int64_t G, const float *x, const float *w, const uint8_t *mask,
                                             const float *dy, float *dw, float *dx) {
    if (N < 0 || C < 1 || OC < 1 || K < 1 || s < 1 || d < 1 || G < 1 || C % G || OC % G || H < d * (K - 1) + 1 ||
        W < d * (K - 1) + 1) return PK_ERR_SHAPE;
    int64_t OH = (H - d * (K - 1) - 1) / s + 1, OW = (W - d * (K - 1) - 1) / s + 1, CG = C / G, OCG = OC / G;
    if (dw) for (int64_t i = 0; i < OC * CG * K * K; i++) dw[i] = 0.0f;
    if (dx) for (int64_t i = 0; i < N * C * H * W; i++) dx[i] = 0.0f;
    for (int64_t n = 0; n < N; n++)
        for (int64_t oc = 0; oc < OC; oc++)
            for (int64_t oh = 0; oh < OH; oh++)
                for (int64_t ow = 0; ow < OW; ow++) {
                    float g = dy[((n * OC + oc) * OH + oh) * OW + ow];
                    for (int64_t j = 0; j < CG; j++)
                        for (int64_t kh = 0; kh < K; kh++)
                            for (int64_t kw = 0; kw < K; kw++) {
                                int64_t wi = ((oc * CG + j) * K + kh) * K + kw;
                                if (mask && !mask[wi]) continue;
                                int64_t xi = ((n * C + (oc / OCG) * CG + j) * H + oh * s + kh * d) * W + ow * s + kw * d;
                                if (dw) dw[wi] += g * x[xi];
                                if (dx) dx[xi] += g * w[wi];
                            }
                }
    return PK_OK;
}
