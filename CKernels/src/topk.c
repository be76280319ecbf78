// Global top-k selection for pruning: the exact score threshold over one or many tensors.
// (N:M groups and unit norms are in patterns.c.)
//
// pk_prune_smallest_f32 prunes exactly k of the currently kept entries, smallest score first, ties
// broken by lowest (tensor, flat index), without concatenating the tensors.
//   fast path  a deterministic sample brackets the k-th smallest key; one vectorised pass validates
//              (NaN/Inf, kept count) and counts entries below and inside the bracket; if the k-th
//              lies inside, one writing pass prunes everything below and collects the bracket,
//              whose r-th key is then found byte by byte. A bracket of a single value (exact-zero
//              ties) is resolved in the writing pass itself, ties shared out by position.
//   fallback   when the sample was fooled or the bracket is too large: a 16-bit histogram pass,
//              a pass that prunes below the threshold bin and collects it (radix-sorted), or, for
//              massive ties, a low-bits histogram, a tie count per slot and a final writing pass.
// Extra memory: histograms, per-slot counters, the sample and the collected entries (bounded,
// < 16 MiB), independent of the number of weights. Slot boundaries depend on the thread count,
// but every result is a function of positions only, so the masks never do.
#include "select_internal.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <immintrin.h>

#define CHUNK ((int64_t)1 << 16)
#define HBITS 16
#define HBINS ((int64_t)1 << HBITS)
#define BIN_CAP ((int64_t)1 << 19)
#define MAX_SLOTS 16

typedef struct {
    // problem
    int64_t T;
    const int64_t *sizes;
    const float *const *scores;
    uint8_t *const *masks;
    int use_abs;
    int64_t nchunks, nslots;
    const int64_t *first_chunk; // per tensor
    const int64_t *base;        // global position of each tensor's element 0
    // pass 1
    uint32_t *hist;             // nslots × HBINS
    int64_t kept[MAX_SLOTS];
    int bad[MAX_SLOTS];
    // selection
    uint32_t bin;               // high bits of the threshold bin
    uint32_t thr;               // exact threshold bits (fallback)
    int64_t count[MAX_SLOTS];   // entries collected (or ties) per slot
    uint64_t *buf[MAX_SLOTS];   // per-slot collected entries
    int64_t ties_before[MAX_SLOTS];
    int64_t ties_to_prune;
} topk_ctx;

static void chunk_bounds(const topk_ctx *c, int64_t q, int64_t *t, int64_t *b, int64_t *e) {
    // chunk q → tensor t, element range [b, e)
    int64_t lo = 0, hi = c->T - 1;
    while (lo < hi) {
        int64_t mid = (lo + hi + 1) / 2;
        if (c->first_chunk[mid] <= q) lo = mid; else hi = mid - 1;
    }
    *t = lo;
    *b = (q - c->first_chunk[lo]) * CHUNK;
    *e = PK_MIN(*b + CHUNK, c->sizes[lo]);
}

// Visits the chunks of slot s in order, with t (tensor), b and e (its element range) in scope.
#define FOR_EACH_CHUNK(c, s, t, b, e)                                                              \
    for (int64_t q_ = (s) * (c)->nchunks / (c)->nslots, qe_ = ((s) + 1) * (c)->nchunks / (c)->nslots, \
                 t = 0, b = 0, e = 0;                                                              \
         q_ < qe_ && (chunk_bounds((c), q_, &t, &b, &e), 1); q_++)

static void pass1_range(void *v, int64_t sb, int64_t se) {
    // slots [sb, se): histogram of the high bits of kept scores; kept count; invalid scores
    topk_ctx *c = v;
    for (int64_t s = sb; s < se; s++) {
        uint32_t *h = c->hist + s * HBINS;
        memset(h, 0, HBINS * sizeof(uint32_t));
        int64_t kept = 0;
        int bad = 0;
        FOR_EACH_CHUNK(c, s, t, b, e) {
            const float *x = c->scores[t];
            const uint8_t *m = c->masks[t];
            for (int64_t i = b; i < e; i++) {
                if (!m[i]) continue;
                float f = x[i];
                bad |= !isfinite(f);
                h[key_of(c->use_abs, f) >> HBITS]++;
                kept++;
            }
        }
        c->kept[s] = kept;
        c->bad[s] = bad;
    }
}

