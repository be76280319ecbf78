// Softmax cross-entropy (mean over rows), its gradient and the count of correct predictions.
#include "internal.h"
#include <math.h>
#include <stdlib.h>

typedef struct { int64_t m, n; const float *logits; const int32_t *labels; float *d; float *rowloss; int64_t *rowok; } xent_ctx;

static void xent_range(void *v, int64_t b, int64_t e) {
    // rows [b, e): stable log-softmax in double, loss per row, gradient (p − onehot)/m
    const xent_ctx *c = v;
    for (int64_t i = b; i < e; i++) {
        const float *z = c->logits + i * c->n;
        int64_t arg = 0;
        float mx = z[0];
        for (int64_t j = 1; j < c->n; j++) if (z[j] > mx) { mx = z[j]; arg = j; }
        double s = 0.0;
        for (int64_t j = 0; j < c->n; j++) s += exp((double)z[j] - mx);
        double lse = log(s) + mx;
        int32_t y = c->labels[i];
        c->rowloss[i] = (float)(lse - (double)z[y]);
        c->rowok[i] = arg == y;
        if (c->d) {
            float *d = c->d + i * c->n;
            double inv = 1.0 / (double)c->m;
            for (int64_t j = 0; j < c->n; j++) {
                double p = exp((double)z[j] - lse);
                d[j] = (float)((p - (j == y ? 1.0 : 0.0)) * inv);
            }
        }
    }
}

pk_status pk_softmax_xent_f32(int64_t m, int64_t n, const float *logits, const int32_t *labels,
                              float *loss, float *dlogits, int64_t *correct) {
    if (m < 0 || n < 1) return PK_ERR_SHAPE;
    if (!loss) return PK_ERR_NULL;
    if (m == 0) { *loss = 0.0f; if (correct) *correct = 0; return PK_OK; }
    if (!logits || !labels) return PK_ERR_NULL;
    for (int64_t i = 0; i < m; i++) if (labels[i] < 0 || labels[i] >= n) return PK_ERR_ARG;
    if (dlogits && pk_overlaps(dlogits, (size_t)(m * n) * 4, logits, (size_t)(m * n) * 4) && dlogits != logits)
        return PK_ERR_ALIAS;
    // per-row results in scratch so the final sums run in a fixed order
    float *rowloss = pk_scratch(2, (size_t)m * (sizeof(float) + sizeof(int64_t)));
    if (!rowloss) return PK_ERR_NOMEM;
    int64_t *rowok = (int64_t *)(void *)(rowloss + ((m + 1) & ~(int64_t)1));
    xent_ctx c = {m, n, logits, labels, dlogits, rowloss, rowok};
    pk_parallel_for(m, 64, xent_range, &c);
    double total = 0.0;
    int64_t ok = 0;
    for (int64_t i = 0; i < m; i++) { total += rowloss[i]; ok += rowok[i]; }
    *loss = (float)(total / (double)m);
    if (correct) *correct = ok;
    return PK_OK;
}

typedef struct { int64_t m, n; float T; const float *s, *t; float *d, *rowloss; } kd_ctx;

static void kd_range(void *v, int64_t b, int64_t e) {
    // rows [b, e): p = softmax(t/T), q = softmax(s/T); loss T²·Σ p·(log p − log q); grad T·(q − p)/m
    const kd_ctx *c = v;
    for (int64_t i = b; i < e; i++) {
        const float *s = c->s + i * c->n, *t = c->t + i * c->n;
        double ms = s[0], mt = t[0];
        for (int64_t j = 1; j < c->n; j++) { if (s[j] > ms) ms = s[j]; if (t[j] > mt) mt = t[j]; }
        double zs = 0, zt = 0;
        for (int64_t j = 0; j < c->n; j++) { zs += exp((s[j] - ms) / c->T); zt += exp((t[j] - mt) / c->T); }
        double lzs = log(zs), lzt = log(zt), kl = 0;
        for (int64_t j = 0; j < c->n; j++) {
            double lq = (s[j] - ms) / c->T - lzs, lp = (t[j] - mt) / c->T - lzt, p = exp(lp);
            kl += p * (lp - lq);
            c->d[i * c->n + j] = (float)((double)c->T * (exp(lq) - p) / (double)c->m);
        }
        c->rowloss[i] = (float)((double)c->T * c->T * kl);
    }
}

