// Sparse direct convolution at inference: y = act(scale·conv(x̃, W) + shift) with the pruned weight
// W held as CSR (OC rows × C·KH·KW columns, column c·KH·KW + a·KW + b), no column matrix.
//
// Each image is copied once into phase planes per input channel (polyphase, one plane per phase some
// tap reads: s² for a 3×3 stride-2 kernel, 1 for 1×1 or stride 1; zero padding folded in): phase
// (u, v) of channel c holds x̃[c, s·i + u, s·j + v] on a grid of Hq × Wq (Hq = ⌈Hp/s⌉,
// Wq = ⌈Wp/s⌉, Hp = H + 2p), so a strided or dilated tap becomes a plain shift. Output (i, j) reads,
// for tap (a, b), phase ((a·d) mod s, (b·d) mod s) at (i + ⌊a·d/s⌋, j + ⌊b·d/s⌋); on the flat grid
// q = i·Wq + j that is q + off[e], one fixed offset per kept entry e. An output channel over a run of
// consecutive q is then Σ_e w_e · (the contiguous run at q + off[e]): one broadcast and one unaligned
// load per entry and 8 outputs, the sums in registers across all of the row's entries (two sets,
// even and odd entries, so that consecutive FMAs do not wait on each other). Positions with j ≥ OW
// (the last Wq − OW columns of each flat row) are computed and dropped by the epilogue.
//
//   loops     task = (image, block of output channels); per task: phase planes of the image, then
//             for each output channel of the block, for each chunk of SC_QB flat positions: the
//             row's entries into the chunk's registers, then scale/shift/ReLU into y.
//   reads     the row's entries (offsets and values) stay in L1 across its chunks; the image's
//             phase planes (230 KB for 64 channels of 28×28) stay in L2. Each kept entry loads its
//             32 inputs once per chunk, and they serve one FMA each: the kernel is bound by loads
//             from L2, not by FMAs. (Chunks outside and channels inside measured slower on resnet18.)
//
// Work is nnz·N·Lr multiply-adds (Lr ≈ OH·Wq): the dense convolution's count times the kept
// fraction, plus the dropped columns. Every output is summed by one task in a fixed entry order:
// identical bits for any thread count. Reference pk_ref_conv2d_sparse_forward_f32
// (src/ref/conv_sparse_ref.c).
#include "internal.h"
#include "prunekit_layers.h"
#include <immintrin.h>
#include <limits.h>
#include <string.h>

#define SC_QB 32 // flat positions per register chunk: 4 vectors × 2 sets = 8 accumulators

typedef struct {
    int64_t C, H, W, KH, KW, s, p, d, OC, OH, OW;
    int64_t Hq, Wq, L, Lr, plane, image; // image: floats of one image's phase planes + read slack
    int64_t nu, nv;                      // phases some tap reads, per direction (planes per channel: nu·nv)
} sc_geom;

// 1 when some tap t < K reads phase u: (t·d) mod s == u.
static int sc_phase_used(int64_t u, int64_t K, int64_t s, int64_t d) {
    for (int64_t t = 0; t < K && t < s; t++)
        if (t * d % s == u) return 1;
    return 0;
}

// Rank of phase u among the used ones (its plane slot).
static int64_t sc_phase_slot(int64_t u, int64_t K, int64_t s, int64_t d) {
    int64_t r = 0;
    for (int64_t v = 0; v < u; v++) r += sc_phase_used(v, K, s, d);
    return r;
}

typedef struct {
    sc_geom g;
    const pk_csr *A;
    const int32_t *off;
    const float *x, *scale, *shift;
    int relu;
    float *y;
    int64_t nsplit; // output-channel blocks per image
    pk_status *status;
} sc_ctx;

