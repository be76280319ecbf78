#!/usr/bin/env python3
"""ResNet-20 on Fashion-MNIST: PruneKit against PyTorch + Torch-Pruning on the same recipe.

Recipe (both sides, 2 threads, inputs (x/255 − 0.2860)/0.3530):
  1. train: Adam 1e-3, batch 128, --epochs epochs (dense);
  2. dense control: the trained model fine-tuned --ft-epochs more epochs (Adam, peak lr 3e-3
     cosine-decayed to 0 over the run, batch 128: PruneKit's finetune defaults);
  3. pruned: the trained model with 50 % of the channels of every group removed by L1 magnitude
     (Torch-Pruning 1.6's MagnitudePruner p=1 / prunekit prune --structure channels --scope layer),
     classifier excluded, then fine-tuned as the control.
  With --kd the pruned model's fine-tuning distils from the dense model of step 1 (loss
  0.5·CE + 0.5·T²·KL at T = 2, `prunekit finetune --teacher`'s defaults) on both sides; with
  --kd control it distils from the dense control of step 2 instead (the stronger teacher).
  With --shared-dense PyTorch does not train a dense model of its own: it loads PruneKit's (step 1),
  reports its accuracy (to compare with PruneKit's) and the largest difference between
  Torch-Pruning's pruned weights and PruneKit's, then runs steps 2 and 3 from it. Both sides then start from the same model and differ
  only in their pruning and fine-tuning (the dense training's seed-to-seed spread, the largest part
  of the noise between two independent runs, is shared).
Reports test accuracy after each step, training samples/s, and the parameters and MACs.

PyTorch's ResNet-20 here is He et al.'s CIFAR network as PruneKit builds it: 3×3 stem of 16
channels (no bias) + BatchNorm + ReLU, three stages of three basic blocks (16, 32, 64 channels,
stride 2 at the start of stages 2 and 3) with 1×1 projection + BatchNorm shortcuts where the shape
changes, global average pooling, Linear(64, 10).

Usage: python scripts/compare_resnet20_torch.py --prunekit .build/release/prunekit [--epochs 2 --ft-epochs 2] [--kd [dense|control]]
       [--seed S] [--shared-dense]
       (needs torch, torch-pruning; Debian's dataset-fashion-mnist)
"""
import argparse, gzip, json, math, os, struct, subprocess, tempfile, time
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch_pruning as tp

DATA = "/usr/share/datasets/fashion-mnist"


def idx(name):
    with gzip.open(os.path.join(DATA, name + ".gz"), "rb") as f:
        data = f.read()
    nd = data[3]
    dims = struct.unpack(">" + "I" * nd, data[4:4 + 4 * nd])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * nd).reshape(dims)


