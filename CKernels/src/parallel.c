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
// ---- portable pool (builds without OpenMP, e.g. a versioned dependency): workers wait on a
// generation counter; the caller runs chunk 0 itself. Waking a sleeping thread costs a system call
// and a scheduler round trip, several microseconds, which a training step pays at each of its many
// short parallel regions; so both sides first poll atomics for a short while (as OpenMP runtimes
// do) and only then sleep on the condition variables.
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    int nworkers;          // threads started (excluding the caller)
    int sleepers;          // workers blocked on `go` (under mu)
    uint64_t generation;   // bumped (release, under mu) for each round
    int active;            // chunks in this round (including the caller's)
    int pending;           // workers still running this round (atomic)
    int done_waiting;      // the caller blocks on `done` (under mu)
    int64_t n;
    pk_range_fn fn;
    void *ctx;
} pk_pool;

static pk_pool pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER,
                       0, 0, 0, 0, 0, 0, 0, NULL, NULL};
static pthread_mutex_t pool_call_mu = PTHREAD_MUTEX_INITIALIZER;
static __thread int in_pool_region = 0;

// polling rounds (a pause each, tens of microseconds in all) before a thread sleeps
#define PK_POOL_SPINS (1 << 16)

static inline void pk_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

typedef struct { int index; } worker_arg;

static void *worker_main(void *p) {
    int index = ((worker_arg *)p)->index;
    free(p);
    in_pool_region = 1;
    uint64_t seen = 0;
    for (;;) {
        uint64_t g = __atomic_load_n(&pool.generation, __ATOMIC_ACQUIRE);
        for (int spin = 0; g == seen && spin < PK_POOL_SPINS; spin++) {
            pk_relax();
            g = __atomic_load_n(&pool.generation, __ATOMIC_ACQUIRE);
        }
        if (g == seen) {
            pthread_mutex_lock(&pool.mu);
            pool.sleepers++;
            while (__atomic_load_n(&pool.generation, __ATOMIC_ACQUIRE) == seen) pthread_cond_wait(&pool.go, &pool.mu);
            pool.sleepers--;
            g = __atomic_load_n(&pool.generation, __ATOMIC_ACQUIRE);
            pthread_mutex_unlock(&pool.mu);
        }
        seen = g;
        // the round's fields were written before its generation was released. A participant's round
        // cannot be replaced before it decrements `pending`; a worker left out of the round may be
        // overtaken by the next one, so it reads the fields and then checks (seqlock style) that the
        // generation has not moved on, and otherwise takes the newer round from the top.
        int active = __atomic_load_n(&pool.active, __ATOMIC_RELAXED);
        int64_t n = __atomic_load_n(&pool.n, __ATOMIC_RELAXED);
        pk_range_fn fn = __atomic_load_n(&pool.fn, __ATOMIC_RELAXED);
        void *ctx = __atomic_load_n(&pool.ctx, __ATOMIC_RELAXED);
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (__atomic_load_n(&pool.generation, __ATOMIC_RELAXED) != g) continue;
        if (index < active) {
            int64_t b, e;
            chunk_range(n, active, index, &b, &e);
            unsigned fp = pk_fp_enter();
            fn(ctx, b, e);
            pk_fp_restore(fp);
            if (__atomic_sub_fetch(&pool.pending, 1, __ATOMIC_ACQ_REL) == 0) {
                pthread_mutex_lock(&pool.mu);
                if (pool.done_waiting) pthread_cond_signal(&pool.done);
                pthread_mutex_unlock(&pool.mu);
            }
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
    __atomic_store_n(&pool.n, n, __ATOMIC_RELAXED);
    __atomic_store_n(&pool.fn, fn, __ATOMIC_RELAXED);
    __atomic_store_n(&pool.ctx, ctx, __ATOMIC_RELAXED);
    __atomic_store_n(&pool.active, chunks, __ATOMIC_RELAXED);
    __atomic_store_n(&pool.pending, chunks - 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&pool.generation, 1, __ATOMIC_RELEASE);
    if (pool.sleepers > 0) pthread_cond_broadcast(&pool.go);
    pthread_mutex_unlock(&pool.mu);
    int64_t b, e;
    chunk_range(n, chunks, 0, &b, &e);
    unsigned fp = pk_fp_enter();
    in_pool_region = 1;
    fn(ctx, b, e);
    in_pool_region = 0;
    pk_fp_restore(fp);
    for (int spin = 0; __atomic_load_n(&pool.pending, __ATOMIC_ACQUIRE) > 0 && spin < PK_POOL_SPINS; spin++) pk_relax();
    if (__atomic_load_n(&pool.pending, __ATOMIC_ACQUIRE) > 0) {
        pthread_mutex_lock(&pool.mu);
        pool.done_waiting = 1;
        while (__atomic_load_n(&pool.pending, __ATOMIC_ACQUIRE) > 0) pthread_cond_wait(&pool.done, &pool.mu);
        pool.done_waiting = 0;
        pthread_mutex_unlock(&pool.mu);
    }
    pthread_mutex_unlock(&pool_call_mu);
#endif
}

// ---- scratch
#define PK_SCRATCH_SLOTS 19
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
