// Direct stride-1 convolution on a flattened padded plane (AVX2 + FMA): forward with the per-channel
// epilogue, input gradient, and weight gradient. No column matrix and no patch gather.
//
// The padded image of one sample is stored plane by plane with row length Wp = W + 2·pw. On that grid
// an output pixel (i, j) sits at flat position q = i·Wp + j, and every tap (a, b) of the kernel reads
// the input at q + a·Wp + b: the same shifted contiguous range for every output in a row, so a vector
// of 8 consecutive outputs needs one unaligned load per tap and input channel. Positions with
// j ≥ OW (the last KW−1 columns of each flat row) are computed too and dropped by the epilogue
// (2 of 30 columns for a 28-wide 3×3 layer).
//
//   forward   y[o, q] = Σ_c Σ_{a,b} (W⊙M)[o,c,a,b] · xp[c, q + a·Wp + b]
//             register tile: 6 output channels × 16 positions (12 accumulators); per (c, a, b) two
//             loads of x and six broadcasts of packed weights feed 12 FMAs. The last block of a layer
//             whose channel count is not a multiple of 6 runs a tile of just its remaining rows
//             (a 32-channel layer: five 6-row tiles and one 2-row tile, not six 6-row ones).
//   input     dx = the same forward on dy, zero-padded by KH−1−p / KW−1−p, with the weights flipped
//   gradient  (a → KH−1−a, b → KW−1−b) and transposed (o ↔ c).
//   weight    dW[o,c,a,b] = Σ_n Σ_q dyz[n, o, q] · xp[n, c, q + a·Wp + b], with dyz = dy on the flat grid
//   gradient  and zeros in the dropped columns; tile: 4 output channels × 3 taps of one kernel row,
//             summed over all images of a chunk in registers. Chunks have a size that depends on the
//             shape only, and their partials are added in chunk order (conv.c's reduction): identical
//             bits for any thread count.
//
// Every output of the forward and of dx is summed by one task in a fixed (c, a, b) order, so those
// are identical for any thread count too. Reference: pk_ref_conv2d_implicit_forward_f32 and
// pk_ref_conv2d_padded_backward_f32 (direct loops, src/ref/conv_implicit_ref.c).
#include "internal.h"
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#ifndef DC_OB
#define DC_OB 6 // output channels per register tile
#define DC_NV 2 // vectors of 8 flat positions per register tile
#endif
#define DC_QB (8 * DC_NV)

typedef struct {
    int64_t C, Hin, Win, ph, pw, KH, KW, OC, OH, OW;
    int64_t Hp, Wp, L, Lr, plane, nob;
} dc_geom;

static void dc_geometry(dc_geom *g, int64_t C, int64_t Hin, int64_t Win, int64_t ph, int64_t pw, int64_t KH,
                        int64_t KW, int64_t OC) {
    g->C = C; g->Hin = Hin; g->Win = Win; g->ph = ph; g->pw = pw; g->KH = KH; g->KW = KW; g->OC = OC;
    g->Hp = Hin + 2 * ph; g->Wp = Win + 2 * pw;
    g->OH = g->Hp - KH + 1; g->OW = g->Wp - KW + 1;
    g->L = g->OH * g->Wp;
    g->Lr = (g->L + DC_QB - 1) / DC_QB * DC_QB;
    // reads reach q + (KH−1)·Wp + KW−1 + 2 (tap chunks of 3) for q < Lr: Hp·Wp + (Lr − L) + KW + 1
    g->plane = (g->Hp * g->Wp + (g->Lr - g->L) + g->KW + 8 + 7) / 8 * 8;
    g->nob = (OC + DC_OB - 1) / DC_OB;
}

