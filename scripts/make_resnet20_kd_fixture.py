#!/usr/bin/env python3
"""Fixture for one distillation training step of a ResNet-20, computed by PyTorch (issue 14).

Student: this repository's ResNet-20 (scripts/compare_resnet20_torch.py, PruneKit's topology) with
75 % of the channels of every group removed by Torch-Pruning's MagnitudePruner (4/8/16 channels,
as `prunekit prune --structure channels` leaves a pruned file: PruneKit takes the widths from the
weights). Teacher: another ResNet-20 pruned to 2/4/8 channels (any network with 10 outputs will do;
small keeps the file small), in evaluation mode, its classifier scaled so its logits span a few units. Both have randomised BatchNorm affine parameters
and running statistics, so the student's BatchNorm backward runs with γ ≠ 1, β ≠ 0 and the teacher's
evaluation mode uses non-trivial statistics. Input: 16 random 1×16×16 images, random labels.

One step in training mode: loss = 0.5·CE(s, y) + 0.5·T²·KL(softmax(t/T) ‖ softmax(s/T)), T = 2,
batch mean (PruneKit's `Distillation()` defaults). Writes
Tests/PruneKitTests/Fixtures/torch_resnet20_kd_step.safetensors:
  student.<name>, teacher.<name>  the state_dicts before the step;
  x (16×1×16×16), y (16, as float), loss (1);
  grad.<name>     ∂loss/∂parameter for every student parameter;
  after.<name>    the student's running statistics after the step (momentum 0.1, unbiased variance).

Usage: python scripts/make_resnet20_kd_fixture.py   (needs torch, torch-pruning, safetensors)
"""
import os, sys
import torch
import torch.nn.functional as F
import torch_pruning as tp
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare_resnet20_torch import ResNet20, kd_loss  # noqa: E402
from make_torchvision_fixtures import randomise_batchnorm  # noqa: E402

FX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "PruneKitTests", "Fixtures")


def narrow_resnet20(seed, ratio):
    torch.manual_seed(seed)
    m = ResNet20()
    m.eval()
    tp.pruner.MagnitudePruner(m, torch.randn(1, 1, 16, 16), importance=tp.importance.MagnitudeImportance(p=1),
                              pruning_ratio=ratio, ignored_layers=[m.fc]).step()
    randomise_batchnorm(m, size=16)
    return m


def main():
    student, teacher = narrow_resnet20(0, 0.75), narrow_resnet20(1, 0.875)
    teacher.eval()
    with torch.no_grad():
        teacher.fc.weight.mul_(25)  # logits of a few units, as a trained teacher's, so the KL term matters
    g = torch.Generator().manual_seed(2)
    x = torch.randn(16, 1, 16, 16, generator=g)
    y = torch.randint(0, 10, (16,), generator=g)
    out = {f"student.{k}": v.clone().contiguous() for k, v in student.state_dict().items()}
    out.update({f"teacher.{k}": v.clone().contiguous() for k, v in teacher.state_dict().items()})
    student.train()
    with torch.no_grad():
        t = teacher(x)
    loss = kd_loss(student(x), t, y)
    loss.backward()
    out.update({f"grad.{k}": p.grad.contiguous() for k, p in student.named_parameters()})
    out.update({f"after.{k}": v.clone().contiguous() for k, v in student.state_dict().items() if "running" in k})
    out.update({"x": x.contiguous(), "y": y.float(), "loss": loss.detach().reshape(1)})
    save_file(out, os.path.join(FX, "torch_resnet20_kd_step.safetensors"), metadata={"format": "pt"})
    n = sum(v.numel() for k, v in out.items())
    print(f"{n} values; loss {loss.item():.4f}; teacher logits scale {t.abs().max().item():.3f}")


if __name__ == "__main__":
    main()
