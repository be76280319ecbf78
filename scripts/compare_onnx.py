#!/usr/bin/env python3
"""Issue 15 part 5, "Compared side by side": PruneKit on ONNX models against onnxruntime, PyTorch and
Torch-Pruning, in one run, 2 threads, medians of repeated runs, the CPU named from /proc/cpuinfo.

Speed (torchvision resnet18 as issue 14 defines it: conv1 = Conv2d(1, 64, 3, 1, 1, bias=False),
maxpool = Identity, 10 classes, 1×28×28 inputs, exported with torch.onnx.export(opset_version=17,
dynamo=False); random weights with BatchNorm statistics from a few training-mode batches, which fold
into the convolutions on export):

1. `prunekit prune --structure channels --method l1 --scope layer --amount 0.5 --out ch.onnx`: MACs
   against Torch-Pruning's MagnitudePruner(L1, pruning_ratio=0.5, fc ignored) on the same network
   (goal: within 1 %), and onnxruntime on the dense and the pruned file (goal: pruned ≥ 3.8× faster);
   beside it, as a control, onnxruntime on Torch-Pruning's pruned model exported the same way.
2. PruneKit's own dense inference of the dense ONNX file (`prunekit bench infer --execution dense`)
   against onnxruntime's (goal ≥ 0.8×).
3. `prunekit prune --structure unstructured --method l1 --scope layer --amount 0.9 --out u90.onnx`
   (every convolution and the classifier at 90 %), run by PruneKit with `--execution sparse` (CSR
   weights: the Linear through sparse × dense products, the convolutions through the direct sparse
   convolution, pk_conv2d_sparse_forward_f32), against onnxruntime running the same file densely
   (goal ≥ 2×). PruneKit's dense-masked run of the same file is reported beside it.

All inference is batch 64 over the first --images Fashion-MNIST test images (2 batches by default),
onnxruntime with intra_op_num_threads=2 (inter 1), PruneKit with --threads 2. Each round times
onnxruntime's four sessions interleaved (median of --repeats), then PruneKit's models interleaved
in one `bench infer` process (median of --repeats); ratios are taken within a round, and the
report gives every round, the load average next to it, and the median over rounds.

Accuracy (4.): a small CNN with BatchNorm (conv 1→16→32→64, 3×3, BatchNorm, ReLU, max pools after the
first two, flatten, linear 64·7·7→10; 2.0 M MACs) trained in PyTorch on Fashion-MNIST (Adam 1e-3, batch 128,
--train-epochs, seed 0), exported with BatchNorm kept (do_constant_folding=False, so fine-tuning
trains it), pruned 50 % by channels (L1, per layer) and fine-tuned 2 epochs (Adam, peak lr 3e-3
cosine-decayed per step to 0, batch 128, no weight decay, BatchNorm in training mode) on both sides:
PruneKit (`prunekit prune` + `prunekit finetune --mean 0.2860 --std 0.3530`, the contract stored in
the ONNX metadata) and PyTorch + Torch-Pruning (MagnitudePruner(MagnitudeImportance(p=1),
pruning_ratio=0.5, fc ignored), the same normalisation). Goal: PruneKit's test accuracy within 0.5
points of PyTorch's, for each fine-tuning seed in --seeds. PruneKit's accuracy is its own evaluation
and, independently, onnxruntime's on the written file.

Usage: /opt/torchenv/bin/python scripts/compare_onnx.py [--prunekit .build/release/prunekit]
       [--repeats 5] [--rounds 3] [--images 128] [--seeds 0,1,2] [--train-epochs 2]
       [--parts speed,accuracy] [--keep DIR] [--json-out FILE]
Prints every measurement and one JSON object at the end (also written to --json-out). About 20
minutes on 2 shared cores with --rounds 5 (BENCHMARKS.md, "ONNX models (issue 15)").
"""
import argparse, copy, gzip, json, math, os, statistics, subprocess, sys, tempfile, time
import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_onnx_export import issue14_resnet18, torch_pruning_half  # noqa: E402  (the same network and reference)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
DATA = "/usr/share/datasets/fashion-mnist"
MEAN, STD = 0.2860, 0.3530
THREADS = 2


def cpu_name():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown CPU"


