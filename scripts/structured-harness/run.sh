#!/usr/bin/env bash
# Standalone C harness of the structured sparse kernels (no SwiftPM): builds CKernels with clang -O3
# -fopenmp as the manifest does, then
#   h_nm 0 | h_bs 0                       correctness sweep against the references (every ISA path)
#   h_nm 1 O K B n m [reps]               N:M forward / input gradient / weight gradient vs dense
#   h_bs 1 O K B br bc keep [reps]        block-sparse, the same
#   h_csr O K B keep [reps]               CSR (unstructured) forward vs dense (medians)
#   l2bw KIB [reps]                        the CSR access pattern's ceiling on a KIB-KiB panel
# Times are the minimum over repeats (MEDIAN=1: the median); CPUT=1 times process CPU time divided
# by the thread count, which a shared machine's preemption does not inflate.
# Usage: scripts/structured-harness/run.sh OUTDIR, then OUTDIR/h_nm ... with OMP_NUM_THREADS=2.
set -eu
here=$(cd "$(dirname "$0")" && pwd); root=$here/../..; out=${1:?output folder}
mkdir -p "$out/obj"
for f in "$root"/CKernels/src/*.c "$root"/CKernels/src/ref/*.c; do
  clang -O3 -fopenmp -D_GNU_SOURCE -I"$root/CKernels/include" -c "$f" -o "$out/obj/$(basename "$f" .c).o" &
done
wait
ar rcs "$out/libpk.a" "$out"/obj/*.o
for h in h_nm h_bs h_csr l2bw; do
  # OpenMP pragmas compiled in, libomp linked by path (no libomp.so symlink for -lomp on Debian)
  clang -O2 -fopenmp -I"$root/CKernels/include" -c "$here/$h.c" -o "$out/obj/$h.main.o"
  clang "$out/obj/$h.main.o" "$out/libpk.a" /usr/lib/x86_64-linux-gnu/libomp.so.5 -lm -lpthread -o "$out/$h"
done
