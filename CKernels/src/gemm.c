// Masked GEMM in the GotoBLAS/BLIS scheme, general form (pk_gemm_desc):
//   C(i,j) := alpha·Σ_p opA(i,p)·opB(p,j) + beta·C(i,j) + bias, then C(i,j) := 0 where MC(i,j) == 0.
//
// Layers, outermost first:
//   jc: NC columns of C  →  pc: KC of the k dimension  →  pack B̃ (KC×NC, B's mask applied here)
//   ic: MC rows of C     →  pack Ã (MC×KC, A's mask)    →  tiles MR×NR: micro-kernel + epilogue
// Packing absorbs every layout (transposes, strides) and both masks, so the micro-kernel is a dense
// FMA loop over contiguous panels and 0% sparsity costs what plain SGEMM costs. Every C element is
// produced by one thread, summing k in the same blocked order whatever the thread count: bitwise
// reproducible. Blocking depends on the shape only, never on the thread count.
#include "gemm_internal.h"
#include "optim_internal.h"
#include <string.h>

#define KC_MAX 256
#define MC_BLOCKS 40 // MC = MC_BLOCKS·MR
#define NC_MAX 4096

typedef struct {
    const pk_gemm_desc *d;
    ukr_info u;
    int64_t i0, j0, p0, mc, nc, kc;
    float *Ap, *Bp;
    int first, last;
    int a_in_place; // A row-major and unmasked with few rows: the micro-kernel reads it in place
    int direct;     // full tiles may be written by the micro-kernel (alpha 1, beta 0 or 1, no mask; a column bias only with beta 0)
    const pk_update_consts *uc; // fused optimizer step (d->update), NULL when none
} block_ctx;

// ---- packing

__attribute__((no_builtin("memcpy", "memmove"))) static void pack_b_range(void *vctx, int64_t begin, int64_t end) {
    // panels [begin, end) of B̃: Bp[panel][p][c] = opB(p0+p, j0+panel·NR+c) (0 past n or where masked)
    const block_ctx *x = vctx;
    const pk_gemm_desc *d = x->d;
    const int nr = x->u.nr;
    if (d->b_cs == 1) {
        // rows of B are contiguous: walk each row once across this thread's panels
        const int64_t jend = PK_MIN(x->j0 + end * nr, x->j0 + x->nc);
        for (int64_t p = 0; p < x->kc; p++) {
            const float *restrict src = d->B + (x->p0 + p) * d->b_rs;
            const uint8_t *ms = d->MB ? d->MB + (x->p0 + p) * d->mb_rs : NULL;
            for (int64_t q = begin; q < end; q++) {
                int64_t jb = x->j0 + q * nr;
                int64_t w = PK_MIN((int64_t)nr, jend - jb);
                float *restrict dst = x->Bp + q * nr * x->kc + p * nr;
                if (ms) for (int64_t c = 0; c < w; c++) dst[c] = ms[(jb + c) * d->mb_cs] ? src[jb + c] : 0.0f;
                else for (int64_t c = 0; c < w; c++) dst[c] = src[jb + c];
                for (int64_t c = w; c < nr; c++) dst[c] = 0.0f;
            }
        }
        return;
    }
    for (int64_t q = begin; q < end; q++) {
        float *dst = x->Bp + q * nr * x->kc;
        int64_t jb = x->j0 + q * nr;
        int64_t w = PK_MIN((int64_t)nr, x->j0 + x->nc - jb);
        if (d->b_rs == 1 && (!d->MB || d->mb_rs == 1)) {
            // columns of B are contiguous (B stored transposed): 8×8 transposes
            pk_gemm_pack_transpose(d->B + jb * d->b_cs + x->p0, d->b_cs,
                                   d->MB ? d->MB + jb * d->mb_cs + x->p0 : NULL, d->mb_cs, w, x->kc, nr, dst);
            continue;
        }
        for (int64_t c = 0; c < nr; c++)
            for (int64_t p = 0; p < x->kc; p++) {
                int64_t pp = x->p0 + p, j = jb + c;
                dst[p * nr + c] = (c < w && (!d->MB || d->MB[pp * d->mb_rs + j * d->mb_cs])) ? d->B[pp * d->b_rs + j * d->b_cs] : 0.0f;
            }
    }
}