def cpu_flags():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                fl = set(line.split(":", 1)[1].split())
                return [x for x in ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile") if x in fl]
    return []


def load_average():
    return [round(v, 2) for v in os.getloadavg()]


def idx(name):
    with gzip.open(os.path.join(DATA, name + ".gz")) as f:
        raw = f.read()
    if raw[2] != 8:
        raise ValueError(f"{name}: not unsigned bytes")
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(raw[3])]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * len(dims)).reshape(dims)


def fashion(train):
    p = "train" if train else "t10k"
    x = (idx(f"{p}-images-idx3-ubyte").astype(np.float32) / 255 - MEAN) / STD
    return x.reshape(-1, 1, 28, 28), idx(f"{p}-labels-idx1-ubyte").astype(np.int64)


def prunekit(binary, *args):
    r = subprocess.run([binary, *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"prunekit {' '.join(args)}: {r.stderr.strip()}")
    return r.stdout


def session(path):
    so = ort.SessionOptions()
    so.intra_op_num_threads = THREADS
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def ort_run(s, x, batch=256):
    name = s.get_inputs()[0].name
    return np.concatenate([s.run(None, {name: x[i:i + batch]})[0] for i in range(0, len(x), batch)])


def agree(binary, path, x, d, what):
    """max |onnxruntime − prunekit infer| relative to the output scale (a sanity check, 1e-4)."""
    np.save(os.path.join(d, "agree.npy"), x)
    prunekit(binary, "infer", "--model-file", path, "--input", os.path.join(d, "agree.npy"), "--output",
             os.path.join(d, "agree-y.npy"), "--threads", str(THREADS))
    y_pk, y_ort = np.load(os.path.join(d, "agree-y.npy")), ort_run(session(path), x)
    scale = max(float(np.abs(y_ort).max()), 1e-3)
    err = float(np.abs(y_pk.reshape(y_ort.shape) - y_ort).max()) / scale
    print(f"  {what}: max |onnxruntime − PruneKit| / scale = {err:.2g}")
    if err > 1e-4:
        raise RuntimeError(f"{what}: PruneKit and onnxruntime disagree ({err:.3g} of the output scale)")
    return err


# ---------------------------------------------------------------------------------------------
# speed: resnet18


def ort_times(sessions, batches, repeats):
    """Per-run seconds of each session over all batches, interleaved, after two warm-up runs."""
    name = sessions[0].get_inputs()[0].name
    times = [[] for _ in sessions]
    for r in range(repeats + 2):
        for i, s in enumerate(sessions):
            t0 = time.perf_counter()
            for x in batches:
                s.run(None, {name: x})
            if r >= 2:
                times[i].append(time.perf_counter() - t0)
    return times


def speed(args, d):
    print(f"== resnet18 (issue 14's variant), batch {args.batch}, {THREADS} threads")
    torch.manual_seed(0)
    model = issue14_resnet18()
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(8, 1, 28, 28))
    model.eval()
    src = os.path.join(d, "resnet18.onnx")
    torch.onnx.export(model, torch.randn(1, 1, 28, 28), src, opset_version=17, dynamo=False, input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": {0: "N"}, "y": {0: "N"}})
    ch, u90 = os.path.join(d, "resnet18-ch50.onnx"), os.path.join(d, "resnet18-u90.onnx")
    rep_ch = json.loads(prunekit(args.prunekit, "prune", "--model-file", src, "--structure", "channels", "--method", "l1",
                                 "--scope", "layer", "--amount", "0.5", "--out", ch, "--json"))
    rep_u = json.loads(prunekit(args.prunekit, "prune", "--model-file", src, "--structure", "unstructured", "--method", "l1",
                                "--scope", "layer", "--amount", "0.9", "--out", u90, "--json"))
    print(f"  channels 50 %: MACs {rep_ch['macs_before']} → {rep_ch['macs_after']}, params {rep_ch['params_before']} → "
          f"{rep_ch['params_after']}")
    print(f"  unstructured 90 %: sparsity {rep_u['sparsity']:.4f} of the prunable weights")

    import torch_pruning as tp
    ex = torch.randn(1, 1, 28, 28)
    tpm, (macs0, params0), (macs1, params1) = torch_pruning_half(model, ex)
    mac_ratio = rep_ch["macs_after"] / macs1
    # control: Torch-Pruning's pruned model exported the same way (what onnxruntime makes of the
    # same channel counts when they come from PyTorch)
    tp_onnx = os.path.join(d, "resnet18-tp50.onnx")
    torch.onnx.export(tpm, ex, tp_onnx, opset_version=17, dynamo=False, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "N"}, "y": {0: "N"}})
    print(f"  Torch-Pruning {tp.__version__}: MACs {int(macs0)} → {int(macs1)}, params {int(params0)} → {int(params1)}; "
          f"PruneKit / Torch-Pruning MACs after = {mac_ratio:.5f}")

    xt, _ = fashion(False)
    x = np.ascontiguousarray(xt[:args.images])
    xpath = os.path.join(d, "x.npy")
    np.save(xpath, x)
    agreement = {name: agree(args.prunekit, p, x[:16], d, name)
                 for name, p in [("dense", src), ("channels 50 %", ch), ("unstructured 90 %", u90)]}
    batches = [x[i:i + args.batch] for i in range(0, len(x), args.batch)]
    sessions = [session(src), session(ch), session(u90), session(tp_onnx)]
    rounds = []
    for r in range(args.rounds):
        load0 = load_average()
        t_ort = [statistics.median(t) for t in ort_times(sessions, batches, args.repeats)]
        common = ["--input", xpath, "--batch", str(args.batch), "--repeat", str(args.repeats), "--threads", str(THREADS), "--json"]
        pk_dense = json.loads(prunekit(args.prunekit, "bench", "infer", "--model-file", src, ch, u90, "--execution", "dense", *common))
        pk_sparse = json.loads(prunekit(args.prunekit, "bench", "infer", "--model-file", u90, "--execution", "sparse", *common))
        t_pk = [m["median_seconds"] for m in pk_dense["models"]]
        t_sp = pk_sparse["models"][0]["median_seconds"]
        row = {
            "load_average_before": load0, "load_average_after": load_average(),
            "onnxruntime_seconds": {"dense": t_ort[0], "channels50": t_ort[1], "unstructured90": t_ort[2],
                                    "torch_pruning50": t_ort[3]},
            "prunekit_seconds": {"dense": t_pk[0], "channels50": t_pk[1], "unstructured90_dense_masked": t_pk[2],
                                 "unstructured90_sparse": t_sp},
            "prunekit_sparse_layers": f"{pk_sparse['models'][0]['sparse_layers']} of {pk_sparse['models'][0]['weight_layers']}",
            "prunekit_sparse_formats": pk_sparse["models"][0].get("formats"),
            "ort_pruned_speedup": t_ort[0] / t_ort[1],
            "ort_torch_pruning_speedup": t_ort[0] / t_ort[3],
            "prunekit_dense_vs_ort": t_ort[0] / t_pk[0],
            "prunekit_sparse_vs_ort_same_model": t_ort[2] / t_sp,
            "prunekit_sparse_vs_ort_dense_model": t_ort[0] / t_sp,
            "prunekit_sparse_vs_prunekit_dense_masked": t_pk[2] / t_sp,
            "prunekit_pruned_speedup": t_pk[0] / t_pk[1],
        }
        rounds.append(row)
        ms = lambda t: f"{1e3 * t:.1f}"  # noqa: E731
        print(f"  round {r + 1} (load {load0} → {row['load_average_after']}), ms per {len(x)} images:"
              f" onnxruntime dense {ms(t_ort[0])}, channels {ms(t_ort[1])}, u90 {ms(t_ort[2])}, Torch-Pruning's {ms(t_ort[3])};"
              f" PruneKit dense {ms(t_pk[0])}, channels {ms(t_pk[1])}, u90 dense-masked {ms(t_pk[2])}, u90 sparse {ms(t_sp)}"
              f" ({row['prunekit_sparse_layers']} layers sparse: {row['prunekit_sparse_formats']})")
        print(f"    onnxruntime pruned/dense speed-up {row['ort_pruned_speedup']:.2f}× (Torch-Pruning's export "
              f"{row['ort_torch_pruning_speedup']:.2f}×); PruneKit dense / onnxruntime"
              f" {row['prunekit_dense_vs_ort']:.2f}×; PruneKit sparse u90 / onnxruntime u90 {row['prunekit_sparse_vs_ort_same_model']:.2f}×")
    med = lambda k: statistics.median(r[k] for r in rounds)  # noqa: E731
    ips = lambda t: len(x) / t  # noqa: E731
    summary = {
        "macs": {"prunekit_before": rep_ch["macs_before"], "prunekit_after": rep_ch["macs_after"],
                 "torch_pruning_before": int(macs0), "torch_pruning_after": int(macs1), "ratio_after": mac_ratio,
                 "params_prunekit_after": rep_ch["params_after"], "params_torch_pruning_after": int(params1)},
        "unstructured90_sparsity": rep_u["sparsity"],
        "agreement_with_onnxruntime": agreement,
        "images": len(x), "batch": args.batch, "repeats": args.repeats, "rounds": rounds,
        "median_images_per_second": {
            "onnxruntime_dense": ips(statistics.median(r["onnxruntime_seconds"]["dense"] for r in rounds)),
            "onnxruntime_channels50": ips(statistics.median(r["onnxruntime_seconds"]["channels50"] for r in rounds)),
            "onnxruntime_unstructured90": ips(statistics.median(r["onnxruntime_seconds"]["unstructured90"] for r in rounds)),
            "onnxruntime_torch_pruning50": ips(statistics.median(r["onnxruntime_seconds"]["torch_pruning50"] for r in rounds)),
            "prunekit_dense": ips(statistics.median(r["prunekit_seconds"]["dense"] for r in rounds)),
            "prunekit_channels50": ips(statistics.median(r["prunekit_seconds"]["channels50"] for r in rounds)),
            "prunekit_unstructured90_dense_masked": ips(statistics.median(r["prunekit_seconds"]["unstructured90_dense_masked"] for r in rounds)),
            "prunekit_unstructured90_sparse": ips(statistics.median(r["prunekit_seconds"]["unstructured90_sparse"] for r in rounds)),
        },
        "goals": {
            "1_macs_within_1pct": {"value": mac_ratio, "met": abs(mac_ratio - 1) <= 0.01},
            "1_ort_pruned_speedup_ge_3.8": {"value": med("ort_pruned_speedup"), "met": med("ort_pruned_speedup") >= 3.8},
            "2_prunekit_dense_vs_ort_ge_0.8": {"value": med("prunekit_dense_vs_ort"), "met": med("prunekit_dense_vs_ort") >= 0.8},
            "3_prunekit_sparse_vs_ort_ge_2": {"value": med("prunekit_sparse_vs_ort_same_model"),
                                              "met": med("prunekit_sparse_vs_ort_same_model") >= 2},
        },
        "ort_torch_pruning_speedup": med("ort_torch_pruning_speedup"),
        "prunekit_sparse_vs_ort_dense_model": med("prunekit_sparse_vs_ort_dense_model"),
        "prunekit_sparse_vs_prunekit_dense_masked": med("prunekit_sparse_vs_prunekit_dense_masked"),
        "prunekit_pruned_speedup": med("prunekit_pruned_speedup"),
    }
    print(f"  medians over {args.rounds} rounds: " + json.dumps(summary["goals"]))
    return summary