static void pass2_range(void *v, int64_t sb, int64_t se) {
    // slots [sb, se): prune kept entries below the bin, collect the bin's entries in order
    topk_ctx *c = v;
    for (int64_t s = sb; s < se; s++) {
        c->count[s] = 0;
        FOR_EACH_CHUNK(c, s, t, b, e) {
            const float *x = c->scores[t];
            uint8_t *m = c->masks[t];
            for (int64_t i = b; i < e; i++) {
                if (!m[i]) continue;
                uint32_t k = key_of(c->use_abs, x[i]);
                uint32_t hi = k >> HBITS;
                if (hi < c->bin) m[i] = 0;
                else if (hi == c->bin) c->buf[s][c->count[s]++] = ((uint64_t)(k & 0xFFFF) << 48) | (uint64_t)(c->base[t] + i);
            }
        }
    }
}

static void lowhist_range(void *v, int64_t sb, int64_t se) {
    // slots [sb, se): histogram of the low bits of kept entries inside the bin (fallback)
    topk_ctx *c = v;
    for (int64_t s = sb; s < se; s++) {
        uint32_t *h = c->hist + s * HBINS;
        memset(h, 0, HBINS * sizeof(uint32_t));
        FOR_EACH_CHUNK(c, s, t, b, e) {
            const float *x = c->scores[t];
            const uint8_t *m = c->masks[t];
            for (int64_t i = b; i < e; i++) {
                if (!m[i]) continue;
                uint32_t k = key_of(c->use_abs, x[i]);
                if ((k >> HBITS) == c->bin) h[k & 0xFFFF]++;
            }
        }
    }
}

static void tiecount_range(void *v, int64_t sb, int64_t se) {
    // slots [sb, se): number of kept entries equal to the threshold (fallback)
    topk_ctx *c = v;
    for (int64_t s = sb; s < se; s++) {
        int64_t n = 0;
        FOR_EACH_CHUNK(c, s, t, b, e) {
            const float *x = c->scores[t];
            const uint8_t *m = c->masks[t];
            for (int64_t i = b; i < e; i++) n += m[i] && key_of(c->use_abs, x[i]) == c->thr;
        }
        c->count[s] = n;
    }
}

static void tiewrite_range(void *v, int64_t sb, int64_t se) {
    // slots [sb, se): prune entries below the threshold and the first ties in position order
    topk_ctx *c = v;
    for (int64_t s = sb; s < se; s++) {
        int64_t seen = c->ties_before[s];
        FOR_EACH_CHUNK(c, s, t, b, e) {
            const float *x = c->scores[t];
            uint8_t *m = c->masks[t];
            for (int64_t i = b; i < e; i++) {
                if (!m[i]) continue;
                uint32_t k = key_of(c->use_abs, x[i]);
                if (k < c->thr) m[i] = 0;
                else if (k == c->thr) {
                    if (seen < c->ties_to_prune) m[i] = 0;
                    seen++;
                }
            }
        }
    }
}

// Position → (tensor, index) and prune it.
static void prune_position(const topk_ctx *c, int64_t pos) {
    int64_t lo = 0, hi = c->T - 1;
    while (lo < hi) {
        int64_t mid = (lo + hi + 1) / 2;
        if (c->base[mid] <= pos) lo = mid; else hi = mid - 1;
    }
    c->masks[lo][pos - c->base[lo]] = 0;
}

// ---- sampled bracket (the fast path)
//
// A deterministic sample (runs of 64 consecutive entries spread evenly over all tensors) estimates
// the k-th smallest key; a bracket [lo, hi] around it, 4.5 standard deviations each side, is then
// verified in one streaming pass that counts kept entries below lo and inside the bracket. If the
// k-th smallest lies inside and the bracket is small, a second pass prunes everything below lo and
// collects the bracket, whose sorted prefix completes the selection: two reads of the data.