// x (C × H × W) into xq: C·nu·nv phase planes of Hq × Wq (the phases some tap reads), zero where the
// padded image has no pixel, zero slack after the last plane.
static void sc_phase_image(const sc_geom *g, const float *x, float *xq) {
    const int64_t s = g->s;
    float *pl = xq;
    for (int64_t c = 0; c < g->C; c++)
        for (int64_t u = 0; u < s; u++) {
            if (!sc_phase_used(u, g->KH, s, g->d)) continue;
            for (int64_t v = 0; v < s; v++) {
                if (!sc_phase_used(v, g->KW, s, g->d)) continue;
                const float *src = x + c * g->H * g->W;
                // plane row i, column j ← x̃ row s·i + u − p, column s·j + v − p
                for (int64_t i = 0; i < g->Hq; i++) {
                    float *row = pl + i * g->Wq;
                    const int64_t ih = s * i + u - g->p;
                    if (ih < 0 || ih >= g->H) { memset(row, 0, (size_t)g->Wq * 4); continue; }
                    const float *in = src + ih * g->W;
                    if (s == 1) {
                        for (int64_t j = 0; j < g->p; j++) row[j] = 0.0f;
                        memcpy(row + g->p, in, (size_t)g->W * 4);
                        for (int64_t j = g->p + g->W; j < g->Wq; j++) row[j] = 0.0f;
                    } else {
                        for (int64_t j = 0; j < g->Wq; j++) {
                            const int64_t iw = s * j + v - g->p;
                            row[j] = iw >= 0 && iw < g->W ? in[iw] : 0.0f;
                        }
                    }
                }
                pl += g->plane;
            }
        }
    memset(pl, 0, (size_t)(g->image - (pl - xq)) * 4);
}

// out[0 .. 8·NV) = Σ over the entries [j0, j1) of val[j] · xq[off[j] + q0 + ·]: even entries into one
// set of sums, odd ones into another, the two added at the end. (Sharing each entry's broadcast and
// offset between 2 or 4 images measured no faster on resnet18: the loads of x from L2 bound it.)
#define SC_ROW_AVX2(NV)                                                                                       \
    PK_TARGET_AVX2 static void sc_row_avx2_##NV(const float *xq, const int32_t *off, const float *val,        \
                                                 int64_t j0, int64_t j1, int64_t q0, float *out) {            \
        __m256 a[NV], e[NV];                                                                                  \
        for (int k = 0; k < NV; k++) { a[k] = _mm256_setzero_ps(); e[k] = _mm256_setzero_ps(); }            \
        int64_t j = j0;                                                                                       \
        for (; j + 2 <= j1; j += 2) {                                                                         \
            const __m256 w = _mm256_broadcast_ss(val + j), t = _mm256_broadcast_ss(val + j + 1);              \
            const float *xa = xq + off[j] + q0, *xb = xq + off[j + 1] + q0;                                  \
            for (int k = 0; k < NV; k++) a[k] = _mm256_fmadd_ps(w, _mm256_loadu_ps(xa + 8 * k), a[k]);      \
            for (int k = 0; k < NV; k++) e[k] = _mm256_fmadd_ps(t, _mm256_loadu_ps(xb + 8 * k), e[k]);      \
        }                                                                                                     \
        if (j < j1) {                                                                                         \
            const __m256 w = _mm256_broadcast_ss(val + j);                                                    \
            const float *xa = xq + off[j] + q0;                                                               \
            for (int k = 0; k < NV; k++) a[k] = _mm256_fmadd_ps(w, _mm256_loadu_ps(xa + 8 * k), a[k]);      \
        }                                                                                                     \
        for (int k = 0; k < NV; k++) _mm256_storeu_ps(out + 8 * k, _mm256_add_ps(a[k], e[k]));              \
    }
SC_ROW_AVX2(1)
SC_ROW_AVX2(2)
SC_ROW_AVX2(3)
SC_ROW_AVX2(4)

static void sc_row_scalar(const float *xq, const int32_t *off, const float *val, int64_t j0, int64_t j1, int64_t q0,
                          int64_t n, float *out) {
    float a[SC_QB], e[SC_QB];
    for (int64_t k = 0; k < n; k++) { a[k] = 0.0f; e[k] = 0.0f; }
    int64_t j = j0;
    for (; j + 2 <= j1; j += 2) {
        const float *xa = xq + off[j] + q0, *xb = xq + off[j + 1] + q0;
        for (int64_t k = 0; k < n; k++) { a[k] += val[j] * xa[k]; e[k] += val[j + 1] * xb[k]; }
    }
    if (j < j1)
        for (int64_t k = 0; k < n; k++) a[k] += val[j] * xq[off[j] + q0 + k];
    for (int64_t k = 0; k < n; k++) out[k] = a[k] + e[k];
}

