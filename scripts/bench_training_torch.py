#!/usr/bin/env python3
"""PyTorch baseline for `prunekit train`: the same models, recipe, data and thread count.

Prints one JSON line per model with samples/s and test accuracy. Used by
scripts/compare-training.sh, which runs PruneKit and this script side by side in one run.
Needs torch and numpy (install them in a virtual environment outside the repository).
"""
import argparse, gzip, json, time
import numpy as np
import torch
import torch.nn as nn

MEAN, STD = 0.2860, 0.3530


def idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    rank = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(rank)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * rank).reshape(dims)


def load(d, split):
    x = idx(f"{d}/{split}-images-idx3-ubyte.gz").astype(np.float32) / 255.0
    y = idx(f"{d}/{split}-labels-idx1-ubyte.gz").astype(np.int64)
    return torch.from_numpy((x - MEAN) / STD).reshape(-1, 1, 28, 28), torch.from_numpy(y)


def model(kind):
    if kind == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(), nn.Linear(100, 10))
    return nn.Sequential(nn.Conv2d(1, 32, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 5), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(1024, 10))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="mlp")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    xtr, ytr = load(a.data, "train")
    xte, yte = load(a.data, "t10k")
    if a.limit:
        xtr, ytr = xtr[:a.limit], ytr[:a.limit]
    net = model(a.model)
    opt = torch.optim.Adam(net.parameters(), lr=a.lr)
    lossf = nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(a.seed)
    t0 = time.perf_counter()
    seen = 0
    for _ in range(a.epochs):
        perm = torch.randperm(len(xtr), generator=g)
        for i in range(0, len(xtr), a.batch):
            idxs = perm[i:i + a.batch]
            xb, yb = xtr[idxs], ytr[idxs]
            opt.zero_grad(set_to_none=True)
            loss = lossf(net(xb), yb)
            loss.backward()
            opt.step()
            seen += len(idxs)
    secs = time.perf_counter() - t0
    with torch.no_grad():
        acc = sum((net(xte[i:i + 1000]).argmax(1) == yte[i:i + 1000]).sum().item() for i in range(0, len(xte), 1000)) / len(xte)
    print(json.dumps({"impl": "pytorch", "torch": torch.__version__, "model": a.model, "epochs": a.epochs, "batch": a.batch,
                      "threads": a.threads, "test_accuracy": acc, "train_seconds": secs,
                      "samples_per_second": seen / secs}))


if __name__ == "__main__":
    main()