// x (C × Hin × Win) into xp (C planes of g->plane floats): zero border, zero slack.
static void dc_pad_image(const dc_geom *g, const float *x, float *xp) {
    for (int64_t c = 0; c < g->C; c++) {
        float *pl = xp + c * g->plane;
        const float *src = x + c * g->Hin * g->Win;
        memset(pl, 0, (size_t)(g->ph * g->Wp) * 4);
        for (int64_t i = 0; i < g->Hin; i++) {
            float *row = pl + (g->ph + i) * g->Wp;
            for (int64_t j = 0; j < g->pw; j++) row[j] = 0.0f;
            memcpy(row + g->pw, src + i * g->Win, (size_t)g->Win * 4);
            for (int64_t j = g->pw + g->Win; j < g->Wp; j++) row[j] = 0.0f;
        }
        memset(pl + (g->ph + g->Hin) * g->Wp, 0, (size_t)(g->plane - (g->ph + g->Hin) * g->Wp) * 4);
    }
}

// (W ⊙ M) of a forward (OC × C × KH × KW) into [ob][c][tap][DC_OB], zero rows past OC.
// flip: read the transposed, flipped weights of the input gradient instead: the packed output
// channel o is the forward's input channel, c the forward's output channel, tap (a, b) the forward's
// (KH−1−a, KW−1−b); w and mask are then the forward's (Cf = packed OC, OCf = packed C).
static void dc_pack_weights(const dc_geom *g, const float *w, const uint8_t *mask, int flip, float *wp) {
    const int64_t T = g->KH * g->KW;
    for (int64_t ob = 0; ob < g->nob; ob++)
        for (int64_t c = 0; c < g->C; c++)
            for (int64_t t = 0; t < T; t++)
                for (int64_t r = 0; r < DC_OB; r++) {
                    const int64_t o = ob * DC_OB + r;
                    float v = 0.0f;
                    if (o < g->OC) {
                        int64_t i = flip ? ((c * g->OC + o) * T + (T - 1 - t)) : ((o * g->C + c) * T + t);
                        v = (!mask || mask[i]) ? w[i] : 0.0f;
                    }
                    wp[((ob * g->C + c) * T + t) * DC_OB + r] = v;
                }
}

// One register tile: out[r][0..8·NV) = Σ over c and taps, for output block ob, its first R rows
// (R ≤ DC_OB; the packed weights keep DC_OB rows per tap) and positions q0...
// The full tile is 6 rows × 2 vectors: 12 accumulators plus 2 input vectors and one broadcast weight
// fit the 16 registers. A last block of 1 or 2 rows widens to 8 or 12 accumulators (1 × 8 and 2 × 6
// vectors), so its FMAs still have enough independent chains to hide their latency; those
// load the row weights once per tap and stream the input vectors past them.
// The body is inlined into 3×3 versions (taps unrolled: no loop overhead between the 12-FMA groups,
// about a fifth of the tile's time on Zen 3) and general ones, for every (R, NV) used.
#define DC_NV_MAX 8
PK_TARGET_AVX2 static inline __attribute__((always_inline)) void
dc_tile_body(const dc_geom *g, const float *xp, const float *wp, int64_t ob, int64_t q0, float *out, int64_t ldo,
             const int64_t KH, const int64_t KW, const int R, const int NV) {
    __m256 acc[DC_OB][DC_NV_MAX];
    for (int r = 0; r < R; r++)
        for (int v = 0; v < NV; v++) acc[r][v] = _mm256_setzero_ps();
    const int64_t T = KH * KW;
    for (int64_t c = 0; c < g->C; c++) {
        const float *xb = xp + c * g->plane + q0;
        const float *wc = wp + (ob * g->C + c) * T * DC_OB;
        for (int64_t a = 0; a < KH; a++) {
            const float *xr = xb + a * g->Wp;
            for (int64_t b = 0; b < KW; b++, wc += DC_OB) {
                if (NV <= DC_NV) {
                    __m256 xv[DC_NV];
                    for (int v = 0; v < NV; v++) xv[v] = _mm256_loadu_ps(xr + b + 8 * v);
                    for (int r = 0; r < R; r++) {
                        const __m256 w = _mm256_broadcast_ss(wc + r);
                        for (int v = 0; v < NV; v++) acc[r][v] = _mm256_fmadd_ps(w, xv[v], acc[r][v]);
                    }
                } else {
                    __m256 w[DC_OB];
                    for (int r = 0; r < R; r++) w[r] = _mm256_broadcast_ss(wc + r);
                    for (int v = 0; v < NV; v++) {
                        const __m256 x = _mm256_loadu_ps(xr + b + 8 * v);
                        for (int r = 0; r < R; r++) acc[r][v] = _mm256_fmadd_ps(w[r], x, acc[r][v]);
                    }
                }
            }
        }
    }
    for (int r = 0; r < R; r++)
        for (int v = 0; v < NV; v++) _mm256_storeu_ps(out + r * ldo + 8 * v, acc[r][v]);
}

