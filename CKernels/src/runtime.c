// Status strings, CPU feature detection and the instruction-set switch.
#include "internal.h"
#include <string.h>
#include <immintrin.h>

static const char *const status_strings[] = {
    "ok",
    "a required pointer is NULL",
    "a size is negative or a leading dimension is too small",
    "an output overlaps an input",
    "an argument is out of range",
    "a value is NaN or infinite",
    "out of memory for the kernel workspace",
};
_Static_assert(sizeof(status_strings) / sizeof(status_strings[0]) == PK_STATUS_COUNT,
               "one string per pk_status");

const char *pk_status_string(pk_status s) {
    if ((unsigned)s >= PK_STATUS_COUNT) return "unknown status";
    return status_strings[s];
}

static pk_isa detect_isa(void) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
        return PK_ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return PK_ISA_AVX2;
    return PK_ISA_SCALAR;
}

static int cpu_isa_cache = -1;
static int isa_limit = PK_ISA_AVX512;

pk_isa pk_cpu_isa(void) {
    int v = __atomic_load_n(&cpu_isa_cache, __ATOMIC_RELAXED);
    if (v < 0) {
        v = (int)detect_isa();
        __atomic_store_n(&cpu_isa_cache, v, __ATOMIC_RELAXED);
    }
    return (pk_isa)v;
}

pk_isa pk_active_isa(void) {
    int cpu = (int)pk_cpu_isa();
    int lim = __atomic_load_n(&isa_limit, __ATOMIC_RELAXED);
    return (pk_isa)(cpu < lim ? cpu : lim);
}

void pk_set_isa_limit(pk_isa limit) {
    int v = (int)limit;
    if (v < 0) v = 0;
    if (v > PK_ISA_AVX512) v = PK_ISA_AVX512;
    __atomic_store_n(&isa_limit, v, __ATOMIC_RELAXED);
}

const char *pk_isa_name(pk_isa isa) {
    switch (isa) {
    case PK_ISA_AVX512: return "avx512";
    case PK_ISA_AVX2: return "avx2";
    default: return "scalar";
    }
}

const char *pk_cpu_features(void) {
    static char buf[256];
    static int done = 0;
    if (__atomic_load_n(&done, __ATOMIC_ACQUIRE)) return buf;
    __builtin_cpu_init();
    char tmp[256] = "";
#define PK_FEAT(name) if (__builtin_cpu_supports(name)) { strcat(tmp, name); strcat(tmp, " "); }
    PK_FEAT("sse4.2") PK_FEAT("avx") PK_FEAT("avx2") PK_FEAT("fma") PK_FEAT("avx512f")
    PK_FEAT("avx512bw") PK_FEAT("avx512dq") PK_FEAT("avx512vl") PK_FEAT("avx512vnni")
    PK_FEAT("avx512bf16") PK_FEAT("avx512fp16")
#undef PK_FEAT
    size_t len = strlen(tmp);
    if (len > 0) tmp[len - 1] = '\0';
    memcpy(buf, tmp, sizeof buf);
    __atomic_store_n(&done, 1, __ATOMIC_RELEASE);
    return buf;
}

unsigned pk_fp_enter(void) {
    unsigned saved = _mm_getcsr();
    _mm_setcsr(saved | 0x8040u); // FTZ (bit 15) | DAZ (bit 6)
    return saved;
}

void pk_fp_restore(unsigned saved) { _mm_setcsr(saved); }
