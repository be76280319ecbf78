#!/usr/bin/env python3
"""The main job's pruning table for PyTorch on the same recipe, next to `prunekit demo`, one run.

PyTorch: LeNet-300-100, Adam 1e-3, batch 128, 5 epochs; the dense control fine-tuned 2 more epochs;
prune.global_unstructured (L1) one-shot at each sparsity, then 2 epochs of fine-tuning — with
PyTorch's plain Adam (1e-3, the usual recipe) and with PruneKit's default recipe (Adam 3e-3,
cosine decay) so the two libraries are compared on the same fine-tuning too.
Usage: python scripts/compare_pruning_torch.py [--threads 2] [--skip-prunekit]
"""
import argparse, copy, gzip, json, math, os, subprocess, tempfile
import numpy as np
import torch
import torch.nn as nn
import torch.nn.utils.prune as prune

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
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
    return torch.from_numpy((x - MEAN) / STD).reshape(-1, 784), torch.from_numpy(y)


def mlp():
    return nn.Sequential(nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(), nn.Linear(100, 10))


def train(net, x, y, epochs, lr, cosine, seed):
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    steps = epochs * math.ceil(len(x) / 128)
    step = 0
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), 128):
            if cosine:
                for pg in opt.param_groups:
                    pg["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
            b = perm[i:i + 128]
            opt.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(net(x[b]), y[b]).backward()
            opt.step()
            step += 1


def acc(net, x, y):
    with torch.no_grad():
        return (net(x).argmax(1) == y).float().mean().item()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--skip-prunekit", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    xtr, ytr = load(a.data, "train")
    xte, yte = load(a.data, "t10k")
    dense = mlp()
    train(dense, xtr, ytr, 5, 1e-3, False, 0)
    res = {"dense": acc(dense, xte, yte)}
    for recipe, (lr, cos) in {"torch_adam": (1e-3, False), "prunekit_recipe": (3e-3, True)}.items():
        control = copy.deepcopy(dense)
        train(control, xtr, ytr, 2, lr, cos, 0)
        res[recipe] = {"control": acc(control, xte, yte)}
        for s in (0.5, 0.8, 0.9, 0.95, 0.98):
            m = copy.deepcopy(dense)
            prune.global_unstructured([(m[0], "weight"), (m[2], "weight"), (m[4], "weight")],
                                      pruning_method=prune.L1Unstructured, amount=s)
            before = acc(m, xte, yte)
            train(m, xtr, ytr, 2, lr, cos, 0)
            res[recipe][s] = (before, acc(m, xte, yte))
    pk = None
    if not a.skip_prunekit:
        out = tempfile.mkdtemp()
        subprocess.run([os.path.join(ROOT, ".build", "release", "prunekit"), "demo", "--out", out, "--threads", str(a.threads)],
                       check=True, capture_output=True)
        pk = json.load(open(os.path.join(out, "summary.json")))
    print(f"torch {torch.__version__}, {a.threads} threads; dense (5 epochs): PyTorch {res['dense']:.4f}"
          + (f", PruneKit {pk['dense']['test_accuracy']:.4f}" if pk else ""))
    print("| sparsity | PyTorch (Adam 1e-3) | Δ vs its control | PyTorch (PruneKit recipe) | Δ | PruneKit | Δ |")
    print("|---|---|---|---|---|---|---|")
    ta, tp = res["torch_adam"], res["prunekit_recipe"]
    rows = {round(r["requested"], 2): r for r in pk["global_l1"]} if pk else {}
    print(f"| control (0%) | {ta['control']:.4f} | | {tp['control']:.4f} | | "
          + (f"{pk['dense_control']['test_accuracy']:.4f} | |" if pk else "| |"))
    for s in (0.5, 0.8, 0.9, 0.95, 0.98):
        line = (f"| {s:.0%} | {ta[s][1]:.4f} | {100*(ta[s][1]-ta['control']):+.2f} | {tp[s][1]:.4f} | "
                f"{100*(tp[s][1]-tp['control']):+.2f} |")
        if pk:
            r = rows[s]
            line += f" {r['accuracy_after_finetune']:.4f} | {100*r['delta_vs_control']:+.2f} |"
        print(line)


if __name__ == "__main__":
    main()