static void pack_a_range(void *vctx, int64_t begin, int64_t end) {
    // panels [begin, end) of Ã: Ap[panel][p][r] = opA(i0+panel·MR+r, p0+p) (0 past m or where masked)
    const block_ctx *x = vctx;
    const pk_gemm_desc *d = x->d;
    const int mr = x->u.mr;
    for (int64_t q = begin; q < end; q++) {
        float *dst = x->Ap + q * mr * x->kc;
        int64_t ib = x->i0 + q * mr;
        int64_t h = PK_MIN((int64_t)mr, x->i0 + x->mc - ib);
        if (d->a_cs == 1 && (!d->MA || d->ma_cs == 1)) {
            // rows of A are contiguous: 8×8 transposes
            pk_gemm_pack_transpose(d->A + ib * d->a_rs + x->p0, d->a_rs,
                                   d->MA ? d->MA + ib * d->ma_rs + x->p0 : NULL, d->ma_rs, h, x->kc, mr, dst);
            continue;
        }
        for (int64_t p = 0; p < x->kc; p++) {
            int64_t pp = x->p0 + p;
            const float *src = d->A + pp * d->a_cs + ib * d->a_rs;
            if (d->MA) {
                const uint8_t *ms = d->MA + pp * d->ma_cs + ib * d->ma_rs;
                for (int64_t r = 0; r < h; r++) dst[p * mr + r] = ms[r * d->ma_rs] ? src[r * d->a_rs] : 0.0f;
            } else {
                for (int64_t r = 0; r < h; r++) dst[p * mr + r] = src[r * d->a_rs];
            }
            for (int64_t r = h; r < mr; r++) dst[p * mr + r] = 0.0f;
        }
    }
}

// ---- output addressing and epilogue

static inline int64_t row_off(const pk_gemm_desc *d, int64_t i) {
    return d->c_rblock > 0 ? (i / d->c_rblock) * d->c_rblock_stride + (i % d->c_rblock) * d->c_rs : i * d->c_rs;
}
static inline int64_t col_off(const pk_gemm_desc *d, int64_t j) {
    return d->c_cblock > 0 ? (j / d->c_cblock) * d->c_cblock_stride + (j % d->c_cblock) * d->c_cs : j * d->c_cs;
}

static inline float finish(const pk_gemm_desc *d, int first, float t, float old, int64_t i, int64_t j) {
    // one element of C from its accumulated product t and its previous value
    float v = d->alpha * t;
    if (!first) return old + v;
    if (d->beta != 0.0f) v += d->beta * old;
    if (d->bias_row) v += d->bias_row[i];
    if (d->bias_col) v += d->bias_col[j];
    return v;
}

static void epilogue(const pk_gemm_desc *d, int first, int last, int64_t i0, int64_t j0, int64_t h, int64_t w,
                     int64_t ldt, const float *acc) {
    // h×w tile of C at (i0, j0) from acc (row stride ldt)
    const int simple_cols = d->c_cblock == 0 || (j0 % d->c_cblock) + w <= d->c_cblock;
    const int64_t cs = d->c_cs;
    for (int64_t r = 0; r < h; r++) {
        const int64_t i = i0 + r;
        const float *restrict t = acc + r * ldt;
        // accumulating into C: a later k block, or the first with beta 1 and no bias (old + alpha·t,
        // the bits finish() gives)
        const int add = !first || (d->beta == 1.0f && !d->bias_row && !d->bias_col);
        if (simple_cols && cs == 1 && (d->beta == 0.0f || add)) {
            // the common case, vectorised: contiguous row segment
            float *restrict c = d->C + row_off(d, i) + col_off(d, j0);
            const float alpha = d->alpha;
            if (add) for (int64_t j = 0; j < w; j++) c[j] += alpha * t[j];
            else {
                const float b = d->bias_row ? d->bias_row[i] : 0.0f;
                if (d->bias_col) {
                    const float *restrict bc = d->bias_col + j0;
                    for (int64_t j = 0; j < w; j++) c[j] = (alpha * t[j] + b) + bc[j];
                } else {
                    for (int64_t j = 0; j < w; j++) c[j] = alpha * t[j] + b;
                }
            }
        } else if (simple_cols) {
            float *c = d->C + row_off(d, i) + col_off(d, j0);
            for (int64_t j = 0; j < w; j++) c[j * cs] = finish(d, first, t[j], first && d->beta == 0.0f ? 0.0f : c[j * cs], i, j0 + j);
        } else {
            const int64_t ro = row_off(d, i);
            for (int64_t j = 0; j < w; j++) {
                float *c = d->C + ro + col_off(d, j0 + j);
                *c = finish(d, first, t[j], first && d->beta == 0.0f ? 0.0f : *c, i, j0 + j);
            }
        }
        if (last && d->MC) {
            const int64_t ro = row_off(d, i);
            for (int64_t j = 0; j < w; j++)
                if (!d->MC[i * d->mc_rs + (j0 + j) * d->mc_cs]) d->C[ro + col_off(d, j0 + j)] = 0.0f;
        }
    }
}

