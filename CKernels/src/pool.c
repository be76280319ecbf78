// Max pooling, k×k window with stride k (floor mode), with argmax indices for the backward pass.
#include "internal.h"
#include <string.h>

typedef struct { int64_t N, C, H, W, k, OH, OW; const float *x; const float *dy; float *y; int32_t *idx; const int32_t *cidx; } pool_ctx;

// Window update: t replaces the running max when larger, or when it is the first NaN seen.
#define PK_POOL_TAKE(t, bv) ((t) > (bv) || ((t) != (t) && (bv) == (bv)))

static void pool2_fwd_plane(const float *x, float *y, int32_t *id, int64_t W, int64_t OH, int64_t OW) {
    // OH×OW outputs of one plane, 2×2 windows: (0,0) (0,1) (1,0) (1,1) in scan order
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
    // planes [b, e) of N·C: each OH×OW output scans its k×k window in row order
    const pool_ctx *c = v;
    if (c->k == 2) {
        for (int64_t q = b; q < e; q++)
            pool2_fwd_plane(c->x + q * c->H * c->W, c->y + q * c->OH * c->OW, c->idx + q * c->OH * c->OW, c->W,
                            c->OH, c->OW);
        return;
    }
    for (int64_t q = b; q < e; q++) {
        const float *x = c->x + q * c->H * c->W;
        float *y = c->y + q * c->OH * c->OW;
        int32_t *id = c->idx + q * c->OH * c->OW;
        for (int64_t oh = 0; oh < c->OH; oh++)
            for (int64_t ow = 0; ow < c->OW; ow++) {
                int64_t best = oh * c->k * c->W + ow * c->k;
                float bv = x[best];
                for (int64_t i = 0; i < c->k; i++)
                    for (int64_t j = 0; j < c->k; j++) {
                        int64_t at = (oh * c->k + i) * c->W + ow * c->k + j;
                        float t = x[at];
                        if (PK_POOL_TAKE(t, bv)) { bv = t; best = at; }
                    }
                y[oh * c->OW + ow] = bv;
                id[oh * c->OW + ow] = (int32_t)best;
            }
    }
}

pk_status pk_maxpool2d_forward_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t k,
                                   const float *x, float *y, int32_t *idx) {
    if (N < 0 || C < 0 || H < 0 || W < 0 || k < 1 || k > H || k > W) return PK_ERR_SHAPE;
    if (H * W > INT32_MAX) return PK_ERR_SHAPE;
    if (N == 0 || C == 0) return PK_OK;
    if (!x || !y || !idx) return PK_ERR_NULL;
    int64_t OH = H / k, OW = W / k;
    if (pk_overlaps(x, (size_t)(N * C * H * W) * 4, y, (size_t)(N * C * OH * OW) * 4)) return PK_ERR_ALIAS;
    pool_ctx c = {N, C, H, W, k, OH, OW, x, NULL, y, idx, NULL};
    pk_parallel_for(N * C, 8, pool_fwd_range, &c);
    return PK_OK;
}

static void pool_bwd_range(void *v, int64_t b, int64_t e) {
    // planes [b, e): zero the plane, then add each output gradient at its argmax
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

pk_status pk_maxpool2d_backward_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t k,
                                    const float *dy, const int32_t *idx, float *dx) {
    if (N < 0 || C < 0 || H < 0 || W < 0 || k < 1 || k > H || k > W) return PK_ERR_SHAPE;
    if (N == 0 || C == 0) return PK_OK;
    if (!dy || !idx || !dx) return PK_ERR_NULL;
    int64_t OH = H / k, OW = W / k;
    if (pk_overlaps(dx, (size_t)(N * C * H * W) * 4, dy, (size_t)(N * C * OH * OW) * 4)) return PK_ERR_ALIAS;
    pool_ctx c = {N, C, H, W, k, OH, OW, NULL, dy, dx, NULL, idx};
    pk_parallel_for(N * C, 8, pool_bwd_range, &c);
    return PK_OK;
}
