// Internal helpers shared by the kernel files; not part of the C contract.
#ifndef PK_INTERNAL_H
#define PK_INTERNAL_H
#include "prunekit_kernels.h"
#include <stdint.h>

// A parallel loop over [0, n): the range is cut into at most pk_get_num_threads() contiguous
// chunks of at least `grain` items; chunk t always covers the same items for a given thread
// count, and fn never depends on which thread runs it. Runs inline when one chunk suffices.
// Each worker flushes denormals (FTZ/DAZ) while it runs fn.
typedef void (*pk_range_fn)(void *ctx, int64_t begin, int64_t end);
void pk_parallel_for(int64_t n, int64_t grain, pk_range_fn fn, void *ctx);

// Saves the MXCSR and turns FTZ/DAZ on; restore with pk_fp_restore.
unsigned pk_fp_enter(void);
void pk_fp_restore(unsigned saved);

// 64-byte aligned per-calling-thread scratch, grown on demand and reused (no allocation once warm).
// slot selects one of a few independent buffers (0/1 GEMM packs, 2 loss, 3 split-K, 4-7 convolution,
// 8 fused-update C, 9 transformer backward, 10/11 sparse transposes, 12 sparse gradient, 13 transposed values,
// 14-17 structured sparse kernels: sparse_panels.h, 18 direct-convolution weights and sparse-convolution offsets). Returns NULL on allocation failure.
void *pk_scratch(int slot, size_t bytes);

// Overlap test of two byte ranges.
static inline int pk_overlaps(const void *a, size_t abytes, const void *b, size_t bbytes) {
    const char *pa = (const char *)a, *pb = (const char *)b;
    if (!a || !b || abytes == 0 || bbytes == 0) return 0;
    return pa < pb + bbytes && pb < pa + abytes;
}
// Bytes spanned by a row-major r×c matrix with leading dimension ld.
static inline size_t pk_span(int64_t r, int64_t c, int64_t ld, size_t elem) {
    if (r <= 0 || c <= 0) return 0;
    return (size_t)((r - 1) * ld + c) * elem;
}
// Function variants for the instruction sets chosen at run time (pk_active_isa()); an always-inline
// body compiled into each gives vectorised loops per ISA without ifunc resolvers (which run before
// sanitizer runtimes start and would crash them).
#define PK_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,fma")))
#define PK_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define PK_ALWAYS_INLINE inline __attribute__((always_inline))

// max(v, 0) with NaN kept and −0 to +0: the ReLU layer's rule, shared by every fused ReLU epilogue
// (branch-free, so loops using it vectorise).
static inline float pk_relu1(float v) { return v > 0.0f ? v : (v != v ? v : 0.0f); }

#define PK_MIN(a, b) ((a) < (b) ? (a) : (b))
#define PK_MAX(a, b) ((a) > (b) ? (a) : (b))
#endif