#define SAMPLE_RUNS 8192
#define BRACKET_CAP ((int64_t)3 << 19)
#define BRACKET_SIGMAS 4.5
#define RUN_LEN 64

typedef struct {
    topk_ctx *c;
    uint32_t lo, hi;
    int64_t below[MAX_SLOTS], inside[MAX_SLOTS];
} bracket_ctx;

static PK_ALWAYS_INLINE void count_range_body(void *v, int64_t sb, int64_t se) {
    // slots [sb, se): kept entries, non-finite kept scores, kept keys < lo and in [lo, hi] —
    // one branch-free, vectorised pass
    bracket_ctx *x = v;
    topk_ctx *c = x->c;
    const uint32_t lo = x->lo, hi = x->hi;
    for (int64_t s = sb; s < se; s++) {
        int64_t below = 0, inside = 0, kept = 0;
        uint32_t bad = 0;
        FOR_EACH_CHUNK(c, s, t, b, e) {
            const float *xs = c->scores[t];
            const uint8_t *m = c->masks[t];
            uint32_t nb = 0, ni = 0, nk = 0;
            for (int64_t i = b; i < e; i++) {
                uint32_t bits;
                memcpy(&bits, xs + i, 4);
                uint32_t k = key_of(c->use_abs, xs[i]);
                uint32_t kp = m[i] != 0;
                nk += kp;
                bad |= kp & ((bits & 0x7F800000u) == 0x7F800000u);
                nb += kp & (k < lo);
                ni += kp & (k >= lo) & (k <= hi);
            }
            below += nb;
            inside += ni;
            kept += nk;
        }
        x->below[s] = below;
        x->inside[s] = inside;
        c->kept[s] = kept;
        c->bad[s] = (int)bad;
    }
}

static PK_ALWAYS_INLINE void collect_range_body(void *v, int64_t sb, int64_t se) {
    // slots [sb, se): prune kept entries below lo (branch-free over blocks of 16), then collect the
    // bracket's entries of the blocks that have any, in position order
    bracket_ctx *x = v;
    topk_ctx *c = x->c;
    const uint32_t lo = x->lo, hi = x->hi;
    for (int64_t s = sb; s < se; s++) {
        int64_t count = 0;
        uint64_t *restrict out = c->buf[s];
        FOR_EACH_CHUNK(c, s, t, b, e) {
            const float *restrict xs = c->scores[t];
            uint8_t *restrict m = c->masks[t];
            const uint64_t base = (uint64_t)c->base[t];
            const int use_abs = c->use_abs;
            for (int64_t i0 = b; i0 < e; i0 += 16) {
                const int64_t i1 = PK_MIN(i0 + 16, e);
                uint32_t any = 0;
                for (int64_t i = i0; i < i1; i++) {
                    uint32_t k = key_of(use_abs, xs[i]);
                    uint32_t kept = m[i] != 0;
                    any |= kept & (k >= lo) & (k <= hi);
                    m[i] = (uint8_t)(kept & (k >= lo));
                }
                if (!any) continue;
                for (int64_t i = i0; i < i1; i++) {
                    uint32_t k = key_of(use_abs, xs[i]);
                    if (m[i] && k <= hi) out[count++] = ((uint64_t)k << 32) | (base + (uint64_t)i);
                }
            }
        }
        c->count[s] = count;
    }
}

