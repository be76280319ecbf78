// Implicit-GEMM convolution forward: zero padding folded into the packing of the input, and a
// per-output-channel affine map plus optional ReLU in the epilogue (inference-mode BatchNorm folded
// into the convolution, or a plain bias).
//
//   y[n,o,oh,ow] := act(scale[o] · Σ_{c,kh,kw} (W ⊙ M)[o,c,kh,kw] · x̃[n, c, oh·s+kh−p, ow·s+kw−p] + shift[o])
//   x̃ = x inside the image and 0 outside: the padded image is never materialised.
//
// As a GEMM: Ŵ (OC × K) · X̂ (K × J) with K = C·KH·KW (PyTorch's weight order) and J = N·OH·OW.
// Blocking, outermost first (BLIS names):
//   Ã   (W ⊙ M) packed once per call into MR-row panels for each k block (the mask applied while
//       packing), shared read-only by every task.
//   jc  column blocks of NB output pixels, one task each (parallel). Inside a task:
//   pc  k blocks of at most KC: B̃ (kc × NB in NR-column panels) packed straight from x — the im2col
//       gather and the padding happen here, no column matrix exists;
//   ir  MR-row panels of Ã  →  jr  NR-column panels of B̃  →  the GEMM micro-kernel, which stores
//       (first k block) or adds (later ones) its full MR×NR tile into the task's OC × NB accumulator.
//   epilogue: scale, shift and ReLU per row, scattered into NCHW.
// Each output is summed by one task over k in the fixed k-block order (KC depends on the shape
// only): identical bits for any thread count. No allocation once the per-thread scratch is warm.
#include "gemm_internal.h"
#include <immintrin.h>
#include <string.h>

#define CI_KC_MAX 256
#define CI_NB_MAX 128 // columns per task: B̃ of a k block ≤ 128 KiB, in L2 while Ã panels stream by

typedef struct {
    int64_t N, C, H, W, OC, KH, KW, s, p, OH, OW, P, K, J;
    int64_t kcb, nkb, ocpad, nb, nblocks;
    int relu;
    const float *x, *w, *scale, *shift;
    const uint8_t *mask;
    float *y, *Ap;
    ukr_info u;
    pk_status *status;
} ci_ctx;

static inline int64_t ci_kc(const ci_ctx *c, int64_t kb) { return PK_MIN(c->kcb, c->K - kb * c->kcb); }

static void ci_pack_a_range(void *v, int64_t b, int64_t e) {
    // (k block, row panel) pairs [b, e): Ã[kb] panel r = rows r·MR.. of (W ⊙ M)[:, kb·kcb ..], k-major
    const ci_ctx *c = v;
    const int mr = c->u.mr;
    const int64_t panels = c->ocpad / mr;
    for (int64_t t = b; t < e; t++) {
        int64_t kb = t / panels, r = t % panels, p0 = kb * c->kcb, kc = ci_kc(c, kb), i0 = r * mr;
        float *dst = c->Ap + c->ocpad * p0 + r * mr * kc;
        pk_gemm_pack_transpose(c->w + i0 * c->K + p0, c->K, c->mask ? c->mask + i0 * c->K + p0 : NULL, c->K,
                               PK_MIN((int64_t)mr, c->OC - i0), kc, mr, dst);
    }
}

// A run of consecutive columns of X̂ inside one panel of B̃ and one output row (n, oh): the input
// columns its patches read are an arithmetic sequence (step s), so each patch row (c, kh, kw) of the
// run is one strided copy whose ends may fall in the padding. For each kernel offset (kh, kw) a run
// keeps where that copy starts in channel 0 and which of its entries lie inside the image.
typedef struct { int64_t src; int32_t lo, hi; } ci_tap;
typedef struct { int32_t col, len; } ci_run;

static int64_t ci_runs(const ci_ctx *c, int64_t j0, int64_t nb, ci_run *runs, ci_tap *taps) {
    // runs of the block's columns [j0, j0 + nb), cut at panel and output-row boundaries, and their
    // taps (run-major, KH·KW each)
    const int64_t nr = c->u.nr, KK = c->KH * c->KW, s = c->s;
    int64_t count = 0;
    for (int64_t j = 0; j < nb;) {
        int64_t jj = j0 + j, n = jj / c->P, pix = jj % c->P, oh = pix / c->OW, ow = pix % c->OW;
        int64_t len = PK_MIN(PK_MIN(c->OW - ow, nr - j % nr), nb - j);
        int64_t ih0 = oh * s - c->p, iw0 = ow * s - c->p;
        ci_tap *t = taps + count * KK;
        for (int64_t kh = 0; kh < c->KH; kh++)
            for (int64_t kw = 0; kw < c->KW; kw++) {
                const int64_t ih = ih0 + kh, iw = iw0 + kw;
                // entries q in [lo, hi) read inside the image: 0 ≤ iw + q·s < W
                int64_t lo = iw >= 0 ? 0 : (-iw + s - 1) / s, hi = iw >= c->W ? 0 : PK_MIN(len, (c->W - 1 - iw) / s + 1);
                if (ih < 0 || ih >= c->H || lo > hi) lo = hi = 0;
                // src is only dereferenced at entries in [lo, hi)
                t[kh * c->KW + kw] = (ci_tap){n * c->C * c->H * c->W + ih * c->W + iw, (int32_t)lo, (int32_t)hi};
            }
        runs[count++] = (ci_run){(int32_t)j, (int32_t)len};
        j += len;
    }
    return count;
}

