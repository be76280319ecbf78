#!/usr/bin/env python3
"""Dense all-MiniLM-L6-v2 encoding throughput: PruneKit (`prunekit eval --model`) vs PyTorch
sentence-transformers, same sentences (data/sentences/heldout.txt), batch 32, same thread count,
alternating runs, medians. Usage: python scripts/compare_minilm_torch.py [--threads 2] [--repeat 3]
Needs sentence-transformers in a virtual environment outside the repository.
"""
import argparse, json, os, statistics, subprocess, time
import torch
from sentence_transformers import SentenceTransformer

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "all-MiniLM-L6-v2"))
    ap.add_argument("--input", default=os.path.join(ROOT, "data", "sentences", "heldout.txt"))
    ap.add_argument("--pruned", nargs="*", default=[], help="pruned folders to time with PruneKit too")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    lines = open(a.input, encoding="utf-8").read().splitlines()
    m = SentenceTransformer(a.model, device="cpu")
    m.encode(lines[:32], batch_size=32)
    pk, pt, extra = [], [], {p: [] for p in a.pruned}
    exe = os.path.join(ROOT, ".build", "release", "prunekit")
    for _ in range(a.repeat):
        t0 = time.perf_counter()
        m.encode(lines, batch_size=32)
        pt.append(len(lines) / (time.perf_counter() - t0))
        for folder, runs in [(a.model, pk)] + list(extra.items()):
            r = subprocess.run([exe, "eval", "--model", folder, "--input", a.input, "--batch", "32", "--threads",
                                str(a.threads), "--json"], check=True, capture_output=True, text=True)
            runs.append(json.loads(r.stdout.strip().splitlines()[-1])["sentences_per_second"])
    p, t = statistics.median(pk), statistics.median(pt)
    print(f"torch {torch.__version__}, {a.threads} threads, {len(lines)} sentences, batch 32")
    print(f"dense: PruneKit {p:.1f} vs sentence-transformers {t:.1f} sentences/s: {p / t:.2f}× "
          f"(runs {[round(x, 1) for x in pk]} vs {[round(x, 1) for x in pt]})")
    for folder, runs in extra.items():
        q = statistics.median(runs)
        print(f"{folder}: {q:.1f} sentences/s, {q / p:.2f}× the dense model in PruneKit")


if __name__ == "__main__":
    main()
