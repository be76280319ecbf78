#include "prunekit_kernels.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <time.h>
static double now(void){struct timespec t;if(getenv("CPUT")){clock_gettime(CLOCK_PROCESS_CPUTIME_ID,&t);return (t.tv_sec+1e-9*t.tv_nsec)/pk_get_num_threads();}clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+1e-9*t.tv_nsec;}
static uint64_t rs=88172645463325252ull; static double rnd(void){rs^=rs<<13;rs^=rs>>7;rs^=rs<<17;return (rs>>11)*(1.0/9007199254740992.0);}
static float *frand(int64_t n){float*x=aligned_alloc(64,((n*4+63)/64)*64+64);for(int64_t i=0;i<n;i++)x[i]=(float)(2*rnd()-1);return x;}
static uint8_t *bmask(int64_t R,int64_t C,int br,int bc,double keep){uint8_t*M=malloc(R*C);
  for(int64_t i=0;i<R/br;i++)for(int64_t c=0;c<C/bc;c++){int k=rnd()<keep;for(int a=0;a<br;a++)for(int b=0;b<bc;b++)M[(i*br+a)*C+c*bc+b]=k;}return M;}
static pk_bsr make_bs(int64_t R,int64_t C,int br,int bc,float*W,uint8_t*M){
  pk_bsr A={R,C,br,bc,0}; int comp; pk_status st=pk_bsr_count(R,C,br,bc,M,C,&A.nblocks,&comp); if(st||!comp){printf("count %d %d\n",st,comp);exit(1);}
  A.ptr=malloc((R/br+1)*8);A.tptr=malloc((C/bc+1)*8);A.bcol=malloc(A.nblocks*4+4);A.tblk=malloc(A.nblocks*4+4);A.trow=malloc(A.nblocks*4+4);A.val=malloc(A.nblocks*br*bc*4+4);
  st=pk_bsr_pack_f32(&A,W,C,M,C); if(st){printf("pack %d\n",st);exit(1);} return A;}
static double maxerr(const float*a,const float*b,int64_t n){double e=0;for(int64_t i=0;i<n;i++){double d=fabs(a[i]-b[i])/(1+fabs(b[i]));if(d>e||isnan(d))e=isnan(d)?1e9:d;}return e;}
#define MINQ (getenv("MEDIAN")?reps/2:0)
static int cmp(const void*a,const void*b){double x=*(double*)a,y=*(double*)b;return x<y?-1:x>y;}
int main(int argc,char**argv){
  int mode=argc>1?atoi(argv[1]):0;
  if(mode==0){
    int shp[][2]={{4,4},{8,8},{16,1},{1,16},{2,2},{3,5},{1,1},{64,2}};
    int64_t sz[][3]={{64,64,1},{64,80,33},{128,160,70},{192,64,17}};
    for(int isa=2;isa>=0;isa--){pk_set_isa_limit((pk_isa)isa);
     for(int s=0;s<8;s++)for(int z=0;z<4;z++){int br=shp[s][0],bc=shp[s][1];int64_t R=sz[z][0]/br*br,C=sz[z][1]/bc*bc,B=sz[z][2];
      float*W=frand(R*C);uint8_t*M=bmask(R,C,br,bc,0.3);pk_bsr A=make_bs(R,C,br,bc,W,M);
      float*X=frand(B*C),*bias=frand(R),*Y=frand(B*R),*Yr=frand(B*R),*dY=frand(B*R),*dX=frand(B*C),*dXr=frand(B*C);
      int64_t cnt=A.nblocks*br*bc; float*g=frand(cnt+1),*gr=frand(cnt+1);
      pk_status s1=pk_bsr_forward_f32(&A,0,B,X,C,bias,Y,R); pk_ref_bsr_forward_f32(&A,0,B,X,C,bias,Yr,R);
      pk_status s2=pk_bsr_input_grad_f32(&A,0,B,dY,R,dX,C); pk_ref_bsr_input_grad_f32(&A,0,B,dY,R,dXr,C);
      pk_status s3=pk_bsr_weight_update_f32(&A,0,B,dY,R,X,C,NULL,g); pk_ref_bsr_weight_grad_f32(&A,0,B,dY,R,X,C,gr);
      printf("isa %d %dx%d %ldx%ld B%ld nb %ld st %d%d%d fwd %.2g bwd %.2g wg %.2g\n",isa,br,bc,R,C,B,A.nblocks,s1,s2,s3,maxerr(Y,Yr,B*R),maxerr(dX,dXr,B*C),maxerr(g,gr,cnt));
    }}
    return 0;
  }
  int64_t O=atoi(argv[2]),K=atoi(argv[3]),B=atoi(argv[4]); int br=atoi(argv[5]),bc=atoi(argv[6]); double keep=atof(argv[7]); int reps=argc>8?atoi(argv[8]):15;
  float*W=frand(O*K);uint8_t*M=bmask(O,K,br,bc,keep);pk_bsr A=make_bs(O,K,br,bc,W,M);
  float*X=frand(B*K),*Y=frand(B*O),*bias=frand(O),*dY=frand(B*O),*dX=frand(B*K),*g=frand(A.nblocks*br*bc),*dW=frand(O*K);
  double td[64],ts[64],tb[64],tw[64],tbd[64],twd[64];
  for(int r=0;r<reps+2;r++){
    double t0=now(); pk_linear_forward_f32(B,O,K,X,K,W,K,NULL,0,bias,Y,O); double t1=now();
    pk_bsr_forward_f32(&A,0,B,X,K,bias,Y,O); double t2=now();
    pk_bsr_input_grad_f32(&A,0,B,dY,O,dX,K); double t3=now();
    pk_bsr_weight_update_f32(&A,0,B,dY,O,X,K,NULL,g); double t4=now();
    pk_gemm_masked_nn_f32(B,K,O,1.0f,dY,O,W,K,NULL,0,0.0f,dX,K); double t5=now();
    pk_gemm_masked_tn_f32(O,K,B,1.0f,dY,O,X,K,NULL,0,0.0f,dW,K); double t6=now();
    if(r>=2){td[r-2]=t1-t0;ts[r-2]=t2-t1;tb[r-2]=t3-t2;tw[r-2]=t4-t3;tbd[r-2]=t5-t4;twd[r-2]=t6-t5;}
  }
  qsort(td,reps,8,cmp);qsort(ts,reps,8,cmp);qsort(tb,reps,8,cmp);qsort(tw,reps,8,cmp);qsort(tbd,reps,8,cmp);qsort(twd,reps,8,cmp);
  double fl=2.0*B*O*K, md=td[MINQ], ms=ts[MINQ], dens=(double)A.nblocks*br*bc/(O*K);
  printf("%ldx%ld B%ld %dx%d density %.3f thr %d: dense fwd %.2f ms (%.1f GF/s)  bsr fwd %.2f ms (eff %.1f, actual %.1f GF/s) speedup %.2f\n",O,K,B,br,bc,dens,pk_get_num_threads(),md*1e3,fl/md/1e9,ms*1e3,fl/ms/1e9,fl*dens/ms/1e9,md/ms);
  printf("   input grad: dense %.2f ms, bsr %.2f ms (%.2fx)   weight grad: dense %.2f ms, bsr %.2f ms (%.2fx)\n",tbd[MINQ]*1e3,tb[MINQ]*1e3,tbd[MINQ]/tb[MINQ],twd[MINQ]*1e3,tw[MINQ]*1e3,twd[MINQ]/tw[MINQ]);
}