static PK_ALWAYS_INLINE
void ci_pack_b_body(const ci_ctx *c, const ci_run *runs, const ci_tap *taps, int64_t nruns, int64_t nb, int64_t p0,
                    int64_t kc, float *restrict Bp) {
    // B̃ (kc × nb, NR-column panels, zero past nb): Bp[q][p][r] = x̃ at patch row p0+p, column q·NR+r.
    // Patch rows outermost, so each row of every panel is written whole, left to right.
    const int64_t nr = c->u.nr, KK = c->KH * c->KW, HW = c->H * c->W, s = c->s;
    const int64_t tail = nb % nr, full = nb / nr;
    int64_t ci = p0 / KK, off = p0 % KK;
    for (int64_t pp = 0; pp < kc; pp++) {
        const float *restrict xc = c->x + ci * HW;
        float *restrict row = Bp + pp * nr;
        for (int64_t g = 0; g < nruns; g++) {
            const ci_run r = runs[g];
            const ci_tap t = taps[g * KK + off];
            float *restrict d = row + (r.col / nr) * nr * kc + r.col % nr;
            const float *restrict sc = xc + t.src;
            for (int64_t q = 0; q < t.lo; q++) d[q] = 0.0f;
            if (s == 1) for (int64_t q = t.lo; q < t.hi; q++) d[q] = sc[q];
            else for (int64_t q = t.lo; q < t.hi; q++) d[q] = sc[q * s];
            for (int64_t q = t.hi; q < r.len; q++) d[q] = 0.0f;
        }
        if (tail) for (int64_t q = tail; q < nr; q++) row[full * nr * kc + q] = 0.0f;
        if (++off == KK) { off = 0; ci++; }
    }
}

static __attribute__((no_builtin("memcpy", "memset")))
void ci_pack_b_runs(const ci_ctx *c, const ci_run *runs, const ci_tap *taps, int64_t nruns, int64_t nb, int64_t p0,
                    int64_t kc, float *Bp) {
    ci_pack_b_body(c, runs, taps, nruns, nb, p0, kc, Bp);
}

// Gather tables of a block whose images span fewer than 2³¹ floats: for panel q, kernel offset
// (kh, kw) and panel column r, idx = where column r reads channel 0 relative to the block's first
// image, and msk = −1 when that read lies inside the image (0: padding, or a column past nb).
static int ci_gather_tables(const ci_ctx *c, int64_t j0, int64_t nb, int32_t *idx, int32_t *msk) {
    const int64_t nr = c->u.nr, KK = c->KH * c->KW, npan = (nb + nr - 1) / nr, n0 = j0 / c->P;
    if (((j0 + nb - 1) / c->P - n0 + 1) * c->C * c->H * c->W >= INT32_MAX) return 0;
    for (int64_t q = 0; q < npan; q++)
        for (int64_t r = 0; r < nr; r++) {
            const int64_t j = q * nr + r, jj = j0 + j, n = jj / c->P, pix = jj % c->P;
            const int64_t ih0 = (pix / c->OW) * c->s - c->p, iw0 = (pix % c->OW) * c->s - c->p;
            for (int64_t t = 0; t < KK; t++) {
                const int64_t ih = ih0 + t / c->KW, iw = iw0 + t % c->KW, at = (q * KK + t) * nr + r;
                const int ok = j < nb && ih >= 0 && ih < c->H && iw >= 0 && iw < c->W;
                idx[at] = ok ? (int32_t)((n - n0) * c->C * c->H * c->W + ih * c->W + iw) : 0;
                msk[at] = ok ? -1 : 0;
            }
        }
    return 1;
}