// Compiled per ISA (chosen at run time, below) so the inlined update loop is vectorised for this CPU.
static PK_ALWAYS_INLINE void epilogue_update_body(const pk_gemm_desc *d, const pk_update_consts *uc, int first,
                                                  int64_t i0, int64_t j0, int64_t h, int64_t w, int64_t ldt,
                                                  const float *acc) {
    // h×w tile of the final gradient: optimizer step on the kept entries, C (if any) receives it
    const pk_update_desc *u = d->update;
    const int plain = first && d->beta == 0.0f && d->alpha == 1.0f && !d->bias_row && !d->bias_col;
    float g[64];
    for (int64_t r = 0; r < h; r++) {
        const int64_t i = i0 + r;
        const float *t = acc + r * ldt;
        const int64_t ro = d->C ? row_off(d, i) : 0;
        const uint8_t *mrow = d->MC ? d->MC + i * d->mc_rs + j0 * d->mc_cs : NULL;
        for (int64_t jb = 0; jb < w; jb += 64) {
            const int64_t wn = PK_MIN((int64_t)64, w - jb);
            const float *gr = t + jb;
            if (!plain) {
                for (int64_t j = 0; j < wn; j++) {
                    const int64_t jj = j0 + jb + j;
                    float old = (d->C && !(first && d->beta == 0.0f)) ? d->C[ro + col_off(d, jj)] : 0.0f;
                    g[j] = finish(d, first, t[jb + j], old, i, jj);
                }
                gr = g;
            }
            const int64_t at = i * u->ld + j0 + jb;
            pk_update_run_body(uc, wn, gr, u->w + at, u->m ? u->m + at : NULL, u->v ? u->v + at : NULL,
                               mrow ? mrow + jb * d->mc_cs : NULL, d->mc_cs);
            if (d->C)
                for (int64_t j = 0; j < wn; j++) {
                    const int64_t jj = j0 + jb + j;
                    d->C[ro + col_off(d, jj)] = (mrow && !mrow[(jb + j) * d->mc_cs]) ? 0.0f : gr[j];
                }
        }
    }
}

#define PK_EPI_ARGS const pk_gemm_desc *d, const pk_update_consts *uc, int first, int64_t i0, int64_t j0, int64_t h, \
                    int64_t w, int64_t ldt, const float *acc
PK_TARGET_AVX512 static void epilogue_update_avx512(PK_EPI_ARGS) { epilogue_update_body(d, uc, first, i0, j0, h, w, ldt, acc); }
PK_TARGET_AVX2 static void epilogue_update_avx2(PK_EPI_ARGS) { epilogue_update_body(d, uc, first, i0, j0, h, w, ldt, acc); }
static void epilogue_update_scalar(PK_EPI_ARGS) { epilogue_update_body(d, uc, first, i0, j0, h, w, ldt, acc); }
#undef PK_EPI_ARGS

static void epilogue_update(const pk_gemm_desc *d, const pk_update_consts *uc, int first, int64_t i0, int64_t j0,
                            int64_t h, int64_t w, int64_t ldt, const float *acc) {
    switch (pk_active_isa()) {
    case PK_ISA_AVX512: epilogue_update_avx512(d, uc, first, i0, j0, h, w, ldt, acc); break;
    case PK_ISA_AVX2: epilogue_update_avx2(d, uc, first, i0, j0, h, w, ldt, acc); break;
    default: epilogue_update_scalar(d, uc, first, i0, j0, h, w, ldt, acc); break;
    }
}

