#!/usr/bin/env bash
# Builds the DocC documentation of the PruneKit library and checks it: the build fails on any DocC
# warning (a broken symbol or article link among them), then scripts/check-doc-coverage.swift
# fails on a public symbol without a doc comment. The archive lands in
# .build/plugins/Swift-DocC/outputs/PruneKit.doccarchive. With --site DIR it also writes a static
# site to DIR (open it with `python3 -m http.server -d DIR` and http://localhost:8000/documentation/prunekit/).
set -euo pipefail
cd "$(dirname "$0")/.."
site=""
if [ "${1:-}" = "--site" ]; then site="${2:?--site needs a folder}"; fi
log=.build/docc-output.txt
mkdir -p .build
touch .build/docc-started
swift package --disable-sandbox generate-documentation --target PruneKit --warnings-as-errors 2>&1 | tee "$log" | grep -vE "^\[[0-9]+/[0-9]+\]" || true
grep -q "Generated documentation archive" "$log" || { echo "documentation build failed (warnings are errors)"; exit 1; }
graph=$(find .build -path "*extracted-symbols/*/PruneKit/PruneKit.symbols.json" -newer .build/docc-started | head -1)
[ -n "$graph" ] || { echo "no symbol graph found"; exit 1; }
swift scripts/check-doc-coverage.swift "$graph"
if [ -n "$site" ]; then
  swift package --disable-sandbox --allow-writing-to-directory "$site" generate-documentation --target PruneKit \
    --transform-for-static-hosting --hosting-base-path / --output-path "$site" 2>&1 | tail -2
fi
