// Element-wise kernels and small reductions: ReLU, column sums, mask application, counts, finiteness.
#include "internal.h"
#include <stdlib.h>
#include <string.h>

#define FINITE_CHUNKS 64

typedef struct { const float *x; const float *y; const float *dy; float *out; const uint8_t *m; } ew_ctx;

static void relu_fwd_range(void *v, int64_t b, int64_t e) {
    // n elements: y = max(x, 0); NaN stays NaN
    const ew_ctx *c = v;
    for (int64_t i = b; i < e; i++) c->out[i] = pk_relu1(c->x[i]);
}

pk_status pk_relu_forward_f32(int64_t n, const float *x, float *y) {
    if (n < 0) return PK_ERR_SHAPE;
    if (n == 0) return PK_OK;
    if (!x || !y) return PK_ERR_NULL;
    if (x != y && pk_overlaps(x, (size_t)n * 4, y, (size_t)n * 4)) return PK_ERR_ALIAS;
    ew_ctx c = {x, NULL, NULL, y, NULL};
    pk_parallel_for(n, 1 << 15, relu_fwd_range, &c);
    return PK_OK;
}

static void relu_bwd_range(void *v, int64_t b, int64_t e) {
    // n elements: dx = y > 0 ? dy : 0
    // (branch-free and unconditional reads, so it vectorises: a branch on the sign mispredicts half the time)
    const ew_ctx *c = v;
    const float *y = c->y, *dy = c->dy;
    float *out = c->out;
    // out may be dy itself (in place), never partly overlapping it: element i is read before it is written
#pragma clang loop vectorize(assume_safety)
    for (int64_t i = b; i < e; i++) {
        const float d = dy[i];
        out[i] = y[i] > 0.0f ? d : 0.0f;
    }
}

pk_status pk_relu_backward_f32(int64_t n, const float *y, const float *dy, float *dx) {
    if (n < 0) return PK_ERR_SHAPE;
    if (n == 0) return PK_OK;
    if (!y || !dy || !dx) return PK_ERR_NULL;
    if ((dx != dy && pk_overlaps(dx, (size_t)n * 4, dy, (size_t)n * 4)) ||
        (dx != y && pk_overlaps(dx, (size_t)n * 4, y, (size_t)n * 4)))
        return PK_ERR_ALIAS;
    ew_ctx c = {NULL, y, dy, dx, NULL};
    pk_parallel_for(n, 1 << 15, relu_bwd_range, &c);
    return PK_OK;
}

typedef struct { int64_t m, n, ldx; float beta; const float *X; float *out; } sum_ctx;

static void sum_rows_range(void *v, int64_t b, int64_t e) {
    // columns [b, e) of an m×n matrix, rows summed in order 0..m-1
    const sum_ctx *c = v;
    for (int64_t j = b; j < e; j++) c->out[j] = c->beta == 0.0f ? 0.0f : c->beta * c->out[j];
    for (int64_t i = 0; i < c->m; i++) {
        const float *row = c->X + i * c->ldx;
        for (int64_t j = b; j < e; j++) c->out[j] += row[j];
    }
}

pk_status pk_sum_rows_f32(int64_t m, int64_t n, float beta, const float *X, int64_t ldx, float *out) {
    if (m < 0 || n < 0) return PK_ERR_SHAPE;
    if (n == 0) return PK_OK;
    if (!out || (m > 0 && !X)) return PK_ERR_NULL;
    if (m > 0 && ldx < n) return PK_ERR_SHAPE;
    if (m > 0 && pk_overlaps(out, (size_t)n * 4, X, pk_span(m, n, ldx, 4))) return PK_ERR_ALIAS;
    sum_ctx c = {m, n, ldx, beta, X, out};
    pk_parallel_for(n, PK_MAX(16, (1 << 16) / PK_MAX(m, 1)), sum_rows_range, &c);
    return PK_OK;
}

static void mask_apply_range(void *v, int64_t b, int64_t e) {
    // n elements: w = m ? w : 0 (branch-free, vectorised)
    const ew_ctx *c = v;
    const uint8_t *restrict m = c->m;
    uint32_t *restrict w = (uint32_t *)(void *)c->out;
    for (int64_t i = b; i < e; i++) w[i] &= 0u - (uint32_t)(m[i] != 0); // +0.0 where pruned
}

pk_status pk_mask_apply_f32(int64_t n, const uint8_t *m, float *w) {
    if (n < 0) return PK_ERR_SHAPE;
    if (n == 0) return PK_OK;
    if (!m || !w) return PK_ERR_NULL;
    if (pk_overlaps(m, (size_t)n, w, (size_t)n * 4)) return PK_ERR_ALIAS;
    ew_ctx c = {NULL, NULL, NULL, w, m};
    pk_parallel_for(n, 1 << 16, mask_apply_range, &c);
    return PK_OK;
}

typedef struct { const uint8_t *m; int64_t partial[256]; int64_t chunk; } count_ctx;

typedef struct { count_ctx *c; int64_t blocks, groups; } count_groups;

static void count_groups_range(void *v, int64_t b, int64_t e) {
    // groups [b, e): each counts the nonzero bytes of its blocks into its own slot
    const count_groups *g = v;
    for (int64_t q = b; q < e; q++) {
        int64_t first = q * g->blocks / g->groups, last = (q + 1) * g->blocks / g->groups;
        const uint8_t *m = g->c->m + first * g->c->chunk;
        const int64_t n = (last - first) * g->c->chunk;
        int64_t s = 0;
        for (int64_t i0 = 0; i0 < n; i0 += 1 << 16) {
            uint32_t acc = 0;
            for (int64_t i = i0; i < i0 + (1 << 16); i++) acc += m[i] != 0;
            s += acc;
        }
        g->c->partial[q] = s;
    }
}

