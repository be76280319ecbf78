#!/usr/bin/env python3
"""A model trained elsewhere, as a new user brings it: LeNet-300-100 trained in PyTorch on
Fashion-MNIST with inputs scaled to [0, 1] (x/255, no mean/std), saved as safetensors without any
PruneKit metadata, in two layouts:

  lenet_unit_plain.safetensors   fc1.weight, fc1.bias, ...            (the trained model)
  lenet_unit_pruned.safetensors  fc1.weight_orig + fc1.weight_mask ...  (the same model after
                                 torch.nn.utils.prune.global_unstructured, L1, 50%)
  lenet_unit.json                PyTorch's test accuracy of each, and how they were made

The training is deliberately short and different from PruneKit's (plain SGD, lr 0.05, batch 64,
one epoch, PyTorch's default initialisation), so the test checks the input contract on a model that
PruneKit did not make. PruneKitTests.InputContractTests evaluates both files with
`prunekit eval --normalize unit` and expects PyTorch's accuracy within 0.001.

Usage: python scripts/make_unit_lenet_fixture.py [--data /usr/share/datasets/fashion-mnist]
       (needs torch, numpy and safetensors; writes into Tests/PruneKitTests/Fixtures/)
"""
import argparse, gzip, json, os, struct
import numpy as np
import torch
import torch.nn as nn
import torch.nn.utils.prune as prune
from safetensors.torch import save_file

FX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "PruneKitTests", "Fixtures")


def idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def mlp():
    m = nn.Sequential()
    m.add_module("fc1", nn.Linear(784, 300)); m.add_module("relu1", nn.ReLU())
    m.add_module("fc2", nn.Linear(300, 100)); m.add_module("relu2", nn.ReLU())
    m.add_module("fc3", nn.Linear(100, 10))
    return m


def accuracy(net, x, y):
    with torch.no_grad():
        return (net(x).argmax(1) == y).float().mean().item()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(2)
    load = lambda name: idx(os.path.join(args.data, name + ".gz"))
    xtr = torch.from_numpy(load("train-images-idx3-ubyte").reshape(-1, 784).astype(np.float32)) / 255
    ytr = torch.from_numpy(load("train-labels-idx1-ubyte").astype(np.int64))
    xte = torch.from_numpy(load("t10k-images-idx3-ubyte").reshape(-1, 784).astype(np.float32)) / 255
    yte = torch.from_numpy(load("t10k-labels-idx1-ubyte").astype(np.int64))

    net = mlp()
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    order = torch.randperm(len(ytr))
    for i in range(0, len(order), 64):
        b = order[i:i + 64]
        opt.zero_grad()
        nn.functional.cross_entropy(net(xtr[b]), ytr[b]).backward()
        opt.step()
    plain_acc = accuracy(net, xte, yte)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()},
              os.path.join(FX, "lenet_unit_plain.safetensors"), metadata={"format": "pt"})

    prune.global_unstructured([(net.fc1, "weight"), (net.fc2, "weight"), (net.fc3, "weight")],
                              pruning_method=prune.L1Unstructured, amount=0.5)
    pruned_acc = accuracy(net, xte, yte)
    sd = net.state_dict()
    assert "fc1.weight_orig" in sd and "fc1.weight_mask" in sd
    save_file({k: v.contiguous() for k, v in sd.items()},
              os.path.join(FX, "lenet_unit_pruned.safetensors"), metadata={"format": "pt"})
    # what the normalisation PruneKit assumed before issue 13 gives: the failure this fixture shows
    mean, std = 0.2860, 0.3530
    wrong_acc = accuracy(net, (xte - mean) / std, yte)
    info = {"normalize": "unit (x/255)", "training": "SGD lr 0.05, batch 64, 1 epoch, torch.manual_seed(0)",
            "pruning": "prune.global_unstructured L1 50% of fc1/fc2/fc3 weights",
            "plain_test_accuracy": plain_acc, "pruned_test_accuracy": pruned_acc,
            "pruned_accuracy_with_mean_std_inputs": wrong_acc, "torch": torch.__version__}
    with open(os.path.join(FX, "lenet_unit.json"), "w") as f:
        json.dump(info, f, indent=1, sort_keys=True)
        f.write("\n")
    print(json.dumps(info, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
