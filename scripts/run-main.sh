#!/usr/bin/env bash
# The README's main job: installs what is missing, builds PruneKit (release), trains LeNet-300-100 on
# Fashion-MNIST (Adam 1e-3, batch 128, 5 epochs, seed 0), evaluates it and writes report/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
swift build -c release --product prunekit
mkdir -p report
.build/release/prunekit info
.build/release/prunekit train --model mlp --epochs 5 --batch 128 --lr 0.001 --optimizer adam --seed 0 \
  --out report/mlp.safetensors
.build/release/prunekit eval --model-file report/mlp.safetensors --json | tee report/eval.json