// (AVX2 gathers; also used on AVX-512 machines, whose NR is a multiple of 8 as well.)
PK_TARGET_AVX2 static void ci_pack_b_gather(const ci_ctx *c, const int32_t *idx, const int32_t *msk, int64_t j0,
                                            int64_t nb, int64_t p0, int64_t kc, float *restrict Bp) {
    // B̃ as ci_pack_b_body, 8 columns per masked gather (masked lanes read nothing and give 0)
    const int64_t nr = c->u.nr, KK = c->KH * c->KW, HW = c->H * c->W, npan = (nb + nr - 1) / nr;
    const float *xb = c->x + (j0 / c->P) * c->C * HW;
    for (int64_t q = 0; q < npan; q++) {
        float *restrict dst = Bp + q * nr * kc;
        int64_t ci = p0 / KK, off = p0 % KK;
        for (int64_t pp = 0; pp < kc; pp++) {
            const float *xc = xb + ci * HW;
            const int32_t *ti = idx + (q * KK + off) * nr, *tm = msk + (q * KK + off) * nr;
            for (int64_t r = 0; r < nr; r += 8) {
                __m256 v = _mm256_mask_i32gather_ps(_mm256_setzero_ps(), xc, _mm256_loadu_si256((const __m256i *)(ti + r)),
                                                    _mm256_castsi256_ps(_mm256_loadu_si256((const __m256i *)(tm + r))), 4);
                _mm256_storeu_ps(dst + pp * nr + r, v);
            }
            if (++off == KK) { off = 0; ci++; }
        }
    }
}


static PK_ALWAYS_INLINE void ci_epilogue_body(const ci_ctx *c, int64_t j0, int64_t nb, const float *restrict acc) {
    // rows 0..OC of the task's accumulator (ld NB) → y[n, o, pixel], in runs of columns within one image
    for (int64_t j = 0; j < nb;) {
        int64_t jj = j0 + j, n = jj / c->P, pix = jj % c->P, run = PK_MIN(c->P - pix, nb - j);
        for (int64_t o = 0; o < c->OC; o++) {
            const float *restrict a = acc + o * c->nb + j;
            float *restrict d = c->y + (n * c->OC + o) * c->P + pix;
            const float sc = c->scale ? c->scale[o] : 1.0f, sh = c->shift ? c->shift[o] : 0.0f;
            if (c->relu) for (int64_t t = 0; t < run; t++) d[t] = pk_relu1(a[t] * sc + sh);
            else for (int64_t t = 0; t < run; t++) d[t] = a[t] * sc + sh;
        }
        j += run;
    }
}

PK_TARGET_AVX512 static void ci_epilogue_avx512(const ci_ctx *c, int64_t j0, int64_t nb, const float *acc) { ci_epilogue_body(c, j0, nb, acc); }
PK_TARGET_AVX2 static void ci_epilogue_avx2(const ci_ctx *c, int64_t j0, int64_t nb, const float *acc) { ci_epilogue_body(c, j0, nb, acc); }
static void ci_epilogue_scalar(const ci_ctx *c, int64_t j0, int64_t nb, const float *acc) { ci_epilogue_body(c, j0, nb, acc); }

static pk_status ci_block(const ci_ctx *c, int64_t blk) {
    // output columns [blk·NB, blk·NB + nb): all OC rows, k blocks in order
    const int mr = c->u.mr, nr = c->u.nr;
    const int64_t j0 = blk * c->nb, nb = PK_MIN(c->nb, c->J - j0), npan = (nb + nr - 1) / nr;
    const int64_t nbpad = ((c->nb + nr - 1) / nr) * nr;
    const int64_t KK = c->KH * c->KW;
    // runs and taps (any ISA) or the gather tables (AVX2 / AVX-512): one allocation for either
    size_t tb = (size_t)nbpad * PK_MAX(sizeof(ci_run) + (size_t)KK * sizeof(ci_tap), (size_t)KK * 2 * sizeof(int32_t));
    ci_run *runs = pk_scratch(7, tb);
    ci_tap *taps = (ci_tap *)(void *)(runs + nbpad);
    int32_t *gidx = (int32_t *)(void *)runs, *gmsk = gidx + nbpad * KK;
    float *Bp = pk_scratch(4, (size_t)(c->kcb * nbpad) * sizeof(float));
    float *acc = pk_scratch(5, (size_t)(c->ocpad * c->nb) * sizeof(float));
    if (!runs || !Bp || !acc) return PK_ERR_NOMEM;
    const pk_isa isa = pk_active_isa();
    const int gather = isa != PK_ISA_SCALAR && ci_gather_tables(c, j0, nb, gidx, gmsk);
    const int64_t nruns = gather ? 0 : ci_runs(c, j0, nb, runs, taps);
    for (int64_t kb = 0; kb < c->nkb; kb++) {
        const int64_t p0 = kb * c->kcb, kc = ci_kc(c, kb);
        if (!gather) ci_pack_b_runs(c, runs, taps, nruns, nb, p0, kc, Bp);
        else ci_pack_b_gather(c, gidx, gmsk, j0, nb, p0, kc, Bp);
        const float *Ak = c->Ap + c->ocpad * p0;
        const int mode = kb == 0 ? PK_UKR_STORE_C : PK_UKR_ADD_C;
        // acc rows have NB (a multiple of NR) columns: every full MR×NR tile stays inside its rows
        for (int64_t ir = 0; ir < c->ocpad / mr; ir++)
            for (int64_t jr = 0; jr < npan; jr++)
                c->u.ukr(kc, Ak + ir * mr * kc, Bp + jr * nr * kc, NULL, acc + ir * mr * c->nb + jr * nr, c->nb, mode, NULL);
    }
    switch (isa) {
    case PK_ISA_AVX512: ci_epilogue_avx512(c, j0, nb, acc); break;
    case PK_ISA_AVX2: ci_epilogue_avx2(c, j0, nb, acc); break;
    default: ci_epilogue_scalar(c, j0, nb, acc); break;
    }
    return PK_OK;
}

