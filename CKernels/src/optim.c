// Mask-aware optimizer updates (SGD with momentum / Nesterov / weight decay, Adam, AdamW).
// Entries whose mask is 0 are skipped entirely: weight, state and gradient keep their bits.
#include "optim_internal.h"

PK_TARGET_AVX512 static void update_run_avx512(const pk_update_consts *c, int64_t n, const float *g, float *w, float *m,
                                                float *v, const uint8_t *mask, int64_t ms) {
    pk_update_run_body(c, n, g, w, m, v, mask, ms);
}
PK_TARGET_AVX2 static void update_run_avx2(const pk_update_consts *c, int64_t n, const float *g, float *w, float *m,
                                            float *v, const uint8_t *mask, int64_t ms) {
    pk_update_run_body(c, n, g, w, m, v, mask, ms);
}
static void update_run_scalar(const pk_update_consts *c, int64_t n, const float *g, float *w, float *m, float *v,
                              const uint8_t *mask, int64_t ms) {
    pk_update_run_body(c, n, g, w, m, v, mask, ms);
}

void pk_update_run(const pk_update_consts *c, int64_t n, const float *g, float *w, float *m, float *v,
                   const uint8_t *mask, int64_t mask_stride) {
    switch (pk_active_isa()) {
    case PK_ISA_AVX512: update_run_avx512(c, n, g, w, m, v, mask, mask_stride); break;
    case PK_ISA_AVX2: update_run_avx2(c, n, g, w, m, v, mask, mask_stride); break;
    default: update_run_scalar(c, n, g, w, m, v, mask, mask_stride); break;
    }
}

typedef struct { pk_update_consts c; const uint8_t *mask; const float *g; float *w, *m, *v; } opt_ctx;

static void update_range(void *vc, int64_t b, int64_t e) {
    // elements [b, e): one optimizer step; masked entries keep their bits
    const opt_ctx *x = vc;
    pk_update_run(&x->c, e - b, x->g + b, x->w + b, x->m ? x->m + b : NULL, x->v ? x->v + b : NULL,
                  x->mask ? x->mask + b : NULL, 1);
}

pk_status pk_update_f32(int64_t n, const pk_update_desc *u, const uint8_t *mask, const float *g) {
    if (n < 0) return PK_ERR_SHAPE;
    if (!u) return PK_ERR_NULL;
    pk_status st = pk_update_check(u);
    if (st != PK_OK) return st;
    if (n == 0) return PK_OK;
    if (!g) return PK_ERR_NULL;
    size_t nb = (size_t)n * 4;
    float *m = u->kind == PK_UPDATE_SGD && u->momentum == 0.0f ? NULL : u->m;
    float *v = u->kind == PK_UPDATE_ADAM ? u->v : NULL;
    if (pk_overlaps(u->w, nb, g, nb) || (m && (pk_overlaps(u->w, nb, m, nb) || pk_overlaps(m, nb, g, nb))) ||
        (v && (pk_overlaps(u->w, nb, v, nb) || pk_overlaps(v, nb, g, nb) || (m && pk_overlaps(m, nb, v, nb)))))
        return PK_ERR_ALIAS;
    opt_ctx x = {pk_update_prepare(u), mask, g, u->w, m, v};
    pk_parallel_for(n, 1 << 14, update_range, &x);
    return PK_OK;
}

pk_status pk_sgd_step_f32(int64_t n, float lr, float momentum, float weight_decay, int nesterov,
                          const uint8_t *mask, const float *g, float *w, float *v) {
    if (n == 0 && !w) return n < 0 ? PK_ERR_SHAPE : PK_OK;
    pk_update_desc u = {.kind = PK_UPDATE_SGD, .lr = lr, .momentum = momentum, .weight_decay = weight_decay,
                        .nesterov = nesterov, .w = w, .m = v, .ld = 0};
    return pk_update_f32(n, &u, mask, g);
}

pk_status pk_adam_step_f32(int64_t n, float lr, float beta1, float beta2, float eps,
                           float weight_decay, int decoupled, int64_t t,
                           const uint8_t *mask, const float *g, float *w, float *m, float *v) {
    if (n == 0 && !w) return n < 0 ? PK_ERR_SHAPE : PK_OK;
    pk_update_desc u = {.kind = PK_UPDATE_ADAM, .lr = lr, .beta1 = beta1, .beta2 = beta2, .eps = eps,
                        .weight_decay = weight_decay, .decoupled = decoupled, .step = t, .w = w, .m = m, .v = v};
    return pk_update_f32(n, &u, mask, g);
}
