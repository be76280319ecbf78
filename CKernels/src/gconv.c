// Grouped convolution (groups > 1, depthwise when groups = C = OC) on an input that is already
// padded, stride s, dilation d (tap (kh, kw) of output (oh, ow) reads pixel (oh·s + kh·d, ow·s + kw·d)): direct loops, since each group's GEMM is too small for the packed path. Forward: one
// thread per (image, output channel) plane; weight gradient: one thread per output channel, images
// summed in order; input gradient: one thread per (image, input channel) plane, gathering in a
// fixed order. Identical bits for any thread count.
#include "internal.h"
#include <string.h>

typedef struct {
    int64_t N, C, H, W, OC, K, s, d, G, OH, OW, CG, OCG;
    const float *x, *w, *bias, *dy;
    const uint8_t *mask;
    float *y, *dw, *dx;
} gconv_ctx;

static inline float wt(const gconv_ctx *c, int64_t i) { return c->mask && !c->mask[i] ? 0.0f : c->w[i]; }

static void gconv_fwd_range(void *v, int64_t b, int64_t e) {
    const gconv_ctx *c = v;
    for (int64_t q = b; q < e; q++) {
        int64_t n = q / c->OC, oc = q % c->OC, g = oc / c->OCG;
        float *y = c->y + q * c->OH * c->OW;
        float b0 = c->bias ? c->bias[oc] : 0.0f;
        for (int64_t i = 0; i < c->OH * c->OW; i++) y[i] = b0;
        for (int64_t j = 0; j < c->CG; j++) {
            const float *x = c->x + (n * c->C + g * c->CG + j) * c->H * c->W;
            for (int64_t kh = 0; kh < c->K; kh++)
                for (int64_t kw = 0; kw < c->K; kw++) {
                    float a = wt(c, ((oc * c->CG + j) * c->K + kh) * c->K + kw);
                    if (a == 0.0f) continue;
                    for (int64_t oh = 0; oh < c->OH; oh++) {
                        const float *xr = x + (oh * c->s + kh * c->d) * c->W + kw * c->d;
                        float *yr = y + oh * c->OW;
                        if (c->s == 1) for (int64_t ow = 0; ow < c->OW; ow++) yr[ow] += a * xr[ow];
                        else for (int64_t ow = 0; ow < c->OW; ow++) yr[ow] += a * xr[ow * c->s];
                    }
                }
        }
    }
}

static void gconv_dw_range(void *v, int64_t b, int64_t e) {
    const gconv_ctx *c = v;
    for (int64_t oc = b; oc < e; oc++) {
        int64_t g = oc / c->OCG;
        for (int64_t j = 0; j < c->CG; j++)
            for (int64_t kh = 0; kh < c->K; kh++)
                for (int64_t kw = 0; kw < c->K; kw++) {
                    int64_t at = ((oc * c->CG + j) * c->K + kh) * c->K + kw;
                    if (c->mask && !c->mask[at]) { c->dw[at] = 0.0f; continue; }
                    double acc = 0;
                    for (int64_t n = 0; n < c->N; n++) {
                        const float *x = c->x + (n * c->C + g * c->CG + j) * c->H * c->W;
                        const float *dy = c->dy + (n * c->OC + oc) * c->OH * c->OW;
                        float part = 0.0f;
                        for (int64_t oh = 0; oh < c->OH; oh++) {
                            const float *xr = x + (oh * c->s + kh * c->d) * c->W + kw * c->d;
                            const float *dr = dy + oh * c->OW;
                            for (int64_t ow = 0; ow < c->OW; ow++) part += dr[ow] * xr[ow * c->s];
                        }
                        acc += part;
                    }
                    c->dw[at] = (float)acc;
                }
    }
}

