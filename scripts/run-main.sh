#!/usr/bin/env bash
# The README's main job: installs what is missing, builds PruneKit (release), then `prunekit demo`:
# trains LeNet-300-100 on Fashion-MNIST, prunes it globally at 50/80/90/95/98% with fine-tuning,
# removes 50% of the hidden neurons physically, compares 2:4 and 4x4-block masks with unstructured
# ones at the same sparsity, and writes report/ (summary.json, sparsity.md,
# accuracy-vs-sparsity.svg). A few minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
swift build -c release --product prunekit
.build/release/prunekit info
.build/release/prunekit demo --out report
