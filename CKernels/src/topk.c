// Global top-k selection for pruning: the exact score threshold over one or many tensors.
// (The fast path is in topk_bracket.c; N:M groups and unit norms are in patterns.c.)
//
// pk_prune_smallest_f32 prunes exactly k of the currently kept entries, smallest score first, ties
// broken by lowest (tensor, flat index), without concatenating the tensors.
//   fast path  a deterministic sample brackets the k-th smallest key; one vectorised pass over the
//              scores and masks validates (NaN/Inf, kept count), counts and marks each kept entry
//              below / inside / above the bracket in its mask byte, collecting the keys inside;
//              one pass over the mask bytes then settles them (or restores them when the bracket
//              missed). With a fraction, k follows from the kept count of that same pass.
//   fallback   when the sample was fooled or the bracket is too large: a 16-bit histogram pass,
//              a pass that prunes below the threshold bin and collects it (radix-sorted), or, for
//              massive ties, a low-bits histogram, a tie count per slot and a final writing pass.
// Extra memory: histograms, per-slot counters, the sample and the collected entries (bounded,
// < 16 MiB), independent of the number of weights. Slot boundaries depend on the thread count,
// but every result is a function of positions only, so the masks never do.
#include "topk_internal.h"

#define BIN_CAP ((int64_t)1 << 19)

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
    int64_t t = tensor_of(c, pos);
    c->masks[t][pos - c->base[t]] = 0;
}

// k ≥ 0: prune k entries; else prune round-half-to-even(fraction × kept), *k_out receives the count.
static pk_status prune_select(int64_t T, const int64_t *sizes, const float *const *scores, uint8_t *const *masks,
                              int use_abs, int64_t k, double fraction, int64_t *k_out, int64_t *extra_bytes) {
    if (extra_bytes) *extra_bytes = 0;
    if (T < 0) return PK_ERR_SHAPE;
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
    uint32_t *hist = malloc((size_t)(PK_MAX(nslots, 2) * HBINS) * sizeof(uint32_t));
    if (!c || !hist) { free(c); free(hist); free(first_chunk); return PK_ERR_NOMEM; }
    *c = (topk_ctx){.T = T, .sizes = sizes, .scores = scores, .masks = masks, .use_abs = use_abs, .fraction = fraction,
                    .nchunks = nchunks, .nslots = nslots, .first_chunk = first_chunk, .base = base, .hist = hist};
    int64_t extra = (int64_t)(sizeof(topk_ctx) + (size_t)(PK_MAX(nslots, 2) * HBINS) * 4 + (size_t)(2 * PK_MAX(T, 1)) * 8);
    pk_status st = PK_OK;

    {
        // fast path: the sampled bracket (one validating, marking pass, then one over the masks)
        int r = pk_topk_bracket_select(c, total, &k, &extra);
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
    if (fraction >= 0) k = count_of(fraction, kept);
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
    if (k_out) *k_out = st == PK_OK ? k : 0;
    return st;
}

pk_status pk_prune_smallest_f32(int64_t T, const int64_t *sizes, const float *const *scores, uint8_t *const *masks,
                                int use_abs, int64_t k, int64_t *extra_bytes) {
    if (k < 0) return PK_ERR_ARG;
    return prune_select(T, sizes, scores, masks, use_abs, k, -1.0, NULL, extra_bytes);
}

pk_status pk_prune_fraction_f32(int64_t T, const int64_t *sizes, const float *const *scores, uint8_t *const *masks,
                                int use_abs, double fraction, int64_t *pruned, int64_t *extra_bytes) {
    if (pruned) *pruned = 0;
    if (!(fraction >= 0.0 && fraction <= 1.0)) return PK_ERR_ARG;
    return prune_select(T, sizes, scores, masks, use_abs, 0, fraction, pruned, extra_bytes);
}