static void compute_range(void *vctx, int64_t begin, int64_t end) {
    // tiles [begin, end) of the mc×nc block, jr-major so a thread reuses its B̃ micro-panel
    const block_ctx *x = vctx;
    const int mr = x->u.mr, nr = x->u.nr;
    const int64_t nir = (x->mc + mr - 1) / mr;
    float acc[MR_MAX * NR_MAX] __attribute__((aligned(64)));
    for (int64_t t = begin; t < end; t++) {
        int64_t jr = t / nir, ir = t % nir;
        int64_t i = x->i0 + ir * mr, j = x->j0 + jr * nr;
        int64_t h = PK_MIN((int64_t)mr, x->i0 + x->mc - i);
        int64_t w = PK_MIN((int64_t)nr, x->j0 + x->nc - j);
        if (x->uc && x->last) {
            // the fused step will touch this tile's rows of w, m, v and the mask: fetch them while
            // the micro-kernel runs (rows are far apart, so the hardware prefetcher does not)
            const pk_update_desc *u = x->d->update;
            for (int64_t r = 0; r < h; r++) {
                const int64_t at = (i + r) * u->ld + j;
                for (int64_t q = 0; q < w; q += 16) {
                    __builtin_prefetch(u->w + at + q, 1);
                    if (u->m) __builtin_prefetch(u->m + at + q, 1);
                    if (u->v) __builtin_prefetch(u->v + at + q, 1);
                }
                if (x->d->MC) __builtin_prefetch(x->d->MC + (i + r) * x->d->mc_rs + j * x->d->mc_cs, 0);
            }
        }
        if (x->a_in_place) {
            x->u.ukr_rows(x->kc, x->d->A + i * x->d->a_rs + x->p0, x->d->a_rs, h, x->Bp + jr * nr * x->kc, acc);
        } else if (x->direct && h == mr && w == nr && (x->d->c_cblock == 0 || (j % x->d->c_cblock) + nr <= x->d->c_cblock)) {
            // full tile, plain update: the micro-kernel writes C itself
            const pk_gemm_desc *d = x->d;
            x->u.ukr(x->kc, x->Ap + ir * mr * x->kc, x->Bp + jr * nr * x->kc, NULL, d->C + row_off(d, i) + col_off(d, j),
                     d->c_rs, x->first && d->beta == 0.0f ? PK_UKR_STORE_C : PK_UKR_ADD_C, d->bias_col ? d->bias_col + j : NULL);
            continue;
        } else {
            x->u.ukr(x->kc, x->Ap + ir * mr * x->kc, x->Bp + jr * nr * x->kc, acc, NULL, 0, PK_UKR_TO_ACC, NULL);
        }
        if (x->uc && x->last) epilogue_update(x->d, x->uc, x->first, i, j, h, w, nr, acc);
        else epilogue(x->d, x->first, x->last, i, j, h, w, nr, acc);
    }
}

static void k_zero_range(void *vctx, int64_t begin, int64_t end) {
    // rows [begin, end) of C when k == 0: C := beta·C + bias, then the output mask
    const pk_gemm_desc *d = vctx;
    float zero[NR_MAX] = {0};
    pk_update_consts uc;
    if (d->update) uc = pk_update_prepare(d->update);
    for (int64_t i = begin; i < end; i++)
        for (int64_t j0 = 0; j0 < d->n; j0 += NR_MAX) {
            int64_t w = PK_MIN((int64_t)NR_MAX, d->n - j0);
            if (d->update) epilogue_update(d, &uc, 1, i, j0, 1, w, NR_MAX, zero);
            else epilogue(d, 1, 1, i, j0, 1, w, NR_MAX, zero);
        }
}

// ---- drivers

#define FUSED_SINGLE_BLOCK_K 1024

