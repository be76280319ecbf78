"""ResNet-20 training speed, PruneKit against PyTorch, side by side in one run (issue 14).

Both train the same network (compare_resnet20_torch.py's ResNet20, PruneKit's `--model resnet20`) with
Adam 1e-3, batch 128, on the first --limit Fashion-MNIST training images, at --threads threads, for
--rounds alternating rounds (PyTorch, then PruneKit, then PruneKit with any extra environment given by
--variant NAME=VAR=VALUE). PyTorch's samples/s come after a 10-step warm-up; PruneKit's are what
`prunekit train --json` reports (training loop only: data loading and evaluation excluded; a
256-image test set keeps evaluation short). Prints every round and the medians as JSON.

Usage: python scripts/compare_resnet20_speed.py --prunekit .build/release/prunekit [--limit 2560 --rounds 3]
       [--variant im2col=PRUNEKIT_CONV_DIRECT=0]
"""
import argparse, gzip, json, os, platform, shutil, statistics, struct, subprocess, sys, tempfile, time
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare_resnet20_torch import DATA, ResNet20, idx  # noqa: E402


def cpu_name():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def torch_round(x, y, threads):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    m = ResNet20()
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    m.train()

    def step(b):
        opt.zero_grad()
        F.cross_entropy(m(x[b]), y[b]).backward()
        opt.step()
    order = torch.randperm(len(y))
    for i in range(10):  # warm-up
        step(order[(i * 128) % len(y):(i * 128) % len(y) + 128])
    t0 = time.perf_counter()
    for i in range(0, len(y), 128):
        step(order[i:i + 128])
    return len(y) / (time.perf_counter() - t0)


def prunekit_round(binary, data_dir, limit, threads, env):
    with tempfile.TemporaryDirectory() as d:
        out = subprocess.run([binary, "train", "--model", "resnet20", "--epochs", "1", "--limit", str(limit),
                              "--batch", "128", "--lr", "1e-3", "--threads", str(threads), "--data", data_dir,
                              "--out", os.path.join(d, "m.safetensors"), "--json"],
                             env={**os.environ, **env}, capture_output=True, text=True, check=True).stdout
    return json.loads(out)["samples_per_second"]


def small_test_set(d):
    # the training files, and a 256-image test set so that PruneKit's evaluation stays short
    for n in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        os.symlink(os.path.join(DATA, n), os.path.join(d, n))
    for n, header in (("t10k-images-idx3-ubyte", 16), ("t10k-labels-idx1-ubyte", 8)):
        raw = gzip.open(os.path.join(DATA, n + ".gz")).read()
        per = 784 if header == 16 else 1
        head = bytearray(raw[:header])
        head[4:8] = struct.pack(">I", 256)
        open(os.path.join(d, n), "wb").write(bytes(head) + raw[header:header + 256 * per])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prunekit", required=True)
    ap.add_argument("--limit", type=int, default=2560)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--variant", action="append", default=[], help="NAME=VAR=VALUE: also time PruneKit with VAR=VALUE")
    args = ap.parse_args()
    variants = [("prunekit", {})] + [(v.split("=", 1)[0], dict([v.split("=", 1)[1].split("=", 1)])) for v in args.variant]
    xtr = torch.tensor(idx("train-images-idx3-ubyte")[:args.limit], dtype=torch.float32).div(255).sub(0.2860).div(0.3530)
    xtr = xtr.unsqueeze(1)
    ytr = torch.tensor(idx("train-labels-idx1-ubyte")[:args.limit].astype(np.int64))
    results = {"pytorch": []} | {name: [] for name, _ in variants}
    with tempfile.TemporaryDirectory() as data_dir:
        small_test_set(data_dir)
        for r in range(args.rounds):
            results["pytorch"].append(torch_round(xtr, ytr, args.threads))
            for name, env in variants:
                results[name].append(prunekit_round(args.prunekit, data_dir, args.limit, args.threads, env))
            print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in results.items()), file=sys.stderr)
    med = {k: statistics.median(v) for k, v in results.items()}
    print(json.dumps({"cpu": cpu_name(), "threads": args.threads, "limit": args.limit, "torch": torch.__version__,
                      "rounds": results, "median_samples_per_second": med,
                      "ratio_to_pytorch": {k: med[k] / med["pytorch"] for k in med if k != "pytorch"}}, indent=1))


if __name__ == "__main__":
    main()
