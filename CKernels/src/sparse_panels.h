// Internal pieces shared by the structured sparse kernels (nm_sparse.c, block_sparse.c): activation
// panels, the write-back of output tiles, vector types for the per-ISA micro-kernel bodies and the
// horizontal reduction of the weight gradient. Not part of the C contract.
#ifndef PK_SPARSE_PANELS_H
#define PK_SPARSE_PANELS_H
#include "optim_internal.h"
#include <string.h>

// Batch panel width NR: the products keep their output tiles as (output rows) × NR batch columns.
#define PK_SP_NR 32
// Batch chunk of the weight gradients: dot products over at most this many samples at a time, so
// the activation rows they read stay in L1 (a multiple of 16).
#define PK_SP_BCHUNK 256

// Scratch slots (pk_scratch) of the structured kernels: 14/15 the activation panels (caller), 16 a
// worker's tile, 17 the gradient when the caller passes none.
enum { PK_SP_SLOT_A = 14, PK_SP_SLOT_B = 15, PK_SP_SLOT_TILE = 16, PK_SP_SLOT_GRAD = 17 };

// Vector types of the micro-kernel bodies: one body is compiled per ISA with the width that ISA's
// registers hold (8 floats for AVX2; 16 for AVX-512 and for the portable build, whose compiler
// splits them into whatever the target has), so the portable path runs the AVX-512 geometry.
typedef float pk_v8 __attribute__((vector_size(32)));
typedef float pk_v16 __attribute__((vector_size(64)));
#define PK_SPLAT8(x) ((pk_v8){(x), (x), (x), (x), (x), (x), (x), (x)})
#define PK_SPLAT16(x) ((pk_v16){(x), (x), (x), (x), (x), (x), (x), (x), (x), (x), (x), (x), (x), (x), (x), (x)})

// Panels of activations: panel p (of ceil(B/NR)) is a K × NR block at P + p·K·NR holding
// P[p][k][j] = X[p·NR + j][k] (X batch-major, B × K, ldx) or X[k][p·NR + j] (fm: X feature-major,
// K × B, ldx), 0 for p·NR + j ≥ B. With nr = the whole padded batch (a multiple of 16) it is one
// feature-major block K × nr. Built in parallel into the caller's scratch slot; NULL when out of memory.
float *pk_sp_panels(int slot, int fm, int64_t B, int64_t K, const float *X, int64_t ldx, int64_t nr);

// Writes rows [0, h) × columns [0, w) of tile T (row stride NR: T[i][j] = output feature o0 + i of
// sample b0 + j) into Y: Y[(b0 + j)·ldy + o0 + i] (batch-major) or Y[(o0 + i)·ldy + b0 + j] (fm), plus
// bias[o0 + i] when bias != NULL.
void pk_sp_store_tile(const float *T, int64_t h, int64_t w, int64_t o0, int64_t b0, const float *bias, int fm,
                      float *Y, int64_t ldy);

// Layout flags and leading dimensions of a product with `in` input and `out` output features.
pk_status pk_sp_layout_check(int layout, int64_t B, int64_t in, int64_t out, int64_t ldx, int64_t ldy);
// Bytes spanned by B samples of F features, feature-major (fm) or batch-major.
static inline size_t pk_sp_act_span(int fm, int64_t B, int64_t F, int64_t ld) {
    return fm ? pk_span(F, B, ld, 4) : pk_span(B, F, ld, 4);
}
// Validates the optional fused step u for `count` values at w (which u->w must be) and the optional
// gradient output g against them; fills *uc. PK_OK or the failing status.
pk_status pk_sp_update_setup(const pk_update_desc *u, const float *w, int64_t count, const float *g,
                             pk_update_consts *uc);

// The eight horizontal sums of a[0..7] into out[0..7], in a fixed pairwise order (a macro: vector
// values cross no function boundary, whose ABI would depend on the caller's target).
#define PK_HADD8(x, y) (__builtin_shufflevector(x, y, 0, 2, 8, 10, 4, 6, 12, 14) + \
                        __builtin_shufflevector(x, y, 1, 3, 9, 11, 5, 7, 13, 15))
#define PK_SP_HSUM8_V8(a, out)                                                                          \
    do {                                                                                                \
        const pk_v8 t0_ = PK_HADD8((a)[0], (a)[1]), t1_ = PK_HADD8((a)[2], (a)[3]),                      \
                    t2_ = PK_HADD8((a)[4], (a)[5]), t3_ = PK_HADD8((a)[6], (a)[7]);                      \
        const pk_v8 u0_ = PK_HADD8(t0_, t1_), u1_ = PK_HADD8(t2_, t3_);                                  \
        /* u0_ = [s0..s3 of the low halves | s0..s3 of the high halves], u1_ likewise for s4..s7 */      \
        const pk_v8 r_ = __builtin_shufflevector(u0_, u1_, 0, 1, 2, 3, 8, 9, 10, 11) +                   \
                         __builtin_shufflevector(u0_, u1_, 4, 5, 6, 7, 12, 13, 14, 15);                  \
        memcpy((out), &r_, sizeof r_);                                                                  \
    } while (0)
#define PK_SP_HSUM8_V16(a, out)                                                                         \
    do {                                                                                                \
        pk_v8 h_[8];                                                                                    \
        for (int s_ = 0; s_ < 8; s_++)                                                                  \
            h_[s_] = __builtin_shufflevector((a)[s_], (a)[s_], 0, 1, 2, 3, 4, 5, 6, 7) +                 \
                     __builtin_shufflevector((a)[s_], (a)[s_], 8, 9, 10, 11, 12, 13, 14, 15);            \
        PK_SP_HSUM8_V8(h_, out);                                                                        \
    } while (0)
#endif
