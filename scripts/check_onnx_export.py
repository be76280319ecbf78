#!/usr/bin/env python3
"""Checks the ONNX files `prunekit prune --model-file M.onnx ... --out P.onnx` writes (issue 15 step 3).

For each ONNX fixture (Tests/PruneKitTests/Fixtures/onnx/onnx_*.onnx) and for torchvision's resnet18
as issue 14 defines it (conv1 = Conv2d(1, 64, 3, stride 1, padding 1, bias=False), maxpool =
Identity, 10 classes; exported with torch.onnx.export(opset_version=17, dynamo=False)):

1. `prunekit prune --structure channels --amount 0.5 --scope layer --out P.onnx --json` (and the same
   with --structure unstructured), MACs and parameters before/after from its JSON;
2. onnx.checker.check_model(P.onnx, full_check=True) (with shape inference);
3. onnxruntime runs P.onnx; its output is compared with `prunekit infer` of P.onnx (PruneKit's own
   kernels), within 1e-4 of the output scale;
4. for resnet18: Torch-Pruning's MagnitudePruner(pruning_ratio=0.5, L1, classifier ignored) MACs on
   the same network when torch_pruning is importable, and onnxruntime's dense vs pruned speed
   (batch 64, 2 intra-op threads, median of --repeats runs), with the CPU named from lscpu.

It also fine-tunes the channel-pruned mlp and DenseNet-style fixtures (`prunekit finetune --data
x/y arrays --normalize none`: BatchNorm in training mode) and checks the written files the same way,
with the input contract in their metadata_props.

It also exports torchvision's full-size resnet18 (7×7 stride-2 stem, 3×3 stride-2 padding-1 max
pool) at 3×112×112 and checks that PruneKit reads it and matches onnxruntime, dense and after
pruning 50% of its channels.

Usage: /opt/torchenv/bin/python scripts/check_onnx_export.py [--prunekit .build/release/prunekit]
       [--repeats 9] [--keep DIR]
Exit status 1 when any check fails.
"""
import argparse, json, os, statistics, subprocess, sys, tempfile, time
import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn as nn
import torchvision

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FX = os.path.join(ROOT, "Tests", "PruneKitTests", "Fixtures", "onnx")
FIXTURES = ["mlp", "resnet18", "resnet50", "mobilenetv2", "mobilenetv3", "mobilenetv3_opset13", "densenet", "dilated", "handmade"]
failures = []


def check(ok, what):
    print(("  ok    " if ok else "  FAIL  ") + what)
    if not ok:
        failures.append(what)


def cpu_name():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        fields = dict(l.split(":", 1) for l in out.splitlines() if ":" in l)
        return f"{fields.get('Model name', '?').strip()}, {fields.get('CPU(s)', '?').strip()} CPUs"
    except OSError:
        return "unknown CPU"


def session(path, threads=2):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def run_ort(path, x):
    s = session(path)
    return s.run(None, {s.get_inputs()[0].name: x})[0]


