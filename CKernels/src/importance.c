// Importance scores for pruning: Taylor accumulation |w·g|, input-feature statistics and the
// Wanda score |w|·‖x‖, and block norms for block-structured masks.
#include "internal.h"
#include <math.h>

typedef struct { const float *a, *b; float *acc; } amul_ctx;

static void abs_mul_acc_range(void *v, int64_t b, int64_t e) {
    // elements [b, e): acc += |a·b|
    const amul_ctx *c = v;
    for (int64_t i = b; i < e; i++) c->acc[i] += fabsf(c->a[i] * c->b[i]);
}

pk_status pk_abs_mul_acc_f32(int64_t n, const float *a, const float *b, float *acc) {
    if (n < 0) return PK_ERR_SHAPE;
    if (n == 0) return PK_OK;
    if (!a || !b || !acc) return PK_ERR_NULL;
    amul_ctx c = {a, b, acc};
    pk_parallel_for(n, 1 << 15, abs_mul_acc_range, &c);
    return PK_OK;
}

typedef struct { int64_t m, n, ld; const float *x; float *acc; } sumsq_ctx;

static void col_sumsq_range(void *v, int64_t b, int64_t e) {
    // columns [b, e): acc[j] += Σ_i x[i,j]², rows in order
    const sumsq_ctx *c = v;
    for (int64_t i = 0; i < c->m; i++) {
        const float *row = c->x + i * c->ld;
        for (int64_t j = b; j < e; j++) c->acc[j] += row[j] * row[j];
    }
}

pk_status pk_col_sumsq_acc_f32(int64_t m, int64_t n, const float *x, int64_t ld, float *acc) {
    if (m < 0 || n < 0 || (m > 0 && ld < n)) return PK_ERR_SHAPE;
    if (m == 0 || n == 0) return PK_OK;
    if (!x || !acc) return PK_ERR_NULL;
    sumsq_ctx c = {m, n, ld, x, acc};
    pk_parallel_for(n, 64, col_sumsq_range, &c);
    return PK_OK;
}

typedef struct { int64_t rows, cols, group; const float *w, *sumsq; float *out; } wanda_ctx;

static void wanda_range(void *v, int64_t b, int64_t e) {
    // rows [b, e): out[r, j] = |w[r, j]| · sqrt(sumsq[j / group])
    const wanda_ctx *c = v;
    for (int64_t r = b; r < e; r++)
        for (int64_t j = 0; j < c->cols; j++)
            c->out[r * c->cols + j] = fabsf(c->w[r * c->cols + j]) * sqrtf(c->sumsq[j / c->group]);
}

pk_status pk_wanda_scores_f32(int64_t rows, int64_t cols, int64_t group, const float *w, const float *sumsq,
                              float *out) {
    if (rows < 0 || cols < 0 || group < 1) return PK_ERR_SHAPE;
    if (rows == 0 || cols == 0) return PK_OK;
    if (!w || !sumsq || !out) return PK_ERR_NULL;
    wanda_ctx c = {rows, cols, group, w, sumsq, out};
    pk_parallel_for(rows, 8, wanda_range, &c);
    return PK_OK;
}

typedef struct { int64_t rows, cols, bh, bw, nbc; const float *x; const uint8_t *mask; float *out; } block_ctx;

static void block_range(void *v, int64_t b, int64_t e) {
    // block rows [b, e): out[br, bc] = mean |x| over the kept entries of the bh×bw block (0 if none)
    const block_ctx *c = v;
    for (int64_t br = b; br < e; br++)
        for (int64_t bc = 0; bc < c->nbc; bc++) {
            double s = 0.0;
            int64_t n = 0;
            for (int64_t r = br * c->bh; r < PK_MIN((br + 1) * c->bh, c->rows); r++)
                for (int64_t q = bc * c->bw; q < PK_MIN((bc + 1) * c->bw, c->cols); q++) {
                    if (c->mask && !c->mask[r * c->cols + q]) continue;
                    s += fabs((double)c->x[r * c->cols + q]);
                    n++;
                }
            c->out[br * c->nbc + bc] = n ? (float)(s / (double)n) : 0.0f;
        }
}

pk_status pk_block_norms_f32(int64_t rows, int64_t cols, int64_t bh, int64_t bw, const float *x, const uint8_t *mask,
                             float *out) {
    if (rows < 0 || cols < 0 || bh < 1 || bw < 1) return PK_ERR_SHAPE;
    if (rows == 0 || cols == 0) return PK_OK;
    if (!x || !out) return PK_ERR_NULL;
    block_ctx c = {rows, cols, bh, bw, (cols + bw - 1) / bw, x, mask, out};
    pk_parallel_for((rows + bh - 1) / bh, 1, block_range, &c);
    return PK_OK;
}

typedef struct { int64_t m, n; const float *a, *b; float *out; } coldot_ctx;

static void col_dot_range(void *v, int64_t b, int64_t e) {
    // columns [b, e): rows in order, accumulated in double
    const coldot_ctx *c = v;
    for (int64_t j = b; j < e; j++) {
        double s = 0;
        for (int64_t i = 0; i < c->m; i++) s += (double)c->a[i * c->n + j] * c->b[i * c->n + j];
        c->out[j] = (float)s;
    }
}

pk_status pk_col_dot_f32(int64_t m, int64_t n, const float *a, const float *b, float *out) {
    if (m < 0 || n < 0) return PK_ERR_SHAPE;
    if (n == 0) return PK_OK;
    if (!out || (m > 0 && (!a || !b))) return PK_ERR_NULL;
    if (m > 0 && (pk_overlaps(out, (size_t)n * 4, a, (size_t)(m * n) * 4) || pk_overlaps(out, (size_t)n * 4, b, (size_t)(m * n) * 4)))
        return PK_ERR_ALIAS;
    coldot_ctx c = {m, n, a, b, out};
    pk_parallel_for(n, PK_MAX(1, (1 << 14) / PK_MAX(m, 1)), col_dot_range, &c);
    return PK_OK;
}

typedef struct { int64_t N, C, S; const float *a, *b; float *out; } chdot_ctx;

static void channel_dot_range(void *v, int64_t c0, int64_t c1) {
    // channels [c0, c1): images, then positions, in order, accumulated in double
    const chdot_ctx *c = v;
    for (int64_t ch = c0; ch < c1; ch++) {
        double s = 0;
        for (int64_t n = 0; n < c->N; n++) {
            const float *a = c->a + (n * c->C + ch) * c->S, *b = c->b + (n * c->C + ch) * c->S;
            for (int64_t i = 0; i < c->S; i++) s += (double)a[i] * b[i];
        }
        c->out[ch] = (float)s;
    }
}

pk_status pk_channel_dot_f32(int64_t N, int64_t C, int64_t S, const float *a, const float *b, float *out) {
    if (N < 0 || C < 0 || S < 0) return PK_ERR_SHAPE;
    if (C == 0) return PK_OK;
    const int64_t total = N * C * S;
    if (!out || (total > 0 && (!a || !b))) return PK_ERR_NULL;
    if (total > 0 && (pk_overlaps(out, (size_t)C * 4, a, (size_t)total * 4) || pk_overlaps(out, (size_t)C * 4, b, (size_t)total * 4)))
        return PK_ERR_ALIAS;
    chdot_ctx c = {N, C, S, a, b, out};
    pk_parallel_for(C, PK_MAX(1, (1 << 14) / PK_MAX(N * S, 1)), channel_dot_range, &c);
    return PK_OK;
}
