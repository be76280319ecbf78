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