// Flat positions [q0, q0 + nq) of one output channel into yo (OH × OW): each grid row's run of
// columns j < OW, as act(sums·sc + sh); columns OW ≤ j < Wq and rows i ≥ OH are dropped. RUN(s, d,
// n) writes one run of n outputs.
#define SC_EPILOGUE(RUN)                                                                                  \
    int64_t i = q0 / g->Wq, j = q0 - i * g->Wq, k = 0;                                                    \
    while (k < nq && i < g->OH) {                                                                         \
        const int64_t run = PK_MIN(nq - k, g->Wq - j), valid = PK_MAX(PK_MIN(run, g->OW - j), 0);          \
        if (valid > 0) RUN(sums + k, yo + i * g->OW + j, valid);                                          \
        k += run;                                                                                         \
        j += run;                                                                                         \
        if (j == g->Wq) { j = 0; i++; }                                                                   \
    }

static void sc_epilogue(const sc_geom *g, const float *sums, int64_t q0, int64_t nq, float sc, float sh, int relu,
                        float *yo) {
#define SC_RUN_SCALAR(S, D, N)                                                                            \
    for (int64_t m = 0; m < (N); m++) {                                                                   \
        const float v = (S)[m] * sc + sh;                                                                 \
        (D)[m] = relu ? pk_relu1(v) : v;                                                                  \
    }
    SC_EPILOGUE(SC_RUN_SCALAR)
}

PK_TARGET_AVX2 static void sc_epilogue_avx2(const sc_geom *g, const float *sums, int64_t q0, int64_t nq, float sc,
                                            float sh, int relu, float *yo) {
    const __m256 vs = _mm256_set1_ps(sc), vh = _mm256_set1_ps(sh), zero = _mm256_setzero_ps();
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
#define SC_RUN_AVX2(S, D, N)                                                                              \
    for (int64_t m = 0; m < (N); m += 8) {                                                                \
        __m256 v = _mm256_fmadd_ps(_mm256_loadu_ps((S) + m), vs, vh);                                    \
        if (relu) v = _mm256_blendv_ps(_mm256_max_ps(v, zero), v, _mm256_cmp_ps(v, v, _CMP_UNORD_Q)); /* NaN kept */ \
        if (m + 8 <= (N)) _mm256_storeu_ps((D) + m, v);                                                   \
        else _mm256_maskstore_ps((D) + m, _mm256_cmpgt_epi32(_mm256_set1_epi32((int)((N) - m)), lanes), v); \
    }
    SC_EPILOGUE(SC_RUN_AVX2)
}

static void sc_range(void *v, int64_t b, int64_t e) {
    // tasks [b, e): task = image n, output-channel block
    const sc_ctx *t = v;
    const sc_geom *g = &t->g;
    float *xq = pk_scratch(4, (size_t)g->image * 4);
    if (!xq) { __atomic_store_n(t->status, PK_ERR_NOMEM, __ATOMIC_RELAXED); return; }
    const int avx2 = pk_active_isa() != PK_ISA_SCALAR;
    const int64_t per = (g->OC + t->nsplit - 1) / t->nsplit;
    int64_t phased = -1;
    float sums[SC_QB + 8] __attribute__((aligned(32))); // the epilogue reads whole vectors
    for (int64_t task = b; task < e; task++) {
        const int64_t n = task / t->nsplit, o0 = task % t->nsplit * per, o1 = PK_MIN(g->OC, o0 + per);
        if (n != phased) { sc_phase_image(g, t->x + n * g->C * g->H * g->W, xq); phased = n; }
        float *yn = t->y + n * g->OC * g->OH * g->OW;
        for (int64_t o = o0; o < o1; o++) {
            const int64_t j0 = t->A->ptr[o], j1 = t->A->ptr[o + 1];
            const float sc = t->scale ? t->scale[o] : 1.0f, sh = t->shift ? t->shift[o] : 0.0f;
            float *yo = yn + o * g->OH * g->OW;
            for (int64_t q0 = 0; q0 < g->Lr; q0 += SC_QB) {
                const int64_t nq = PK_MIN(SC_QB, g->Lr - q0); // a multiple of 8
                if (!avx2) sc_row_scalar(xq, t->off, t->A->val, j0, j1, q0, nq, sums);
                else if (nq == 32) sc_row_avx2_4(xq, t->off, t->A->val, j0, j1, q0, sums);
                else if (nq == 24) sc_row_avx2_3(xq, t->off, t->A->val, j0, j1, q0, sums);
                else if (nq == 16) sc_row_avx2_2(xq, t->off, t->A->val, j0, j1, q0, sums);
                else sc_row_avx2_1(xq, t->off, t->A->val, j0, j1, q0, sums);
                if (avx2) sc_epilogue_avx2(g, sums, q0, nq, sc, sh, t->relu, yo);
                else sc_epilogue(g, sums, q0, nq, sc, sh, t->relu, yo);
            }
        }
    }
}

