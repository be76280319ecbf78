// SparseGPT (Frantar & Alistarh 2023): one-shot pruning of a Linear weight that also moves the
// kept weights so the layer's outputs on the calibration inputs change as little as possible
// (optimal-brain-surgeon updates from the inverse Gram matrix, in its Cholesky form), and the
// Gram accumulation G += XᵀX that feeds it. Reference: src/ref/obs_ref.c.
#include "internal.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

pk_status pk_gram_acc_f32(int64_t m, int64_t n, const float *x, int64_t ld, float *g) {
    if (m < 0 || n < 0) return PK_ERR_SHAPE;
    if (m == 0 || n == 0) return PK_OK;
    if (!x || !g) return PK_ERR_NULL;
    if (ld < n) return PK_ERR_SHAPE;
    if (pk_overlaps(g, (size_t)n * (size_t)n * 4, x, pk_span(m, n, ld, 4))) return PK_ERR_ALIAS;
    // G += XᵀX is a GEMM: the blocked, packed kernels at full speed (the symmetric half computed
    // twice costs less than a triangular kernel of its own would gain); their fixed k-order gives the
    // same bits for any thread count
    return pk_gemm_masked_tn_f32(n, n, m, 1.0f, x, ld, x, ld, NULL, 0, 1.0f, g, n);
}

typedef double obs_d4 __attribute__((vector_size(32)));

/// Σ a[k]·b[k] for k < len: four-lane partial sums in two registers, then a fixed pairwise order
/// (the same bits whichever thread computes it).
static inline double dot_d(const double *a, const double *b, int64_t len) {
    obs_d4 s0 = {0, 0, 0, 0}, s1 = {0, 0, 0, 0};
    int64_t k = 0;
    for (; k + 8 <= len; k += 8) {
        obs_d4 x0, y0, x1, y1;
        memcpy(&x0, a + k, 32), memcpy(&y0, b + k, 32), memcpy(&x1, a + k + 4, 32), memcpy(&y1, b + k + 4, 32);
        s0 += x0 * y0;
        s1 += x1 * y1;
    }
    const obs_d4 t = s0 + s1;
    double s = (t[0] + t[2]) + (t[1] + t[3]);
    for (; k < len; k++) s += a[k] * b[k];
    return s;
}

typedef struct { double *a; int64_t n, j; } chol_ctx;

static void chol_rows(void *v, int64_t b, int64_t e) {
    // rows j+1+b .. j+1+e of column j: a[i][j] = (a[i][j] − Σ_{k<j} a[i][k]·a[j][k]) / a[j][j]
    const chol_ctx *c = v;
    const int64_t n = c->n, j = c->j;
    const double *rj = c->a + j * n;
    for (int64_t i = j + 1 + b; i < j + 1 + e; i++) {
        double *ri = c->a + i * n;
        ri[j] = (ri[j] - dot_d(ri, rj, j)) / rj[j];
    }
}

/// Lower Cholesky factor of the n×n symmetric a, in place (upper part left alone); 0 when a is not
/// positive definite. Column by column (left-looking), each column's rows in parallel.
static int cholesky_lower(double *a, int64_t n) {
    for (int64_t j = 0; j < n; j++) {
        const double d = a[j * n + j] - dot_d(a + j * n, a + j * n, j);
        if (!(d > 0)) return 0;
        a[j * n + j] = sqrt(d);
        chol_ctx c = {a, n, j};
        pk_parallel_for(n - 1 - j, PK_MAX(16, 65536 / PK_MAX(j, 1)), chol_rows, &c);
    }
    return 1;
}

typedef struct { const double *l; double *x; int64_t n; } trinv_ctx;

static void trinv_cols(void *v, int64_t b, int64_t e) {
    // columns of L⁻¹ by forward substitution, item p taking column p/2 or n−1−p/2 so that
    // contiguous chunks of items carry equal work; x[j·n + i] = L⁻¹[i, j] (column j as a row)
    const trinv_ctx *c = v;
    const int64_t n = c->n;
    for (int64_t p = b; p < e; p++) {
        const int64_t j = p % 2 == 0 ? p / 2 : n - 1 - p / 2;
        double *x = c->x + j * n;
        for (int64_t i = 0; i < j; i++) x[i] = 0;
        x[j] = 1 / c->l[j * n + j];
        for (int64_t i = j + 1; i < n; i++) {
            const double *li = c->l + i * n;
            x[i] = -dot_d(li + j, x + j, i - j) / li[i];
        }
    }
}

typedef struct {
    int64_t rows, cols, n, m, block;
    double sparsity;
    float *w;
    const float *u; // upper Cholesky factor of H⁻¹, row-major
    uint8_t *mask;
} sgpt_ctx;

/// Marks as pruned the `k` smallest of score[0..len) (ties: the earlier entry goes first).
static void prune_smallest(const float *score, int64_t len, int64_t k, uint8_t *mask) {
    for (int64_t t = 0; t < len; t++) mask[t] = 1;
    for (int64_t p = 0; p < k; p++) {
        int64_t best = -1;
        for (int64_t t = 0; t < len; t++) {
            if (mask[t] && (best < 0 || score[t] < score[best])) best = t;
        }
        mask[best] = 0;
    }
}