typedef void (*dc_tile_fn)(const dc_geom *, const float *, const float *, int64_t, int64_t, float *, int64_t);
#define DC_TILES(R, NV)                                                                                            \
    PK_TARGET_AVX2 static void dc_tile_3x3_##R##x##NV(const dc_geom *g, const float *xp, const float *wp,        \
                                                      int64_t ob, int64_t q0, float *out, int64_t ldo) {          \
        dc_tile_body(g, xp, wp, ob, q0, out, ldo, 3, 3, R, NV);                                                    \
    }                                                                                                              \
    PK_TARGET_AVX2 static void dc_tile_any_##R##x##NV(const dc_geom *g, const float *xp, const float *wp,        \
                                                      int64_t ob, int64_t q0, float *out, int64_t ldo) {          \
        dc_tile_body(g, xp, wp, ob, q0, out, ldo, g->KH, g->KW, R, NV);                                            \
    }
DC_TILES(1, 2)
DC_TILES(2, 2)
DC_TILES(3, 2)
DC_TILES(4, 2)
DC_TILES(5, 2)
DC_TILES(6, 2)
DC_TILES(1, 8)
DC_TILES(2, 6)
// by rows R: the DC_QB-wide tile, and the wide one (NULL: none) with its vector count
static const dc_tile_fn dc_narrow_3x3[DC_OB + 1] = {NULL, dc_tile_3x3_1x2, dc_tile_3x3_2x2, dc_tile_3x3_3x2,
                                                    dc_tile_3x3_4x2, dc_tile_3x3_5x2, dc_tile_3x3_6x2};
static const dc_tile_fn dc_narrow_any[DC_OB + 1] = {NULL, dc_tile_any_1x2, dc_tile_any_2x2, dc_tile_any_3x2,
                                                    dc_tile_any_4x2, dc_tile_any_5x2, dc_tile_any_6x2};
static const dc_tile_fn dc_wide_3x3[DC_OB + 1] = {NULL, dc_tile_3x3_1x8, dc_tile_3x3_2x6};
static const dc_tile_fn dc_wide_any[DC_OB + 1] = {NULL, dc_tile_any_1x8, dc_tile_any_2x6};
static const int64_t dc_wide_nv[DC_OB + 1] = {0, 8, 6, 0, 0, 0, 0}; // 3 × 4 would spill

// All positions [0, Lr) of block ob, its rows inside OC only: wide tiles while they fit (every
// width is a multiple of DC_QB, so the rest is whole DC_QB tiles), then DC_QB-wide ones.
static void dc_block(const dc_geom *g, const float *xp, const float *wp, int64_t ob, float *out) {
    const int64_t rows = PK_MIN((int64_t)DC_OB, g->OC - ob * DC_OB), qw = 8 * dc_wide_nv[rows];
    const int k3 = g->KH == 3 && g->KW == 3;
    int64_t q0 = 0;
    if (qw) {
        const dc_tile_fn wide = (k3 ? dc_wide_3x3 : dc_wide_any)[rows];
        for (; q0 + qw <= g->Lr; q0 += qw) wide(g, xp, wp, ob, q0, out + q0, g->Lr);
    }
    const dc_tile_fn narrow = (k3 ? dc_narrow_3x3 : dc_narrow_any)[rows];
    for (; q0 < g->Lr; q0 += DC_QB) narrow(g, xp, wp, ob, q0, out + q0, g->Lr);
}

