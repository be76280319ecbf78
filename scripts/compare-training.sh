#!/usr/bin/env bash
# Training throughput, PruneKit vs PyTorch, side by side in one run: same models, recipe (Adam 1e-3,
# batch 128, seed 0), data and thread count; R alternating repeats of one epoch each, medians.
# Usage: scripts/compare-training.sh [repeats=3] [threads=2]   (PYTHON: a python with torch)
set -euo pipefail
cd "$(dirname "$0")/.."
R=${1:-3}; T=${2:-2}
PY=${PYTHON:-/opt/torchenv/bin/python}
swift build -c release --product prunekit >/dev/null
out=$(mktemp -d)
for model in mlp cnn; do
  for r in $(seq "$R"); do
    OMP_NUM_THREADS=$T .build/release/prunekit train --model "$model" --epochs 1 --threads "$T" --out "$out/m.safetensors" --json 2>/dev/null >> "$out/prunekit-$model.jsonl"
    "$PY" scripts/bench_training_torch.py --model "$model" --epochs 1 --threads "$T" >> "$out/torch-$model.jsonl"
  done
done
python3 - "$out" "$T" <<'PY'
import json, statistics, sys, platform, subprocess
out, T = sys.argv[1], sys.argv[2]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
print(f"machine: {cpu}, {T} threads; one epoch of Fashion-MNIST (60,000 images), batch 128, Adam 1e-3")
print(f"{'model':6} {'PruneKit samples/s':>20} {'PyTorch samples/s':>18} {'ratio':>7}")
for m in ("mlp", "cnn"):
    pk = [json.loads(l)["samples_per_second"] for l in open(f"{out}/prunekit-{m}.jsonl")]
    pt = [json.loads(l)["samples_per_second"] for l in open(f"{out}/torch-{m}.jsonl")]
    a, b = statistics.median(pk), statistics.median(pt)
    print(f"{m:6} {a:20,.0f} {b:18,.0f} {a/b:7.2f}   (runs: {[round(x) for x in pk]} vs {[round(x) for x in pt]})")
PY
rm -rf "$out"
