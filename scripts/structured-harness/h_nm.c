#include "prunekit_kernels.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <time.h>
static double now(void){struct timespec t;if(getenv("CPUT")){clock_gettime(CLOCK_PROCESS_CPUTIME_ID,&t);return (t.tv_sec+1e-9*t.tv_nsec)/pk_get_num_threads();}clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+1e-9*t.tv_nsec;}
static uint64_t rs=88172645463325252ull; static double rnd(void){rs^=rs<<13;rs^=rs>>7;rs^=rs<<17;return (rs>>11)*(1.0/9007199254740992.0);}
static float *frand(int64_t n){float*x=aligned_alloc(64,((n*4+63)/64)*64+64);for(int64_t i=0;i<n;i++)x[i]=(float)(2*rnd()-1);return x;}
typedef struct { pk_nm A; } nmbox;
static pk_nm make_nm(int64_t R,int64_t C,int n,int m,float *W,uint8_t *M){
  pk_nm A={R,C,n,m,0}; int64_t nnz=0; for(int64_t i=0;i<R*C;i++) nnz+=M[i]!=0; A.nnz=nnz;
  int64_t S=C/m*n; A.val=malloc(R*S*4+64); A.idx=malloc(R*S+64); int64_t nq=(R+PK_NM_TBLOCK-1)/PK_NM_TBLOCK;
  A.tptr=malloc((nq*C+1)*8); A.tent=malloc(nnz*2+2);
  pk_status st=pk_nm_pack_f32(&A,W,C,M,C); if(st){printf("pack %d\n",st);exit(1);} return A;}
static uint8_t *nm_mask(int64_t R,int64_t C,int n,int m,double extra_drop){uint8_t*M=malloc(R*C);
  for(int64_t r=0;r<R;r++)for(int64_t g=0;g<C/m;g++){int perm[128];for(int j=0;j<m;j++)perm[j]=j;
   for(int j=m-1;j>0;j--){int k=(int)(rnd()*(j+1));int t=perm[j];perm[j]=perm[k];perm[k]=t;}
   for(int j=0;j<m;j++)M[r*C+g*m+j]=0; for(int j=0;j<n;j++) if(rnd()>=extra_drop) M[r*C+g*m+perm[j]]=1;}
  return M;}
