#!/usr/bin/env bash
# Runs the whole test suite under AddressSanitizer, UndefinedBehaviorSanitizer and ThreadSanitizer,
# each in its own build folder (.build-address, .build-undefined, .build-thread).
# - address: swift test --sanitize=address; LeakSanitizer with scripts/lsan.supp (the Swift
#   runtime, Foundation and XCTest keep weak-reference side tables alive at exit on Linux).
# - undefined: Swift on Linux rejects --sanitize=undefined, so UBSan instruments the C kernels
#   (-fsanitize=undefined, no recovery: any finding aborts the run).
# - thread: with the kernels' portable pthread pool (PRUNEKIT_OPENMP=0): libomp is not
#   instrumented, so TSan could not see its synchronisation.
# Usage: scripts/run-sanitizers.sh [address] [undefined] [thread]
set -uo pipefail
cd "$(dirname "$0")/.."
status=0
for s in ${*:-address undefined thread}; do
  echo "== swift test --sanitize=$s"
  if [ "$s" = thread ]; then export PRUNEKIT_OPENMP=0; else unset PRUNEKIT_OPENMP; fi
  case $s in
    undefined) flags=(-Xcc -fsanitize=undefined -Xcc -fno-sanitize-recover=undefined -Xswiftc -Xclang-linker -Xswiftc -fsanitize=undefined) ;;
    *) flags=(--sanitize="$s") ;;
  esac
  export LSAN_OPTIONS="suppressions=$PWD/scripts/lsan.supp"
  if swift build --build-tests "${flags[@]}" --scratch-path ".build-$s" >".build-$s.log" 2>&1 &&
     swift test --skip-build "${flags[@]}" --scratch-path ".build-$s" --disable-swift-testing >>".build-$s.log" 2>&1; then
    grep -E "Executed [0-9]+ tests" ".build-$s.log" | tail -1
  else
    status=1
    grep -E "ERROR: |SUMMARY: |runtime error|WARNING: ThreadSanitizer|error: |failed" ".build-$s.log" | head -20
    grep -E "Executed [0-9]+ tests" ".build-$s.log" | tail -1
  fi
done
exit $status
