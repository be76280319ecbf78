#!/usr/bin/env python3
"""`prunekit bench` against the package-benchmark suites, on every shape both measure (issue 21).

Runs the CLI's benchmarks (medians of --repeat runs after a warm-up) and the matching suite
benchmarks (p50 of their samples, from package-benchmark's markdown output), then prints each pair's medians and their
ratio. A ratio outside [0.87, 1.15] is marked: BENCHMARKS.md explains the ones that stay there.
Run on a quiet machine, nothing else timed at the same time.

With --spread it instead runs every suite benchmark and prints, per benchmark, p0, p50 and p100 of
the wall-clock samples: a one-time cost paid in every sample raises p0 with p50 (and p50 above the
CLI's median); one paid in the first sample only raises p100.

Usage: python3 scripts/compare_bench_suites.py [--prunekit .build/release/prunekit] [--repeat 9] [--markdown]
       python3 scripts/compare_bench_suites.py --spread [--filter REGEX]
"""
import argparse, json, os, subprocess, sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def cli(pk, args):
    out = subprocess.run([pk] + args + ["--threads", "2", "--json"], check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def pct(s):
    return f"{round(s * 100)}%"


def run_suites(regex):
    """{benchmark name: (p0, p50, p100) wall-clock seconds} of the suite benchmarks matching regex
    (package-benchmark's markdown output, times in μs)."""
    out = subprocess.run(["swift", "package", "--disable-sandbox", "benchmark", "--filter", regex, "--metric", "wallClock",
                          "--time-units", "microseconds", "--format", "markdown", "--no-progress"], check=True,
                         cwd=os.path.join(ROOT, "Benchmarks"), capture_output=True, text=True).stdout
    res, name = {}, None
    for line in out.splitlines():
        if line.startswith("### "):
            name = line[4:].strip()
        elif name and line.startswith("| Time (wall clock)"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            unit = cells[0].split("(")[2].split(")")[0]
            scale = {"μs": 1e-6, "us": 1e-6, "ms": 1e-3, "ns": 1e-9, "s": 1.0}[unit]
            v = [float(c.replace(",", "")) * scale for c in cells[1:8]]  # p0 p25 p50 p75 p90 p99 p100
            res[name] = (v[0], v[2], v[6])
            name = None
    return res


def machine():
    cpu = open("/proc/cpuinfo").read().split("model name")[1].split("\n")[0].split(":")[1].strip()
    return f"# {cpu}, {os.cpu_count()} cores, load {' '.join(open('/proc/loadavg').read().split()[:3])}"


def spread(regex, markdown):
    res = run_suites(regex)
    print(machine())
    within = 0
    if markdown:
        print("| suite benchmark | p0 (ms) | p50 (ms) | p100 (ms) | p50 ÷ p0 | p100 ÷ p50 |")
        print("|---|---|---|---|---|---|")
    for name in sorted(res):
        p0, p50, p100 = res[name]
        r = p50 / p0 if p0 > 0 else float("nan")
        within += r <= 1.2
        if markdown:
            print(f"| {name} | {p0 * 1e3:.3f} | {p50 * 1e3:.3f} | {p100 * 1e3:.3f} | {r:.2f} | {p100 / p50:.2f} |")
        else:
            print(f"{name:70s} p0 {p0 * 1e3:9.3f}  p50 {p50 * 1e3:9.3f}  p100 {p100 * 1e3:9.3f} ms  p50/p0 {r:.2f}")
    print(f"{within} of {len(res)} benchmarks have p50 within 20% of p0")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prunekit", default=os.path.join(ROOT, ".build", "release", "prunekit"))
    ap.add_argument("--repeat", type=int, default=9)
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--spread", action="store_true")
    ap.add_argument("--filter", default=".*")
    a = ap.parse_args()
    if a.spread:
        return spread(a.filter, a.markdown)
    rep = ["--repeat", str(a.repeat)]
    pairs = []  # (suite benchmark name, what, CLI seconds)
    for (b, i, o) in [(128, 784, 300), (256, 1024, 1024), (256, 4096, 4096)]:
        for s in (0.0, 0.9):
            r = cli(a.prunekit, ["bench", "gemm", "--batch", str(b), "--in", str(i), "--out", str(o), "--sparsity", str(s),
                                 "--peak-seconds", "0", "--no-openblas"] + rep)
            pairs.append((f"gemm.forward B{b} {i}→{o} sparsity {pct(s)}", "bench gemm", r["median_seconds"]))
    for (structure, s) in [("2:4", 0.5), ("unstructured", 0.9), ("block:4x4", 0.9), ("block:8x8", 0.9)]:
        for (b, i, o) in [(256, 4096, 4096), (512, 384, 1536), (512, 1536, 384)]:
            if i != 4096 and structure not in ("2:4", "unstructured", "block:4x4"):
                continue
            tag = f"{structure} {pct(s)} B{b} {i}→{o}" if structure != "2:4" else f"{structure} B{b} {i}→{o}"
            r = cli(a.prunekit, ["bench", "spmm", "--structure", structure, "--sparsity", str(s), "--batch", str(b),
                                 "--in", str(i), "--out", str(o), "--peak-seconds", "0"] + rep)
            pairs.append((f"format.forward {tag}", "bench spmm (forward)", r["median_seconds"]))
            pairs.append((f"format.inputGradient {tag}", "bench spmm (input gradient)", r["input_grad_median_seconds"]))
            pairs.append((f"format.weightGradient {tag}", "bench spmm (weight gradient)", r["weight_grad_median_seconds"]))
            if i == 4096:
                pairs.append((f"linear.forward dense B{b} {i}→{o}", "bench spmm (dense baseline)", r["dense_median_seconds"]))
                st = cli(a.prunekit, ["bench", "step", "--structure", structure, "--sparsity", str(s), "--execution",
                                      "csr" if structure == "unstructured" else structure, "--batch", str(b), "--in", str(i),
                                      "--out", str(o), "--peak-seconds", "0"] + rep)
                pairs.append((f"linear.step(adam) {tag}", "bench step", st["median_seconds"]))
    for tensors in (1, 100):
        r = cli(a.prunekit, ["bench", "topk", "--weights", "10000000", "--tensors", str(tensors), "--amount", "0.5"] + rep)
        pairs.append((f"select.global 50% of 10M weights in {tensors} tensors", "bench topk", r["median_seconds"]))

    # the suites, filtered to exactly these names: p50 of their wall-clock samples
    names = sorted({p[0] for p in pairs})
    regex = "^(" + "|".join(n.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.") for n in names) + ")$"
    suite = run_suites(regex)
    rows = []
    for name, what, t in pairs:
        p0, p50, _ = suite.get(name, (None, None, None))
        ratio = p50 / t if p50 else None
        flag = "" if ratio and 0.87 <= ratio <= 1.15 else "  <-- outside 15%"
        rows.append((name, what, t, p50, p0, ratio, flag))
    print(machine())
    if a.markdown:
        print("| suite benchmark | prunekit | prunekit median (ms) | suite p50 (ms) | suite p0 (ms) | suite ÷ CLI |")
        print("|---|---|---|---|---|---|")
    for name, what, t, p50, p0, ratio, flag in rows:
        if a.markdown:
            print(f"| {name} | {what} | {t * 1e3:.3f} | {p50 * 1e3 if p50 else float('nan'):.3f} | "
                  f"{p0 * 1e3 if p0 else float('nan'):.3f} | {ratio if ratio else float('nan'):.2f}{' ⚠' if flag else ''} |")
        else:
            print(f"{name:60s} {what:30s} {t * 1e3:9.3f} ms  p50 {p50 * 1e3 if p50 else float('nan'):9.3f} ms  "
                  f"ratio {ratio if ratio else float('nan'):.2f}{flag}")
    missing = [r[0] for r in rows if r[3] is None]
    if missing:
        print("not found in the suites:", *missing, sep="\n  ", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
