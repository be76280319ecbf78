// A short FMA-throughput probe: the machine's fp32 peak as PruneKit's kernels could reach it, for
// reporting achieved GFLOP/s next to it. Not a compute kernel, so it has no reference in src/ref.
#include "internal.h"
#include <immintrin.h>
#include <time.h>

static double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

__attribute__((target("avx512f")))
static float fma_loop_avx512(int64_t iters) {
    // 16 independent zmm accumulators: 16·16·2 flops per iteration
    __m512 a[16], x = _mm512_set1_ps(0.999f), y = _mm512_set1_ps(1e-3f);
    for (int i = 0; i < 16; i++) a[i] = _mm512_set1_ps((float)i);
    for (int64_t it = 0; it < iters; it++)
        for (int i = 0; i < 16; i++) a[i] = _mm512_fmadd_ps(a[i], x, y);
    __m512 s = a[0];
    for (int i = 1; i < 16; i++) s = _mm512_add_ps(s, a[i]);
    return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma")))
static float fma_loop_avx2(int64_t iters) {
    // 12 independent ymm accumulators: 12·8·2 flops per iteration
    __m256 a[12], x = _mm256_set1_ps(0.999f), y = _mm256_set1_ps(1e-3f);
    for (int i = 0; i < 12; i++) a[i] = _mm256_set1_ps((float)i);
    for (int64_t it = 0; it < iters; it++)
        for (int i = 0; i < 12; i++) a[i] = _mm256_fmadd_ps(a[i], x, y);
    __m256 s = a[0];
    for (int i = 1; i < 12; i++) s = _mm256_add_ps(s, a[i]);
    float o[8];
    _mm256_storeu_ps(o, s);
    return o[0] + o[1] + o[2] + o[3] + o[4] + o[5] + o[6] + o[7];
}

typedef struct { int64_t iters; pk_isa isa; volatile float sink[256]; } peak_ctx;

static void peak_range(void *v, int64_t b, int64_t e) {
    // one probe per chunk (one chunk per thread)
    peak_ctx *c = v;
    for (int64_t t = b; t < e; t++)
        c->sink[t & 255] = c->isa == PK_ISA_AVX512 ? fma_loop_avx512(c->iters) : fma_loop_avx2(c->iters);
}

double pk_measure_peak_gflops(int threads, double seconds) {
    pk_isa isa = pk_active_isa();
    if (isa == PK_ISA_SCALAR || threads < 1) return 0.0;
    double flops_per_iter = isa == PK_ISA_AVX512 ? 16.0 * 16 * 2 : 12.0 * 8 * 2;
    int saved = pk_get_num_threads();
    pk_set_num_threads(threads);
    peak_ctx c = {1000, isa, {0}};
    double best = 0.0;
    // grow the iteration count until one run takes about seconds/5, then keep the best of five
    int timed = 0;
    for (int r = 0; r < 60 && timed < 5; r++) {
        double t0 = now_seconds();
        pk_parallel_for(threads, 1, peak_range, &c);
        double dt = now_seconds() - t0;
        if (dt < seconds / 5 && c.iters < ((int64_t)1 << 40)) { c.iters *= 2; continue; }
        double g = flops_per_iter * (double)c.iters * threads / dt / 1e9;
        if (g > best) best = g;
        timed++;
    }
    pk_set_num_threads(saved);
    return best;
}
