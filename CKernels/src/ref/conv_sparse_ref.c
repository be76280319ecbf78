// Naive reference of the sparse direct convolution: every output visits its channel's kept entries
// in order, the padded input read with explicit bounds tests, sums in double.
#include "prunekit_layers.h"

pk_status pk_ref_conv2d_sparse_forward_f32(const pk_csr *A, int64_t N, int64_t C, int64_t H, int64_t W, int64_t KH,
                                           int64_t KW, int64_t s, int64_t p, int64_t d, int relu, const float *x,
                                           const float *scale, const float *shift, float *y) {
    if (!A) return PK_ERR_NULL;
    if (N < 0 || C < 0 || H < 0 || W < 0 || KH < 1 || KW < 1 || s < 1 || p < 0 || d < 1) return PK_ERR_SHAPE;
    if (A->cols != C * KH * KW) return PK_ERR_SHAPE;
    const int64_t EH = d * (KH - 1) + 1, EW = d * (KW - 1) + 1;
    if (EH > H + 2 * p || EW > W + 2 * p) return PK_ERR_SHAPE;
    const int64_t OC = A->rows, OH = (H + 2 * p - EH) / s + 1, OW = (W + 2 * p - EW) / s + 1;
    for (int64_t n = 0; n < N; n++)
        for (int64_t o = 0; o < OC; o++)
            for (int64_t oh = 0; oh < OH; oh++)
                for (int64_t ow = 0; ow < OW; ow++) {
                    double acc = 0.0;
                    for (int64_t j = A->ptr[o]; j < A->ptr[o + 1]; j++) {
                        const int64_t k = A->idx[j], c = k / (KH * KW), a = k / KW % KH, b = k % KW;
                        const int64_t ih = oh * s + a * d - p, iw = ow * s + b * d - p;
                        if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                        acc += (double)A->val[j] * x[((n * C + c) * H + ih) * W + iw];
                    }
                    double v = acc * (scale ? scale[o] : 1.0) + (shift ? shift[o] : 0.0);
                    if (relu && !(v > 0.0) && v == v) v = 0.0; // NaN kept, as the ReLU layer
                    y[((n * OC + o) * OH + oh) * OW + ow] = (float)v;
                }
    return PK_OK;
}