static pk_status gemm_blocked(const pk_gemm_desc *d0) {
    ukr_info u = pk_gemm_select_ukr();
    pk_gemm_desc dl = *d0;
    const pk_gemm_desc *d = &dl;
    pk_update_consts ucs;
    const pk_update_consts *uc = NULL;
    int64_t kc_limit = KC_MAX;
    if (d0->update) {
        ucs = pk_update_prepare(d0->update);
        uc = &ucs;
        // a fused step wants the whole gradient of a tile at once: one k block when k allows it,
        // otherwise C accumulates the partial sums (a scratch buffer when the caller gave none)
        if (d0->k <= FUSED_SINGLE_BLOCK_K) kc_limit = d0->k;
        else if (!d0->C) {
            dl.C = pk_scratch(8, (size_t)(d0->m * d0->n) * sizeof(float));
            if (!dl.C) return PK_ERR_NOMEM;
            dl.beta = 0.0f; // there is no caller C to scale: the scratch only accumulates partial sums
            dl.c_rs = d0->n;
            dl.c_cs = 1;
            dl.c_rblock = dl.c_cblock = 0;
        }
    }
    // a handful of rows: read A in place (packing it would cost more than it saves)
    const int a_in_place = d->a_cs == 1 && !d->MA && u.ukr_rows != NULL && d->m <= 2 * u.mr;
    const int64_t nkb = (d->k + kc_limit - 1) / kc_limit;
    const int64_t kcb = (d->k + nkb - 1) / nkb; // balanced k blocks
    const int64_t MC = (int64_t)MC_BLOCKS * u.mr;
    const int64_t ncmax = PK_MIN((int64_t)NC_MAX, ((d->n + u.nr - 1) / u.nr) * u.nr);
    float *Bp = pk_scratch(0, (size_t)kcb * ncmax * sizeof(float));
    float *Ap = a_in_place ? NULL
                           : pk_scratch(1, (size_t)kcb * PK_MIN(MC, ((d->m + u.mr - 1) / u.mr) * u.mr) * sizeof(float));
    if (!Bp || (!a_in_place && !Ap)) return PK_ERR_NOMEM;
    // the micro-kernel may store full tiles itself: unit column stride, rows not split in blocks,
    // and an epilogue that would only copy (or add) the product
    // (a column bias is added by the micro-kernel on the first k block)
    // (beta 1 without a column bias: the first k block adds to C as the later ones do)
    const int direct = d->alpha == 1.0f && (d->beta == 0.0f || (d->beta == 1.0f && !d->bias_col)) && !d->bias_row &&
                       !d->MC && !d->update && d->c_cs == 1 && d->c_rblock == 0;
    for (int64_t j0 = 0; j0 < d->n; j0 += NC_MAX) {
        int64_t nc = PK_MIN((int64_t)NC_MAX, d->n - j0);
        int64_t njr = (nc + u.nr - 1) / u.nr;
        for (int64_t p0 = 0; p0 < d->k; p0 += kcb) {
            int64_t kc = PK_MIN(kcb, d->k - p0);
            block_ctx x = {d, u, 0, j0, p0, 0, nc, kc, Ap, Bp, p0 == 0, p0 + kc == d->k, a_in_place, direct, uc};
            pk_parallel_for(njr, 4, pack_b_range, &x);
            for (int64_t i0 = 0; i0 < d->m; i0 += MC) {
                x.i0 = i0;
                x.mc = PK_MIN(MC, d->m - i0);
                int64_t nir = (x.mc + u.mr - 1) / u.mr;
                if (!a_in_place) pk_parallel_for(nir, 4, pack_a_range, &x);
                pk_parallel_for(njr * nir, 2, compute_range, &x);
            }
        }
    }
    return PK_OK;
}

// Split-K: when C is small and k long (a convolution's weight gradient), the k range is cut into
// S chunks — S from the shape only, never from the thread count — whose partial products are
// computed in parallel and summed in chunk order: still bitwise reproducible.
#define SPLITK_CHUNK 4096
#define SPLITK_MAX 32

typedef struct { const pk_gemm_desc *d; int64_t S, chunk; float *partials; pk_status *status; } split_ctx;

