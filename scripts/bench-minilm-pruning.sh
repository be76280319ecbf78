#!/usr/bin/env bash
# One-shot pruning figures of all-MiniLM-L6-v2 (BENCHMARKS.md, "Sentence encoder"): each row prunes
# 50 % with `prunekit prune` and reports the held-out mean cosine to the dense model with
# `prunekit eval`. Needs a release build, scripts/get-minilm.sh and scripts/make-sentences.py.
# Usage: scripts/bench-minilm-pruning.sh [out_dir=/tmp/pk-minilm] [row-filter-regex]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/pk-minilm}
filter=${2:-.}
pk=.build/release/prunekit
model=models/all-MiniLM-L6-v2
cal=data/sentences/calibration.txt
held=data/sentences/heldout.txt
mkdir -p "$out"
row() { # name, prune arguments...
  local name=$1; shift
  [[ $name =~ $filter ]] || return 0
  local t0=$SECONDS
  "$pk" prune --model "$model" --amount 0.5 --calibration "$cal" --out "$out/$name" --json "$@" > "$out/$name.prune.json"
  local cos
  cos=$("$pk" eval --model "$out/$name" --teacher "$model" --input "$held" --json | python3 -c 'import json,sys; print("%.4f" % json.load(sys.stdin)["mean_cosine"])')
  printf '%-28s %s  (%ds)  %s\n' "$name" "$cos" $((SECONDS - t0)) "$*"
}
row wanda-off --structure unstructured --method wanda --compensation off
row wanda-on --structure unstructured --method wanda
row l1-off --structure unstructured --method l1 --compensation off
row l1-on --structure unstructured --method l1
row sparsegpt-off --structure unstructured --method sparsegpt --compensation off
row sparsegpt-on --structure unstructured --method sparsegpt
row w24-off --structure 2:4 --method wanda --compensation off
row w24-on --structure 2:4 --method wanda
row l124-off --structure 2:4 --method l1 --compensation off
row heads-taylor-off --structure heads --method taylor --compensation off
row heads-taylor-on --structure heads --method taylor
row heads-l1-off --structure heads --method l1 --compensation off
row heads-l1-on --structure heads --method l1
row neurons-taylor-global --structure neurons --method taylor --scope global --compensation off
row neurons-taylor-layer --structure neurons --method taylor --scope layer --compensation off
row neurons-taylor-global-on --structure neurons --method taylor --scope global --compensation on
row neurons-l1-layer --structure neurons --method l1 --compensation off
row neurons-l1-layer-on --structure neurons --method l1 --compensation on
