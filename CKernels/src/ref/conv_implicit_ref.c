// Naive references of the padded (and dilated) convolution kernels: direct index arithmetic with
// explicit bounds tests for the zero padding, sums in double, one element at a time. Tap (kh, kw) of
// output (oh, ow) reads input (oh·s + kh·d − p, ow·s + kw·d − p); the padded kernels are d = 1.
#include "prunekit_layers.h"

static int ref_dims(int64_t N, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t s, int64_t p, int64_t d,
                    int64_t *OH, int64_t *OW) {
    if (N < 0 || C < 0 || H < 0 || W < 0 || KH < 1 || KW < 1 || s < 1 || p < 0 || d < 1) return 0;
    if (KH > 1000000 || KW > 1000000 || d > 1000000) return 0;
    int64_t EH = d * (KH - 1) + 1, EW = d * (KW - 1) + 1;
    if (EH > H + 2 * p || EW > W + 2 * p) return 0;
    *OH = (H + 2 * p - EH) / s + 1;
    *OW = (W + 2 * p - EW) / s + 1;
    return 1;
}

// x̃[n, c, ih, iw] of the zero-padded image (ih, iw in unpadded coordinates).
static float at(const float *x, int64_t C, int64_t H, int64_t W, int64_t n, int64_t c, int64_t ih, int64_t iw) {
    if (ih < 0 || ih >= H || iw < 0 || iw >= W) return 0.0f;
    return x[((n * C + c) * H + ih) * W + iw];
}

pk_status pk_ref_conv2d_dilated_forward_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t OC, int64_t KH,
                                            int64_t KW, int64_t s, int64_t p, int64_t d, int relu, const float *x,
                                            const float *w, const uint8_t *mask, const float *scale, const float *shift,
                                            float *y) {
    int64_t OH, OW;
    if (OC < 0 || !ref_dims(N, C, H, W, KH, KW, s, p, d, &OH, &OW)) return PK_ERR_SHAPE;
    for (int64_t n = 0; n < N; n++)
        for (int64_t o = 0; o < OC; o++)
            for (int64_t oh = 0; oh < OH; oh++)
                for (int64_t ow = 0; ow < OW; ow++) {
                    double acc = 0.0;
                    for (int64_t c = 0; c < C; c++)
                        for (int64_t kh = 0; kh < KH; kh++)
                            for (int64_t kw = 0; kw < KW; kw++) {
                                int64_t wi = ((o * C + c) * KH + kh) * KW + kw;
                                if (mask && !mask[wi]) continue;
                                acc += (double)w[wi] * at(x, C, H, W, n, c, oh * s + kh * d - p, ow * s + kw * d - p);
                            }
                    double v = acc * (scale ? scale[o] : 1.0) + (shift ? shift[o] : 0.0);
                    if (relu && !(v > 0.0) && v == v) v = 0.0; // NaN kept, as the ReLU layer
                    y[((n * OC + o) * OH + oh) * OW + ow] = (float)v;
                }
    return PK_OK;
}

pk_status pk_ref_conv2d_implicit_forward_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t OC, int64_t KH,
                                             int64_t KW, int64_t s, int64_t p, int relu, const float *x, const float *w,
                                             const uint8_t *mask, const float *scale, const float *shift, float *y) {
    return pk_ref_conv2d_dilated_forward_f32(N, C, H, W, OC, KH, KW, s, p, 1, relu, x, w, mask, scale, shift, y);
}

pk_status pk_ref_im2col_dilated_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t s,
                                    int64_t p, int64_t d, const float *x, float *cols) {
    int64_t OH, OW;
    if (!ref_dims(N, C, H, W, KH, KW, s, p, d, &OH, &OW)) return PK_ERR_SHAPE;
    int64_t NP = N * OH * OW;
    for (int64_t c = 0; c < C; c++)
        for (int64_t kh = 0; kh < KH; kh++)
            for (int64_t kw = 0; kw < KW; kw++)
                for (int64_t n = 0; n < N; n++)
                    for (int64_t oh = 0; oh < OH; oh++)
                        for (int64_t ow = 0; ow < OW; ow++)
                            cols[((c * KH + kh) * KW + kw) * NP + (n * OH + oh) * OW + ow] =
                                at(x, C, H, W, n, c, oh * s + kh * d - p, ow * s + kw * d - p);
    return PK_OK;
}

