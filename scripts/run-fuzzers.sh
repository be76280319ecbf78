#!/usr/bin/env bash
# Builds the libFuzzer targets (Fuzz/, Swift with -sanitize=fuzzer,address) and runs each for
# RUNS executions (default 10 million), seeded with the committed fixtures. A crash stops the run
# and leaves crash-* files in fuzz-out/; every crash found becomes a test (FuzzRegressionTests).
# Usage: scripts/run-fuzzers.sh [runs] [target ...]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-10000000}; shift || true
TARGETS=${*:-"FuzzSafeTensors FuzzIDX FuzzONNX"}
swift build -c release --package-path Fuzz -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library
mkdir -p fuzz-out
for t in $TARGETS; do
  corpus=fuzz-out/corpus-$t
  mkdir -p "$corpus"
  case $t in
    FuzzSafeTensors) cp Tests/PruneKitTests/Fixtures/prune_functions.safetensors Tests/PruneKitTests/Fixtures/masked_linear_adam.safetensors "$corpus"/ ;;
    FuzzIDX) printf '\x00\x00\x08\x01\x00\x00\x00\x03abc' > "$corpus"/seed1
             printf '\x00\x00\x08\x03\x00\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00\x02abcd' | gzip -c > "$corpus"/seed2.gz ;;
    FuzzONNX) cp Tests/PruneKitTests/Fixtures/onnx/onnx_handmade.onnx Tests/PruneKitTests/Fixtures/onnx/onnx_mlp.onnx \
                 Tests/PruneKitTests/Fixtures/onnx/bad_*.onnx "$corpus"/ ;;
  esac
  echo "== $t: $RUNS runs"
  (cd fuzz-out && ../Fuzz/.build/release/$t -runs="$RUNS" -max_len=4096 -print_final_stats=1 "corpus-$t" 2>&1 | tail -12)
done
