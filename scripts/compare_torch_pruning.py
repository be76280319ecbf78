#!/usr/bin/env python3
"""PruneKit's dependency-aware channel pruning beside Torch-Pruning 1.6 on the same work.

resnet18 as issue 14 defines it (torchvision's, conv1 = Conv2d(1, 64, 3, 1, 1, bias=False),
maxpool = Identity(), 10 classes), 50 % of the channels of every group by L1 magnitude
(tp.pruner.MagnitudePruner, pruning_ratio=0.5, global_pruning=False), classifier excluded. Writes
the reference figures Torch-Pruning reports (MACs and parameters before and after, by its own
count_ops_and_params, and every convolution's output channels after pruning) to
Tests/PruneKitTests/Fixtures/torch_pruning_resnet18.json, which TorchPruningComparisonTests
checks PruneKit against.

With --prunekit PATH (a built prunekit binary) it also times inference of the dense and the pruned
model side by side, batch 64, 2 threads: PyTorch (eager) on Torch-Pruning's pruned model, and
PruneKit's `bench infer` on its own pruned model (prunekit prune --model resnet18 ...).

Usage: python scripts/compare_torch_pruning.py [--prunekit .build/release/prunekit]
       (needs torch, torchvision, torch-pruning, safetensors)
"""
import argparse, json, os, subprocess, tempfile, time
import torch
import torch.nn as nn
import torchvision
import torch_pruning as tp

FX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "PruneKitTests", "Fixtures")


def resnet18():
    m = torchvision.models.resnet18(num_classes=10)
    m.conv1 = nn.Conv2d(1, 64, 3, 1, 1, bias=False)
    m.maxpool = nn.Identity()
    return m


def median_seconds(f, repeat=9):
    times = []
    for _ in range(repeat + 2):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return sorted(times[2:])[repeat // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prunekit", help="a built prunekit binary: also time PruneKit's inference")
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(2)
    m = resnet18().eval()
    x = torch.randn(1, 1, 28, 28)
    macs0, params0 = tp.utils.count_ops_and_params(m, x)
    dense = resnet18().eval()
    dense.load_state_dict(m.state_dict())
    pruner = tp.pruner.MagnitudePruner(m, x, importance=tp.importance.MagnitudeImportance(p=1), pruning_ratio=0.5,
                                       ignored_layers=[m.fc])
    pruner.step()
    macs1, params1 = tp.utils.count_ops_and_params(m, x)
    channels = {n: mod.out_channels for n, mod in m.named_modules() if isinstance(mod, nn.Conv2d)}
    ref = {"macs_before": int(macs0), "macs_after": int(macs1), "params_before": int(params0), "params_after": int(params1),
           "out_channels_after": channels, "torch_pruning": tp.__version__, "torch": torch.__version__}
    with open(os.path.join(FX, "torch_pruning_resnet18.json"), "w") as f:
        json.dump(ref, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"Torch-Pruning {tp.__version__}: MACs {macs0 / 1e6:.1f} M → {macs1 / 1e6:.1f} M, params {params0} → {params1}")
    xb = torch.randn(64, 1, 28, 28)
    with torch.no_grad():
        td = median_seconds(lambda: dense(xb))
        tpr = median_seconds(lambda: m(xb))
    print(f"PyTorch eager, batch 64, 2 threads: dense {td * 1e3:.1f} ms, pruned {tpr * 1e3:.1f} ms ({td / tpr:.2f}×)")
    if args.prunekit:
        with tempfile.TemporaryDirectory() as d:
            run = lambda *a: subprocess.run([args.prunekit, *a], check=True, capture_output=True, text=True).stdout
            run("train", "--model", "resnet18", "--epochs", "1", "--limit", "64", "--out", f"{d}/dense.safetensors")
            print(run("prune", "--model-file", f"{d}/dense.safetensors", "--structure", "channels", "--scope", "layer",
                      "--amount", "0.5", "--surgery", "--no-eval", "--out", f"{d}/pruned.safetensors", "--json"))
            print(run("bench", "infer", "--model-file", f"{d}/dense.safetensors", f"{d}/pruned.safetensors", "--batch", "64",
                      "--threads", "2", "--json"))


if __name__ == "__main__":
    main()