pk_status pk_ref_im2col_padded_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t s, int64_t p,
                                   const float *x, float *cols) {
    return pk_ref_im2col_dilated_f32(N, C, H, W, KH, KW, s, p, 1, x, cols);
}

pk_status pk_ref_col2im_dilated_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t s,
                                    int64_t p, int64_t d, const float *dcols, float *dx) {
    int64_t OH, OW;
    if (!ref_dims(N, C, H, W, KH, KW, s, p, d, &OH, &OW)) return PK_ERR_SHAPE;
    int64_t NP = N * OH * OW;
    for (int64_t i = 0; i < N * C * H * W; i++) dx[i] = 0.0f;
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t kh = 0; kh < KH; kh++)
                for (int64_t kw = 0; kw < KW; kw++)
                    for (int64_t oh = 0; oh < OH; oh++)
                        for (int64_t ow = 0; ow < OW; ow++) {
                            int64_t ih = oh * s + kh * d - p, iw = ow * s + kw * d - p;
                            if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                            dx[((n * C + c) * H + ih) * W + iw] += dcols[((c * KH + kh) * KW + kw) * NP + (n * OH + oh) * OW + ow];
                        }
    return PK_OK;
}

pk_status pk_ref_col2im_padded_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t s, int64_t p,
                                   const float *dcols, float *dx) {
    return pk_ref_col2im_dilated_f32(N, C, H, W, KH, KW, s, p, 1, dcols, dx);
}

pk_status pk_ref_conv2d_dilated_backward_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t OC, int64_t KH, int64_t KW,
                                             int64_t s, int64_t p, int64_t d, const float *x, const float *w,
                                             const uint8_t *mask, const float *dy, float *dw, float *db, float *dx) {
    int64_t OH, OW;
    if (OC < 0 || !ref_dims(N, C, H, W, KH, KW, s, p, d, &OH, &OW)) return PK_ERR_SHAPE;
    int64_t K = C * KH * KW;
    for (int64_t i = 0; i < OC * K; i++) {
        double acc = 0.0;
        int64_t o = i / K, c = (i / (KH * KW)) % C, kh = (i / KW) % KH, kw = i % KW;
        if (!mask || mask[i])
            for (int64_t n = 0; n < N; n++)
                for (int64_t oh = 0; oh < OH; oh++)
                    for (int64_t ow = 0; ow < OW; ow++)
                        acc += (double)dy[((n * OC + o) * OH + oh) * OW + ow] * at(x, C, H, W, n, c, oh * s + kh * d - p, ow * s + kw * d - p);
        if (dw) dw[i] = (float)acc;
    }
    if (db)
        for (int64_t o = 0; o < OC; o++) {
            double acc = 0.0;
            for (int64_t n = 0; n < N; n++)
                for (int64_t q = 0; q < OH * OW; q++) acc += dy[(n * OC + o) * OH * OW + q];
            db[o] = (float)acc;
        }
    if (dx) {
        for (int64_t i = 0; i < N * C * H * W; i++) dx[i] = 0.0f;
        for (int64_t n = 0; n < N; n++)
            for (int64_t c = 0; c < C; c++)
                for (int64_t ih = 0; ih < H; ih++)
                    for (int64_t iw = 0; iw < W; iw++) {
                        double acc = 0.0;
                        for (int64_t o = 0; o < OC; o++)
                            for (int64_t kh = 0; kh < KH; kh++)
                                for (int64_t kw = 0; kw < KW; kw++) {
                                    int64_t th = ih + p - kh * d, tw = iw + p - kw * d; // = oh·s, ow·s
                                    if (th < 0 || tw < 0 || th % s || tw % s || th / s >= OH || tw / s >= OW) continue;
                                    int64_t wi = ((o * C + c) * KH + kh) * KW + kw;
                                    if (mask && !mask[wi]) continue;
                                    acc += (double)w[wi] * dy[((n * OC + o) * OH + th / s) * OW + tw / s];
                                }
                        dx[((n * C + c) * H + ih) * W + iw] = (float)acc;
                    }
    }
    return PK_OK;
}

pk_status pk_ref_conv2d_padded_backward_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t OC, int64_t KH, int64_t KW,
                                            int64_t s, int64_t p, const float *x, const float *w, const uint8_t *mask,
                                            const float *dy, float *dw, float *db, float *dx) {
    return pk_ref_conv2d_dilated_backward_f32(N, C, H, W, OC, KH, KW, s, p, 1, x, w, mask, dy, dw, db, dx);
}
