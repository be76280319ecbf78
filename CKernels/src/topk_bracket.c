// Global top-k selection, the fast path (entry points and fallback in topk.c).
#include "topk_internal.h"
#include <immintrin.h>

// ---- sampled bracket (the fast path)
//
// A deterministic sample (runs of 64 consecutive entries spread evenly over all tensors) estimates
// the k-th smallest key; a bracket [lo, hi] around it, 4.5 standard deviations each side, is then
// applied in one streaming pass that reads every score and mask byte once, validates (non-finite
// scores, kept count) and rewrites each mask byte with a provisional state: pruned before (0), kept
// above the bracket (1), kept below it (2), kept inside it (3), collecting the keys of the entries
// inside in position order. If the k-th smallest lies inside, a pass over the mask bytes alone
// settles them (2 → 0; each 3 by its collected key, ties in position order); otherwise that pass
// restores the masks (nonzero → 1) and the histogram fallback runs. Extra memory: the sample and
// the collected keys, bounded by BRACKET_CAP per slot.

#define SAMPLE_RUNS 8192
#define BRACKET_CAP ((int64_t)3 << 19)
#define BRACKET_SIGMAS 4.5
#define RUN_LEN 64

enum { M_KEPT = 1, M_BELOW = 2, M_INSIDE = 3 };

typedef struct {
    topk_ctx *c;
    uint32_t lo, hi;
    int64_t cap;                 // keys a slot may collect (0: none are collected)
    uint32_t *keys[MAX_SLOTS];   // a slot's in-bracket keys in position order
    int64_t below[MAX_SLOTS], inside[MAX_SLOTS];
    // settling
    int restore;                 // undo the provisional states
    int use_keys;                // decide each in-bracket entry by its key (else: all are ties)
    uint32_t thr;                // prune in-bracket keys below thr, and ties with thr up to the quota
    int64_t quota[MAX_SLOTS];    // ties a slot prunes, first in position order
} bracket_ctx;

static PK_ALWAYS_INLINE void mark_one(bracket_ctx *x, const float *xs, uint8_t *m, int64_t i, uint32_t *out,
                                      int64_t *n, int64_t *kept, int64_t *below, int64_t *inside, uint32_t *bad) {
    uint32_t bits;
    memcpy(&bits, xs + i, 4);
    uint32_t k = key_of(x->c->use_abs, xs[i]);
    uint32_t kp = m[i] != 0, bl = kp & (k < x->lo), in = kp & (k >= x->lo) & (k <= x->hi);
    *bad |= kp & ((bits & 0x7F800000u) == 0x7F800000u);
    *kept += kp;
    *below += bl;
    *inside += in;
    m[i] = (uint8_t)(kp + bl + 2 * in);
    if (in && x->cap) {
        if (*n < x->cap) out[*n] = k;
        (*n)++;
    }
}

static PK_ALWAYS_INLINE void mark_range_body(void *v, int64_t sb, int64_t se) {
    // slots [sb, se): provisional states, counts and in-bracket keys (blocks of 16 without a
    // bracket entry take the branch-free path)
    bracket_ctx *x = v;
    topk_ctx *c = x->c;
    const uint32_t lo = x->lo, hi = x->hi;
    for (int64_t s = sb; s < se; s++) {
        int64_t below = 0, inside = 0, kept = 0, n = 0;
        uint32_t bad = 0;
        FOR_EACH_CHUNK(c, s, t, b, e) {
            const float *restrict xs = c->scores[t];
            uint8_t *restrict m = c->masks[t];
            for (int64_t i0 = b; i0 < e; i0 += 16) {
                const int64_t i1 = PK_MIN(i0 + 16, e);
                uint32_t any = 0;
                for (int64_t i = i0; i < i1; i++) {
                    uint32_t k = key_of(c->use_abs, xs[i]);
                    any |= (m[i] != 0) & (k >= lo) & (k <= hi);
                }
                if (any)
                    for (int64_t i = i0; i < i1; i++) mark_one(x, xs, m, i, x->keys[s], &n, &kept, &below, &inside, &bad);
                else {
                    uint32_t nb = 0, nk = 0;
                    for (int64_t i = i0; i < i1; i++) {
                        uint32_t bits;
                        memcpy(&bits, xs + i, 4);
                        uint32_t kp = m[i] != 0, bl = kp & (key_of(c->use_abs, xs[i]) < lo);
                        bad |= kp & ((bits & 0x7F800000u) == 0x7F800000u);
                        nk += kp;
                        nb += bl;
                        m[i] = (uint8_t)(kp + bl);
                    }
                    kept += nk;
                    below += nb;
                }
            }
        }
        x->below[s] = below;
        x->inside[s] = inside;
        c->kept[s] = kept;
        c->bad[s] = (int)bad;
    }
}