static void split_range(void *vctx, int64_t begin, int64_t end) {
    // chunks [begin, end): partial_s (m×n, row-major) := opA(:, ks)·opB(ks, :)
    const split_ctx *x = vctx;
    const pk_gemm_desc *d = x->d;
    for (int64_t s = begin; s < end; s++) {
        int64_t k0 = s * x->chunk;
        pk_gemm_desc sub = *d;
        sub.k = PK_MIN(x->chunk, d->k - k0);
        sub.A = d->A + k0 * d->a_cs;
        sub.B = d->B + k0 * d->b_rs;
        if (d->MA) sub.MA = d->MA + k0 * d->ma_cs;
        if (d->MB) sub.MB = d->MB + k0 * d->mb_rs;
        sub.alpha = 1.0f;
        sub.beta = 0.0f;
        sub.bias_row = sub.bias_col = NULL;
        sub.MC = NULL;
        sub.update = NULL;
        sub.C = x->partials + s * d->m * d->n;
        sub.c_rs = d->n;
        sub.c_cs = 1;
        sub.c_rblock = sub.c_cblock = 0;
        pk_status st = gemm_blocked(&sub);
        if (st != PK_OK) x->status[s] = st;
    }
}

typedef struct { const pk_gemm_desc *d; int64_t S; const float *partials; float *sum; const pk_update_consts *uc; } reduce_ctx;

static void reduce_range(void *vctx, int64_t begin, int64_t end) {
    // rows [begin, end): sum the S partials in order, then the usual epilogue
    const reduce_ctx *x = vctx;
    const pk_gemm_desc *d = x->d;
    const int64_t mn = d->m * d->n;
    for (int64_t i = begin; i < end; i++) {
        float *row = x->sum + i * d->n;
        for (int64_t j = 0; j < d->n; j++) row[j] = x->partials[i * d->n + j];
        for (int64_t s = 1; s < x->S; s++) {
            const float *ps = x->partials + s * mn + i * d->n;
            for (int64_t j = 0; j < d->n; j++) row[j] += ps[j];
        }
        if (x->uc) epilogue_update(d, x->uc, 1, i, 0, 1, d->n, d->n, row);
        else epilogue(d, 1, 1, i, 0, 1, d->n, d->n, row);
    }
}

static pk_status gemm_run(const pk_gemm_desc *d) {
    if (d->m == 0 || d->n == 0) return PK_OK;
    if (d->k == 0) {
        pk_parallel_for(d->m, 64, k_zero_range, (void *)d);
        return PK_OK;
    }
    if (d->m * d->n <= 64 * 1024 && d->k >= 2 * SPLITK_CHUNK) {
        int64_t S = PK_MIN((int64_t)SPLITK_MAX, (d->k + SPLITK_CHUNK - 1) / SPLITK_CHUNK);
        int64_t chunk = (d->k + S - 1) / S;
        S = (d->k + chunk - 1) / chunk;
        float *buf = pk_scratch(3, (size_t)(S + 1) * d->m * d->n * sizeof(float));
        if (!buf) return PK_ERR_NOMEM;
        pk_status status[SPLITK_MAX];
        for (int64_t s = 0; s < S; s++) status[s] = PK_OK;
        split_ctx sc = {d, S, chunk, buf, status};
        pk_parallel_for(S, 1, split_range, &sc);
        for (int64_t s = 0; s < S; s++) if (status[s] != PK_OK) return status[s];
        pk_update_consts ucs;
        if (d->update) ucs = pk_update_prepare(d->update);
        reduce_ctx rc = {d, S, buf, buf + S * d->m * d->n, d->update ? &ucs : NULL};
        pk_parallel_for(d->m, 16, reduce_range, &rc);
        return PK_OK;
    }
    return gemm_blocked(d);
}

// ---- validation and public entry points

// Largest element offset + 1 reached by (r, c) ∈ [0,R)×[0,C) at r·rs + c·cs (0 when empty).
static size_t extent(int64_t R, int64_t C, int64_t rs, int64_t cs) {
    if (R <= 0 || C <= 0) return 0;
    return (size_t)((R - 1) * rs + (C - 1) * cs + 1);
}

static size_t c_extent(const pk_gemm_desc *d) {
    if (d->m <= 0 || d->n <= 0) return 0;
    int64_t rmax = d->c_rblock > 0 ? ((d->m - 1) / d->c_rblock) * d->c_rblock_stride + (PK_MIN(d->m, d->c_rblock) - 1) * d->c_rs
                                   : (d->m - 1) * d->c_rs;
    int64_t cmax = d->c_cblock > 0 ? ((d->n - 1) / d->c_cblock) * d->c_cblock_stride + (PK_MIN(d->n, d->c_cblock) - 1) * d->c_cs
                                   : (d->n - 1) * d->c_cs;
    return (size_t)(rmax + cmax + 1);
}