// Forward of one padded image xp into y (OC × OH × OW) through out (DC_OB × Lr scratch per block):
// y = act(scale·conv + shift) per channel (scale NULL: 1, shift NULL: 0).
static void dc_image_forward(const dc_geom *g, const float *xp, const float *wp, int64_t ob_begin, int64_t ob_end,
                             const float *scale, const float *shift, int relu, float *out, float *y) {
    for (int64_t ob = ob_begin; ob < ob_end; ob++) {
        dc_block(g, xp, wp, ob, out);
        for (int64_t r = 0; r < DC_OB; r++) {
            const int64_t o = ob * DC_OB + r;
            if (o >= g->OC) break;
            const float sc = scale ? scale[o] : 1.0f, sh = shift ? shift[o] : 0.0f;
            const float *src = out + r * g->Lr;
            float *dst = y + o * g->OH * g->OW;
            for (int64_t i = 0; i < g->OH; i++) {
                const float *s = src + i * g->Wp;
                float *d = dst + i * g->OW;
                if (relu) for (int64_t j = 0; j < g->OW; j++) d[j] = pk_relu1(s[j] * sc + sh);
                else for (int64_t j = 0; j < g->OW; j++) d[j] = s[j] * sc + sh;
            }
        }
    }
}

typedef struct {
    dc_geom g;
    int64_t nsplit; // output-channel groups per image (tasks = N · nsplit)
    const float *x, *wp, *scale, *shift;
    int relu;
    float *y;
    int64_t in_image, out_image; // floats per input / output image
    pk_status *status;
} dc_fwd_ctx;

static void dc_forward_range(void *v, int64_t b, int64_t e) {
    // tasks [b, e): task = image n, output-channel group s
    const dc_fwd_ctx *f = v;
    const dc_geom *g = &f->g;
    float *xp = pk_scratch(4, (size_t)(g->C * g->plane) * 4);
    float *out = pk_scratch(5, (size_t)(DC_OB * g->Lr) * 4);
    if (!xp || !out) { __atomic_store_n(f->status, PK_ERR_NOMEM, __ATOMIC_RELAXED); return; }
    int64_t padded = -1;
    for (int64_t t = b; t < e; t++) {
        const int64_t n = t / f->nsplit, s = t % f->nsplit;
        if (n != padded) { dc_pad_image(g, f->x + n * f->in_image, xp); padded = n; }
        const int64_t per = (g->nob + f->nsplit - 1) / f->nsplit;
        const int64_t o0 = s * per, o1 = PK_MIN(g->nob, o0 + per);
        dc_image_forward(g, xp, f->wp, o0, o1, f->scale, f->shift, f->relu, out, f->y + n * f->out_image);
    }
}

// Runs the forward of all N images; w/mask read transposed and flipped when flip != 0.
static pk_status dc_forward(const dc_geom *g, int64_t N, const float *x, const float *w, const uint8_t *mask, int flip,
                            const float *scale, const float *shift, int relu, float *y) {
    const int64_t T = g->KH * g->KW;
    float *wp = pk_scratch(18, (size_t)(g->nob * g->C * T * DC_OB) * 4);
    if (!wp) return PK_ERR_NOMEM;
    dc_pack_weights(g, w, mask, flip, wp);
    pk_status status = PK_OK;
    const int64_t threads = pk_get_num_threads();
    // enough tasks for every thread when the batch is small; the split does not change any sum
    int64_t nsplit = 1;
    while (N * nsplit < 2 * threads && nsplit < g->nob) nsplit *= 2;
    nsplit = PK_MIN(nsplit, g->nob);
    dc_fwd_ctx f = {.g = *g, .nsplit = nsplit, .x = x, .wp = wp, .scale = scale, .shift = shift, .relu = relu,
                    .y = y, .in_image = g->C * g->Hin * g->Win, .out_image = g->OC * g->OH * g->OW,
                    .status = &status};
    pk_parallel_for(N * nsplit, 1, dc_forward_range, &f);
    return status;
}

// -1: not decided yet; the environment variable PRUNEKIT_CONV_DIRECT=0 starts the process with the
// direct kernels off (A/B measurements of whole programs), pk_conv2d_set_direct overrides it.
static int direct_enabled = -1;

void pk_conv2d_set_direct(int on) { __atomic_store_n(&direct_enabled, on != 0, __ATOMIC_RELAXED); }