// With AVX-512: 16 scores per step, the 16 mask bytes rewritten in one store.
PK_TARGET_AVX512 static void mark_range_avx512(void *v, int64_t sb, int64_t se) {
    bracket_ctx *x = v;
    topk_ctx *c = x->c;
    const __m512i lo = _mm512_set1_epi32((int)x->lo), hi = _mm512_set1_epi32((int)x->hi);
    const __m512i absmask = _mm512_set1_epi32(0x7FFFFFFF), top = _mm512_set1_epi32((int)0x80000000u);
    const __m512i expo = _mm512_set1_epi32(0x7F800000);
    const __m128i one = _mm_set1_epi8(1), two = _mm_set1_epi8(2), three = _mm_set1_epi8(3);
    for (int64_t s = sb; s < se; s++) {
        int64_t below = 0, inside = 0, kept = 0, n = 0;
        uint32_t bad = 0;
        uint32_t *restrict out = x->keys[s];
        FOR_EACH_CHUNK(c, s, t, b, e) {
            const float *xs = c->scores[t];
            uint8_t *m = c->masks[t];
            int64_t i = b;
            for (; i + 16 <= e; i += 16) {
                __m512i raw = _mm512_castps_si512(_mm512_loadu_ps(xs + i));
                // the same keys as key_of(), with integer operations only: −0.0 → +0.0, then |x| bits
                // or signed floats mapped to an unsigned order
                __m512i bits = _mm512_mask_mov_epi32(raw, _mm512_cmpeq_epi32_mask(raw, top), _mm512_setzero_si512());
                __m512i k = c->use_abs ? _mm512_and_si512(raw, absmask)
                                       : _mm512_xor_si512(bits, _mm512_or_si512(_mm512_srai_epi32(bits, 31), top));
                __m128i mb = _mm_loadu_si128((const __m128i *)(m + i));
                __mmask16 kp = _mm_test_epi8_mask(mb, mb);
                __mmask16 bl = kp & _mm512_cmplt_epu32_mask(k, lo);
                __mmask16 in = kp & _mm512_cmpge_epu32_mask(k, lo) & _mm512_cmple_epu32_mask(k, hi);
                bad |= kp & _mm512_cmpeq_epi32_mask(_mm512_and_si512(raw, expo), expo);
                __m128i nm = _mm_mask_mov_epi8(_mm_mask_mov_epi8(_mm_maskz_mov_epi8(kp, one), bl, two), in, three);
                _mm_storeu_si128((__m128i *)(m + i), nm);
                kept += __builtin_popcount(kp);
                below += __builtin_popcount(bl);
                inside += __builtin_popcount(in);
                if (x->cap && n + 16 <= x->cap) {
                    // always store (a branch on whether any entry is inside would mispredict)
                    _mm512_storeu_si512((void *)(out + n), _mm512_maskz_compress_epi32(in, k));
                    n += __builtin_popcount(in);
                } else if (x->cap) {
                    uint32_t keys[16];
                    _mm512_storeu_si512((void *)keys, k);
                    for (unsigned r = in; r; r &= r - 1, n++)
                        if (n < x->cap) out[n] = keys[__builtin_ctz(r)];
                }
            }
            for (; i < e; i++) mark_one(x, xs, m, i, out, &n, &kept, &below, &inside, &bad);
        }
        x->below[s] = below;
        x->inside[s] = inside;
        c->kept[s] = kept;
        c->bad[s] = bad != 0;
    }
}

// The final state of an in-bracket entry (1 kept, 0 pruned); j walks the slot's keys, q its quota.
// Branch-free: whether a key falls below the threshold is a coin toss the predictor would lose.
static PK_ALWAYS_INLINE uint32_t settle_inside(const bracket_ctx *x, const uint32_t *keys, int64_t *j, int64_t *q) {
    uint32_t k = x->use_keys ? keys[*j] : x->thr;
    *j += x->use_keys;
    uint32_t tie = (k == x->thr) & (*q > 0);
    *q -= tie;
    return !((k < x->thr) | tie);
}

