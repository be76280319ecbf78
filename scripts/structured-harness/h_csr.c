// CSR forward product against PruneKit's dense GEMM on the same shape (random unstructured mask):
// h_csr O K B keep [reps]; checks the product against the dense one and prints both rates.
#include "prunekit_kernels.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <time.h>
static double now(void){struct timespec t;if(getenv("CPUT")){clock_gettime(CLOCK_PROCESS_CPUTIME_ID,&t);return (t.tv_sec+1e-9*t.tv_nsec)/pk_get_num_threads();}clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+1e-9*t.tv_nsec;}
static uint64_t rs=88172645463325252ull; static double rnd(void){rs^=rs<<13;rs^=rs>>7;rs^=rs<<17;return (rs>>11)*(1.0/9007199254740992.0);}
static float *frand(int64_t n){float*x=aligned_alloc(64,((n*4+63)/64)*64+64);for(int64_t i=0;i<n;i++)x[i]=(float)(2*rnd()-1);return x;}
static int cmp(const void*a,const void*b){double x=*(double*)a,y=*(double*)b;return x<y?-1:x>y;}
int main(int argc,char**argv){
  int64_t O=atoi(argv[1]),K=atoi(argv[2]),B=atoi(argv[3]); double keep=atof(argv[4]); int reps=argc>5?atoi(argv[5]):9;
  float*W=frand(O*K); uint8_t*M=malloc(O*K); int64_t nnz=0; for(int64_t i=0;i<O*K;i++){M[i]=rnd()<keep; nnz+=M[i];}
  pk_csr A={O,K,nnz}; A.ptr=malloc((O+1)*8); A.tptr=malloc((K+1)*8); A.idx=malloc(nnz*4+4); A.val=malloc(nnz*4+4); A.tidx=malloc(nnz*4+4); A.tperm=malloc(nnz*4+4);
  if(pk_csr_build_f32(&A,W,K,M,K)){printf("build\n");return 1;}
  float*X=frand(B*K),*Y=frand(B*O),*Yr=frand(B*O),*bias=frand(O);
  float*Wm=malloc(O*K*4); for(int64_t i=0;i<O*K;i++)Wm[i]=M[i]?W[i]:0;
  pk_linear_forward_f32(B,O,K,X,K,Wm,K,NULL,0,bias,Yr,O); pk_spmm_f32(&A,0,B,X,K,bias,Y,O);
  double e=0; for(int64_t i=0;i<B*O;i++){double d=fabs(Y[i]-Yr[i])/(1+fabs(Yr[i])); if(d>e)e=d;}
  double td[64],ts[64];
  for(int r=0;r<reps+2;r++){double t0=now(); pk_linear_forward_f32(B,O,K,X,K,W,K,NULL,0,bias,Yr,O); double t1=now(); pk_spmm_f32(&A,0,B,X,K,bias,Y,O); double t2=now(); if(r>=2){td[r-2]=t1-t0;ts[r-2]=t2-t1;}}
  qsort(td,reps,8,cmp);qsort(ts,reps,8,cmp); double md=td[reps/2],ms=ts[reps/2],fl=2.0*B*O*K;
  printf("%ldx%ld B%ld keep %.2f: dense %.2f ms (%.1f GF/s) csr %.2f ms (actual %.1f GF/s) speedup %.2f err %.1e\n",O,K,B,keep,md*1e3,fl/md/1e9,ms*1e3,fl*nnz/(O*K)/ms/1e9,md/ms,e);
  return 0;}