pk_status pk_count_nonzero_u8(int64_t n, const uint8_t *m, int64_t *count) {
    if (n < 0) return PK_ERR_SHAPE;
    if (!count) return PK_ERR_NULL;
    if (n > 0 && !m) return PK_ERR_NULL;
    // whole 64 KiB blocks in up to 256 groups, one count slot per group; the tail serially
    const int64_t chunk = 1 << 16, blocks = n / chunk;
    int64_t c = 0;
    if (blocks >= 4) {
        count_ctx *ctx = calloc(1, sizeof(count_ctx));
        if (!ctx) return PK_ERR_NOMEM;
        ctx->m = m;
        ctx->chunk = chunk;
        int64_t groups = PK_MIN(blocks, (int64_t)256);
        // group g covers blocks [g·blocks/groups, (g+1)·blocks/groups): one slot per group
        pk_parallel_for(groups, 1, count_groups_range, &(count_groups){ctx, blocks, groups});
        for (int64_t g = 0; g < groups; g++) c += ctx->partial[g];
        free(ctx);
    }
    for (int64_t i = blocks >= 4 ? blocks * chunk : 0; i < n; i++) c += m[i] != 0;
    *count = c;
    return PK_OK;
}

typedef struct { const float *x; int64_t n, chunk; int bad[FINITE_CHUNKS]; } finite_ctx;

static void finite_range(void *v, int64_t b, int64_t e) {
    // chunks [b, e): any NaN or ±Inf (exponent bits all set), branch-free so it vectorises
    finite_ctx *c = v;
    for (int64_t q = b; q < e; q++) {
        const float *x = c->x + q * c->chunk;
        const int64_t len = PK_MIN(c->chunk, c->n - q * c->chunk);
        uint32_t bad = 0;
        for (int64_t i = 0; i < len; i++) {
            uint32_t bits;
            memcpy(&bits, x + i, 4);
            bad |= (bits & 0x7F800000u) == 0x7F800000u;
        }
        c->bad[q] = (int)bad;
    }
}

pk_status pk_all_finite_f32(int64_t n, const float *x, int *ok) {
    if (n < 0) return PK_ERR_SHAPE;
    if (!ok) return PK_ERR_NULL;
    if (n > 0 && !x) return PK_ERR_NULL;
    // a fixed number of chunks (each thread ORs whole chunks), so the work never depends on threads
    finite_ctx c = {.x = x, .n = n, .chunk = PK_MAX((int64_t)1 << 14, (n + FINITE_CHUNKS - 1) / FINITE_CHUNKS)};
    const int64_t chunks = (n + c.chunk - 1) / c.chunk;
    pk_parallel_for(chunks, 1, finite_range, &c);
    int bad = 0;
    for (int64_t q = 0; q < chunks; q++) bad |= c.bad[q];
    *ok = !bad;
    return PK_OK;
}

typedef struct { float a, b; const float *x, *y; float *out; } axpby_ctx;

static void axpby_range(void *v, int64_t b, int64_t e) {
    // elements [b, e): out = a·x + b·y
    const axpby_ctx *c = v;
    for (int64_t i = b; i < e; i++) c->out[i] = c->a * c->x[i] + c->b * c->y[i];
}

// The checks every two-input element-wise kernel shares (shape, NULL, partial aliasing: out may be
// x or y exactly), then `range` over n elements in parallel.
static pk_status binary_op(int64_t n, float alpha, const float *x, float beta, const float *y, float *out,
                           void (*range)(void *, int64_t, int64_t)) {
    if (n < 0) return PK_ERR_SHAPE;
    if (n == 0) return PK_OK;
    if (!x || !y || !out) return PK_ERR_NULL;
    size_t nb = (size_t)n * 4;
    if ((out != x && pk_overlaps(out, nb, x, nb)) || (out != y && pk_overlaps(out, nb, y, nb))) return PK_ERR_ALIAS;
    axpby_ctx c = {alpha, beta, x, y, out};
    pk_parallel_for(n, 1 << 15, range, &c);
    return PK_OK;
}

pk_status pk_axpby_f32(int64_t n, float alpha, const float *x, float beta, const float *y, float *out) {
    return binary_op(n, alpha, x, beta, y, out, axpby_range);
}

static void mul_range(void *v, int64_t b, int64_t e) {
    // n elements: out = x · y
    const axpby_ctx *c = v;
    for (int64_t i = b; i < e; i++) c->out[i] = c->x[i] * c->y[i];
}

pk_status pk_mul_f32(int64_t n, const float *x, const float *y, float *out) {
    return binary_op(n, 1.0f, x, 1.0f, y, out, mul_range);
}

static void add_relu_range(void *v, int64_t b, int64_t e) {
    // n elements: out = max(x + y, 0); NaN stays NaN (as relu_fwd_range on the sum)
    const axpby_ctx *c = v;
    for (int64_t i = b; i < e; i++) {
        c->out[i] = pk_relu1(c->x[i] + c->y[i]);
    }
}

pk_status pk_add_relu_f32(int64_t n, const float *x, const float *y, float *out) {
    return binary_op(n, 1.0f, x, 1.0f, y, out, add_relu_range);
}
