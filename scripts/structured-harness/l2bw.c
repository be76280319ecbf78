// The ceiling of the CSR product's access pattern: random 128-byte rows (32 samples) of a panel of
// KIB KiB, each read as four 32-byte loads into four FMAs (as the AVX2 CSR kernel does per kept
// entry), two rows in flight, every thread on its own panel; no weights, no row ends. Prints the
// bytes per second the rows arrive at and the FMA rate that allows (one 32-byte load per 8-lane FMA).
// Row indices advance by 1-19 (10 on average), like the sorted columns of a row at 90 % sparsity.
// Usage: l2bw KIB [reps], with OMP_NUM_THREADS (built by run.sh).
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
int omp_get_thread_num(void);
int omp_get_max_threads(void);
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+1e-9*t.tv_nsec;}
__attribute__((target("avx2,fma"))) static float run(const float *P, const int *idx, long n, int reps) {
  __m256 a0=_mm256_setzero_ps(),a1=a0,a2=a0,a3=a0,e0=a0,e1=a0,e2=a0,e3=a0; __m256 w=_mm256_set1_ps(1.0001f);
  for (int r=0;r<reps;r++) for (long j=0;j+2<=n;j+=2){ const float*x=P+idx[j]*32,*y=P+idx[j+1]*32;
    a0=_mm256_fmadd_ps(w,_mm256_load_ps(x),a0);a1=_mm256_fmadd_ps(w,_mm256_load_ps(x+8),a1);a2=_mm256_fmadd_ps(w,_mm256_load_ps(x+16),a2);a3=_mm256_fmadd_ps(w,_mm256_load_ps(x+24),a3);
    e0=_mm256_fmadd_ps(w,_mm256_load_ps(y),e0);e1=_mm256_fmadd_ps(w,_mm256_load_ps(y+8),e1);e2=_mm256_fmadd_ps(w,_mm256_load_ps(y+16),e2);e3=_mm256_fmadd_ps(w,_mm256_load_ps(y+24),e3);}
  __m256 s=_mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0,a1),_mm256_add_ps(a2,a3)),_mm256_add_ps(_mm256_add_ps(e0,e1),_mm256_add_ps(e2,e3)));
  float o[8]; _mm256_storeu_ps(o,s); return o[0]; }
int main(int argc,char**argv){
  int kib=atoi(argv[1]); long rows=kib*1024L/128; long n=1<<20; int reps=argc>2?atoi(argv[2]):20;
  double best=1e9; float sink=0;
  #pragma omp parallel reduction(+:sink)
  { float *P=aligned_alloc(64,rows*128); for(long i=0;i<rows*32;i++)P[i]=1e-3f;
    int *idx=malloc(n*4); unsigned s=12345+omp_get_thread_num(); long c=0; for(long j=0;j<n;j++){ s=s*1103515245u+12345u; c=(c+1+(s>>16)%19)%rows; idx[j]=(int)c; }
    for(int t=0;t<3;t++){
      #pragma omp barrier
      double t0=now(); sink+=run(P,idx,n,reps);
      #pragma omp barrier
      double dt=now()-t0;
      #pragma omp master
      { if(dt<best)best=dt; }
    } }
  int th=omp_get_max_threads(); double bytes=(double)th*n*128*reps;
  printf("panel %d KiB, %d threads: %.1f GB/s, %.1f GFLOP/s of 8-lane FMAs (sink %g)\n",kib,th,bytes/best/1e9,bytes/32*16/best/1e9,sink);
  return 0; }
