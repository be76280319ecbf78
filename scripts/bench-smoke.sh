#!/usr/bin/env bash
# Smoke run of the package-benchmark suites (Benchmarks/): builds them (release, as the plugin
# does) and runs every benchmark for one measured iteration without warm-up. It proves that each
# suite compiles, runs, and pays its one-time work before its samples (a benchmark that would time
# it stops the run with status 1). The figures it prints mean nothing. Output: .build/bench-smoke.txt
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .build
log=.build/bench-smoke.txt
if ! (cd Benchmarks && PRUNEKIT_BENCH_SMOKE=1 swift package --disable-sandbox benchmark --no-progress --format markdown) \
    > "$log" 2>&1; then
    grep -E "benchmark failed|error|Failed" "$log" | head -20
    echo "benchmark smoke run: FAILED (see $log)"
    exit 1
fi
# every registered benchmark reported a result: its name is a heading of the markdown output
ran=$(grep -cE "^### " "$log" || true)
echo "benchmark smoke run: $ran benchmarks ran, one iteration each (figures not meaningful)"
