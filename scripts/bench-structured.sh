#!/usr/bin/env bash
# Issue 16's figures in one run: the FMA peak, packed 2:4 at 4096² (batch 256) and at the
# sentence-encoder shapes (512 tokens, 384 → 1536 and 1536 → 384), blocks of 4×4 / 8×8 / 16×1 / 1×16
# at 90 %, and CSR at 90 %, each next to PruneKit's dense GEMM on the same shape (2 threads,
# medians). Usage: scripts/bench-structured.sh [prunekit binary] [repeats]
set -eu
bin=${1:-.build/release/prunekit}
rep=${2:-9}
echo "# $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
run() { "$bin" bench spmm --threads 2 --repeat "$rep" --json "$@"; }
run --structure 2:4 --batch 256 --in 4096 --out 4096 --peak-seconds 1
run --structure 2:4 --batch 512 --in 384 --out 1536 --peak-seconds 0
run --structure 2:4 --batch 512 --in 1536 --out 384 --peak-seconds 0
for b in 4x4 8x8 16x1 1x16; do run --structure block:$b --sparsity 0.9 --batch 256 --in 4096 --out 4096 --peak-seconds 0; done
run --structure unstructured --sparsity 0.9 --batch 256 --in 4096 --out 4096 --peak-seconds 0