pk_status pk_gemm_f32(const pk_gemm_desc *d) {
    if (!d) return PK_ERR_NULL;
    if (d->m < 0 || d->n < 0 || d->k < 0) return PK_ERR_SHAPE;
    if (d->a_rs < 0 || d->a_cs < 0 || d->b_rs < 0 || d->b_cs < 0 || d->c_rs < 0 || d->c_cs < 0 ||
        d->ma_rs < 0 || d->ma_cs < 0 || d->mb_rs < 0 || d->mb_cs < 0 || d->mc_rs < 0 || d->mc_cs < 0 ||
        d->c_rblock < 0 || d->c_cblock < 0 || d->c_rblock_stride < 0 || d->c_cblock_stride < 0)
        return PK_ERR_SHAPE;
    if (d->update) {
        pk_status st = pk_update_check(d->update);
        if (st != PK_OK) return st;
        if (d->update->ld < d->n) return PK_ERR_SHAPE;
    }
    if (d->m == 0 || d->n == 0) return PK_OK;
    if ((!d->C && !d->update) || (d->k > 0 && (!d->A || !d->B))) return PK_ERR_NULL;
    if (d->update) {
        const pk_update_desc *u = d->update;
        size_t wb = (size_t)((d->m - 1) * u->ld + d->n) * 4;
        const float *arrs[3] = {u->w, u->m, u->v};
        for (int a = 0; a < 3; a++) {
            if (!arrs[a]) continue;
            if (d->k > 0 && (pk_overlaps(arrs[a], wb, d->A, extent(d->m, d->k, d->a_rs, d->a_cs) * 4) ||
                             pk_overlaps(arrs[a], wb, d->B, extent(d->k, d->n, d->b_rs, d->b_cs) * 4)))
                return PK_ERR_ALIAS;
            if (d->C && pk_overlaps(arrs[a], wb, d->C, c_extent(d) * 4)) return PK_ERR_ALIAS;
            for (int b = a + 1; b < 3; b++) if (arrs[b] && pk_overlaps(arrs[a], wb, arrs[b], wb)) return PK_ERR_ALIAS;
        }
        if (!d->C) return gemm_run(d);
    }
    size_t cb = c_extent(d) * 4;
    if (d->k > 0 && (pk_overlaps(d->C, cb, d->A, extent(d->m, d->k, d->a_rs, d->a_cs) * 4) ||
                     pk_overlaps(d->C, cb, d->B, extent(d->k, d->n, d->b_rs, d->b_cs) * 4) ||
                     (d->MA && pk_overlaps(d->C, cb, d->MA, extent(d->m, d->k, d->ma_rs, d->ma_cs))) ||
                     (d->MB && pk_overlaps(d->C, cb, d->MB, extent(d->k, d->n, d->mb_rs, d->mb_cs)))))
        return PK_ERR_ALIAS;
    if ((d->MC && pk_overlaps(d->C, cb, d->MC, extent(d->m, d->n, d->mc_rs, d->mc_cs))) ||
        (d->bias_row && pk_overlaps(d->C, cb, d->bias_row, (size_t)d->m * 4)) ||
        (d->bias_col && pk_overlaps(d->C, cb, d->bias_col, (size_t)d->n * 4)))
        return PK_ERR_ALIAS;
    return gemm_run(d);
}

pk_status pk_gemm_masked_f32(int64_t m, int64_t n, int64_t k, float alpha,
                             const float *A, int64_t lda, const float *W, int64_t ldw,
                             const uint8_t *M, int64_t ldm, float beta, float *C, int64_t ldc) {
    if (m < 0 || n < 0 || k < 0) return PK_ERR_SHAPE;
    if (m == 0 || n == 0) return PK_OK;
    if (ldc < n || (k > 0 && (lda < k || ldw < k || (M && ldm < k)))) return PK_ERR_SHAPE;
    pk_gemm_desc d = {.m = m, .n = n, .k = k, .alpha = alpha, .beta = beta, .A = A, .a_rs = lda, .a_cs = 1,
                      .B = W, .b_rs = 1, .b_cs = ldw, .MB = M, .mb_rs = 1, .mb_cs = ldm, .C = C, .c_rs = ldc, .c_cs = 1};
    return pk_gemm_f32(&d);
}

