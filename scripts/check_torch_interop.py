#!/usr/bin/env python3
"""Loads the PruneKit-pruned LeNet-300-100 (PyTorch's pruned layout, committed under
Tests/PruneKitTests/Fixtures/) into PyTorch — prune.identity first, so the module has the
weight_orig / weight_mask entries its state_dict expects — and checks its logits against the ones
PruneKit computed. Also loads the plain layout (zeros in place) into an unpruned module.
Usage: python scripts/check_torch_interop.py   (needs torch and safetensors)
"""
import os, sys
import torch
import torch.nn as nn
import torch.nn.utils.prune as prune
from safetensors.torch import load_file

FX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "PruneKitTests", "Fixtures")


def mlp():
    m = nn.Sequential()
    m.add_module("fc1", nn.Linear(784, 300)); m.add_module("relu1", nn.ReLU())
    m.add_module("fc2", nn.Linear(300, 100)); m.add_module("relu2", nn.ReLU())
    m.add_module("fc3", nn.Linear(100, 10))
    return m


sd = load_file(os.path.join(FX, "prunekit_mlp_model.safetensors"))
io = load_file(os.path.join(FX, "prunekit_mlp_logits.safetensors"))
net = mlp()
for n in ("fc1", "fc2", "fc3"):
    prune.identity(getattr(net, n), "weight")
net.load_state_dict(sd)
with torch.no_grad():
    err = (net(io["x"]) - io["logits"]).abs().max().item()
sparsity = sum((getattr(net, n).weight == 0).sum().item() for n in ("fc1", "fc2", "fc3")) / sum(
    getattr(net, n).weight.numel() for n in ("fc1", "fc2", "fc3"))
plain = mlp()
plain.load_state_dict({k.replace("_orig", ""): (v * sd[k.replace("_orig", "_mask")] if k.endswith("_orig") else v)
                       for k, v in sd.items() if not k.endswith("_mask")})
with torch.no_grad():
    err_plain = (plain(io["x"]) - io["logits"]).abs().max().item()
print(f"pruned layout: max |Δlogit| {err:.2e}, sparsity {sparsity:.4f}; plain layout: max |Δlogit| {err_plain:.2e}")
sys.exit(0 if err < 1e-4 and err_plain < 1e-4 else 1)