static PK_ALWAYS_INLINE void settle_range_body(void *v, int64_t sb, int64_t se) {
    // slots [sb, se): provisional states → 0/1 (or back to the original masks when restoring)
    bracket_ctx *x = v;
    topk_ctx *c = x->c;
    for (int64_t s = sb; s < se; s++) {
        int64_t j = 0, q = x->quota[s];
        FOR_EACH_CHUNK(c, s, t, b, e) {
            uint8_t *restrict m = c->masks[t];
            if (x->restore) {
                for (int64_t i = b; i < e; i++) m[i] = m[i] != 0;
                continue;
            }
            for (int64_t i0 = b; i0 < e; i0 += 16) {
                const int64_t i1 = PK_MIN(i0 + 16, e);
                uint32_t any = 0;
                for (int64_t i = i0; i < i1; i++) any |= m[i] == M_INSIDE;
                if (!any)
                    for (int64_t i = i0; i < i1; i++) m[i] = m[i] == M_KEPT;
                else
                    for (int64_t i = i0; i < i1; i++)
                        m[i] = (uint8_t)(m[i] == M_INSIDE ? settle_inside(x, x->keys[s], &j, &q) : m[i] == M_KEPT);
            }
        }
    }
}

// (BMI2's pdep comes with every AVX-512 CPU.)
__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,fma,bmi2")))
static void settle_range_avx512(void *v, int64_t sb, int64_t se) {
    bracket_ctx *x = v;
    topk_ctx *c = x->c;
    const __m512i ones = _mm512_set1_epi8(1), threes = _mm512_set1_epi8(3), thr = _mm512_set1_epi32((int)x->thr);
    for (int64_t s = sb; s < se; s++) {
        int64_t j = 0, q = x->quota[s];
        FOR_EACH_CHUNK(c, s, t, b, e) {
            uint8_t *m = c->masks[t];
            for (int64_t i = b; i < e; i += 64) {
                __mmask64 lanes = e - i >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << (e - i)) - 1);
                __m512i mb = _mm512_maskz_loadu_epi8(lanes, m + i);
                __mmask64 keep;
                if (x->restore) keep = _mm512_test_epi8_mask(mb, mb);
                else {
                    keep = _mm512_cmpeq_epi8_mask(mb, ones);
                    __mmask64 in = _mm512_cmpeq_epi8_mask(mb, threes) & lanes;
                    if (x->use_keys) {
                        // the block's in-bracket entries are the slot's next keys, in order: compare
                        // 16 at a time (no branch on whether there are any: that would mispredict),
                        // then scatter the verdicts onto the block's bits
                        const int cnt = __builtin_popcountll(in);
                        uint64_t pruned = 0;
                        int g = 0;
                        do {
                            __mmask16 valid = (__mmask16)(cnt - g >= 16 ? 0xFFFF : (1u << (cnt - g)) - 1);
                            __m512i kv = _mm512_maskz_loadu_epi32(valid, x->keys[s] + j + g);
                            uint64_t lt = _mm512_mask_cmplt_epu32_mask(valid, kv, thr);
                            uint64_t eq = _mm512_mask_cmpeq_epu32_mask(valid, kv, thr);
                            for (; eq && q > 0; eq &= eq - 1, q--) lt |= eq & -eq; // ties, first in position order
                            pruned |= lt << g;
                            g += 16;
                        } while (g < cnt);
                        j += cnt;
                        keep |= _pdep_u64(~pruned, in);
                    } else
                        for (; in; in &= in - 1) keep |= (in & -in) & -(__mmask64)settle_inside(x, x->keys[s], &j, &q);
                }
                _mm512_mask_storeu_epi8(m + i, lanes, _mm512_maskz_mov_epi8(keep, ones));
            }
        }
    }
}

PK_TARGET_AVX2 static void mark_range_avx2(void *v, int64_t b, int64_t e) { mark_range_body(v, b, e); }
static void mark_range_scalar(void *v, int64_t b, int64_t e) { mark_range_body(v, b, e); }
PK_TARGET_AVX2 static void settle_range_avx2(void *v, int64_t b, int64_t e) { settle_range_body(v, b, e); }
static void settle_range_scalar(void *v, int64_t b, int64_t e) { settle_range_body(v, b, e); }

static pk_range_fn pick(pk_range_fn avx512, pk_range_fn avx2, pk_range_fn scalar) {
    pk_isa isa = pk_active_isa();
    return isa == PK_ISA_AVX512 ? avx512 : isa == PK_ISA_AVX2 ? avx2 : scalar;
}