static void gconv_dx_range(void *v, int64_t b, int64_t e) {
    const gconv_ctx *c = v;
    for (int64_t q = b; q < e; q++) {
        int64_t n = q / c->C, ch = q % c->C, g = ch / c->CG, j = ch % c->CG;
        float *dx = c->dx + q * c->H * c->W;
        memset(dx, 0, (size_t)(c->H * c->W) * sizeof(float));
        for (int64_t oc = g * c->OCG; oc < (g + 1) * c->OCG; oc++) {
            const float *dy = c->dy + (n * c->OC + oc) * c->OH * c->OW;
            for (int64_t kh = 0; kh < c->K; kh++)
                for (int64_t kw = 0; kw < c->K; kw++) {
                    float a = wt(c, ((oc * c->CG + j) * c->K + kh) * c->K + kw);
                    if (a == 0.0f) continue;
                    for (int64_t oh = 0; oh < c->OH; oh++) {
                        float *xr = dx + (oh * c->s + kh * c->d) * c->W + kw * c->d;
                        const float *dr = dy + oh * c->OW;
                        for (int64_t ow = 0; ow < c->OW; ow++) xr[ow * c->s] += a * dr[ow];
                    }
                }
        }
    }
}

static pk_status gconv_setup(gconv_ctx *c, int64_t N, int64_t C, int64_t H, int64_t W, int64_t OC, int64_t K, int64_t s,
                             int64_t d, int64_t G) {
    if (N < 0 || C < 1 || OC < 1 || K < 1 || s < 1 || d < 1 || G < 1 || C % G || OC % G) return PK_ERR_SHAPE;
    if (K > (INT32_MAX - 1) / d) return PK_ERR_SHAPE;
    const int64_t E = d * (K - 1) + 1; // the window's extent
    if (H < E || W < E) return PK_ERR_SHAPE;
    *c = (gconv_ctx){.N = N, .C = C, .H = H, .W = W, .OC = OC, .K = K, .s = s, .d = d, .G = G,
                     .OH = (H - E) / s + 1, .OW = (W - E) / s + 1, .CG = C / G, .OCG = OC / G};
    return PK_OK;
}

pk_status pk_conv2d_grouped_forward_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t OC, int64_t K, int64_t s,
                                        int64_t d, int64_t G, const float *x, const float *w, const uint8_t *mask, const float *bias,
                                        float *y) {
    gconv_ctx c;
    pk_status st = gconv_setup(&c, N, C, H, W, OC, K, s, d, G);
    if (st != PK_OK) return st;
    if (N == 0) return PK_OK;
    if (!x || !w || !y) return PK_ERR_NULL;
    if (pk_overlaps(y, (size_t)(N * OC * c.OH * c.OW) * 4, x, (size_t)(N * C * H * W) * 4)) return PK_ERR_ALIAS;
    c.x = x; c.w = w; c.mask = mask; c.bias = bias; c.y = y;
    pk_parallel_for(N * OC, 4, gconv_fwd_range, &c);
    return PK_OK;
}

pk_status pk_conv2d_grouped_backward_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t OC, int64_t K, int64_t s,
                                         int64_t d, int64_t G, const float *x, const float *w, const uint8_t *mask, const float *dy,
                                         float *dw, float *dx) {
    gconv_ctx c;
    pk_status st = gconv_setup(&c, N, C, H, W, OC, K, s, d, G);
    if (st != PK_OK) return st;
    if (!x || !w || !dy) return PK_ERR_NULL;
    size_t dyb = (size_t)(N * OC * c.OH * c.OW) * 4, xb = (size_t)(N * C * H * W) * 4;
    if (dx && (pk_overlaps(dx, xb, dy, dyb) || pk_overlaps(dx, xb, x, xb))) return PK_ERR_ALIAS;
    c.x = x; c.w = w; c.mask = mask; c.dy = dy; c.dw = dw; c.dx = dx;
    if (dw) pk_parallel_for(OC, 1, gconv_dw_range, &c);
    if (dx && N > 0) pk_parallel_for(N * C, 4, gconv_dx_range, &c);
    return PK_OK;
}
