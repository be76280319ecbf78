// pk_parallel_for: OpenMP when built with -fopenmp, otherwise a small persistent pthread pool.
// Also the per-thread scratch buffers used for GEMM packing.
#include "internal.h"
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <pthread.h>

#ifdef _OPENMP
// The toolchain's clang ships no omp.h: declare the three runtime calls used.
int omp_get_max_threads(void);
int omp_get_thread_num(void);
int omp_get_num_threads(void);
int omp_in_parallel(void);
#endif

static int requested_threads = 0; // 0: not set yet

static int env_threads(void) {
    const char *names[] = {"PRUNEKIT_NUM_THREADS", "OMP_NUM_THREADS"};
    for (int i = 0; i < 2; i++) {
        const char *v = getenv(names[i]);
        if (v && *v) {
            int t = atoi(v);
            if (t >= 1) return t;
        }
    }
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n >= 1 ? (int)n : 1;
#endif
}

int pk_get_num_threads(void) {
    int t = __atomic_load_n(&requested_threads, __ATOMIC_RELAXED);
    if (t <= 0) {
        t = env_threads();
        if (t > 256) t = 256;
        __atomic_store_n(&requested_threads, t, __ATOMIC_RELAXED);
    }
    return t;
}

void pk_set_num_threads(int n) {
    if (n < 1) n = 1;
    if (n > 256) n = 256;
    __atomic_store_n(&requested_threads, n, __ATOMIC_RELAXED);
}

int pk_openmp_enabled(void) {
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

static void chunk_range(int64_t n, int chunks, int t, int64_t *b, int64_t *e) {
    int64_t q = n / chunks, r = n % chunks;
    *b = t * q + (t < r ? t : r);
    *e = *b + q + (t < r ? 1 : 0);
}

#ifndef _OPENMP
// ---- portable pool: workers wait on a generation counter; the caller runs chunk 0 itself.
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    int nworkers;          // threads started (excluding the caller)
    uint64_t generation;
    int active;            // chunks in this round (including the caller's)
    int pending;           // workers still running this round
    int64_t n;
    pk_range_fn fn;
    void *ctx;
} pk_pool;

static pk_pool pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER,
                       0, 0, 0, 0, 0, NULL, NULL};
static pthread_mutex_t pool_call_mu = PTHREAD_MUTEX_INITIALIZER;
// Set while this thread runs a chunk (a pool worker, or the caller running chunk 0): a parallel
// loop started from inside one runs inline instead of waiting for the pool it is part of.
static __thread int in_pool_region = 0;

typedef struct { int index; } worker_arg;

static void *worker_main(void *p) {
    int index = ((worker_arg *)p)->index;
    free(p);
    in_pool_region = 1;
    uint64_t seen = 0;
    pthread_mutex_lock(&pool.mu);
    for (;;) {
        while (pool.generation == seen) pthread_cond_wait(&pool.go, &pool.mu);
        seen = pool.generation;
        if (index < pool.active) {
            int64_t b, e;
            chunk_range(pool.n, pool.active, index, &b, &e);
            pk_range_fn fn = pool.fn;
            void *ctx = pool.ctx;
            pthread_mutex_unlock(&pool.mu);
            unsigned fp = pk_fp_enter();
            fn(ctx, b, e);
            pk_fp_restore(fp);
            pthread_mutex_lock(&pool.mu);
            if (--pool.pending == 0) pthread_cond_signal(&pool.done);
        }
    }
    return NULL;
}

static int ensure_workers(int want) { // want = chunks - 1 workers
    while (pool.nworkers < want) {
        worker_arg *a = malloc(sizeof *a);
        if (!a) return pool.nworkers;
        a->index = pool.nworkers + 1;
        pthread_t th;
        if (pthread_create(&th, NULL, worker_main, a) != 0) { free(a); return pool.nworkers; }
        pthread_detach(th);
        pool.nworkers++;
    }
    return want;
}
#endif

void pk_parallel_for(int64_t n, int64_t grain, pk_range_fn fn, void *ctx) {
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    int64_t maxchunks = (n + grain - 1) / grain;
    int chunks = pk_get_num_threads();
    if (maxchunks < chunks) chunks = (int)maxchunks;
#ifdef _OPENMP
    if (chunks <= 1 || omp_in_parallel()) {
#else
    if (chunks <= 1 || in_pool_region) {
#endif
        unsigned fp = pk_fp_enter();
        fn(ctx, 0, n);
        pk_fp_restore(fp);
        return;
    }
#ifdef _OPENMP
#pragma omp parallel num_threads(chunks)
    {
        // the team may be smaller than asked (OMP_DYNAMIC, OMP_THREAD_LIMIT): every chunk still runs
        unsigned fp = pk_fp_enter();
        for (int t = omp_get_thread_num(); t < chunks; t += omp_get_num_threads()) {
            int64_t b, e;
            chunk_range(n, chunks, t, &b, &e);
            fn(ctx, b, e);
        }
        pk_fp_restore(fp);
    }
#else
    pthread_mutex_lock(&pool_call_mu);
    pthread_mutex_lock(&pool.mu);
    int workers = ensure_workers(chunks - 1);
    if (workers < chunks - 1) chunks = workers + 1;
    pool.n = n;
    pool.fn = fn;
    pool.ctx = ctx;
    pool.active = chunks;
    pool.pending = chunks - 1;
    pool.generation++;
    pthread_cond_broadcast(&pool.go);
    pthread_mutex_unlock(&pool.mu);
    int64_t b, e;
    chunk_range(n, chunks, 0, &b, &e);
    unsigned fp = pk_fp_enter();
    in_pool_region = 1;
    fn(ctx, b, e);
    in_pool_region = 0;
    pk_fp_restore(fp);
    pthread_mutex_lock(&pool.mu);
    while (pool.pending > 0) pthread_cond_wait(&pool.done, &pool.mu);
    pthread_mutex_unlock(&pool.mu);
    pthread_mutex_unlock(&pool_call_mu);
#endif
}

// ---- scratch
#define PK_SCRATCH_SLOTS 14
static __thread void *scratch_ptr[PK_SCRATCH_SLOTS];
static __thread size_t scratch_size[PK_SCRATCH_SLOTS];

void *pk_scratch(int slot, size_t bytes) {
    if (slot < 0 || slot >= PK_SCRATCH_SLOTS) return NULL;
    if (bytes == 0) bytes = 64;
    if (scratch_size[slot] >= bytes) return scratch_ptr[slot];
    size_t sz = (bytes + 4095) & ~(size_t)4095;
    void *p = NULL;
    if (posix_memalign(&p, 64, sz) != 0) return NULL;
    free(scratch_ptr[slot]);
    scratch_ptr[slot] = p;
    scratch_size[slot] = sz;
    return p;
}