static int direct_on(void) {
    int v = __atomic_load_n(&direct_enabled, __ATOMIC_RELAXED);
    if (v < 0) {
        const char *e = getenv("PRUNEKIT_CONV_DIRECT");
        v = !(e && e[0] == '0' && e[1] == 0);
        __atomic_store_n(&direct_enabled, v, __ATOMIC_RELAXED);
    }
    return v;
}

int pk_conv2d_direct_eligible(int64_t C, int64_t KH, int64_t KW, int64_t s, int64_t p) {
    return direct_on() && pk_active_isa() == PK_ISA_AVX2 && s == 1 && KH * KW > 1 && p <= KH - 1 && p <= KW - 1 && C > 0;
}

pk_status pk_conv2d_direct_forward_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t OC, int64_t KH, int64_t KW,
                                       int64_t p, int relu, const float *x, const float *w, const uint8_t *mask,
                                       const float *scale, const float *shift, float *y) {
    dc_geom g;
    dc_geometry(&g, C, H, W, p, p, KH, KW, OC);
    return dc_forward(&g, N, x, w, mask, 0, scale, shift, relu, y);
}

pk_status pk_conv2d_direct_input_grad_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t OC, int64_t KH,
                                          int64_t KW, int64_t p, const float *w, const uint8_t *mask, const float *dy,
                                          float *dx) {
    // dy (N × OC × OH × OW) is the input; the packed "output channels" are the forward's C
    const int64_t OH = H + 2 * p - KH + 1, OW = W + 2 * p - KW + 1;
    dc_geom g;
    dc_geometry(&g, OC, OH, OW, KH - 1 - p, KW - 1 - p, KH, KW, C);
    return dc_forward(&g, N, dy, w, mask, 1, NULL, NULL, 0, dx);
}

// ---- weight gradient

// sums[r][t] = Σ_n Σ_q dyz[n][r][q] · xp[n][c][q + a·Wp + b0 + t] for 4 output channels r and 3 taps t of
// kernel row a, over the nimg images of a chunk: 12 accumulators, 3 input and 1 gradient vector in
// the 16 registers (7 loads per 12 FMAs; 3 rows measured 10-20 % slower, and waste a sixth of a
// 16-channel layer on padding rows), reduced once per chunk (a 7 × 7 plane is only 8 vectors long: reducing per image cost
// more than the products). xpl, dyz: image 0's plane of c and row of r = 0; xs, ds: image strides;
// ldd: the stride between gradient rows.
#define DC_WO 4
PK_TARGET_AVX2 static void dc_wgrad_tile(const dc_geom *g, const float *xpl, int64_t xs, const float *dyz, int64_t ds,
                                         int64_t ldd, int64_t nimg, int64_t a, int64_t b0, float sums[DC_WO][3]) {
    __m256 acc[DC_WO][3];
    for (int r = 0; r < DC_WO; r++)
        for (int t = 0; t < 3; t++) acc[r][t] = _mm256_setzero_ps();
    for (int64_t n = 0; n < nimg; n++) {
        const float *xr = xpl + n * xs + a * g->Wp + b0, *dn = dyz + n * ds;
        for (int64_t q = 0; q < g->Lr; q += 8) {
            __m256 xv[3];
            for (int t = 0; t < 3; t++) xv[t] = _mm256_loadu_ps(xr + q + t);
            for (int r = 0; r < DC_WO; r++) {
                const __m256 d = _mm256_loadu_ps(dn + r * ldd + q);
                for (int t = 0; t < 3; t++) acc[r][t] = _mm256_fmadd_ps(d, xv[t], acc[r][t]);
            }
        }
    }
    for (int r = 0; r < DC_WO; r++)
        for (int t = 0; t < 3; t++) {
            __m128 h = _mm_add_ps(_mm256_castps256_ps128(acc[r][t]), _mm256_extractf128_ps(acc[r][t], 1));
            h = _mm_add_ps(h, _mm_movehl_ps(h, h));
            h = _mm_add_ss(h, _mm_movehdup_ps(h));
            sums[r][t] = _mm_cvtss_f32(h);
        }
}

