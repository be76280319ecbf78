// Naive reference of SparseGPT in the optimal-brain-surgeon form: explicit inverses of the
// trailing blocks of H, double precision, no Cholesky factors.
#include "prunekit_kernels.h"
#include <math.h>
#include <stdlib.h>

/// Inverse of the k×k matrix a (row stride lda) into out (k×k) by Gauss–Jordan with partial
/// pivoting; 0 when singular.
static int invert(const double *a, int64_t lda, int64_t k, double *out) {
    double *t = malloc((size_t)(k * 2 * k) * sizeof(double));
    if (!t) return 0;
    for (int64_t i = 0; i < k; i++) {
        for (int64_t j = 0; j < k; j++) { t[i * 2 * k + j] = a[i * lda + j]; t[i * 2 * k + k + j] = i == j; }
    }
    int ok = 1;
    for (int64_t c = 0; c < k && ok; c++) {
        int64_t p = c;
        for (int64_t i = c + 1; i < k; i++) if (fabs(t[i * 2 * k + c]) > fabs(t[p * 2 * k + c])) p = i;
        if (t[p * 2 * k + c] == 0) { ok = 0; break; }
        for (int64_t j = 0; j < 2 * k; j++) { double x = t[c * 2 * k + j]; t[c * 2 * k + j] = t[p * 2 * k + j]; t[p * 2 * k + j] = x; }
        const double d = t[c * 2 * k + c];
        for (int64_t j = 0; j < 2 * k; j++) t[c * 2 * k + j] /= d;
        for (int64_t i = 0; i < k; i++) {
            if (i == c) continue;
            const double f = t[i * 2 * k + c];
            for (int64_t j = 0; j < 2 * k; j++) t[i * 2 * k + j] -= f * t[c * 2 * k + j];
        }
    }
    for (int64_t i = 0; i < k && ok; i++) {
        for (int64_t j = 0; j < k; j++) out[i * k + j] = t[i * 2 * k + k + j];
    }
    free(t);
    return ok;
}

/// Marks the k smallest scores as pruned (ties: the earlier entry first).
static void ref_prune_smallest(const double *score, int64_t len, int64_t k, uint8_t *mask) {
    for (int64_t t = 0; t < len; t++) mask[t] = 1;
    for (int64_t p = 0; p < k; p++) {
        int64_t best = -1;
        for (int64_t t = 0; t < len; t++) if (mask[t] && (best < 0 || score[t] < score[best])) best = t;
        mask[best] = 0;
    }
}

pk_status pk_ref_sparsegpt_f32(int64_t rows, int64_t cols, float *w, const float *gram, float damp, double sparsity,
                               int64_t n, int64_t m, int64_t block, uint8_t *mask) {
    if (rows <= 0 || cols <= 0) return rows < 0 || cols < 0 ? PK_ERR_SHAPE : PK_OK;
    if (m < 0) return PK_ERR_ARG;
    const int64_t nn = cols * cols;
    double *h = malloc((size_t)nn * sizeof(double));
    // inv[i]: (H[i.., i..])⁻¹, (cols − i)² entries each
    double **inv = calloc((size_t)cols, sizeof(double *));
    double *row = malloc((size_t)cols * sizeof(double)), *score = malloc((size_t)cols * sizeof(double));
    pk_status st = PK_OK;
    double mean = 0;
    for (int64_t i = 0; i < nn; i++) h[i] = gram[i];
    for (int64_t i = 0; i < cols; i++) mean += h[i * cols + i];
    mean /= (double)cols;
    for (int64_t i = 0; i < cols; i++) {
        if (h[i * cols + i] == 0) {
            h[i * cols + i] = 1;
            for (int64_t r = 0; r < rows; r++) w[r * cols + i] = 0;
        }
        h[i * cols + i] += damp * (mean > 0 ? mean : 1);
    }
    for (int64_t i = 0; i < cols; i++) {
        const int64_t k = cols - i;
        inv[i] = malloc((size_t)(k * k) * sizeof(double));
        if (!invert(h + i * cols + i, cols, k, inv[i])) { st = PK_ERR_ARG; goto done; }
    }
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t j = 0; j < cols; j++) row[j] = w[r * cols + j];
        uint8_t *mk = mask + r * cols;
        for (int64_t i1 = 0; i1 < cols; i1 += block) {
            const int64_t i2 = i1 + block < cols ? i1 + block : cols;
            if (m == 0) {
                for (int64_t j = i1; j < i2; j++) score[j - i1] = row[j] * row[j] / inv[j][0];
                ref_prune_smallest(score, i2 - i1, llround(sparsity * (double)i2) - llround(sparsity * (double)i1), mk + i1);
            }
            for (int64_t i = i1; i < i2; i++) {
                if (m > 0 && i % m == 0) {
                    for (int64_t j = i; j < i + m; j++) score[j - i] = row[j] * row[j] / inv[j][0];
                    ref_prune_smallest(score, m, m - n, mk + i);
                }
                // OBS: remove column i's error and re-solve the later weights with (H[i.., i..])⁻¹
                const double q = mk[i] ? row[i] : 0, err = row[i] - q;
                const double *hi = inv[i]; // row 0 of it is column i
                for (int64_t j = i + 1; j < cols; j++) row[j] -= err * hi[j - i] / hi[0];
                row[i] = q;
            }
        }
        for (int64_t j = 0; j < cols; j++) w[r * cols + j] = (float)row[j];
    }
done:
    for (int64_t i = 0; i < cols; i++) free(inv[i]);
    free(inv);
    free(h);
    free(row);
    free(score);
    return st;
}
