#!/usr/bin/env python3
"""Cosine against speed-up for sparse all-MiniLM-L6-v2 (issue 17's curve).

For each structure (unstructured at 50/70/80/90 %, 2:4, block:4x4 at 50/80 % by default) it prunes
the dense folder one-shot with `prunekit prune` (Wanda on the calibration sentences, or the method
given), optionally distils each pruned folder with gradual pruning off (`--epochs N` of `prunekit
finetune`), then times `prunekit eval` on the held-out sentences, the dense folder timed in the same
rounds (alternating, medians), and writes points.json and curve.svg (held-out mean cosine to the
dense model against encoding speed-up over PruneKit's dense encoder) into the report folder.

Usage: python3 scripts/minilm-curve.py [--out report/minilm-curve] [--rounds 3] [--epochs 0]
       [--points unstructured:0.5,unstructured:0.9,2:4,block:4x4:0.8] [--folder DIR=LABEL ...]
`--folder` adds already-made folders (for example the distilled recipe's result) to the plot.
Needs a release build (.build/release/prunekit), scripts/get-minilm.sh and scripts/make-sentences.py.
Only the Python standard library is used.
"""
import argparse, json, os, platform, statistics, subprocess, sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
PK = os.path.join(ROOT, ".build", "release", "prunekit")
DENSE = os.path.join(ROOT, "models", "all-MiniLM-L6-v2")
CAL = os.path.join(ROOT, "data", "sentences", "calibration.txt")
TRAIN = os.path.join(ROOT, "data", "sentences", "train.txt")
HELD = os.path.join(ROOT, "data", "sentences", "heldout.txt")
DEFAULT_POINTS = "unstructured:0.5,unstructured:0.7,unstructured:0.8,unstructured:0.9,2:4,block:4x4:0.5,block:4x4:0.8"