// The r[0]-th and r[1]-th smallest (from 0) of the values held in L lists, in two passes of 16-bit
// histograms; less[q] = how many values are smaller than the q-th result. hist holds 2·HBINS counters.
static void select_ranks(int64_t L, uint32_t *const *lists, const int64_t *counts, const int64_t r[2], uint32_t *hist,
                         uint32_t out[2], int64_t less[2]) {
    memset(hist, 0, 2 * HBINS * sizeof(uint32_t));
    for (int64_t l = 0; l < L; l++)
        for (int64_t i = 0; i < counts[l]; i++) hist[lists[l][i] >> 16]++;
    int64_t acc[2], hb[2];
    for (int q = 0; q < 2; q++) {
        acc[q] = 0, hb[q] = 0;
        while (acc[q] + hist[hb[q]] <= r[q]) acc[q] += hist[hb[q]++];
    }
    memset(hist, 0, HBINS * sizeof(uint32_t));
    uint32_t *h1 = hb[1] == hb[0] ? hist : hist + HBINS; // the second rank's bin, if another one
    for (int64_t l = 0; l < L; l++)
        for (int64_t i = 0; i < counts[l]; i++) {
            uint32_t v = lists[l][i], b = v >> 16;
            if (b == (uint32_t)hb[0]) hist[v & 0xFFFF]++;
            else if (b == (uint32_t)hb[1]) h1[v & 0xFFFF]++;
        }
    for (int q = 0; q < 2; q++) {
        const uint32_t *h = q ? h1 : hist;
        int64_t lb = 0;
        while (acc[q] + h[lb] <= r[q]) acc[q] += h[lb++];
        less[q] = acc[q];
        out[q] = ((uint32_t)hb[q] << 16) | (uint32_t)lb;
    }
}

// The sample: slot s gathers runs [s·runs/nslots, (s+1)·runs/nslots) into its own part of the
// buffer (kept entries only), prefetching a few runs ahead (each run is a cold, random read).
typedef struct {
    topk_ctx *c;
    int64_t runs, total;
    uint32_t *sample;
    int64_t count[MAX_SLOTS], seen[MAX_SLOTS];
} sample_ctx;

static void gather_range(void *v, int64_t sb, int64_t se) {
    sample_ctx *g = v;
    const topk_ctx *c = g->c;
    const int64_t step = g->total / g->runs;
    for (int64_t s = sb; s < se; s++) {
        const int64_t rb = s * g->runs / c->nslots, re = (s + 1) * g->runs / c->nslots;
        uint32_t *out = g->sample + rb * RUN_LEN;
        int64_t n = 0, seen = 0;
        for (int64_t r = rb; r < re; r++) {
            if (r + 8 < re) {
                int64_t pos = (r + 8) * step + step / 2, t = tensor_of(c, pos), i = pos - c->base[t];
                for (int64_t l = 0; l < RUN_LEN && i + l < c->sizes[t]; l += 16) __builtin_prefetch(c->scores[t] + i + l);
                __builtin_prefetch(c->masks[t] + i);
            }
            int64_t pos = r * step + step / 2, t = tensor_of(c, pos);
            int64_t i0 = pos - c->base[t], i1 = PK_MIN(i0 + RUN_LEN, c->sizes[t]);
            const float *xs = c->scores[t];
            const uint8_t *m = c->masks[t];
            for (int64_t i = i0; i < i1; i++) {
                out[n] = key_of(c->use_abs, xs[i]);
                n += m[i] != 0;
            }
            seen += i1 - i0;
        }
        g->count[s] = n;
        g->seen[s] = seen;
    }
}