pk_status pk_gemm_masked_nn_f32(int64_t m, int64_t n, int64_t k, float alpha,
                                const float *A, int64_t lda, const float *W, int64_t ldw,
                                const uint8_t *M, int64_t ldm, float beta, float *C, int64_t ldc) {
    if (m < 0 || n < 0 || k < 0) return PK_ERR_SHAPE;
    if (m == 0 || n == 0) return PK_OK;
    if (ldc < n || (k > 0 && (lda < k || ldw < n || (M && ldm < n)))) return PK_ERR_SHAPE;
    pk_gemm_desc d = {.m = m, .n = n, .k = k, .alpha = alpha, .beta = beta, .A = A, .a_rs = lda, .a_cs = 1,
                      .B = W, .b_rs = ldw, .b_cs = 1, .MB = M, .mb_rs = ldm, .mb_cs = 1, .C = C, .c_rs = ldc, .c_cs = 1};
    return pk_gemm_f32(&d);
}

pk_status pk_gemm_masked_tn_f32(int64_t m, int64_t n, int64_t k, float alpha,
                                const float *A, int64_t lda, const float *B, int64_t ldb,
                                const uint8_t *M, int64_t ldm, float beta, float *C, int64_t ldc) {
    if (m < 0 || n < 0 || k < 0) return PK_ERR_SHAPE;
    if (m == 0 || n == 0) return PK_OK;
    if (ldc < n || (M && ldm < n) || (k > 0 && (lda < m || ldb < n))) return PK_ERR_SHAPE;
    pk_gemm_desc d = {.m = m, .n = n, .k = k, .alpha = alpha, .beta = beta, .A = A, .a_rs = 1, .a_cs = lda,
                      .B = B, .b_rs = ldb, .b_cs = 1, .C = C, .c_rs = ldc, .c_cs = 1, .MC = M, .mc_rs = ldm, .mc_cs = 1};
    return pk_gemm_f32(&d);
}

pk_status pk_linear_forward_f32(int64_t m, int64_t n, int64_t k,
                                const float *X, int64_t ldx, const float *W, int64_t ldw,
                                const uint8_t *M, int64_t ldm, const float *bias,
                                float *Y, int64_t ldy) {
    if (m < 0 || n < 0 || k < 0) return PK_ERR_SHAPE;
    if (m == 0 || n == 0) return PK_OK;
    if (ldy < n || (k > 0 && (ldx < k || ldw < k || (M && ldm < k)))) return PK_ERR_SHAPE;
    pk_gemm_desc d = {.m = m, .n = n, .k = k, .alpha = 1.0f, .beta = 0.0f, .A = X, .a_rs = ldx, .a_cs = 1,
                      .B = W, .b_rs = 1, .b_cs = ldw, .MB = M, .mb_rs = 1, .mb_cs = ldm, .C = Y, .c_rs = ldy, .c_cs = 1,
                      .bias_col = bias};
    return pk_gemm_f32(&d);
}

pk_status pk_linear_weight_update_f32(int64_t O, int64_t I, int64_t B, const float *dY, int64_t lddy,
                                      const float *X, int64_t ldx, const uint8_t *M, int64_t ldm,
                                      const pk_update_desc *u, float *dW, int64_t ldd) {
    if (O < 0 || I < 0 || B < 0) return PK_ERR_SHAPE;
    if (!u) return PK_ERR_NULL;
    if ((dW && ldd < I) || (M && ldm < I) || (B > 0 && (lddy < O || ldx < I))) return PK_ERR_SHAPE;
    pk_gemm_desc d = {.m = O, .n = I, .k = B, .alpha = 1.0f, .beta = 0.0f, .A = dY, .a_rs = 1, .a_cs = lddy,
                      .B = X, .b_rs = ldx, .b_cs = 1, .C = dW, .c_rs = ldd, .c_cs = 1, .MC = M, .mc_rs = ldm,
                      .mc_cs = 1, .update = u};
    return pk_gemm_f32(&d);
}