// Per-ISA copies of the two streaming passes, picked at run time.
PK_TARGET_AVX512 static void count_range_avx512(void *v, int64_t b, int64_t e) { count_range_body(v, b, e); }
PK_TARGET_AVX2 static void count_range_avx2(void *v, int64_t b, int64_t e) { count_range_body(v, b, e); }
static void count_range_scalar(void *v, int64_t b, int64_t e) { count_range_body(v, b, e); }
// The writing pass with AVX-512: 16 scores per step, mask bytes rewritten in one store, and the
// rare in-bracket entries picked out of a 16-bit mask.
PK_TARGET_AVX512 static void collect_range_avx512(void *v, int64_t sb, int64_t se) {
    bracket_ctx *x = v;
    topk_ctx *c = x->c;
    const __m512i lo = _mm512_set1_epi32((int)x->lo), hi = _mm512_set1_epi32((int)x->hi);
    const __m512i absmask = _mm512_set1_epi32(0x7FFFFFFF), top = _mm512_set1_epi32((int)0x80000000u);
    const __m128i one = _mm_set1_epi8(1);
    for (int64_t s = sb; s < se; s++) {
        int64_t count = 0;
        uint64_t *restrict out = c->buf[s];
        FOR_EACH_CHUNK(c, s, t, b, e) {
            const float *xs = c->scores[t];
            uint8_t *m = c->masks[t];
            const uint64_t base = (uint64_t)c->base[t];
            int64_t i = b;
            for (; i + 16 <= e; i += 16) {
                // + 0.0 turns −0.0 into +0.0, as key_of() does
                __m512i bits = _mm512_castps_si512(_mm512_add_ps(_mm512_loadu_ps(xs + i), _mm512_setzero_ps()));
                // the same keys as key_of(): |x| bits, or signed floats mapped to an unsigned order
                __m512i k = c->use_abs ? _mm512_and_si512(bits, absmask)
                                       : _mm512_xor_si512(bits, _mm512_or_si512(_mm512_srai_epi32(bits, 31), top));
                __m128i mb = _mm_loadu_si128((const __m128i *)(m + i));
                __mmask16 kept = _mm_test_epi8_mask(mb, mb);
                __mmask16 ge = _mm512_cmpge_epu32_mask(k, lo);
                _mm_storeu_si128((__m128i *)(m + i), _mm_maskz_mov_epi8((__mmask16)(kept & ge), one));
                unsigned in = (unsigned)(kept & ge & _mm512_cmple_epu32_mask(k, hi));
                if (in) {
                    uint32_t keys[16];
                    _mm512_storeu_si512((void *)keys, k);
                    while (in) {
                        int j = __builtin_ctz(in);
                        in &= in - 1;
                        out[count++] = ((uint64_t)keys[j] << 32) | (base + (uint64_t)(i + j));
                    }
                }
            }
            for (; i < e; i++) {
                uint32_t k = key_of(c->use_abs, xs[i]);
                uint8_t kept = m[i] != 0;
                m[i] = (uint8_t)(kept & (k >= x->lo));
                if (kept && k >= x->lo && k <= x->hi) out[count++] = ((uint64_t)k << 32) | (base + (uint64_t)i);
            }
        }
        c->count[s] = count;
    }
}
PK_TARGET_AVX2 static void collect_range_avx2(void *v, int64_t b, int64_t e) { collect_range_body(v, b, e); }
static void collect_range_scalar(void *v, int64_t b, int64_t e) { collect_range_body(v, b, e); }

static pk_range_fn pick(pk_range_fn avx512, pk_range_fn avx2, pk_range_fn scalar) {
    pk_isa isa = pk_active_isa();
    return isa == PK_ISA_AVX512 ? avx512 : isa == PK_ISA_AVX2 ? avx2 : scalar;
}

// Stable LSD radix sort of 64-bit items by bits [lo_bit, hi_bit) (multiples of 8); tmp holds n items.
static void radix_sort_u64(uint64_t *a, uint64_t *tmp, int64_t n, int lo_bit, int hi_bit) {
    for (int shift = lo_bit; shift < hi_bit; shift += 8) {
        int64_t cnt[257] = {0};
        for (int64_t i = 0; i < n; i++) cnt[((a[i] >> shift) & 255) + 1]++;
        for (int i = 0; i < 256; i++) cnt[i + 1] += cnt[i];
        for (int64_t i = 0; i < n; i++) tmp[cnt[(a[i] >> shift) & 255]++] = a[i];
        memcpy(a, tmp, (size_t)n * sizeof(uint64_t));
    }
}

