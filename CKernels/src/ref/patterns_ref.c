// Naive references of the selection patterns: N:M through the sort-based top-k reference, and
// unit norms by direct summation.
#include "prunekit_kernels.h"
#include <math.h>

pk_status pk_ref_nm_mask_f32(int64_t rows, int64_t cols, int64_t N, int64_t M, const float *x, int64_t ld, int use_abs,
                             uint8_t *mask) {
    if (M < 1 || N < 0 || N > M) return PK_ERR_ARG;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t g = 0; g < cols; g += M) {
            int64_t len = cols - g < M ? cols - g : M;
            int64_t sizes[1] = {len};
            const float *sp[1] = {x + r * ld + g};
            uint8_t *mp[1] = {mask + r * ld + g};
            int64_t kept = 0;
            for (int64_t j = 0; j < len; j++) kept += mask[r * ld + g + j] != 0;
            if (kept > N) {
                pk_status s = pk_ref_prune_smallest_f32(1, sizes, sp, mp, use_abs, kept - N, NULL);
                if (s != PK_OK) return s;
            }
        }
    return PK_OK;
}

pk_status pk_ref_unit_norms_f32(int64_t A, int64_t D, int64_t B, double p, const float *x, const uint8_t *mask,
                                float *out) {
    if (!(p >= 0.0)) return PK_ERR_ARG;
    for (int64_t d = 0; d < D; d++) {
        double acc = 0.0;
        for (int64_t a = 0; a < A; a++)
            for (int64_t q = 0; q < B; q++) {
                int64_t i = (a * D + d) * B + q;
                if (mask && !mask[i]) continue;
                double t = fabs((double)x[i]);
                if (isinf(p)) acc = t > acc ? t : acc;
                else if (p == 0.0) acc += t != 0.0;
                else acc += pow(t, p);
            }
        out[d] = (float)((isinf(p) || p == 0.0) ? acc : pow(acc, 1.0 / p));
    }
    return PK_OK;
}
