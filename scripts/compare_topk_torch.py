#!/usr/bin/env python3
"""Global magnitude pruning threshold: PruneKit vs torch.kthvalue, torch.topk and
prune.global_unstructured on the same sizes, in one run (medians), plus peak extra memory.
Usage: python scripts/compare_topk_torch.py [--threads 2] [--repeat 3] [--sizes 10000000:1,100000000:8]
"""
import argparse, json, os, resource, statistics, subprocess, time
import torch
import torch.nn as nn
import torch.nn.utils.prune as prune

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
PK = os.path.join(ROOT, ".build", "release", "prunekit")


def med(fn, repeat):
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--sizes", default="10000000:1,100000000:8")
    ap.add_argument("--skip-global", action="store_true", help="skip prune.global_unstructured (slow, 5 GB)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    print(f"torch {torch.__version__}, {a.threads} threads, medians of {a.repeat}")
    print("| weights | tensors | PruneKit kernel ms | PruneKit API ms | extra MB | torch.kthvalue ms | torch.topk ms | global_unstructured ms | vs kthvalue | vs global |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for spec in a.sizes.split(","):
        n, t = (int(v) for v in spec.split(":"))
        pk = json.loads(subprocess.run([PK, "bench", "topk", "--weights", str(n), "--tensors", str(t), "--amount", "0.5",
                                        "--threads", str(a.threads), "--repeat", str(max(a.repeat, 3)), "--json"],
                                       check=True, capture_output=True, text=True).stdout)
        torch.manual_seed(0)
        params = [torch.randn(n // t) * 0.05 for _ in range(t)]
        k = n // 2

        def kth():
            torch.kthvalue(torch.cat([p.abs().flatten() for p in params]), k)

        def topk():
            torch.topk(torch.cat([p.abs().flatten() for p in params]), k, largest=False)

        t_kth = med(kth, a.repeat)
        t_topk = med(topk, a.repeat)
        t_glob = float("nan")
        if not a.skip_global:
            mods = []
            for p in params:
                m = nn.Linear(1, p.numel(), bias=False)
                m.weight = nn.Parameter(p.view(-1, 1).clone())
                mods.append(m)

            def glob():
                for m in mods:
                    if hasattr(m, "weight_orig"):
                        prune.remove(m, "weight")
                prune.global_unstructured([(m, "weight") for m in mods], pruning_method=prune.L1Unstructured, amount=0.5)
            t_glob = med(glob, 1 if n >= 50_000_000 else a.repeat)
        print(f"| {n:,} | {t} | {1e3*pk['median_seconds']:.1f} | {1e3*pk['api_median_seconds']:.1f} | "
              f"{pk['extra_bytes']/2**20:.1f} | {1e3*t_kth:.0f} | {1e3*t_topk:.0f} | {1e3*t_glob:.0f} | "
              f"{t_kth/pk['median_seconds']:.1f}× | {t_glob/pk['api_median_seconds']:.1f}× |")
    print(f"peak RSS of this Python process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/2**20:.1f} GB")


if __name__ == "__main__":
    main()
