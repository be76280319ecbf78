#!/usr/bin/env bash
# Issue 18's measurements on this machine (figures, never pass/fail):
#  1. floats exchanged per step at 0 %, 90 % unstructured and 2:4, against a dense all-reduce of
#     the same model (prunekit finetune --json on 2 ranks);
#  2. training samples/s: 1 rank × 1 thread, 1 rank × 2 threads, 2 ranks × 1 thread (rounds
#     interleaved, medians);
#  3. the sum's bandwidth on loopback (prunekit bench allreduce, 2 ranks).
# Usage: scripts/bench-mpi.sh [MODEL] [ROUNDS]   (MODEL: mlp, cnn or resnet20; default cnn, 3 rounds)
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-cnn}
rounds=${2:-3}
bash scripts/setup.sh mpi >/dev/null
swift build -c release --product prunekit >/dev/null
swift build -c release --traits MPI --scratch-path .build-mpi --product prunekit >/dev/null
P=.build/release/prunekit
M=.build-mpi/release/prunekit
run=(mpirun --oversubscribe)
[ "$(id -u)" -eq 0 ] && run+=(--allow-run-as-root)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
lscpu | grep -E "Model name" || true
# a training set of 2,560 images (the test set as shipped)
python3 - "$tmp/data" <<'PY'
import gzip, os, shutil, sys
src, out, n = "/usr/share/datasets/fashion-mnist/", sys.argv[1], 2560
os.makedirs(out)
for name, hdr, per in [("train-images-idx3-ubyte", 16, 784), ("train-labels-idx1-ubyte", 8, 1)]:
    d = gzip.open(src + name + ".gz").read()
    h = bytearray(d[:hdr]); h[4:8] = n.to_bytes(4, "big")
    open(os.path.join(out, name), "wb").write(bytes(h) + d[hdr:hdr + n * per])
for name in ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]:
    shutil.copy(src + name + ".gz", out)
PY
$P train --model "$model" --epochs 1 --threads 2 --data "$tmp/data" --out "$tmp/dense.pk" >/dev/null 2>&1
$P prune --model-file "$tmp/dense.pk" --method l1 --structure unstructured --scope global --amount 0.9 --out "$tmp/u90.pk" >/dev/null
$P prune --model-file "$tmp/dense.pk" --method l1 --structure 2:4 --out "$tmp/nm24.pk" >/dev/null 2>&1 || echo "(2:4 not applicable to $model)"
echo "## 1. floats exchanged per step, 2 ranks ($model)"
for f in dense u90 nm24; do
  [ -f "$tmp/$f.pk" ] || continue
  "${run[@]}" -np 2 $M finetune --model-file "$tmp/$f.pk" --epochs 1 --threads 1 --data "$tmp/data" --out "$tmp/o.pk" --json 2>/dev/null \
    | python3 -c "import json,sys; d=json.load(sys.stdin); print('$f: %d floats (%d bytes) per step, dense all-reduce %d: ratio %.3f' % (d['exchange_floats_per_step'], 4*d['exchange_floats_per_step'], d['dense_allreduce_floats_per_step'], d['exchange_ratio_to_dense']))"
done
echo "## 2. training samples/s ($model, 2,560 images, batch 128, 1 epoch; $rounds rounds interleaved)"
for r in $(seq "$rounds"); do
  a=$($P train --model "$model" --epochs 1 --threads 1 --data "$tmp/data" --out "$tmp/a.pk" --json 2>/dev/null | python3 -c "import json,sys; print(json.load(sys.stdin)['samples_per_second'])")
  b=$($P train --model "$model" --epochs 1 --threads 2 --data "$tmp/data" --out "$tmp/b.pk" --json 2>/dev/null | python3 -c "import json,sys; print(json.load(sys.stdin)['samples_per_second'])")
  c=$("${run[@]}" -np 2 $M train --model "$model" --epochs 1 --threads 1 --data "$tmp/data" --out "$tmp/c.pk" --json 2>/dev/null | python3 -c "import json,sys; print(json.load(sys.stdin)['samples_per_second'])")
  echo "round $r: 1 rank x 1 thread $a, 1 rank x 2 threads $b, 2 ranks x 1 thread $c"
done
echo "## 3. the sum over 2 ranks on loopback"
"${run[@]}" -np 2 $M bench allreduce
