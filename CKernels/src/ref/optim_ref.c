// Naive references of the optimizer updates, written from the textbook formulas in double.
#include "prunekit_kernels.h"
#include <math.h>

pk_status pk_ref_sgd_step_f32(int64_t n, float lr, float momentum, float weight_decay, int nesterov,
                              const uint8_t *mask, const float *g, float *w, float *v) {
    if (n < 0) return PK_ERR_SHAPE;
    for (int64_t i = 0; i < n; i++) {
        if (mask && !mask[i]) continue;
        double gi = (double)g[i] + (double)weight_decay * w[i];
        double step = gi;
        if (momentum != 0.0f) {
            double vel = (double)momentum * v[i] + gi;
            v[i] = (float)vel;
            step = nesterov ? gi + momentum * vel : vel;
        }
        w[i] = (float)(w[i] - (double)lr * step);
    }
    return PK_OK;
}

pk_status pk_ref_adam_step_f32(int64_t n, float lr, float beta1, float beta2, float eps,
                               float weight_decay, int decoupled, int64_t t,
                               const uint8_t *mask, const float *g, float *w, float *m, float *v) {
    if (n < 0 || t < 1) return n < 0 ? PK_ERR_SHAPE : PK_ERR_ARG;
    for (int64_t i = 0; i < n; i++) {
        if (mask && !mask[i]) continue;
        double wi = w[i], gi = g[i];
        if (decoupled) wi *= 1.0 - (double)lr * weight_decay;
        else gi += (double)weight_decay * wi;
        double mi = beta1 * (double)m[i] + (1.0 - beta1) * gi;
        double vi = beta2 * (double)v[i] + (1.0 - beta2) * gi * gi;
        m[i] = (float)mi;
        v[i] = (float)vi;
        double mhat = mi / (1.0 - pow(beta1, (double)t)), vhat = vi / (1.0 - pow(beta2, (double)t));
        w[i] = (float)(wi - lr * mhat / (sqrt(vhat) + eps));
    }
    return PK_OK;
}
