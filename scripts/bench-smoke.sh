#!/usr/bin/env bash
# Smoke run of the package-benchmark suites (Benchmarks/): builds them in release and runs every
# benchmark once (PRUNEKIT_BENCH_SMOKE=1: one measured iteration, no warm-up). It proves that each
# suite compiles, runs, and pays its one-time work before its samples: a benchmark that would time
# it, or whose setup or call throws, stops the run with status 1. The figures it prints mean
# nothing. The executable is run directly (package-benchmark's runner then runs every benchmark in
# one process), which costs a fraction of `swift package benchmark`'s per-benchmark runs.
# Output: .build/bench-smoke.txt
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .build
log=.build/bench-smoke.txt
if ! swift build -c release --package-path Benchmarks > "$log" 2>&1; then
    grep -E "error" "$log" | head -20
    echo "benchmark smoke run: FAILED to build the suites (see $log)"
    exit 1
fi
bin=$(swift build -c release --package-path Benchmarks --show-bin-path)/KernelBenchmarks
if ! PRUNEKIT_BENCH_SMOKE=1 "$bin" >> "$log" 2>&1; then
    grep -E "benchmark failed|error|Error" "$log" | tail -20
    echo "benchmark smoke run: FAILED (see $log)"
    exit 1
fi
# the runner prints "Debug results for NAME:" once per benchmark that ran
ran=$(grep -c "^Debug results for " "$log" || true)
echo "benchmark smoke run: $ran benchmarks ran, one iteration each (figures not meaningful)"
