#!/usr/bin/env python3
"""Masked GEMM and masked-Linear training step: PruneKit vs PyTorch (MKL) vs OpenBLAS, one run.

For each shape it times, alternating, in the same process tree and the same thread count:
  torch.matmul(X, Wᵀ) (dense), X @ (W*M)ᵀ (PyTorch's pruned forward), a pruned nn.Linear training
  step (forward, loss.backward(), Adam; default and fused=True), and `prunekit bench gemm` /
  `prunekit bench step` (which also times OpenBLAS's SGEMM in the same run). Medians of repeats.
Usage: python scripts/compare_gemm_torch.py [--threads 2] [--repeat 9] [--markdown]
"""
import argparse, json, statistics, subprocess, time, platform, os
import torch
import torch.nn as nn
import torch.nn.utils.prune as prune

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
PK = os.path.join(ROOT, ".build", "release", "prunekit")


def median_time(fn, repeat):
    t_end = time.perf_counter() + 0.2
    while time.perf_counter() < t_end:
        fn()
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def prunekit(args):
    out = subprocess.run([PK] + args + ["--json"], check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=9)
    ap.add_argument("--markdown", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    rows = []
    shapes = [(128, 784, 300), (256, 1024, 1024), (2048, 4096, 4096), (256, 4096, 4096)]
    for (B, I, O) in shapes:
        flops = 2.0 * B * I * O
        x = torch.randn(B, I)
        w = torch.randn(O, I)
        for s in (0.0, 0.9):
            m = (torch.rand(O, I) >= s).float()
            t_mm = median_time(lambda: torch.matmul(x, w.t()), a.repeat)
            t_wm = median_time(lambda: x @ (w * m).t(), a.repeat)
            pk = prunekit(["bench", "gemm", "--batch", str(B), "--in", str(I), "--out", str(O), "--sparsity", str(s),
                           "--threads", str(a.threads), "--repeat", str(a.repeat), "--peak-seconds", "0.3"])
            rows.append({"op": "forward", "B": B, "I": I, "O": O, "sparsity": s,
                         "torch_matmul_gflops": flops / t_mm / 1e9, "torch_masked_gflops": flops / t_wm / 1e9,
                         "prunekit_gflops": pk["gflops"], "openblas_gflops": pk.get("openblas_gflops"),
                         "peak_gflops": pk.get("peak_gflops"),
                         "vs_matmul": t_mm / pk["median_seconds"], "vs_masked": t_wm / pk["median_seconds"]})
    for (B, I, O, s) in [(256, 4096, 4096, 0.9), (256, 4096, 4096, 0.0), (128, 784, 300, 0.9)]:
        res = {}
        for fused in (False, True):
            torch.manual_seed(0)
            layer = nn.Linear(I, O)
            prune.random_unstructured(layer, "weight", amount=s) if s > 0 else None
            opt = torch.optim.Adam(layer.parameters(), lr=1e-3, fused=fused) if fused else torch.optim.Adam(layer.parameters(), lr=1e-3)
            x = torch.randn(B, I, requires_grad=True)
            dy = torch.randn(B, O)

            def step():
                opt.zero_grad(set_to_none=True)
                x.grad = None
                y = layer(x)
                y.backward(dy)
                opt.step()
            try:
                res[fused] = median_time(step, max(3, a.repeat // 2))
            except Exception as e:  # fused Adam may be unavailable on CPU in some builds
                res[fused] = float("nan")
        pk = prunekit(["bench", "step", "--batch", str(B), "--in", str(I), "--out", str(O), "--sparsity", str(s),
                       "--threads", str(a.threads), "--repeat", str(max(3, a.repeat // 2)), "--peak-seconds", "0"])
        rows.append({"op": "step", "B": B, "I": I, "O": O, "sparsity": s, "torch_step_s": res[False],
                     "torch_fused_step_s": res[True], "prunekit_step_s": pk["median_seconds"],
                     "ratio_vs_torch": pk["median_seconds"] / res[False],
                     "ratio_vs_torch_fused": pk["median_seconds"] / res[True]})
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    print(f"machine: {cpu}; {a.threads} threads; torch {torch.__version__}; medians of {a.repeat}")
    print("| op | B×I→O | sparsity | PruneKit GFLOP/s | torch.matmul | torch (W*M) | OpenBLAS | peak | vs matmul | vs (W*M) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if r["op"] != "forward":
            continue
        print(f"| forward | {r['B']}×{r['I']}→{r['O']} | {r['sparsity']:.0%} | {r['prunekit_gflops']:.0f} | "
              f"{r['torch_matmul_gflops']:.0f} | {r['torch_masked_gflops']:.0f} | {r['openblas_gflops']:.0f} | "
              f"{r['peak_gflops']:.0f} | {r['vs_matmul']:.2f}× | {r['vs_masked']:.2f}× |")
    print()
    print("| step (Adam) | B×I→O | sparsity | PruneKit ms | torch ms | torch fused ms | PruneKit/torch | PruneKit/torch fused |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        if r["op"] != "step":
            continue
        print(f"| step | {r['B']}×{r['I']}→{r['O']} | {r['sparsity']:.0%} | {1e3*r['prunekit_step_s']:.1f} | "
              f"{1e3*r['torch_step_s']:.1f} | {1e3*r['torch_fused_step_s']:.1f} | {r['ratio_vs_torch']:.2f} | "
              f"{r['ratio_vs_torch_fused']:.2f} |")


if __name__ == "__main__":
    main()