static void ci_block_range(void *v, int64_t b, int64_t e) {
    // column blocks [b, e)
    const ci_ctx *c = v;
    for (int64_t blk = b; blk < e; blk++) {
        pk_status st = ci_block(c, blk);
        if (st != PK_OK) c->status[blk] = st;
    }
}

pk_status pk_conv2d_implicit_forward_f32(int64_t N, int64_t C, int64_t H, int64_t W, int64_t OC, int64_t KH, int64_t KW,
                                         int64_t s, int64_t p, int relu, const float *x, const float *w,
                                         const uint8_t *mask, const float *scale, const float *shift, float *y) {
    if (N < 0 || C < 0 || H < 0 || W < 0 || OC < 0 || KH < 1 || KW < 1 || s < 1 || p < 0) return PK_ERR_SHAPE;
    if (H + 2 * p < KH || W + 2 * p < KW) return PK_ERR_SHAPE;
    const int64_t OH = (H + 2 * p - KH) / s + 1, OW = (W + 2 * p - KW) / s + 1, K = C * KH * KW;
    if (N == 0 || OC == 0) return PK_OK;
    if (!x || !w || !y) return PK_ERR_NULL;
    size_t yb = (size_t)(N * OC * OH * OW) * 4, wb = (size_t)(OC * K) * 4;
    if (pk_overlaps(y, yb, x, (size_t)(N * C * H * W) * 4) || pk_overlaps(y, yb, w, wb) ||
        (mask && pk_overlaps(y, yb, mask, (size_t)(OC * K))) || (scale && pk_overlaps(y, yb, scale, (size_t)OC * 4)) ||
        (shift && pk_overlaps(y, yb, shift, (size_t)OC * 4)))
        return PK_ERR_ALIAS;
    if (C == 0) {
        // empty sum: y = act(shift)
        for (int64_t n = 0; n < N; n++)
            for (int64_t o = 0; o < OC; o++)
                for (int64_t q = 0; q < OH * OW; q++) {
                    float v = shift ? shift[o] : 0.0f;
                    y[(n * OC + o) * OH * OW + q] = relu ? pk_relu1(v) : v;
                }
        return PK_OK;
    }
    ci_ctx c = {.N = N, .C = C, .H = H, .W = W, .OC = OC, .KH = KH, .KW = KW, .s = s, .p = p, .OH = OH, .OW = OW,
                .P = OH * OW, .K = K, .J = N * OH * OW, .relu = relu != 0, .x = x, .w = w, .scale = scale,
                .shift = shift, .mask = mask, .y = y, .u = pk_gemm_select_ukr()};
    c.nkb = (K + CI_KC_MAX - 1) / CI_KC_MAX;
    c.kcb = (K + c.nkb - 1) / c.nkb; // balanced k blocks
    c.ocpad = ((OC + c.u.mr - 1) / c.u.mr) * c.u.mr;
    // column blocks: NR multiples, at most NB_MAX, and at least 8 blocks when the batch allows it
    const int64_t nr = c.u.nr, jpan = (c.J + nr - 1) / nr;
    c.nb = PK_MAX((int64_t)1, PK_MIN((int64_t)(CI_NB_MAX / nr), jpan / 8)) * nr;
    c.nblocks = (c.J + c.nb - 1) / c.nb;
    c.Ap = pk_scratch(6, (size_t)(c.ocpad * K) * sizeof(float));
    pk_status *status = pk_scratch(8, (size_t)c.nblocks * sizeof(pk_status));
    if (!c.Ap || !status) return PK_ERR_NOMEM;
    for (int64_t b = 0; b < c.nblocks; b++) status[b] = PK_OK;
    c.status = status;
    pk_parallel_for(c.nkb * (c.ocpad / c.u.mr), 4, ci_pack_a_range, &c);
    pk_parallel_for(c.nblocks, 1, ci_block_range, &c);
    for (int64_t b = 0; b < c.nblocks; b++) if (status[b] != PK_OK) return status[b];
    return PK_OK;
}
