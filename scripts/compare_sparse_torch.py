#!/usr/bin/env python3
"""Sparse execution: PruneKit vs PyTorch (dense MKL matmul, torch.sparse CSR, masked training), one run.

  A  forward Y = X·Wᵀ, 4096 × 4096, batches 64/128/256, sparsity 50-95 %: PruneKit sparse
     (`prunekit bench spmm`), PruneKit dense GEMM, torch dense matmul, torch.sparse CSR matmul.
  B  one training step (forward, backward, Adam) of a 90 %-pruned 4096 × 4096 Linear, batch 256:
     PruneKit sparse and dense-masked (`prunekit bench step`), PyTorch with torch.nn.utils.prune;
     plus the memory each keeps for weights, masks, gradients and optimizer state.
  C  fine-tuning LeNet-300-100 pruned to 90 % (one epoch of Fashion-MNIST, batch 128, Adam):
     `prunekit finetune` (sparse layers) vs PyTorch with prune.custom_from_mask, same masks.
Medians of --repeat runs. Usage: python scripts/compare_sparse_torch.py [--threads 2] [--repeat 5] [--skip A,B,C]
Needs torch, numpy and safetensors in a virtual environment outside the repository.
"""
import argparse, gzip, json, os, statistics, subprocess, tempfile, time
import numpy as np
import torch
import torch.nn as nn
import torch.nn.utils.prune as prune

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
PK = os.path.join(ROOT, ".build", "release", "prunekit")


