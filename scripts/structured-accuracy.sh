#!/usr/bin/env bash
# Accuracy of structured masks against unstructured ones at the same sparsity (issue 16): trains a
# Fashion-MNIST model, prunes copies of it with each structure, fine-tunes each as the demo does
# (`prunekit finetune` defaults: 2 epochs, Adam, peak lr 3e-3 cosine-decayed to 0, batch 128, masks
# fixed), and prints one markdown row per structure with the pruned model's measured sparsity.
# Per-layer scope everywhere, so every prunable layer loses the same fraction. A weight whose shape a
# structure does not tile (the CNN's 1-channel 5 × 5 conv1: 25 inputs per row) is pruned with a short
# last N:M group or partial edge blocks; the measured sparsity is printed beside each row.
#
# Usage: scripts/structured-accuracy.sh PRUNEKIT MODEL [EPOCHS [THREADS]]   (MODEL: mlp or cnn)
set -euo pipefail
bin=$1 model=$2 epochs=${3:-5} threads=${4:-2}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
run() { "$bin" "$@" --threads "$threads" --json; }
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print(d$1)"; }

run train --model "$model" --epochs "$epochs" --out "$dir/dense.safetensors" > "$dir/train.json"
dense=$(field "['test_accuracy']" < "$dir/train.json")
run finetune --model-file "$dir/dense.safetensors" --out "$dir/control.safetensors" > "$dir/control.json"
control=$(field "['test_accuracy']" < "$dir/control.json")
echo "| $model | structure | sparsity | one-shot | fine-tuned | vs control |"
echo "|---|---|---|---|---|---|"
echo "| $model | dense ($epochs epochs) | 0 | | $dense | |"
echo "| $model | control (+2 epochs) | 0 | | $control | |"
for spec in "unstructured 0.5" "2:4 0.5" "block:4x4 0.5" "unstructured 0.9" "block:4x4 0.9"; do
    set -- $spec
    run prune --model-file "$dir/dense.safetensors" --structure "$1" --scope layer --amount "$2" \
        --out "$dir/p.safetensors" > "$dir/p.json"
    run finetune --model-file "$dir/p.safetensors" --out "$dir/f.safetensors" > "$dir/f.json"
    python3 - "$dir/p.json" "$dir/f.json" "$control" "$model" "$1" <<'EOF'
import json, sys
p, f = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
control = float(sys.argv[3])
print(f"| {sys.argv[4]} | {sys.argv[5]} | {p['sparsity']:.3f} | {p['test_accuracy']:.4f} | {f['test_accuracy']:.4f} | "
      f"{100 * (f['test_accuracy'] - control):+.2f} |")
EOF
done