class Block(nn.Module):
    def __init__(self, i, o, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(i, o, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(o)
        self.conv2 = nn.Conv2d(o, o, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(o)
        self.downsample = nn.Sequential(nn.Conv2d(i, o, 1, stride, bias=False), nn.BatchNorm2d(o)) \
            if stride != 1 or i != o else None

    def forward(self, x):
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + (self.downsample(x) if self.downsample is not None else x))


class ResNet20(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        layers, c = [], 16
        for w, s in ((16, 1), (32, 2), (64, 2)):
            layers.append(nn.Sequential(*[Block(c if b == 0 else w, w, s if b == 0 else 1) for b in range(3)]))
            c = w
        self.layer1, self.layer2, self.layer3 = layers
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def kd_loss(logits, teacher_logits, labels, alpha=0.5, temperature=2.0):
    """PruneKit's Distillation (Hinton et al.): α·CE + (1 − α)·T²·KL(softmax(t/T) ‖ softmax(s/T)), batch mean."""
    t = temperature
    kl = F.kl_div(F.log_softmax(logits / t, 1), F.softmax(teacher_logits / t, 1), reduction="batchmean")
    return alpha * F.cross_entropy(logits, labels) + (1 - alpha) * t * t * kl


def train(m, x, y, epochs, lr, cosine, seed=0, teacher=None):
    opt = torch.optim.Adam(m.parameters(), lr=lr)
    if teacher is not None:
        teacher.eval()
    g = torch.Generator().manual_seed(seed)
    steps, total = 0, epochs * math.ceil(len(y) / 128)
    m.train()
    t0 = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(len(y), generator=g)
        for i in range(0, len(y), 128):
            if cosine:
                for group in opt.param_groups:
                    group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * steps / total))
            b = order[i:i + 128]
            opt.zero_grad()
            if teacher is None:
                F.cross_entropy(m(x[b]), y[b]).backward()
            else:
                with torch.no_grad():
                    tl = teacher(x[b])
                kd_loss(m(x[b]), tl, y[b]).backward()
            opt.step()
            steps += 1
    return epochs * len(y) / (time.perf_counter() - t0)


def accuracy(m, x, y):
    m.eval()
    with torch.no_grad():
        return sum((m(x[i:i + 1000]).argmax(1) == y[i:i + 1000]).sum().item() for i in range(0, len(y), 1000)) / len(y)


def torch_side(args, dense_file=None, pruned_file=None):
    """Steps 1-3 in PyTorch + Torch-Pruning; with dense_file, step 1 is loading PruneKit's dense model."""
    torch.manual_seed(args.seed)
    norm = lambda a: (torch.from_numpy(a.astype(np.float32)) / 255 - 0.2860) / 0.3530
    xtr, ytr = norm(idx("train-images-idx3-ubyte")).reshape(-1, 1, 28, 28), torch.from_numpy(idx("train-labels-idx1-ubyte").astype(np.int64))
    xte, yte = norm(idx("t10k-images-idx3-ubyte")).reshape(-1, 1, 28, 28), torch.from_numpy(idx("t10k-labels-idx1-ubyte").astype(np.int64))
    m = ResNet20()
    if dense_file:
        from safetensors.torch import load_file
        w, init = load_file(dense_file), m.state_dict()
        missing = [k for k in init if k not in w and "num_batches" not in k]
        if missing:
            raise SystemExit(f"PruneKit's dense model lacks {missing}")
        m.load_state_dict({k: w[k].to(init[k].dtype) if k in w else init[k] for k in init})
        sps = None
    else:
        sps = train(m, xtr, ytr, args.epochs, 1e-3, False, seed=args.seed)
    dense = accuracy(m, xte, yte)
    state = {k: v.clone() for k, v in m.state_dict().items()}
    control = ResNet20()
    control.load_state_dict(state)
    train(control, xtr, ytr, args.ft_epochs, 3e-3, True, seed=args.seed)
    ex = torch.randn(1, 1, 28, 28)
    macs0, params0 = tp.utils.count_ops_and_params(m, ex)
    m.eval()
    tp.pruner.MagnitudePruner(m, ex, importance=tp.importance.MagnitudeImportance(p=1), pruning_ratio=0.5,
                              ignored_layers=[m.fc]).step()
    macs1, params1 = tp.utils.count_ops_and_params(m, ex)
    r = {}
    if pruned_file:
        # the same start for the fine-tuning: Torch-Pruning's pruned model must be PruneKit's, weight for weight
        from safetensors.torch import load_file
        w = load_file(pruned_file)
        r["pruned_weights_max_difference_to_prunekit"] = max(
            (v.float() - w[k].float()).abs().max().item() if k in w and w[k].shape == v.shape else float("inf")
            for k, v in m.state_dict().items() if "num_batches" not in k)
    one_shot = accuracy(m, xte, yte)
    teacher = None
    if args.kd == "control":
        teacher = control
    elif args.kd:
        teacher = ResNet20()
        teacher.load_state_dict(state)
    ft_sps = train(m, xtr, ytr, args.ft_epochs, 3e-3, True, seed=args.seed, teacher=teacher)
    r.update({"dense": dense, "control": accuracy(control, xte, yte), "pruned_one_shot": one_shot,
              "pruned_finetuned": accuracy(m, xte, yte), "train_samples_per_second": sps,
              "pruned_finetune_samples_per_second": ft_sps, "macs": [macs0, macs1], "params": [params0, params1]})
    if dense_file:
        r["dense_from"] = "prunekit"
    return r


def prunekit_side(args, d):
    def run(*a):
        r = subprocess.run([args.prunekit, *a, "--threads", "2", "--seed", str(args.seed), "--json"], check=True,
                           capture_output=True, text=True)
        return json.loads(r.stdout)
    t = run("train", "--model", "resnet20", "--epochs", str(args.epochs), "--batch", "128", "--lr", "1e-3",
            "--out", f"{d}/dense.safetensors")
    c = run("finetune", "--model-file", f"{d}/dense.safetensors", "--epochs", str(args.ft_epochs),
            "--out", f"{d}/control.safetensors")
    p = run("prune", "--model-file", f"{d}/dense.safetensors", "--structure", "channels", "--scope", "layer",
            "--amount", "0.5", "--surgery", "--out", f"{d}/pruned.safetensors")
    kd = ["--teacher", f"{d}/{'control' if args.kd == 'control' else 'dense'}.safetensors"] if args.kd else []
    f = run("finetune", "--model-file", f"{d}/pruned.safetensors", "--epochs", str(args.ft_epochs),
            *kd, "--out", f"{d}/tuned.safetensors")
    return {"dense": t["test_accuracy"], "control": c["test_accuracy"], "pruned_one_shot": p["test_accuracy"],
            "pruned_finetuned": f["test_accuracy"], "train_samples_per_second": t["samples_per_second"],
            "pruned_finetune_samples_per_second": f["samples_per_second"],
            "macs": [p["macs_before"], p["macs_after"]], "params": [p["params_before"], p["params_after"]]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prunekit")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--ft-epochs", type=int, default=2)
    ap.add_argument("--skip-torch", action="store_true")
    ap.add_argument("--seed", type=int, default=0,
                    help="seed of both sides: torch.manual_seed and prunekit's --seed (initialisation, shuffling)")
    ap.add_argument("--kd", nargs="?", const="dense", choices=["dense", "control"],
                    help="fine-tune the pruned model with distillation (alpha 0.5, T 2: `prunekit finetune "
                         "--teacher`'s defaults) on both sides, from the dense model of step 1 (--kd, --kd dense) or "
                         "from the fine-tuned dense control of step 2 (--kd control); the control fine-tunes without")
    ap.add_argument("--shared-dense", action="store_true",
                    help="PyTorch starts from PruneKit's trained dense model instead of training its own "
                         "(needs --prunekit)")
    args = ap.parse_args()
    if args.shared_dense and (not args.prunekit or args.skip_torch):
        ap.error("--shared-dense needs --prunekit and the PyTorch side")
    torch.set_num_threads(2)
    out = {}
    with tempfile.TemporaryDirectory() as d:
        if not args.skip_torch and not args.shared_dense:
            out["torch"] = torch_side(args)
            print(json.dumps({"torch": out["torch"]}), flush=True)
        if args.prunekit:
            out["prunekit"] = prunekit_side(args, d)
            print(json.dumps({"prunekit": out["prunekit"]}), flush=True)
        if args.shared_dense:
            out["torch"] = torch_side(args, f"{d}/dense.safetensors", f"{d}/pruned.safetensors")
            print(json.dumps({"torch": out["torch"]}), flush=True)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