// Tries the sampled bracket: one counting pass that also validates, then one writing pass.
// Returns 1 when done, 0 to fall back, -1 on allocation failure, -2 for a non-finite kept score and
// -3 when k exceeds the kept count (nothing written in every case but 1).
static int bracket_select(topk_ctx *c, int64_t total, int64_t k, int64_t *extra) {
    // about one entry in 64 is sampled, at most SAMPLE_RUNS runs: small inputs sort a small sample
    const int64_t runs = PK_MIN((int64_t)SAMPLE_RUNS, total / (64 * RUN_LEN));
    if (runs < 256 || total >= ((int64_t)1 << 32)) return 0;
    uint64_t *sample = malloc((size_t)2 * runs * RUN_LEN * sizeof(uint64_t));
    if (!sample) return -1;
    int64_t ns = 0, seen = 0;
    for (int64_t r = 0; r < runs; r++) {
        int64_t pos = r * (total / runs) + (total / runs) / 2;
        int64_t lo = 0, hi = c->T - 1;
        while (lo < hi) { int64_t mid = (lo + hi + 1) / 2; if (c->base[mid] <= pos) lo = mid; else hi = mid - 1; }
        int64_t i0 = pos - c->base[lo], i1 = PK_MIN(i0 + RUN_LEN, c->sizes[lo]);
        for (int64_t i = i0; i < i1; i++, seen++)
            if (c->masks[lo][i]) sample[ns++] = key_of(c->use_abs, c->scores[lo][i]);
    }
    if (ns < 1024) { free(sample); return 0; }
    radix_sort_u64(sample, sample + runs * RUN_LEN, ns, 0, 32);
    // the kept count is estimated from the sample too: its uncertainty widens the bracket
    double f = (double)ns / (double)seen, sf = sqrt(f * (1.0 - f) / (double)seen) + 1.0 / (double)seen;
    double kept_hi = (f + BRACKET_SIGMAS * sf) * (double)total, kept_lo = PK_MAX(f - BRACKET_SIGMAS * sf, 1e-9) * (double)total;
    double p_lo = PK_MIN(1.0, (double)k / kept_hi), p_hi = PK_MIN(1.0, (double)k / kept_lo);
    double sd = sqrt((double)ns * 0.25) + 1.0;
    int64_t rlo = (int64_t)floor(p_lo * ns - BRACKET_SIGMAS * sd - 2.0), rhi = (int64_t)ceil(p_hi * ns + BRACKET_SIGMAS * sd + 2.0);
    bracket_ctx x = {.c = c};
    x.lo = rlo <= 0 ? 0u : (uint32_t)sample[rlo];
    x.hi = rhi >= ns ? 0xFFFFFFFFu : (uint32_t)sample[rhi];
    free(sample);
    *extra += (int64_t)2 * runs * RUN_LEN * 8;
    pk_parallel_for(c->nslots, 1, pick(count_range_avx512, count_range_avx2, count_range_scalar), &x);
    int64_t below = 0, inside = 0, kept = 0;
    int bad = 0;
    for (int64_t s = 0; s < c->nslots; s++) { below += x.below[s]; inside += x.inside[s]; kept += c->kept[s]; bad |= c->bad[s]; }
    if (bad) return -2;
    if (k > kept) return -3;
    if (k == 0) return 1;
    // the sample can be fooled (periodic data): the k-th smallest must lie inside the bracket
    if (!(below < k && k <= below + inside)) return 0;
    if (x.lo == x.hi) {
        // the bracket is a single value (typically exact zeros left by earlier pruning): prune
        // everything below it and the first k − below of its ties in position order, one pass
        c->thr = x.lo;
        c->ties_to_prune = k - below;
        int64_t acc = 0;
        for (int64_t s = 0; s < c->nslots; s++) { c->ties_before[s] = acc; acc += x.inside[s]; }
        pk_parallel_for(c->nslots, 1, tiewrite_range, c);
        return 1;
    }
    if (inside > BRACKET_CAP) return 0;
    // slot buffers sized for the whole bracket; only the pages a slot fills become resident
    int ok = 1;
    for (int64_t s = 0; s < c->nslots && ok; s++) ok = (c->buf[s] = malloc((size_t)PK_MAX(inside, 1) * 8)) != NULL;
    if (!ok) return -1;
    *extra += PK_MAX(inside, 1) * 8;
    pk_parallel_for(c->nslots, 1, pick(collect_range_avx512, collect_range_avx2, collect_range_scalar), &x);
    // the r-th smallest key among the collected entries, byte by byte (no sort, no copy)
    const int64_t r = k - below;
    uint32_t prefix = 0, pmask = 0;
    int64_t less = 0; // collected entries with key < the threshold found so far
    for (int shift = 24; shift >= 0; shift -= 8) {
        int64_t cnt[256] = {0};
        for (int64_t s = 0; s < c->nslots; s++)
            for (int64_t i = 0; i < c->count[s]; i++) {
                uint32_t key = (uint32_t)(c->buf[s][i] >> 32);
                if ((key & pmask) == prefix) cnt[(key >> shift) & 255]++;
            }
        int64_t acc = less, b = 0;
        while (acc + cnt[b] < r) acc += cnt[b++];
        less = acc;
        prefix |= (uint32_t)b << shift;
        pmask |= 255u << shift;
    }
    // prune keys below the threshold, then the first ties in position order
    int64_t ties = r - less;
    for (int64_t s = 0; s < c->nslots; s++)
        for (int64_t i = 0; i < c->count[s]; i++) {
            uint32_t key = (uint32_t)(c->buf[s][i] >> 32);
            if (key < prefix || (key == prefix && ties-- > 0)) prune_position(c, (int64_t)(c->buf[s][i] & 0xFFFFFFFFu));
        }
    return 1;
}