def run_json(args):
    r = subprocess.run([PK] + args + ["--json"], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"minilm-curve: prunekit {' '.join(args)} failed:\n{r.stderr.strip()}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def parse_point(p):
    """'unstructured:0.8' → ('unstructured', 0.8); '2:4' → ('2:4', 0.5); 'block:4x4:0.8' → ('block:4x4', 0.8)."""
    parts = p.split(":")
    if parts[0] == "unstructured":
        return "unstructured", float(parts[1])
    if parts[0] == "block":
        return f"block:{parts[1]}", float(parts[2]) if len(parts) > 2 else 0.5
    n, m = int(parts[0]), int(parts[1])
    return f"{n}:{m}", 1 - n / m


def svg(points, path, title):
    """A scatter of mean cosine (y) against speed-up (x), each point labelled; standard library only."""
    W, H, L, R, T, B = 720, 460, 70, 30, 40, 60
    xs = [p["speedup"] for p in points] + [1.0]
    ys = [p["mean_cosine"] for p in points] + [1.0]
    x0, x1 = 0.0, max(3.5, max(xs) * 1.1)
    y0, y1 = min(0.0, min(ys) - 0.05), 1.0
    fx = lambda x: L + (x - x0) / (x1 - x0) * (W - L - R)
    fy = lambda y: T + (y1 - y) / (y1 - y0) * (H - T - B)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{W / 2}" y="22" text-anchor="middle" font-size="14">{title}</text>',
           f'<line x1="{L}" y1="{H - B}" x2="{W - R}" y2="{H - B}" stroke="black"/>',
           f'<line x1="{L}" y1="{T}" x2="{L}" y2="{H - B}" stroke="black"/>']
    k = 0.0
    while k <= x1 + 1e-9:
        out.append(f'<line x1="{fx(k):.1f}" y1="{H - B}" x2="{fx(k):.1f}" y2="{H - B + 5}" stroke="black"/>')
        out.append(f'<text x="{fx(k):.1f}" y="{H - B + 18}" text-anchor="middle">{k:g}×</text>')
        k += 0.5
    y = round(y0, 1)
    while y <= 1.0 + 1e-9:
        out.append(f'<line x1="{L - 5}" y1="{fy(y):.1f}" x2="{L}" y2="{fy(y):.1f}" stroke="black"/>')
        out.append(f'<text x="{L - 8}" y="{fy(y) + 4:.1f}" text-anchor="end">{y:.1f}</text>')
        y += 0.1
    # the goal region: cosine ≥ 0.95 at ≥ 3× dense
    out.append(f'<rect x="{fx(3):.1f}" y="{fy(1):.1f}" width="{fx(x1) - fx(3):.1f}" height="{fy(0.95) - fy(1):.1f}" '
               'fill="#2a2" fill-opacity="0.15" stroke="#2a2"/>')
    out.append(f'<text x="{fx(3) + 4:.1f}" y="{fy(0.95) + 14:.1f}" fill="#2a2">goal: ≥ 0.95 at ≥ 3×</text>')
    out.append(f'<circle cx="{fx(1):.1f}" cy="{fy(1):.1f}" r="4" fill="black"/>')
    out.append(f'<text x="{fx(1) + 6:.1f}" y="{fy(1) + 14:.1f}">dense</text>')
    for p in points:
        c = "#c33" if p.get("distilled") else "#36c"
        out.append(f'<circle cx="{fx(p["speedup"]):.1f}" cy="{fy(p["mean_cosine"]):.1f}" r="4" fill="{c}"/>')
        out.append(f'<text x="{fx(p["speedup"]) + 6:.1f}" y="{fy(p["mean_cosine"]) - 6:.1f}">{p["label"]}</text>')
    out.append(f'<text x="{(L + W - R) / 2}" y="{H - 15}" text-anchor="middle">encoding speed-up over PruneKit\'s dense encoder '
               '(batch 32, 2 threads)</text>')
    out.append(f'<text x="16" y="{(T + H - B) / 2}" text-anchor="middle" transform="rotate(-90 16 {(T + H - B) / 2})">'
               'held-out mean cosine to the dense model</text>')
    out.append('<text x="80" y="56" fill="#36c">● one-shot</text><text x="160" y="56" fill="#c33">● distilled</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "report", "minilm-curve"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--method", default="wanda")
    ap.add_argument("--epochs", type=int, default=0, help="distil each pruned folder this many epochs (0: one-shot only)")
    ap.add_argument("--points", default=DEFAULT_POINTS)
    ap.add_argument("--folder", action="append", default=[], help="DIR=LABEL: an existing folder to time and plot")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    folders = []  # (label, dir, distilled, details)
    for spec in a.points.split(","):
        structure, sparsity = parse_point(spec)
        label = f"{structure} {sparsity:.0%}" if ":" not in structure or structure.startswith("block") else structure
        d = os.path.join(a.out, "folders", spec.replace(":", "_"))
        pr = run_json(["prune", "--model", DENSE, "--structure", structure, "--method", a.method, "--amount", str(sparsity),
                       "--calibration", CAL, "--out", d])
        folders.append((label, d, False, {"structure": structure, "target_sparsity": sparsity, "prune_seconds": pr["prune_seconds"]}))
        if a.epochs > 0:
            dd = d + "-distilled"
            ft = run_json(["finetune", "--model", d, "--teacher", DENSE, "--input", TRAIN, "--epochs", str(a.epochs),
                           "--out", dd, "--threads", str(a.threads)])
            folders.append((label + f" +{a.epochs} ep", dd, True,
                            {"structure": structure, "target_sparsity": sparsity, "epoch_losses": ft["epoch_losses"],
                             "train_seconds": ft["train_seconds"]}))
    for spec in a.folder:
        d, _, label = spec.partition("=")
        folders.append((label or os.path.basename(d), d, True, {}))
    # cosine once per folder; speed in rounds that alternate dense and every folder
    points = []
    for label, d, distilled, info in folders:
        e = run_json(["eval", "--model", d, "--teacher", DENSE, "--input", HELD, "--batch", "32", "--threads", str(a.threads)])
        points.append(dict(info, label=label, folder=d, distilled=distilled, mean_cosine=e["mean_cosine"], min_cosine=e["min_cosine"],
                           runs=[]))
    dense_runs = []
    for _ in range(a.rounds):
        dense_runs.append(run_json(["eval", "--model", DENSE, "--input", HELD, "--batch", "32", "--threads", str(a.threads)])
                          ["sentences_per_second"])
        for p in points:
            p["runs"].append(run_json(["eval", "--model", p["folder"], "--input", HELD, "--batch", "32", "--threads", str(a.threads)])
                             ["sentences_per_second"])
    dense = statistics.median(dense_runs)
    for p in points:
        p["sentences_per_second"] = statistics.median(p["runs"])
        p["speedup"] = p["sentences_per_second"] / dense
    report = {"cpu": cpu_name(), "threads": a.threads, "rounds": a.rounds, "method": a.method,
              "dense_sentences_per_second": dense, "dense_runs": dense_runs, "points": points}
    with open(os.path.join(a.out, "points.json"), "w") as f:
        json.dump(report, f, indent=1)
    svg(points, os.path.join(a.out, "curve.svg"), f"sparse all-MiniLM-L6-v2 on {cpu_name()}, {a.threads} threads")
    print(f"{cpu_name()}, {a.threads} threads; dense {dense:.1f} sentences/s (runs {[round(x, 1) for x in dense_runs]})")
    for p in points:
        print(f"{p['label']:<28} cosine {p['mean_cosine']:.4f}  {p['sentences_per_second']:7.1f} sentences/s  "
              f"{p['speedup']:.2f}× dense  (runs {[round(x, 1) for x in p['runs']]})")
    print(f"wrote {os.path.join(a.out, 'points.json')} and curve.svg")


if __name__ == "__main__":
    main()