pk_status pk_conv2d_sparse_forward_f32(const pk_csr *A, int64_t N, int64_t C, int64_t H, int64_t W, int64_t KH,
                                       int64_t KW, int64_t s, int64_t p, int64_t d, int relu, const float *x,
                                       const float *scale, const float *shift, float *y) {
    if (!A) return PK_ERR_NULL;
    if (N < 0 || C < 0 || H < 0 || W < 0 || KH < 1 || KW < 1 || s < 1 || p < 0 || d < 1) return PK_ERR_SHAPE;
    if (KH > 1000000 || KW > 1000000 || d > 1000000 || s > 1000000 || p > 1000000) return PK_ERR_SHAPE;
    if (A->rows < 0 || A->cols != C * KH * KW) return PK_ERR_SHAPE;
    const int64_t EH = d * (KH - 1) + 1, EW = d * (KW - 1) + 1;
    if (EH > H + 2 * p || EW > W + 2 * p) return PK_ERR_SHAPE;
    sc_geom g = {.C = C, .H = H, .W = W, .KH = KH, .KW = KW, .s = s, .p = p, .d = d, .OC = A->rows};
    g.OH = (H + 2 * p - EH) / s + 1;
    g.OW = (W + 2 * p - EW) / s + 1;
    if (N == 0 || g.OC == 0 || g.OH == 0 || g.OW == 0) return PK_OK;
    if (!x || !y || !A->ptr || (A->nnz > 0 && (!A->idx || !A->val))) return PK_ERR_NULL;
    const size_t in_bytes = (size_t)(N * C * H * W) * 4, out_bytes = (size_t)(N * g.OC * g.OH * g.OW) * 4;
    if (pk_overlaps(x, in_bytes, y, out_bytes)) return PK_ERR_ALIAS;
    g.Hq = (H + 2 * p + s - 1) / s;
    g.Wq = (W + 2 * p + s - 1) / s;
    g.plane = g.Hq * g.Wq;
    g.L = (g.OH - 1) * g.Wq + g.OW;
    g.Lr = (g.L + 7) / 8 * 8;
    g.nu = sc_phase_slot(s, KH, s, d);
    g.nv = sc_phase_slot(s, KW, s, d);
    // reads reach off[e] + q for q < Lr: the last plane's start + its largest shift + Lr
    const int64_t max_shift = ((KH - 1) * d / s) * g.Wq + (KW - 1) * d / s;
    g.image = C * g.nu * g.nv * g.plane + max_shift + g.Lr + 8;
    if (g.image > INT32_MAX) return PK_ERR_SHAPE;
    // offset of every weight column (c, a, b): plane of (c, phase slots), then the shift; then per entry
    const int64_t cols = A->cols;
    int32_t *table = pk_scratch(18, (size_t)(cols + PK_MAX(A->nnz, 1)) * sizeof(int32_t));
    if (!table) return PK_ERR_NOMEM;
    int32_t *off = table + cols;
    for (int64_t a = 0; a < KH; a++)
        for (int64_t b = 0; b < KW; b++) {
            const int64_t slot = sc_phase_slot(a * d % s, KH, s, d) * g.nv + sc_phase_slot(b * d % s, KW, s, d);
            const int64_t shift = (a * d / s) * g.Wq + b * d / s;
            for (int64_t c = 0; c < C; c++) table[(c * KH + a) * KW + b] = (int32_t)((c * g.nu * g.nv + slot) * g.plane + shift);
        }
    for (int64_t e = 0; e < A->nnz; e++) off[e] = table[A->idx[e]];
    pk_status status = PK_OK;
    // enough tasks for every thread when the batch is small; the split does not change any sum
    const int64_t threads = pk_get_num_threads();
    int64_t nsplit = 1;
    while (N * nsplit < 2 * threads && nsplit < g.OC) nsplit *= 2;
    nsplit = PK_MIN(nsplit, g.OC);
    sc_ctx t = {.g = g, .A = A, .off = off, .x = x, .scale = scale, .shift = shift, .relu = relu, .y = y,
                .nsplit = nsplit, .status = &status};
    pk_parallel_for(N * nsplit, 1, sc_range, &t);
    return status;
}