# ---------------------------------------------------------------------------------------------
# accuracy: a small CNN with BatchNorm on Fashion-MNIST


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()

        def block(i, o):
            return [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU()]
        self.features = nn.Sequential(*block(1, 16), nn.MaxPool2d(2), *block(16, 32), nn.MaxPool2d(2), *block(32, 64),
                                      nn.Flatten())
        self.fc = nn.Linear(64 * 7 * 7, 10)

    def forward(self, x):
        return self.fc(self.features(x))


def evaluate(m, x, y):
    m.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(y), 1000):
            correct += (m(torch.from_numpy(x[i:i + 1000])).argmax(1).numpy() == y[i:i + 1000]).sum()
    return correct / len(y)


def train(m, x, y, epochs, lr, seed, cosine):
    """Adam, batch 128, the last short batch kept; lr cosine-decayed per step from lr to 0 (as
    PruneKit's fine-tuning: the rate of step s of S is lr·(1 + cos(π s / S)) / 2)."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(m.parameters(), lr=lr)
    steps = epochs * math.ceil(len(y) / 128)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps)) if cosine else 1.0)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    t0 = time.perf_counter()
    for _ in range(epochs):
        m.train()
        order = torch.randperm(len(y), generator=g)
        for i in range(0, len(y), 128):
            b = order[i:i + 128]
            opt.zero_grad()
            F.cross_entropy(m(xt[b]), yt[b]).backward()
            opt.step()
            sched.step()
    return len(y) * epochs / (time.perf_counter() - t0)


def bn_channels(bn_means, dense_means):
    """Indices of the dense channels a pruned BatchNorm kept (its running means are copied unchanged);
    None when the dense means are not all different."""
    where = {float(v): k for k, v in enumerate(dense_means)}
    if len(where) != len(dense_means):
        return None
    return sorted(where[float(v)] for v in bn_means)


def accuracy(args, d):
    print(f"== accuracy: small CNN with BatchNorm on Fashion-MNIST, {THREADS} threads")
    torch.set_num_threads(THREADS)
    xtr, ytr = fashion(True)
    xte, yte = fashion(False)
    torch.manual_seed(0)
    dense = SmallCNN()
    sps = train(dense, xtr, ytr, args.train_epochs, 1e-3, 0, cosine=False)
    acc_dense = evaluate(dense, xte, yte)
    print(f"  PyTorch dense, {args.train_epochs} epochs (Adam 1e-3, batch 128, seed 0): test accuracy {acc_dense:.4f} "
          f"({sps:.0f} samples/s)")
    src = os.path.join(d, "cnn.onnx")
    torch.onnx.export(dense, torch.randn(1, 1, 28, 28), src, opset_version=17, dynamo=False, do_constant_folding=False,
                      input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "N"}, "y": {0: "N"}})
    ops = sorted({n.op_type for n in onnx.load(src).graph.node})
    print(f"  exported with BatchNorm kept: operators {', '.join(ops)}")
    acc_dense_ort = float((ort_run(session(src), xte).argmax(1) == yte).mean())
    pruned = os.path.join(d, "cnn-ch50.onnx")
    rep = json.loads(prunekit(args.prunekit, "prune", "--model-file", src, "--structure", "channels", "--method", "l1",
                              "--scope", "layer", "--amount", "0.5", "--out", pruned, "--json"))
    agree(args.prunekit, pruned, xte[:64], d, "pruned CNN")
    ref = SmallCNN()
    ref.load_state_dict(dense.state_dict())
    ref.eval()
    import torch_pruning as tp
    ex = torch.randn(1, 1, 28, 28)
    macs0, params0 = tp.utils.count_ops_and_params(ref, ex)
    tp.pruner.MagnitudePruner(ref, ex, importance=tp.importance.MagnitudeImportance(p=1), pruning_ratio=0.5,
                              ignored_layers=[ref.fc]).step()
    macs1, params1 = tp.utils.count_ops_and_params(ref, ex)
    acc_tp_oneshot = evaluate(ref, xte, yte)
    # which channels each side kept (BatchNorm running means identify them)
    pm = onnx.load(pruned)
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in pm.graph.initializer}
    for node in pm.graph.node:  # the exporter shares equal initializers through Identity nodes
        if node.op_type == "Identity" and node.input[0] in inits:
            inits[node.output[0]] = inits[node.input[0]]
    bns = [n for n in pm.graph.node if n.op_type == "BatchNormalization"]
    dense_bns = [m for m in dense.modules() if isinstance(m, nn.BatchNorm2d)]
    tp_bns = [m for m in ref.modules() if isinstance(m, nn.BatchNorm2d)]
    overlap = []
    for bn, dbn, tbn in zip(bns, dense_bns, tp_bns):
        dm = dbn.running_mean.numpy()
        a, b = bn_channels(inits[bn.input[3]], dm), bn_channels(tbn.running_mean.numpy(), dm)
        overlap.append(f"{len(set(a) & set(b))}/{len(b)}" if a is not None and b is not None else "n/a")
    print(f"  PruneKit prune: MACs {rep['macs_before']} → {rep['macs_after']}, params {rep['params_before']} → {rep['params_after']}")
    print(f"  Torch-Pruning: MACs {int(macs0)} → {int(macs1)}, params {int(params0)} → {int(params1)}; one-shot accuracy "
          f"{acc_tp_oneshot:.4f}; channels kept by both, per layer: {', '.join(overlap)}")
    runs = []
    for seed in args.seeds:
        tuned = os.path.join(d, f"cnn-ch50-ft-s{seed}.onnx")
        t0 = time.perf_counter()
        r = json.loads(prunekit(args.prunekit, "finetune", "--model-file", pruned, "--data", DATA, "--epochs", "2", "--lr", "3e-3",
                                "--batch", "128", "--seed", str(seed), "--mean", str(MEAN), "--std", str(STD), "--out", tuned,
                                "--threads", str(THREADS), "--json"))
        pk_secs = time.perf_counter() - t0
        acc_pk_ort = float((ort_run(session(tuned), xte).argmax(1) == yte).mean())
        props = {p.key: p.value for p in onnx.load(tuned).metadata_props}
        m = copy.deepcopy(ref)
        torch.manual_seed(seed)
        sps_t = train(m, xtr, ytr, 2, 3e-3, seed, cosine=True)
        acc_t = evaluate(m, xte, yte)
        diff = 100 * (r["test_accuracy"] - acc_t)
        runs.append({"seed": seed, "prunekit": r["test_accuracy"], "prunekit_onnxruntime": acc_pk_ort,
                     "prunekit_one_shot": r["test_accuracy_before"], "prunekit_samples_per_second": r["samples_per_second"],
                     "prunekit_seconds": pk_secs, "prunekit_epoch_losses": r["epoch_losses"],
                     "torch": acc_t, "torch_samples_per_second": sps_t, "difference_points": diff,
                     "contract_in_metadata": {k: v for k, v in props.items() if k.startswith("prunekit.input")},
                     "load_average": load_average()})
        print(f"  seed {seed}: PruneKit {r['test_accuracy']:.4f} (onnxruntime on the file {acc_pk_ort:.4f}, one-shot "
              f"{r['test_accuracy_before']:.4f}, {r['samples_per_second']:.0f} samples/s) vs PyTorch + Torch-Pruning "
              f"{acc_t:.4f} ({sps_t:.0f} samples/s): {diff:+.2f} points; load {load_average()}")
    diffs = [x["difference_points"] for x in runs]
    return {
        "dense_accuracy_torch": acc_dense, "dense_accuracy_onnxruntime": acc_dense_ort, "train_epochs": args.train_epochs,
        "operators": ops, "prunekit_macs": [rep["macs_before"], rep["macs_after"]],
        "prunekit_params": [rep["params_before"], rep["params_after"]],
        "torch_pruning_macs": [int(macs0), int(macs1)], "torch_pruning_params": [int(params0), int(params1)],
        "torch_pruning_one_shot": acc_tp_oneshot, "channels_kept_by_both": overlap, "runs": runs,
        "mean_difference_points": statistics.mean(diffs),
        "goals": {"4_within_0.5_points": {"value": diffs, "met": all(abs(v) <= 0.5 for v in diffs)}},
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prunekit", default=os.path.join(ROOT, ".build", "release", "prunekit"))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--images", type=int, default=128)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--train-epochs", type=int, default=2)
    ap.add_argument("--parts", default="speed,accuracy")
    ap.add_argument("--keep", help="keep the written files in this folder")
    ap.add_argument("--json-out")
    args = ap.parse_args()
    args.seeds = [int(s) for s in args.seeds.split(",")]
    parts = args.parts.split(",")
    if not os.path.exists(args.prunekit):
        sys.exit(f"{args.prunekit} not found: swift build -c release")
    torch.set_num_threads(THREADS)
    info = {"cpu": cpu_name(), "cpu_flags": cpu_flags(), "cores": os.cpu_count(), "threads": THREADS,
            "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
            "versions": {"torch": torch.__version__, "torchvision": torchvision.__version__, "onnx": onnx.__version__,
                         "onnxruntime": ort.__version__},
            "load_average_start": load_average(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    print(json.dumps(info))
    d = args.keep or tempfile.mkdtemp(prefix="pk-onnx-compare-")
    os.makedirs(d, exist_ok=True)
    out = {"machine": info}
    t0 = time.perf_counter()
    if "speed" in parts:
        out["speed"] = speed(args, d)
    if "accuracy" in parts:
        out["accuracy"] = accuracy(args, d)
    out["machine"]["load_average_end"] = load_average()
    out["wall_seconds"] = time.perf_counter() - t0
    if not args.keep:
        for f in os.listdir(d):
            os.remove(os.path.join(d, f))
        os.rmdir(d)
    print(json.dumps(out, indent=1))
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