pk_status pk_prune_smallest_f32(int64_t T, const int64_t *sizes, const float *const *scores, uint8_t *const *masks,
                                int use_abs, int64_t k, int64_t *extra_bytes) {
    if (extra_bytes) *extra_bytes = 0;
    if (T < 0 || k < 0) return T < 0 ? PK_ERR_SHAPE : PK_ERR_ARG;
    if (T > 0 && (!sizes || !scores || !masks)) return PK_ERR_NULL;
    int64_t total = 0;
    for (int64_t t = 0; t < T; t++) {
        if (sizes[t] < 0) return PK_ERR_SHAPE;
        if (sizes[t] > 0 && (!scores[t] || !masks[t])) return PK_ERR_NULL;
        if (sizes[t] > ((int64_t)1 << 47)) return PK_ERR_SHAPE;
        total += sizes[t];
    }
    if (total >= ((int64_t)1 << 48)) return PK_ERR_SHAPE;
    // chunk layout and global positions
    int64_t *first_chunk = malloc((size_t)(2 * PK_MAX(T, 1)) * sizeof(int64_t));
    if (!first_chunk) return PK_ERR_NOMEM;
    int64_t *base = first_chunk + PK_MAX(T, 1);
    int64_t nchunks = 0, pos = 0;
    for (int64_t t = 0; t < T; t++) {
        first_chunk[t] = nchunks;
        base[t] = pos;
        nchunks += (sizes[t] + CHUNK - 1) / CHUNK;
        pos += sizes[t];
    }
    int64_t nslots = PK_MIN((int64_t)PK_MIN(pk_get_num_threads(), MAX_SLOTS), PK_MAX(nchunks, (int64_t)1));
    topk_ctx *c = calloc(1, sizeof(topk_ctx));
    uint32_t *hist = malloc((size_t)(nslots * HBINS) * sizeof(uint32_t));
    if (!c || !hist) { free(c); free(hist); free(first_chunk); return PK_ERR_NOMEM; }
    *c = (topk_ctx){.T = T, .sizes = sizes, .scores = scores, .masks = masks, .use_abs = use_abs,
                    .nchunks = nchunks, .nslots = nslots, .first_chunk = first_chunk, .base = base, .hist = hist};
    int64_t extra = (int64_t)(sizeof(topk_ctx) + (size_t)(nslots * HBINS) * 4 + (size_t)(2 * PK_MAX(T, 1)) * 8);
    pk_status st = PK_OK;

    {
        // fast path: the sampled bracket (a validating count pass, then a writing pass)
        int r = bracket_select(c, total, k, &extra);
        if (r == -1) { st = PK_ERR_NOMEM; goto done; }
        if (r == -2) { st = PK_ERR_NONFINITE; goto done; }
        if (r == -3) { st = PK_ERR_ARG; goto done; }
        if (r > 0) goto done;
        for (int64_t s = 0; s < nslots; s++) { free(c->buf[s]); c->buf[s] = NULL; c->count[s] = 0; }
    }

    pk_parallel_for(nslots, 1, pass1_range, c);
    int64_t kept = 0;
    int bad = 0;
    for (int64_t s = 0; s < nslots; s++) { kept += c->kept[s]; bad |= c->bad[s]; }
    if (bad) { st = PK_ERR_NONFINITE; goto done; }
    if (k > kept) { st = PK_ERR_ARG; goto done; }
    if (k == 0) goto done;
    {
        // the bin holding the k-th smallest kept score
        for (int64_t s = 1; s < nslots; s++)
            for (int64_t b = 0; b < HBINS; b++) hist[b] += hist[s * HBINS + b];
        int64_t below = 0, b = 0;
        while (below + hist[b] < k) below += hist[b++];
        c->bin = (uint32_t)b;
        int64_t in_bin = hist[b], r = k - below; // prune r of the bin's entries
        if (in_bin <= BIN_CAP) {
            // every buffer is reserved before the first write, so a failure changes nothing; a
            // slot's buffer is sized for the whole bin but only the pages it fills become resident
            int64_t n = in_bin;
            uint64_t *all = malloc((size_t)(2 * PK_MAX(n, 1)) * sizeof(uint64_t));
            int ok = all != NULL;
            for (int64_t s = 0; s < nslots && ok; s++) ok = (c->buf[s] = malloc((size_t)PK_MAX(n, 1) * 8)) != NULL;
            if (!ok) { free(all); st = PK_ERR_NOMEM; goto done; }
            pk_parallel_for(nslots, 1, pass2_range, c);
            extra += 3 * PK_MAX(n, 1) * 8; // collected entries, the sort's two halves
            uint64_t *const block = all;
            uint64_t *tmp = all + PK_MAX(n, 1);
            int64_t at = 0;
            for (int64_t s = 0; s < nslots; s++) { memcpy(all + at, c->buf[s], (size_t)c->count[s] * 8); at += c->count[s]; }
            for (int shift = 48; shift < 64; shift += 8) {
                int64_t cnt[257] = {0};
                for (int64_t i = 0; i < n; i++) cnt[((all[i] >> shift) & 255) + 1]++;
                for (int i = 0; i < 256; i++) cnt[i + 1] += cnt[i];
                for (int64_t i = 0; i < n; i++) tmp[cnt[(all[i] >> shift) & 255]++] = all[i];
                uint64_t *sw = all; all = tmp; tmp = sw;
            }
            // after two passes the sorted data is back in the first half
            for (int64_t i = 0; i < r; i++) prune_position(c, (int64_t)(all[i] & (((uint64_t)1 << 48) - 1)));
            free(block);
        } else {
            // massive ties: exact threshold from the low bits, then ties shared out by position
            pk_parallel_for(nslots, 1, lowhist_range, c);
            for (int64_t s = 1; s < nslots; s++)
                for (int64_t q = 0; q < HBINS; q++) hist[q] += hist[s * HBINS + q];
            int64_t lb = 0, q = 0;
            while (lb + hist[q] < r) lb += hist[q++];
            c->thr = (c->bin << HBITS) | (uint32_t)q;
            c->ties_to_prune = r - lb;
            pk_parallel_for(nslots, 1, tiecount_range, c);
            int64_t acc = 0;
            for (int64_t s = 0; s < nslots; s++) { c->ties_before[s] = acc; acc += c->count[s]; }
            pk_parallel_for(nslots, 1, tiewrite_range, c);
        }
    }
done:
    for (int64_t s = 0; s < nslots; s++) free(c->buf[s]);
    free(c);
    free(hist);
    free(first_chunk);
    if (extra_bytes) *extra_bytes = extra;
    return st;
}