def med(fn, repeat, warm=1):
    for _ in range(warm):
        fn()
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def pk(*args):
    out = subprocess.run([PK, *args, "--json"], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def part_a(a):
    print("\n## A. Forward Y = X·Wᵀ, 4096 × 4096 (ms, medians)")
    print("| batch | sparsity | PruneKit sparse | PruneKit dense | torch dense (MKL) | torch CSR | vs torch dense | vs torch CSR |")
    print("|---|---|---|---|---|---|---|---|")
    n = 4096
    g = torch.Generator().manual_seed(0)
    w = torch.empty(n, n).uniform_(-1, 1, generator=g)
    for b in (64, 128, 256):
        x = torch.empty(b, n).uniform_(-1, 1, generator=g)
        td = med(lambda: x @ w.T, a.repeat)
        for s in (0.5, 0.6, 0.7, 0.8, 0.9, 0.95):
            r = pk("bench", "spmm", "--batch", str(b), "--in", str(n), "--out", str(n), "--sparsity", str(s),
                   "--repeat", str(a.repeat), "--peak-seconds", "0", "--threads", str(a.threads))
            ws = (w * (torch.rand(n, n, generator=g) >= s)).to_sparse_csr()
            tc = med(lambda: torch.sparse.mm(ws, x.T), max(1, a.repeat // 2))
            ps = r["median_seconds"]
            print(f"| {b} | {s:.2f} | {ps*1e3:.2f} | {r['dense_median_seconds']*1e3:.2f} | {td*1e3:.2f} | {tc*1e3:.2f} "
                  f"| {td/ps:.2f}× | {tc/ps:.2f}× |")
    for st in ("block", "2:4"):
        r = pk("bench", "spmm", "--batch", "256", "--in", "4096", "--out", "4096", "--sparsity", "0.9", "--structure", st,
               "--repeat", str(a.repeat), "--peak-seconds", "0", "--threads", str(a.threads))
        print(f"| 256 | {r['sparsity']:.2f} ({st}) | {r['median_seconds']*1e3:.2f} | {r['dense_median_seconds']*1e3:.2f} "
              f"| | | | |")


def torch_step_memory(lin, opt):
    seen, total = set(), 0
    tensors = [t for _, t in lin.named_parameters()] + [t for _, t in lin.named_buffers()] + [lin.weight]
    tensors += [p.grad for p in lin.parameters() if p.grad is not None]
    for st in opt.state.values():
        tensors += [v for v in st.values() if torch.is_tensor(v) and v.dim() > 0]
    for t in tensors:
        if t.data_ptr() not in seen:
            seen.add(t.data_ptr())
            total += t.numel() * t.element_size()
    return total


def part_b(a):
    print("\n## B. Training step at 90 % (4096 × 4096, batch 256, Adam): ms and memory")
    n, b = 4096, 256
    lin = nn.Linear(n, n)
    prune.l1_unstructured(lin, "weight", amount=0.9)
    opt = torch.optim.Adam(lin.parameters(), lr=1e-3)
    x, dy = torch.randn(b, n), torch.randn(b, n)

    def step():
        opt.zero_grad(set_to_none=True)
        lin(x).backward(dy)
        opt.step()
    tt = med(step, a.repeat)
    mem = torch_step_memory(lin, opt)
    rs = pk("bench", "step", "--batch", str(b), "--in", str(n), "--out", str(n), "--sparsity", "0.9", "--execution", "sparse",
            "--repeat", str(a.repeat), "--peak-seconds", "0", "--threads", str(a.threads))
    rd = pk("bench", "step", "--batch", str(b), "--in", str(n), "--out", str(n), "--sparsity", "0.9", "--execution", "dense",
            "--repeat", str(a.repeat), "--peak-seconds", "0", "--threads", str(a.threads))
    print("| implementation | step ms | memory MB | vs PruneKit dense-masked | memory vs PyTorch |")
    print("|---|---|---|---|---|")
    for name, t, m in (("PruneKit sparse", rs["median_seconds"], rs["memory_bytes"]),
                       ("PruneKit dense-masked", rd["median_seconds"], rd["memory_bytes"]),
                       ("PyTorch (prune.l1_unstructured + Adam)", tt, mem)):
        print(f"| {name} | {t*1e3:.1f} | {m/1e6:.1f} | {rd['median_seconds']/t:.2f}× | {m/mem:.3f} |")


def idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    rank = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(rank)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * rank).reshape(dims)


def part_c(a):
    print("\n## C. Fine-tuning LeNet-300-100 at 90 % (one epoch, batch 128, Adam 3e-3), samples/s")
    from safetensors.numpy import load_file
    d = tempfile.mkdtemp()
    dense, pruned = f"{d}/dense.safetensors", f"{d}/p90.safetensors"
    subprocess.run([PK, "train", "--model", "mlp", "--epochs", "1", "--out", dense, "--threads", str(a.threads)],
                   check=True, capture_output=True)
    subprocess.run([PK, "prune", "--model-file", dense, "--amount", "0.9", "--out", pruned, "--no-eval",
                    "--threads", str(a.threads)], check=True, capture_output=True)
    mean, std = 0.2860, 0.3530
    x = torch.from_numpy((idx(f"{a.data}/train-images-idx3-ubyte.gz").astype(np.float32) / 255.0 - mean) / std).reshape(-1, 784)
    y = torch.from_numpy(idx(f"{a.data}/train-labels-idx1-ubyte.gz").astype(np.int64))
    st = load_file(pruned)

    def torch_run():
        net = nn.Sequential(nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(), nn.Linear(100, 10))
        for i, name in ((0, "fc1"), (2, "fc2"), (4, "fc3")):
            net[i].weight.data = torch.from_numpy(st[f"{name}.weight"].copy())
            net[i].bias.data = torch.from_numpy(st[f"{name}.bias"].copy())
            prune.custom_from_mask(net[i], "weight", torch.from_numpy(st[f"{name}.weight_mask"].copy()))
        opt = torch.optim.Adam(net.parameters(), lr=3e-3)
        lossf = nn.CrossEntropyLoss()
        perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
        t0 = time.perf_counter()
        for i in range(0, len(x), 128):
            j = perm[i:i + 128]
            opt.zero_grad(set_to_none=True)
            lossf(net(x[j]), y[j]).backward()
            opt.step()
        return len(x) / (time.perf_counter() - t0)

    pks, pts, mode = [], [], ""
    for _ in range(a.repeat_c):
        r = pk("finetune", "--model-file", pruned, "--epochs", "1", "--out", f"{d}/ft.safetensors", "--threads", str(a.threads))
        pks.append(r["samples_per_second"])
        mode = f"{r['sparse_layers']} sparse layers, {r['memory_bytes']/1e6:.2f} MB, test accuracy {r['test_accuracy']:.4f}"
        pts.append(torch_run())
    p, t = statistics.median(pks), statistics.median(pts)
    print(f"PruneKit {p:,.0f} vs PyTorch {t:,.0f} samples/s: {p/t:.2f}× ({mode}; runs {[round(v) for v in pks]} vs "
          f"{[round(v) for v in pts]})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--repeat-c", type=int, default=3)
    ap.add_argument("--skip", default="")
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    os.environ["OMP_NUM_THREADS"] = str(a.threads)
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print(f"torch {torch.__version__}, {a.threads} threads, {cpu}")
    skip = set(a.skip.split(","))
    if "A" not in skip:
        part_a(a)
    if "B" not in skip:
        part_b(a)
    if "C" not in skip:
        part_c(a)


if __name__ == "__main__":
    main()
