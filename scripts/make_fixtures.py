#!/usr/bin/env python3
"""Writes the PyTorch fixtures the Swift tests compare against (Tests/PruneKitTests/Fixtures/).

Each fixture is a safetensors file written by torch with fixed seeds; metadata records the torch
version. Run with a Python that has torch and safetensors:  python scripts/make_fixtures.py
"""
import os
import torch
import torch.nn as nn
import torch.nn.utils.prune as prune
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(__file__), "..", "Tests", "PruneKitTests", "Fixtures")


def masked_linear_adam():
    """A pruned nn.Linear: forward, backward with a random upstream gradient, one Adam step."""
    torch.manual_seed(1234)
    B, I, O = 5, 37, 23
    layer = nn.Linear(I, O)
    mask = (torch.rand(O, I) > 0.4).float()
    prune.custom_from_mask(layer, "weight", mask)
    x = torch.randn(B, I, requires_grad=True)
    dy = torch.randn(B, O)
    w0, b0 = layer.weight.detach().clone(), layer.bias.detach().clone()
    y = layer(x)
    (y * dy).sum().backward()  # upstream gradient dy, not all-ones
    opt = torch.optim.Adam([layer.weight_orig, layer.bias], lr=1e-2, weight_decay=0.0)
    grad_w = layer.weight_orig.grad.detach().clone()
    opt.step()
    w1 = (layer.weight_orig * layer.weight_mask).detach().clone()
    t = {"x": x.detach(), "dy": dy, "weight": w0, "bias": b0, "mask": mask, "y": y.detach(),
         "dx": x.grad.detach(), "dweight": grad_w, "dbias": layer.bias.grad.detach(),
         "weight_after_adam": w1, "bias_after_adam": layer.bias.detach().clone()}
    save_file({k: v.contiguous() for k, v in t.items()}, os.path.join(OUT, "masked_linear_adam.safetensors"),
              metadata={"torch": torch.__version__, "lr": "0.01"})


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    masked_linear_adam()
    print("fixtures written to", os.path.abspath(OUT))
