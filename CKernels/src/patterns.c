// Structured selection patterns: N:M group masks and the norms of units (rows, channels, filters)
// for structured pruning. The global threshold selection lives in topk.c.
#include "select_internal.h"

// ---- N:M groups

typedef struct { int64_t rows, cols, ld, N, M; const float *x; uint8_t *mask; int use_abs; } nm_ctx;

static void nm_range(void *v, int64_t b, int64_t e) {
    // rows [b, e): in each group of M consecutive entries keep the N largest kept scores; among
    // equal scores the lower index is pruned first (the pinned tie rule)
    const nm_ctx *c = v;
    for (int64_t r = b; r < e; r++) {
        const float *x = c->x + r * c->ld;
        uint8_t *m = c->mask + r * c->ld;
        for (int64_t g = 0; g < c->cols; g += c->M) {
            int64_t len = PK_MIN(c->M, c->cols - g);
            // prune the smallest until at most N stay
            for (;;) {
                int64_t kept = 0, worst = -1;
                uint32_t wk = 0;
                for (int64_t j = 0; j < len; j++) {
                    if (!m[g + j]) continue;
                    kept++;
                    uint32_t kk = key_of(c->use_abs, x[g + j]);
                    if (worst < 0 || kk < wk) { worst = j; wk = kk; }
                }
                if (kept <= c->N) break;
                m[g + worst] = 0;
            }
        }
    }
}

pk_status pk_nm_mask_f32(int64_t rows, int64_t cols, int64_t N, int64_t M, const float *x, int64_t ld, int use_abs,
                         uint8_t *mask) {
    if (rows < 0 || cols < 0 || ld < cols) return PK_ERR_SHAPE;
    if (M < 1 || N < 0 || N > M) return PK_ERR_ARG;
    if (rows == 0 || cols == 0) return PK_OK;
    if (!x || !mask) return PK_ERR_NULL;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < cols; j++)
            if (mask[r * ld + j] && !isfinite(x[r * ld + j])) return PK_ERR_NONFINITE;
    nm_ctx c = {rows, cols, ld, N, M, x, mask, use_abs};
    pk_parallel_for(rows, 16, nm_range, &c);
    return PK_OK;
}

// ---- norms of units for structured pruning

typedef struct { int64_t A, D, B; double p; const float *x; const uint8_t *mask; float *out; } norm_ctx;

static void norm_range(void *v, int64_t b, int64_t e) {
    // units [b, e) of the D dimension: ‖x[:, d, :]‖_p over A×B (kept entries only), in a fixed order
    const norm_ctx *c = v;
    for (int64_t d = b; d < e; d++) {
        double acc = 0.0;
        for (int64_t a = 0; a < c->A; a++) {
            const float *row = c->x + (a * c->D + d) * c->B;
            const uint8_t *mr = c->mask ? c->mask + (a * c->D + d) * c->B : NULL;
            for (int64_t q = 0; q < c->B; q++) {
                if (mr && !mr[q]) continue;
                double t = fabs((double)row[q]);
                if (isinf(c->p)) acc = t > acc ? t : acc;
                else if (c->p == 1.0) acc += t;
                else if (c->p == 2.0) acc += t * t;
                else if (c->p == 0.0) acc += t != 0.0;
                else acc += pow(t, c->p);
            }
        }
        double r = acc;
        if (!isinf(c->p) && c->p != 1.0 && c->p != 0.0) r = c->p == 2.0 ? sqrt(acc) : pow(acc, 1.0 / c->p);
        c->out[d] = (float)r;
    }
}

pk_status pk_unit_norms_f32(int64_t A, int64_t D, int64_t B, double p, const float *x, const uint8_t *mask,
                            float *out) {
    if (A < 0 || D < 0 || B < 0) return PK_ERR_SHAPE;
    if (!(p >= 0.0)) return PK_ERR_ARG;
    if (D == 0) return PK_OK;
    if (!out || (A > 0 && B > 0 && !x)) return PK_ERR_NULL;
    for (int64_t i = 0; i < A * D * B; i++) if (!isfinite(x[i])) return PK_ERR_NONFINITE;
    norm_ctx c = {A, D, B, p, x, mask, out};
    pk_parallel_for(D, 1, norm_range, &c);
    return PK_OK;
}
