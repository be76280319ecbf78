#!/usr/bin/env python3
"""Issue 15, point 1: PruneKit reads opsets 13-18. Exports each fixture network of
make_onnx_fixtures.py (resnet18, resnet50, mobilenet_v2, mobilenet_v3_small, the DenseNet-style
network, the MLP) with torch.onnx.export(opset_version=13..18, dynamo=False), runs it in onnxruntime
and through `prunekit infer`, and prints the worst difference relative to the output scale (goal
1e-4). Needs torch, torchvision, onnx, onnxruntime.

Usage: /opt/torchenv/bin/python scripts/check_onnx_opsets.py [--prunekit .build/release/prunekit]
"""
import argparse, os, subprocess, sys, tempfile
import numpy as np
import onnx
import onnxruntime as ort
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_onnx_fixtures as fx  # noqa: E402


def main():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    ap = argparse.ArgumentParser()
    ap.add_argument("--prunekit", default=os.path.join(root, ".build", "release", "prunekit"))
    args = ap.parse_args()
    models = [("resnet18", fx.resnet18, (1, 16, 16)), ("resnet50", fx.resnet50, (3, 32, 32)),
              ("mobilenetv2", fx.mobilenetv2, (1, 16, 16)), ("mobilenetv3", fx.mobilenetv3, (1, 32, 32)),
              ("densenet", fx.densenet, (1, 16, 16)), ("mlp", fx.mlp, (20,))]
    failures = 0
    with tempfile.TemporaryDirectory() as d:
        for name, make, shape in models:
            m = make().eval()
            x = torch.randn(4, *shape)
            np.save(os.path.join(d, "x.npy"), x.numpy())
            for opset in range(13, 19):
                path = os.path.join(d, f"{name}-{opset}.onnx")
                torch.onnx.export(m, x, path, opset_version=opset, dynamo=False, input_names=["x"], output_names=["y"])
                onnx.checker.check_model(onnx.load(path))
                want = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"x": x.numpy()})[0]
                r = subprocess.run([args.prunekit, "infer", "--model-file", path, "--input", os.path.join(d, "x.npy"),
                                    "--output", os.path.join(d, "y.npy")], capture_output=True, text=True)
                if r.returncode != 0:
                    failures += 1
                    print(f"FAIL {name} opset {opset}: {r.stderr.strip()}")
                    continue
                err = float(np.abs(np.load(os.path.join(d, "y.npy")) - want).max() / np.abs(want).max())
                ok = err <= 1e-4
                failures += not ok
                print(f"{'ok  ' if ok else 'FAIL'} {name} opset {opset}: {err:.2e} of the output scale")
    print("all opsets read" if failures == 0 else f"{failures} failures")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
