#!/usr/bin/env python3
"""Fixtures for PruneKit's resnet18 and mobilenetv2 (torchvision's names and topology, small-image stems).

torchvision.models.resnet18(num_classes=10) with conv1 = Conv2d(1, 64, 3, 1, 1, bias=False) and
maxpool = Identity(), as issue 14 defines PruneKit's resnet18, then every width divided by 8
(8/16/32/64 channels) so the committed file stays small: same names, same strides, paddings,
downsample projections and BatchNorms, only narrower (PruneKit takes the widths from the weights,
as it does for structurally pruned files). BatchNorm weights, biases and running statistics are
randomised (a few training-mode passes, then random affine parameters) so evaluation mode is
exercised. Writes Tests/PruneKitTests/Fixtures/torch_resnet18_narrow.safetensors (the state_dict,
num_batches_tracked included) and torch_resnet18_io.safetensors (x: 3×1×28×28, logits in eval mode).

mobilenetv2: torchvision.models.mobilenet_v2(width_mult=0.25, num_classes=10) with the stem
convolution replaced by Conv2d(1, 8, 3, stride 1, padding 1, bias=False) (PruneKit's stride-1 stem for
28×28 images), BatchNorms randomised the same way: torch_mobilenetv2_narrow.safetensors and
torch_mobilenetv2_io.safetensors.

Usage: python scripts/make_torchvision_fixtures.py   (needs torch, torchvision, safetensors)
"""
import os
import torch
import torch.nn as nn
from safetensors.torch import save_file

FX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "PruneKitTests", "Fixtures")


def narrow(module, factor):
    """Replaces every Conv2d, BatchNorm2d and Linear by one with 1/factor of the channels (inputs of 1 stay 1)."""
    for name, child in module.named_children():
        if isinstance(child, nn.Conv2d):
            i = child.in_channels if child.in_channels == 1 else child.in_channels // factor
            setattr(module, name, nn.Conv2d(i, child.out_channels // factor, child.kernel_size, child.stride, child.padding,
                                            bias=child.bias is not None))
        elif isinstance(child, nn.BatchNorm2d):
            setattr(module, name, nn.BatchNorm2d(child.num_features // factor))
        elif isinstance(child, nn.Linear):
            setattr(module, name, nn.Linear(child.in_features // factor, child.out_features))
        else:
            narrow(child, factor)


def randomise_batchnorm(m, size=28):
    """A few training-mode passes on size × size random images, then random BatchNorm affine parameters; leaves m in eval mode."""
    m.train()
    with torch.no_grad():
        for _ in range(3):
            m(torch.randn(8, 1, size, size) * 1.5 + 0.3)
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.3, 0.3)
    m.eval()


def save(m, name):
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        logits = m(x)
    sd = {k: v.contiguous() for k, v in m.state_dict().items()}
    save_file(sd, os.path.join(FX, f"torch_{name}_narrow.safetensors"), metadata={"format": "pt"})
    save_file({"x": x.contiguous(), "logits": logits.contiguous()}, os.path.join(FX, f"torch_{name}_io.safetensors"))
    print(f"{name}: {sum(v.numel() for v in sd.values())} values; logits scale {logits.abs().max().item():.3f}")


def mobilenet():
    import torchvision  # imported where used: other scripts import randomise_batchnorm without it
    torch.manual_seed(1)
    m = torchvision.models.mobilenet_v2(width_mult=0.25, num_classes=10)
    out = m.features[0][0].out_channels
    m.features[0][0] = nn.Conv2d(1, out, 3, 1, 1, bias=False)
    randomise_batchnorm(m)
    save(m, "mobilenetv2")


def main():
    import torchvision
    mobilenet()
    torch.manual_seed(0)
    m = torchvision.models.resnet18(num_classes=10)
    m.conv1 = nn.Conv2d(1, 64, 3, 1, 1, bias=False)
    m.maxpool = nn.Identity()
    narrow(m, 8)
    randomise_batchnorm(m)
    save(m, "resnet18")


if __name__ == "__main__":
    main()