pk_status pk_distill_kl_f32(int64_t m, int64_t n, float T, const float *student, const float *teacher, float *loss,
                            float *dstudent) {
    if (m < 0 || n < 1) return PK_ERR_SHAPE;
    if (!(T > 0.0f) || !isfinite(T)) return PK_ERR_ARG;
    if (!loss) return PK_ERR_NULL;
    if (m == 0) { *loss = 0.0f; return PK_OK; }
    if (!student || !teacher || !dstudent) return PK_ERR_NULL;
    float *rowloss = pk_scratch(2, (size_t)m * sizeof(float));
    if (!rowloss) return PK_ERR_NOMEM;
    kd_ctx c = {m, n, T, student, teacher, dstudent, rowloss};
    pk_parallel_for(m, 64, kd_range, &c);
    double total = 0;
    for (int64_t i = 0; i < m; i++) total += rowloss[i];
    *loss = (float)(total / (double)m);
    return PK_OK;
}

typedef struct { int64_t b, t, n; const float *s, *tch, *mask; float weight; float *grad; double *seqloss; } tmse_ctx;

static void token_mse_range(void *v, int64_t lo, int64_t hi) {
    // sequences [lo, hi): their loss into seqloss[i], their rows of grad
    const tmse_ctx *c = v;
    for (int64_t i = lo; i < hi; i++) {
        double real = 0;
        for (int64_t r = 0; r < c->t; r++) real += c->mask[i * c->t + r] != 0;
        const float scale = real > 0 ? (float)(c->weight / (real * (double)c->n * (double)c->b)) : 0.0f;
        double l = 0;
        for (int64_t r = 0; r < c->t; r++) {
            const int64_t o = (i * c->t + r) * c->n;
            const int on = real > 0 && c->mask[i * c->t + r] != 0;
            for (int64_t j = 0; j < c->n; j++) {
                const float d = on ? c->s[o + j] - c->tch[o + j] : 0.0f;
                l += (double)d * d;
                c->grad[o + j] = 2 * scale * d;
            }
        }
        c->seqloss[i] = real > 0 ? c->weight * l / (real * (double)c->n) : 0;
    }
}

pk_status pk_token_mse_f32(int64_t b, int64_t t, int64_t n, const float *s, const float *tch, const float *mask, float weight,
                           double *loss, float *grad) {
    if (b < 0 || t < 0 || n < 0) return PK_ERR_SHAPE;
    if (!loss) return PK_ERR_NULL;
    *loss = 0;
    if (b == 0 || t == 0 || n == 0) return PK_OK;
    if (!s || !tch || !mask || !grad) return PK_ERR_NULL;
    if (!(weight >= 0) || !isfinite(weight)) return PK_ERR_ARG;
    const size_t bytes = (size_t)(b * t * n) * 4;
    if (pk_overlaps(grad, bytes, s, bytes) || pk_overlaps(grad, bytes, tch, bytes) || pk_overlaps(grad, bytes, mask, (size_t)(b * t) * 4))
        return PK_ERR_ALIAS;
    double *seq = malloc((size_t)b * sizeof(double));
    if (!seq) return PK_ERR_NOMEM;
    tmse_ctx c = {b, t, n, s, tch, mask, weight, grad, seq};
    pk_parallel_for(b, 1, token_mse_range, &c);
    for (int64_t i = 0; i < b; i++) *loss += seq[i]; // in sequence order: the same sum for any thread count
    free(seq);
    return PK_OK;
}
