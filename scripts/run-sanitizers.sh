#!/usr/bin/env bash
# Runs the whole test suite under AddressSanitizer, UndefinedBehaviorSanitizer and ThreadSanitizer
# (swift test --sanitize=...), each in its own build folder. ThreadSanitizer runs with the kernels'
# portable pthread pool (PRUNEKIT_OPENMP=0): libomp is not instrumented, so TSan cannot see its
# synchronisation and would report its barriers as races.
# Usage: scripts/run-sanitizers.sh [address] [undefined] [thread]
set -uo pipefail
cd "$(dirname "$0")/.."
status=0
for s in ${*:-address undefined thread}; do
  echo "== swift test --sanitize=$s"
  if [ "$s" = thread ]; then export PRUNEKIT_OPENMP=0; else unset PRUNEKIT_OPENMP; fi
  if swift build --build-tests --sanitize="$s" --scratch-path ".build-$s" >".build-$s.log" 2>&1 &&
     swift test --skip-build --sanitize="$s" --scratch-path ".build-$s" --disable-swift-testing >>".build-$s.log" 2>&1; then
    grep -E "Executed [0-9]+ tests" ".build-$s.log" | tail -1
  else
    status=1
    grep -E "ERROR: |SUMMARY: |runtime error|WARNING: ThreadSanitizer|error: |failed" ".build-$s.log" | head -20
    grep -E "Executed [0-9]+ tests" ".build-$s.log" | tail -1
  fi
done
exit $status
