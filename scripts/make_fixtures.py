#!/usr/bin/env python3
"""Writes the PyTorch fixtures the Swift tests compare against (Tests/PruneKitTests/Fixtures/).

Each fixture is a safetensors file written by torch with fixed seeds; metadata records the torch
version. Run with a Python that has torch and safetensors:  python scripts/make_fixtures.py
"""
import copy
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


def prune_functions():
    """Every torch.nn.utils.prune function on fixed random weights (continuous values: no ties)."""
    torch.manual_seed(7)
    t, meta = {}, {"torch": torch.__version__}

    def lin(name, o, i):
        m = nn.Linear(i, o)
        t[name + ".weight"] = m.weight.detach().clone()
        return m

    def done(name, m, param="weight"):
        t[name + ".mask"] = getattr(m, param + "_mask").detach().clone().float()

    m = lin("l1_half", 10, 20); prune.l1_unstructured(m, "weight", amount=0.5); done("l1_half", m)
    m = lin("l1_count", 6, 5); prune.l1_unstructured(m, "weight", amount=7); done("l1_count", m)
    m = lin("l1_round_down", 2, 5); prune.l1_unstructured(m, "weight", amount=0.25); done("l1_round_down", m)  # 2.5 → 2
    m = lin("l1_round_up", 2, 5); prune.l1_unstructured(m, "weight", amount=0.35); done("l1_round_up", m)      # 3.5 → 4
    m = lin("l1_iterative", 8, 12)
    prune.l1_unstructured(m, "weight", amount=0.5); prune.l1_unstructured(m, "weight", amount=0.5)
    prune.l1_unstructured(m, "weight", amount=5); done("l1_iterative", m)
    m = lin("random_03", 9, 11); prune.random_unstructured(m, "weight", amount=0.3); done("random_03", m)
    m = lin("ln2_dim0", 8, 6); prune.ln_structured(m, "weight", amount=0.5, n=2, dim=0); done("ln2_dim0", m)
    m = lin("ln1_dim1", 5, 9); prune.ln_structured(m, "weight", amount=3, n=1, dim=1); done("ln1_dim1", m)
    m = lin("lninf_dim0", 7, 4); prune.ln_structured(m, "weight", amount=0.4, n=float("inf"), dim=0); done("lninf_dim0", m)
    m = lin("ln_iterative", 8, 5)
    prune.ln_structured(m, "weight", amount=0.5, n=2, dim=0); prune.ln_structured(m, "weight", amount=0.5, n=2, dim=0)
    done("ln_iterative", m)
    m = lin("random_structured", 10, 3); prune.random_structured(m, "weight", amount=0.5, dim=0); done("random_structured", m)
    c = nn.Conv2d(3, 6, 3); t["conv_ln2.weight"] = c.weight.detach().clone()
    prune.ln_structured(c, "weight", amount=0.5, n=2, dim=0); done("conv_ln2", c)
    a, b, d = nn.Linear(7, 5), nn.Linear(4, 3), nn.Linear(6, 2)
    for n_, mm in (("global_a", a), ("global_b", b), ("global_c", d)):
        t[n_ + ".weight"] = mm.weight.detach().clone()
    prune.global_unstructured([(a, "weight"), (b, "weight"), (d, "weight")], pruning_method=prune.L1Unstructured, amount=0.6)
    for n_, mm in (("global_a", a), ("global_b", b), ("global_c", d)):
        done(n_, mm)
    m = lin("custom", 4, 4)
    cm = (torch.rand(4, 4) > 0.5).float()
    t["custom.given"] = cm
    prune.custom_from_mask(m, "weight", cm); prune.l1_unstructured(m, "weight", amount=0.5); done("custom", m)
    m = lin("removed", 3, 6); prune.l1_unstructured(m, "weight", amount=0.5); prune.remove(m, "weight")
    t["removed.after"] = m.weight.detach().clone()
    t["removed.has_mask"] = torch.tensor([float(hasattr(m, "weight_mask"))])
    m = lin("identity", 2, 3); prune.identity(m, "weight"); done("identity", m)
    save_file({k: v.contiguous() for k, v in t.items()}, os.path.join(OUT, "prune_functions.safetensors"), metadata=meta)


def torch_models():
    """LeNet-300-100 and the cnn, trained a few steps and pruned in PyTorch; saved as safetensors in
    PyTorch's pruned form (weight_orig + weight_mask) and plain form, with logits on a fixed input."""
    torch.manual_seed(11)
    mlp = nn.Sequential()
    mlp.add_module("fc1", nn.Linear(784, 300)); mlp.add_module("relu1", nn.ReLU())
    mlp.add_module("fc2", nn.Linear(300, 100)); mlp.add_module("relu2", nn.ReLU())
    mlp.add_module("fc3", nn.Linear(100, 10))
    cnn = nn.Sequential()
    cnn.add_module("conv1", nn.Conv2d(1, 32, 5)); cnn.add_module("relu1", nn.ReLU()); cnn.add_module("pool1", nn.MaxPool2d(2))
    cnn.add_module("conv2", nn.Conv2d(32, 64, 5)); cnn.add_module("relu2", nn.ReLU()); cnn.add_module("pool2", nn.MaxPool2d(2))
    cnn.add_module("flatten", nn.Flatten()); cnn.add_module("fc", nn.Linear(1024, 10))
    x = torch.randn(16, 1, 28, 28)
    y = torch.randint(0, 10, (16,))
    for name, net, prunable in (("mlp", mlp, ("fc1", "fc2", "fc3")), ("cnn", cnn, ("conv1", "conv2", "fc"))):
        inp = x.reshape(16, 784) if name == "mlp" else x
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        for _ in range(3):
            opt.zero_grad(); nn.functional.cross_entropy(net(inp), y).backward(); opt.step()
        prune.global_unstructured([(getattr(net, n), "weight") for n in prunable], pruning_method=prune.L1Unstructured, amount=0.6)
        with torch.no_grad():
            logits = net(inp)
        sd = {k: v.detach().contiguous() for k, v in net.state_dict().items()}
        save_file(sd, os.path.join(OUT, f"torch_{name}_pruned.safetensors"), metadata={"torch": torch.__version__})
        plain = copy.deepcopy(net)
        for n in prunable:
            prune.remove(getattr(plain, n), "weight")
        save_file({k: v.detach().contiguous() for k, v in plain.state_dict().items()},
                  os.path.join(OUT, f"torch_{name}_plain.safetensors"), metadata={"torch": torch.__version__})
        save_file({"x": inp.contiguous(), "logits": logits.contiguous()}, os.path.join(OUT, f"torch_{name}_logits.safetensors"),
                  metadata={"torch": torch.__version__})


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    masked_linear_adam()
    prune_functions()
    torch_models()
    print("fixtures written to", os.path.abspath(OUT))