static void sparsegpt_rows(void *v, int64_t b, int64_t e) {
    const sgpt_ctx *c = v;
    const int64_t n = c->cols;
    float score[256];
    for (int64_t r = b; r < e; r++) {
        float *w = c->w + r * n;
        uint8_t *mk = c->mask + r * n;
        for (int64_t i1 = 0; i1 < n; i1 += c->block) {
            const int64_t i2 = PK_MIN(n, i1 + c->block);
            if (c->m == 0) { // this block's share of the row, chosen with the weights as they are now
                const int64_t k = llround(c->sparsity * (double)i2) - llround(c->sparsity * (double)i1);
                for (int64_t j = i1; j < i2; j++) {
                    const float d = c->u[j * n + j];
                    score[j - i1] = w[j] * w[j] / (d * d);
                }
                prune_smallest(score, i2 - i1, k, mk + i1);
            }
            for (int64_t i = i1; i < i2; i++) {
                if (c->m > 0 && i % c->m == 0) {
                    for (int64_t j = i; j < i + c->m; j++) {
                        const float d = c->u[j * n + j];
                        score[j - i] = w[j] * w[j] / (d * d);
                    }
                    prune_smallest(score, c->m, c->m - c->n, mk + i);
                }
                const float q = mk[i] ? w[i] : 0.0f;
                const float err = (w[i] - q) / c->u[i * n + i];
                if (err != 0) {
                    const float *ui = c->u + i * n;
                    for (int64_t j = i + 1; j < n; j++) w[j] -= err * ui[j];
                }
                w[i] = q;
            }
        }
    }
}

pk_status pk_sparsegpt_f32(int64_t rows, int64_t cols, float *w, const float *gram, float damp, double sparsity,
                           int64_t n, int64_t m, int64_t block, uint8_t *mask) {
    if (rows < 0 || cols < 0) return PK_ERR_SHAPE;
    if (rows == 0 || cols == 0) return PK_OK;
    if (!w || !gram || !mask) return PK_ERR_NULL;
    if (!(damp >= 0) || !isfinite(damp) || block < 1 || block > 256) return PK_ERR_ARG;
    if (m < 0 || (m > 0 ? (n < 0 || n > m || m > 256 || cols % m != 0) : !(sparsity >= 0 && sparsity <= 1))) return PK_ERR_ARG;
    const size_t wb = (size_t)rows * (size_t)cols * 4, gb = (size_t)cols * (size_t)cols * 4;
    if (pk_overlaps(w, wb, gram, gb) || pk_overlaps(mask, (size_t)rows * (size_t)cols, w, wb) ||
        pk_overlaps(mask, (size_t)rows * (size_t)cols, gram, gb))
        return PK_ERR_ALIAS;
    for (int64_t i = 0; i < rows * cols; i++) {
        if (!isfinite(w[i])) return PK_ERR_NONFINITE;
    }
    const int64_t nn = cols * cols;
    double *h = malloc((size_t)nn * sizeof(double)), *li = malloc((size_t)nn * sizeof(double));
    float *u = malloc((size_t)nn * sizeof(float));
    pk_status st = PK_OK;
    if (!h || !li || !u) { st = PK_ERR_NOMEM; goto done; }
    double mean = 0;
    for (int64_t i = 0; i < nn; i++) {
        if (!isfinite(gram[i])) { st = PK_ERR_NONFINITE; goto done; }
        h[i] = gram[i];
    }
    for (int64_t i = 0; i < cols; i++) mean += h[i * cols + i];
    mean /= (double)cols;
    for (int64_t i = 0; i < cols; i++) {
        if (h[i * cols + i] == 0) h[i * cols + i] = 1; // an input that never fired (its weights go to 0 below)
        h[i * cols + i] += damp * (mean > 0 ? mean : 1);
    }
    // U, the upper Cholesky factor of H⁻¹ (row i holds the OBS update of column i once columns
    // 0..i−1 are settled), from one factorisation: with P the order-reversing permutation and
    // P·H·P = L·Lᵀ, H⁻¹ = (P·L⁻ᵀ·P)·(P·L⁻¹·P), whose first factor is lower triangular with a positive
    // diagonal, so U = P·L⁻¹·P: U[i, j] = L⁻¹[n−1−i, n−1−j]
    for (int64_t i = 0; i < cols; i++)
        for (int64_t j = 0; j < cols; j++) li[i * cols + j] = h[(cols - 1 - i) * cols + (cols - 1 - j)];
    if (!cholesky_lower(li, cols)) { st = PK_ERR_ARG; goto done; }
    trinv_ctx tc = {li, h, cols};
    pk_parallel_for(cols, 1, trinv_cols, &tc); // h[j·cols + i] = L⁻¹[i, j]
    for (int64_t i = 0; i < cols; i++) {
        // U[i, j] = L⁻¹[n−1−i, n−1−j] = h[(n−1−j)·cols + n−1−i], zero below the diagonal
        for (int64_t j = 0; j < cols; j++) u[i * cols + j] = j >= i ? (float)h[(cols - 1 - j) * cols + (cols - 1 - i)] : 0.0f;
    }
    for (int64_t i = 0; i < cols; i++) { // w changes only once nothing can fail
        if (gram[i * cols + i] == 0) {
            for (int64_t r = 0; r < rows; r++) w[r * cols + i] = 0;
        }
    }
    sgpt_ctx c = {rows, cols, n, m, block, sparsity, w, u, mask};
    pk_parallel_for(rows, 1, sparsegpt_rows, &c);
done:
    free(h);
    free(li);
    free(u);
    return st;
}