// Tries the sampled bracket (contract in topk_internal.h).
int pk_topk_bracket_select(topk_ctx *c, int64_t total, int64_t *kp, int64_t *extra) {
    int64_t k = *kp;
    // about one entry in 64 is sampled, at most SAMPLE_RUNS runs: small inputs take the fallback
    const int64_t runs = PK_MIN((int64_t)SAMPLE_RUNS, total / (64 * RUN_LEN));
    if (runs < 256) return 0;
    sample_ctx g = {.c = c, .runs = runs, .total = total};
    if (!(g.sample = malloc((size_t)runs * RUN_LEN * sizeof(uint32_t)))) return -1;
    pk_parallel_for(c->nslots, 1, gather_range, &g);
    int64_t ns = 0, seen = 0;
    uint32_t *lists[MAX_SLOTS];
    for (int64_t s = 0; s < c->nslots; s++) {
        lists[s] = g.sample + s * runs / c->nslots * RUN_LEN;
        ns += g.count[s];
        seen += g.seen[s];
    }
    if (ns < 1024) { free(g.sample); return 0; }
    // the kept count is estimated from the sample too: its uncertainty widens the bracket
    double f = (double)ns / (double)seen, sf = sqrt(f * (1.0 - f) / (double)seen) + 1.0 / (double)seen;
    double kept_hi = (f + BRACKET_SIGMAS * sf) * (double)total, kept_lo = PK_MAX(f - BRACKET_SIGMAS * sf, 1e-9) * (double)total;
    double p_lo = PK_MIN(1.0, (double)k / kept_hi), p_hi = PK_MIN(1.0, (double)k / kept_lo);
    if (c->fraction >= 0) p_lo = p_hi = c->fraction; // the rank among kept entries is known
    double sd = sqrt((double)ns * 0.25) + 1.0;
    int64_t rlo = (int64_t)floor(p_lo * ns - BRACKET_SIGMAS * sd - 2.0), rhi = (int64_t)ceil(p_hi * ns + BRACKET_SIGMAS * sd + 2.0);
    bracket_ctx x = {.c = c};
    int64_t ranks[2] = {PK_MAX(rlo, 0), PK_MIN(rhi, ns - 1)}, less[2];
    uint32_t bounds[2];
    select_ranks(c->nslots, lists, g.count, ranks, c->hist, bounds, less);
    x.lo = rlo <= 0 ? 0u : bounds[0];
    x.hi = rhi >= ns ? 0xFFFFFFFFu : bounds[1];
    free(g.sample);
    *extra += runs * RUN_LEN * 4;
    // room for twice the expected bracket in each slot (only the pages filled become resident)
    if (x.lo < x.hi) {
        double expect = (double)(PK_MIN(rhi, ns) - PK_MAX(rlo, 0)) / (double)ns * kept_hi;
        x.cap = PK_MIN(BRACKET_CAP, (int64_t)(2.0 * expect) + 4096);
        for (int64_t s = 0; s < c->nslots; s++)
            if (!(x.keys[s] = malloc((size_t)x.cap * sizeof(uint32_t)))) {
                for (int64_t q = 0; q < s; q++) free(x.keys[q]);
                return -1;
            }
    }
    pk_parallel_for(c->nslots, 1, pick(mark_range_avx512, mark_range_avx2, mark_range_scalar), &x);
    int64_t below = 0, inside = 0, kept = 0, stored = 0;
    int bad = 0, overflow = 0;
    for (int64_t s = 0; s < c->nslots; s++) {
        below += x.below[s];
        inside += x.inside[s];
        kept += c->kept[s];
        bad |= c->bad[s];
        overflow |= x.inside[s] > x.cap;
        stored += PK_MIN(x.inside[s], x.cap);
    }
    *extra += stored * 4;
    if (c->fraction >= 0) *kp = k = count_of(c->fraction, kept);
    // prune everything below the bracket and r of the entries inside it
    const int64_t r = k - below;
    int ok = !bad && k <= kept && 0 <= r && r <= inside;
    x.use_keys = ok && 0 < r && r < inside && x.lo < x.hi;
    if (x.use_keys && overflow) ok = 0;
    int64_t ties[MAX_SLOTS], to_prune = r;
    if (!ok) x.restore = 1;
    else if (x.use_keys) {
        // the threshold is the r-th smallest collected key; its ties are pruned in position order
        int64_t counts[MAX_SLOTS];
        for (int64_t s = 0; s < c->nslots; s++) counts[s] = x.inside[s];
        int64_t want[2] = {r - 1, r - 1};
        uint32_t thr[2];
        select_ranks(c->nslots, x.keys, counts, want, c->hist, thr, less);
        x.thr = thr[0];
        to_prune = r - less[0];
        for (int64_t s = 0; s < c->nslots; s++) {
            ties[s] = 0;
            for (int64_t i = 0; i < counts[s]; i++) ties[s] += x.keys[s][i] == x.thr;
        }
    } else {
        // none, all, or a bracket of one value (exact-zero ties): every entry inside is a tie
        x.thr = x.lo;
        for (int64_t s = 0; s < c->nslots; s++) ties[s] = x.inside[s];
    }
    for (int64_t s = 0, before = 0; s < c->nslots; s++) {
        x.quota[s] = PK_MAX((int64_t)0, PK_MIN(ties[s], to_prune - before));
        before += ties[s];
    }
    pk_parallel_for(c->nslots, 1, pick(settle_range_avx512, settle_range_avx2, settle_range_scalar), &x);
    for (int64_t s = 0; s < c->nslots; s++) free(x.keys[s]);
    if (ok) return 1;
    return bad ? -2 : k > kept ? -3 : 0;
}
