#!/usr/bin/env bash
# Issue 20, point 1: what a `from:` consumer gets (the portable thread pool, the C target at SwiftPM's
# -O2) against the root build (OpenMP, kernels at -O3), with the pool at -O3 in between. Builds the
# three release binaries if missing, then runs R interleaved rounds of LeNet-300-100 training, the
# masked GEMM and one fused Adam step at 1 and 2 threads, and prints medians and the ratios.
# A benchmark, never a test: the figures vary with the machine's load. Usage: R=7 scripts/bench-embedded.sh
set -euo pipefail
cd "$(dirname "$0")/.."
R=${R:-7}
EPOCHS=${EPOCHS:-3}
[ -x .build/release/prunekit ] || swift build -c release --product prunekit
[ -x .build-pool/release/prunekit ] || PRUNEKIT_OPENMP=0 swift build -c release --product prunekit --scratch-path .build-pool
[ -x .build-pool-o2/release/prunekit ] || PRUNEKIT_OPENMP=0 PRUNEKIT_KERNEL_O3=0 swift build -c release --product prunekit --scratch-path .build-pool-o2
last() { python3 -c 'import json,sys; print(json.loads(sys.stdin.read().strip().splitlines()[-1])[sys.argv[1]])' "$1"; }
log=$(mktemp)
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores"
for r in $(seq 1 "$R"); do
  for t in 1 2; do
    for b in .build .build-pool .build-pool-o2; do
      tr=$($b/release/prunekit train --model mlp --epochs "$EPOCHS" --limit 60000 --threads $t --json 2>/dev/null | last samples_per_second)
      gm=$($b/release/prunekit bench gemm --batch 256 --in 1024 --out 1024 --threads $t --json --no-openblas --peak-seconds 0 2>/dev/null | last gflops)
      st=$($b/release/prunekit bench step --threads $t --json --peak-seconds 0 2>/dev/null | last median_seconds)
      echo "$r $t $b $tr $gm $st $(cut -d' ' -f1 /proc/loadavg)" | tee -a "$log"
    done
  done
done
python3 - "$log" <<'PY'
import sys, statistics as st
rows = [l.split() for l in open(sys.argv[1])]
builds = ['.build', '.build-pool', '.build-pool-o2']
print('measure threads | OpenMP -O3 | pool -O3 | pool -O2 (dependency) | dependency/root')
for col, name, better_high in [(3, 'train samples/s', True), (4, 'masked GEMM GFLOP/s', True), (5, 'Adam step s', False)]:
    for t in '12':
        m = {b: st.median(float(r[col]) for r in rows if r[1] == t and r[2] == b) for b in builds}
        ratio = m['.build-pool-o2'] / m['.build'] if better_high else m['.build'] / m['.build-pool-o2']
        print(f"{name} {t} | {m['.build']:.4g} | {m['.build-pool']:.4g} | {m['.build-pool-o2']:.4g} | {ratio:.3f}")
PY
rm -f "$log"