def prunekit(binary, *args):
    r = subprocess.run([binary, *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"prunekit {' '.join(args)}: {r.stderr.strip()}")
    return r.stdout


def prunekit_infer(binary, model, x, d):
    np.save(os.path.join(d, "x.npy"), np.ascontiguousarray(x, dtype=np.float32))
    prunekit(binary, "infer", "--model-file", model, "--input", os.path.join(d, "x.npy"), "--output", os.path.join(d, "y.npy"),
             "--threads", "2")
    return np.load(os.path.join(d, "y.npy"))


def compare(a, b, what):
    scale = max(float(np.abs(b).max()), 1e-3)
    err = float(np.abs(a.reshape(b.shape) - b).max())
    check(err <= 1e-4 * scale, f"{what}: max |onnxruntime − PruneKit| = {err:.3g} ({err / scale:.2g} of the scale {scale:.3g})")


def prune_and_check(binary, name, src, x, d, structure):
    out = os.path.join(d, f"{name}-{structure}.onnx")
    report = json.loads(prunekit(binary, "prune", "--model-file", src, "--structure", structure, "--amount", "0.5",
                                 "--scope", "layer", "--out", out, "--json"))
    try:
        onnx.checker.check_model(onnx.load(out), full_check=True)
        check(True, f"{name} {structure}: onnx.checker (full_check) passes")
    except Exception as e:  # noqa: BLE001 (any checker failure is reported)
        check(False, f"{name} {structure}: onnx.checker: {e}")
        return report, out
    y_ort = run_ort(out, x)
    y_pk = prunekit_infer(binary, out, x, d)
    compare(y_pk, y_ort, f"{name} {structure}")
    sizes = (os.path.getsize(src), os.path.getsize(out))
    print(f"        MACs {report['macs_before']} → {report['macs_after']}, params {report['params_before']} → "
          f"{report['params_after']}, sparsity {report['sparsity']:.3f}, file {sizes[0]} → {sizes[1]} bytes")
    return report, out


def issue14_resnet18():
    m = torchvision.models.resnet18(num_classes=10)
    m.conv1 = nn.Conv2d(1, 64, 3, 1, 1, bias=False)
    m.maxpool = nn.Identity()
    return m


def torch_pruning_half(model, ex):
    """Torch-Pruning's reference for issue 14's resnet18: a copy of `model` with 50 % of the channels of
    every group removed by L1 (MagnitudePruner p=1, pruning_ratio=0.5, fc ignored). Returns the
    pruned copy and (macs, params) before and after, as Torch-Pruning counts them."""
    import torch_pruning as tp
    tpm = issue14_resnet18()
    tpm.load_state_dict(model.state_dict())
    tpm.eval()
    before = tp.utils.count_ops_and_params(tpm, ex)
    tp.pruner.MagnitudePruner(tpm, ex, importance=tp.importance.MagnitudeImportance(p=1), pruning_ratio=0.5,
                              ignored_layers=[tpm.fc]).step()
    return tpm, before, tp.utils.count_ops_and_params(tpm, ex)


def randomise_batchnorm(m, shape):
    m.train()
    with torch.no_grad():
        for _ in range(3):
            m(torch.randn(8, *shape))
    m.eval()


def median_ms(f, repeats):
    f()  # warm-up
    f()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    default = os.path.join(ROOT, ".build", "release", "prunekit")
    if not os.path.exists(default):
        default = os.path.join(ROOT, ".build", "debug", "prunekit")
    ap.add_argument("--prunekit", default=default)
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--keep", help="keep the written files in this folder")
    args = ap.parse_args()
    print(f"machine: {cpu_name()}; prunekit {args.prunekit}")
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, onnx {onnx.__version__}, onnxruntime {ort.__version__}")
    d = args.keep or tempfile.mkdtemp(prefix="pk-onnx-check-")
    os.makedirs(d, exist_ok=True)

    from safetensors.numpy import load_file
    for name in FIXTURES:
        print(f"fixture {name}")
        src = os.path.join(FX, f"onnx_{name}.onnx")
        x = load_file(os.path.join(FX, f"onnx_{name}_io.safetensors"))["x"]
        for structure in ["channels", "unstructured"]:
            prune_and_check(args.prunekit, name, src, x, d, structure)

    # fine-tuned files: BatchNorm statistics and weights changed, contract in the metadata
    for name, shape in [("mlp", (20,)), ("densenet", (1, 16, 16))]:
        print(f"fine-tune {name}")
        src = os.path.join(FX, f"onnx_{name}.onnx")
        pruned = os.path.join(d, f"{name}-channels.onnx")
        rng = np.random.default_rng(3)
        xs = rng.standard_normal((64, *shape)).astype(np.float32)
        ys = rng.integers(0, 10 if name == "densenet" else 5, 64)
        np.savez_compressed(os.path.join(d, "train.npz"), x=xs, y=ys)
        tuned = os.path.join(d, f"{name}-tuned.onnx")
        prunekit(args.prunekit, "finetune", "--model-file", pruned, "--data", os.path.join(d, "train.npz"), "--epochs", "2",
                 "--batch", "16", "--normalize", "none", "--out", tuned, "--json")
        try:
            m = onnx.load(tuned)
            onnx.checker.check_model(m, full_check=True)
            props = {p.key: p.value for p in m.metadata_props}
            check(props.get("prunekit.input.normalize") == "none", f"{name} fine-tuned: onnx.checker passes, contract in metadata_props")
        except Exception as e:  # noqa: BLE001
            check(False, f"{name} fine-tuned: onnx.checker: {e}")
            continue
        xio = load_file(os.path.join(FX, f"onnx_{name}_io.safetensors"))["x"]  # the batch size the file declares
        compare(prunekit_infer(args.prunekit, tuned, xio, d), run_ort(tuned, xio), f"{name} fine-tuned")

    # issue 14's resnet18, exported the way users export
    print("resnet18 (issue 14's variant: 3×3 stride-1 stem on 1×28×28, no max pool, 10 classes)")
    torch.manual_seed(0)
    model = issue14_resnet18()
    randomise_batchnorm(model, (1, 28, 28))
    src = os.path.join(d, "resnet18.onnx")
    torch.onnx.export(model, torch.randn(1, 1, 28, 28), src, opset_version=17, dynamo=False, input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": {0: "N"}, "y": {0: "N"}})
    x = np.random.default_rng(0).standard_normal((8, 1, 28, 28)).astype(np.float32)
    compare(prunekit_infer(args.prunekit, src, x, d), run_ort(src, x), "resnet18 dense (PruneKit reads the export)")
    report, pruned = prune_and_check(args.prunekit, "resnet18", src, x, d, "channels")
    prune_and_check(args.prunekit, "resnet18", src, x, d, "unstructured")
    try:
        import torch_pruning as tp
        _, (macs0, params0), (macs1, params1) = torch_pruning_half(model, torch.randn(1, 1, 28, 28))
        ratio = report["macs_after"] / macs1
        print(f"  Torch-Pruning {tp.__version__}: MACs {int(macs0)} → {int(macs1)}, params {int(params0)} → {int(params1)}; "
              f"PruneKit/Torch-Pruning MACs after = {ratio:.4f}")
        check(abs(ratio - 1) <= 0.01, "resnet18: MACs after pruning within 1% of Torch-Pruning's")
    except ImportError:
        print("  torch_pruning is not importable: no Torch-Pruning comparison")
    xb = np.random.default_rng(1).standard_normal((64, 1, 28, 28)).astype(np.float32)
    sd, sp = session(src), session(pruned)
    td = median_ms(lambda: sd.run(None, {"x": xb}), args.repeats)
    tpr = median_ms(lambda: sp.run(None, {"x": xb}), args.repeats)
    print(f"  onnxruntime {ort.__version__}, batch 64, 2 threads, median of {args.repeats}: dense {td:.1f} ms, "
          f"pruned {tpr:.1f} ms ({td / tpr:.2f}×) on {cpu_name()}")

    # torchvision's full-size stem: 7×7 stride 2 padding 3, max pool 3×3 stride 2 padding 1
    print("resnet18 with torchvision's full-size stem (3×112×112)")
    torch.manual_seed(1)
    full = torchvision.models.resnet18(num_classes=10)
    randomise_batchnorm(full, (3, 112, 112))
    src = os.path.join(d, "resnet18_stem.onnx")
    torch.onnx.export(full, torch.randn(1, 3, 112, 112), src, opset_version=17, dynamo=False, input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": {0: "N"}, "y": {0: "N"}})
    x = np.random.default_rng(2).standard_normal((2, 3, 112, 112)).astype(np.float32)
    compare(prunekit_infer(args.prunekit, src, x, d), run_ort(src, x), "resnet18 full stem dense")
    prune_and_check(args.prunekit, "resnet18_stem", src, x, d, "channels")

    if not args.keep:
        for f in os.listdir(d):
            os.remove(os.path.join(d, f))
        os.rmdir(d)
    print(f"{len(failures)} failure(s)" if failures else "all checks passed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
