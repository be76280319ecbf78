#!/usr/bin/env bash
# A/B of two prunekit binaries on the sentence encoder: one epoch of distillation from the same
# pruned folder (then the held-out mean cosine), and dense encoding alternated three times.
# Usage: scripts/ab-minilm.sh OLD_BINARY NEW_BINARY PRUNED_FOLDER [out_dir=/tmp/pk-ab]
# (PRUNED_FOLDER e.g. from scripts/bench-minilm-pruning.sh: /tmp/pk-minilm/w24-off)
set -euo pipefail
cd "$(dirname "$0")/.."
old=$1 new=$2 pruned=$3 out=${4:-/tmp/pk-ab}
m=models/all-MiniLM-L6-v2
mkdir -p "$out"
for tag in old new; do
  bin=$([ "$tag" = old ] && echo "$old" || echo "$new")
  "$bin" finetune --model "$pruned" --teacher $m --input data/sentences/train.txt --epochs 1 --lr 5e-4 --batch 32 \
     --out "$out/ft-$tag" --json > "$out/ft-$tag.json"
  cos=$("$bin" eval --model "$out/ft-$tag" --teacher $m --input data/sentences/heldout.txt --json \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["mean_cosine"])')
  echo "$tag distil: $(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["epoch_losses"], "%.1f sent/s" % d["sentences_per_second"])' "$out/ft-$tag.json") heldout cosine $cos"
done
for _ in 1 2 3; do
  for tag in old new; do
    bin=$([ "$tag" = old ] && echo "$old" || echo "$new")
    echo "$tag encode: $("$bin" eval --model $m --input data/sentences/heldout.txt --batch 32 --json \
         | python3 -c 'import json,sys; print("%.1f" % json.load(sys.stdin)["sentences_per_second"])') sentences/s"
  done
done
