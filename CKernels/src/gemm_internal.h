// Internal interface between the GEMM driver (gemm.c) and its micro-kernels (gemm_kernels.c).
#ifndef PK_GEMM_INTERNAL_H
#define PK_GEMM_INTERNAL_H
#include "internal.h"

#define MR_512 12
#define NR_512 32
#define MR_256 6
#define NR_256 16
#define MR_SC 4
#define NR_SC 8
#define MR_MAX 12
#define NR_MAX 32

// Where a micro-kernel puts its MR×NR result: into acc (row-major, stride NR) for the epilogue, or
// straight into a full tile of C (row stride ldc): C := result, or C += result.
// With a non-NULL bias (NR values), STORE_C writes result + bias (the bias added per column).
enum { PK_UKR_TO_ACC = 0, PK_UKR_STORE_C = 1, PK_UKR_ADD_C = 2 };
typedef void (*ukr_fn)(int64_t kc, const float *a, const float *b, float *acc, float *c, int64_t ldc, int mode,
                       const float *bias);
typedef void (*ukr_rows_fn)(int64_t kc, const float *a, int64_t lda, int64_t h, const float *b, float *acc);
// ukr reads a packed Ã panel; ukr_rows (when not NULL) reads row-major A in place, without packing.
typedef struct { int mr, nr; ukr_fn ukr; ukr_rows_fn ukr_rows; } ukr_info;

// The micro-kernels for pk_active_isa().
ukr_info pk_gemm_select_ukr(void);

// dst[p·R + r] = (mk == NULL || mk[r·ldm + p]) ? src[r·ld + p] : 0 for r < h, p < kc; 0 for h ≤ r < R.
void pk_gemm_pack_transpose(const float *src, int64_t ld, const uint8_t *mk, int64_t ldm, int64_t h, int64_t kc,
                            int R, float *dst);
#endif