static double maxerr(const float*a,const float*b,int64_t n){double e=0;for(int64_t i=0;i<n;i++){double d=fabs(a[i]-b[i])/(1+fabs(b[i]));if(d>e||isnan(d))e=isnan(d)?1e9:d;}return e;}
#define MINQ (getenv("MEDIAN")?reps/2:0)
static int cmp(const void*a,const void*b){double x=*(double*)a,y=*(double*)b;return x<y?-1:x>y;}
int main(int argc,char**argv){
  int mode = argc>1? atoi(argv[1]) : 0;
  if(mode==0){ // correctness sweep
    int pats[][2]={{2,4},{1,4},{2,8},{4,8},{3,5}};
    int64_t shapes[][3]={{1,4,1},{7,40,3},{25,48,33},{130,80,70},{300,256,17}};
    for(int isa=2;isa>=0;isa--){ pk_set_isa_limit((pk_isa)isa);
    for(int p=0;p<5;p++)for(int s=0;s<5;s++){int n=pats[p][0],m=pats[p][1];int64_t R=shapes[s][0],C=shapes[s][1]/m*m,B=shapes[s][2]; if(C==0)C=m;
      float*W=frand(R*C);uint8_t*M=nm_mask(R,C,n,m,0.2);pk_nm A=make_nm(R,C,n,m,W,M);
      float*X=frand(B*C),*bias=frand(R),*Y=frand(B*R),*Yr=frand(B*R),*dY=frand(B*R),*dX=frand(B*C),*dXr=frand(B*C);
      int64_t S=C/m*n; float*g=frand(R*S),*gr=frand(R*S);
      pk_status s1=pk_nm_forward_f32(&A,0,B,X,C,bias,Y,R); pk_ref_nm_forward_f32(&A,0,B,X,C,bias,Yr,R);
      pk_status s2=pk_nm_input_grad_f32(&A,0,B,dY,R,dX,C); pk_ref_nm_input_grad_f32(&A,0,B,dY,R,dXr,C);
      pk_status s3=pk_nm_weight_update_f32(&A,0,B,dY,R,X,C,NULL,g); pk_ref_nm_weight_grad_f32(&A,0,B,dY,R,X,C,gr);
      printf("isa %d %d:%d %ldx%ld B%ld st %d%d%d fwd %.2g bwd %.2g wg %.2g\n",isa,n,m,R,C,B,s1,s2,s3,maxerr(Y,Yr,B*R),maxerr(dX,dXr,B*C),maxerr(g,gr,R*S));
    }}
    return 0;
  }
  // timing: forward 2:4 vs dense
  int64_t O=atoi(argv[2]),K=atoi(argv[3]),B=atoi(argv[4]); int n=atoi(argv[5]),m=atoi(argv[6]); int reps=argc>7?atoi(argv[7]):9;
  float*W=frand(O*K);uint8_t*M=nm_mask(O,K,n,m,0);pk_nm A=make_nm(O,K,n,m,W,M);
  float*X=frand(B*K),*Y=frand(B*O),*bias=frand(O),*dY=frand(B*O),*dX=frand(B*K); int64_t S=K/m*n; float*g=frand(O*S);
  double td[64],ts[64],tb[64],tw[64],tbd[64],twd[64]; float*dW=frand(O*K);
  for(int r=0;r<reps+2;r++){
    double t0=now(); pk_linear_forward_f32(B,O,K,X,K,W,K,NULL,0,bias,Y,O); double t1=now();
    pk_nm_forward_f32(&A,0,B,X,K,bias,Y,O); double t2=now();
    pk_nm_input_grad_f32(&A,0,B,dY,O,dX,K); double t3=now();
    pk_nm_weight_update_f32(&A,0,B,dY,O,X,K,NULL,g); double t4=now();
    pk_gemm_masked_nn_f32(B,K,O,1.0f,dY,O,W,K,NULL,0,0.0f,dX,K); double t5=now();
    pk_gemm_masked_tn_f32(O,K,B,1.0f,dY,O,X,K,NULL,0,0.0f,dW,K); double t6=now();
    if(r>=2){td[r-2]=t1-t0;ts[r-2]=t2-t1;tb[r-2]=t3-t2;tw[r-2]=t4-t3;tbd[r-2]=t5-t4;twd[r-2]=t6-t5;}
  }

  qsort(td,reps,8,cmp);qsort(ts,reps,8,cmp);qsort(tb,reps,8,cmp);qsort(tw,reps,8,cmp);qsort(tbd,reps,8,cmp);qsort(twd,reps,8,cmp);
  double fl=2.0*B*O*K, md=td[MINQ], ms=ts[MINQ];
  printf("%ldx%ld B%ld %d:%d threads %d: dense fwd %.2f ms (%.1f GF/s)  nm fwd %.2f ms (eff %.1f, actual %.1f GF/s) speedup %.2f\n",O,K,B,n,m,pk_get_num_threads(),md*1e3,fl/md/1e9,ms*1e3,fl/ms/1e9,fl*n/m/ms/1e9,md/ms);
  printf("   input grad: dense %.2f ms, nm %.2f ms (%.2fx)   weight grad: dense %.2f ms, nm %.2f ms (%.2fx)\n",tbd[MINQ]*1e3,tb[MINQ]*1e3,tbd[MINQ]/tb[MINQ],twd[MINQ]*1e3,tw[MINQ]*1e3,twd[MINQ]/tw[MINQ]);
  if(argc>8) printf("peak %.1f GF/s\n", pk_measure_peak_gflops(pk_get_num_threads(),0.5));
  return 0;
}