typedef struct {
    dc_geom g;
    int64_t N, per, chunks;
    const float *x, *dy;
    float *partials; // chunks × OC × C × KH × KW
    pk_status *status;
} dc_wgrad_ctx;

static void dc_wgrad_range(void *v, int64_t b, int64_t e) {
    // chunks [b, e): partial dW of images [q·per, q·per + per), every entry one register sum over them
    const dc_wgrad_ctx *f = v;
    const dc_geom *g = &f->g;
    const int64_t T = g->KH * g->KW, KWr = (g->KW + 2) / 3 * 3;
    const int64_t ocr = (g->OC + DC_WO - 1) / DC_WO * DC_WO;
    const int64_t xs = g->C * g->plane, ds = ocr * g->Lr;
    float *xp = pk_scratch(4, (size_t)(f->per * xs) * 4);
    float *dyz = pk_scratch(5, (size_t)(f->per * ds) * 4);
    if (!xp || !dyz) { __atomic_store_n(f->status, PK_ERR_NOMEM, __ATOMIC_RELAXED); return; }
    for (int64_t q = b; q < e; q++) {
        float *part = f->partials + q * g->OC * g->C * T;
        const int64_t n0 = q * f->per, n1 = PK_MIN(f->N, n0 + f->per), nimg = n1 - n0;
        // the chunk's images padded, and dy on the flat grid: rows of Wp with zeros past OW, zero tail
        // up to Lr, zero rows past OC
        memset(dyz, 0, (size_t)(nimg * ds) * 4);
        for (int64_t n = n0; n < n1; n++) {
            dc_pad_image(g, f->x + n * g->C * g->Hin * g->Win, xp + (n - n0) * xs);
            float *dn = dyz + (n - n0) * ds;
            for (int64_t o = 0; o < g->OC; o++)
                for (int64_t i = 0; i < g->OH; i++)
                    memcpy(dn + o * g->Lr + i * g->Wp, f->dy + ((n * g->OC + o) * g->OH + i) * g->OW, (size_t)g->OW * 4);
        }
        // input channel outermost: its planes (all images) stay in L1 while every output row passes
        for (int64_t c = 0; c < g->C; c++)
            for (int64_t o0 = 0; o0 < ocr; o0 += DC_WO)
                for (int64_t a = 0; a < g->KH; a++)
                    for (int64_t b0 = 0; b0 < KWr; b0 += 3) {
                        float sums[DC_WO][3];
                        dc_wgrad_tile(g, xp + c * g->plane, xs, dyz + o0 * g->Lr, ds, g->Lr, nimg, a, b0, sums);
                        for (int64_t r = 0; r < DC_WO && o0 + r < g->OC; r++)
                            for (int64_t t = 0; t < 3 && b0 + t < g->KW; t++)
                                part[((o0 + r) * g->C + c) * T + a * g->KW + b0 + t] = sums[r][t];
                    }
    }
}

int64_t pk_conv2d_direct_wgrad_chunks(int64_t N, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t p) {
    // images per chunk: about 256 KiB of padded input per chunk, at least one image; shape only
    dc_geom g;
    dc_geometry(&g, C, H, W, p, p, KH, KW, 1);
    int64_t per = PK_MAX((int64_t)1, (int64_t)(256 << 10) / PK_MAX((int64_t)1, g.C * g.plane * 4));
    per = PK_MIN(per, PK_MAX(N, (int64_t)1));
    // at least 8 chunks when the batch allows it, so two or more threads share the work
    while (per > 1 && (N + per - 1) / per < 8) per--;
    return per;
}

pk_status pk_conv2d_direct_weight_grad_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t OC, int64_t KH,
                                           int64_t KW, int64_t p, const float *x, const float *dy, int64_t per,
                                           float *partials) {
    dc_geom g;
    dc_geometry(&g, C, H, W, p, p, KH, KW, OC);
    pk_status status = PK_OK;
    dc_wgrad_ctx f = {.g = g, .N = N, .per = per, .chunks = (N + per - 1) / per, .x = x, .dy = dy,
                      .partials = partials, .status = &status};
    pk_parallel_for(f.chunks, 1, dc_wgrad_range, &f);
    return status;
}
