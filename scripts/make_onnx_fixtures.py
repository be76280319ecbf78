#!/usr/bin/env python3
"""ONNX fixtures for PruneKit's ONNX reader (issue 15): small models exported from PyTorch, each with
an input batch and onnxruntime's output, plus hand-made files for the operators PyTorch drops on
export (Identity, Dropout) and one bad file per class of untrusted input.

Models (torch.onnx.export(model, x, path, opset_version=17, dynamo=False), eval mode):
- mlp:        Linear (Gemm) → Sigmoid, then x @ W + b (MatMul + Add), ReLU6 (Clip 0..6), Linear.
- resnet18:   torchvision resnet18(num_classes=10), conv1 = 3×3 stride 1 with 1 input channel, maxpool =
              Identity, every width divided by 16 (4/8/16/32 channels); BatchNorms randomised. The
              exporter folds each BatchNorm into its Conv.
- resnet50:   torchvision resnet50(num_classes=10) with its full stem (Conv 7×7 stride 2 padding 3 on 3
              channels, MaxPool 3×3 stride 2 padding 1) and bottleneck blocks, every width divided by 16
              (stem 4 channels, bottlenecks 4-32 wide, 16-128 out), 3×32×32; BatchNorms randomised.
- mobilenetv2: torchvision mobilenet_v2(width_mult=0.25) with a shortened block list, a 1-channel
              stride-1 stem and a 64-channel last convolution (Clip as ReLU6, depthwise convolutions).
- mobilenetv3: torchvision mobilenet_v3_small(width_mult=0.25) with its first 6 blocks, a 64-wide
              classifier and a 1-channel stem (HardSwish, HardSigmoid, squeeze-excitation Mul).
- mobilenetv3_opset13: the same network exported at opset 13, which has no HardSwish: PyTorch writes
              x · HardSigmoid(x), a Mul of two equal shapes.
- densenet:   a DenseNet-style network: pre-activation BatchNorm-ReLU-Conv layers whose outputs are
              concatenated, a transition (1×1 conv, AveragePool), MaxPool, GlobalAveragePool,
              Reshape to [-1, C] and Gemm.
- dilated:    torchvision's full-size stem (Conv 7×7 stride 2 padding 3, BatchNorm, ReLU, MaxPool 3×3 stride 2
              padding 1) at 8 channels on 3×32×32, then dilated convolutions (3×3 dilation 2, a depthwise 3×3
              dilation 2, a 2×2 dilation 3 with stride 2) and a residual join, global pooling and a Linear.
- handmade:   onnx.helper graph: MatMul with an initializer weight, Add bias, Identity, Dropout,
              Relu, Gemm with transB = 0 and alpha/beta ≠ 1, Flatten.
- mlp_external: the mlp with its initializers in mlp_external.bin next to it (external data).

Each model M gets onnx_M.onnx and onnx_M_io.safetensors (x: the input batch, y: onnxruntime's output).
Training arrays for `prunekit finetune` on the mlp (96 examples of 20 features, 5 classes given by a
fixed random linear map): onnx_mlp_train.npz (np.savez_compressed: x float32, y int64),
onnx_mlp_train_stored.npz (np.savez: the same x, y as int32) and onnx_mlp_train.safetensors (the same
x and y written by the safetensors package: the reference the .npz reader is checked against).
Bad inputs (bad_*.onnx): a conv dilated unequally along its axes, an unsupported operator, a dynamic spatial dimension, a
tensor whose bytes disagree with its shape, absurd dimensions, external data escaping the folder
(../ and an absolute path), an external file that is too short, a Clip that is not ReLU6/ReLU.

Usage: /opt/torchenv/bin/python scripts/make_onnx_fixtures.py
Versions used are printed and stored in Fixtures/onnx_versions.txt.
"""
import os
import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn as nn
import torchvision
from onnx import TensorProto, helper, numpy_helper
from safetensors.numpy import save_file

FX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "PruneKitTests", "Fixtures", "onnx")


def narrow(module, factor):
    """Every Conv2d, BatchNorm2d and Linear with 1/factor of its channels (inputs of 1 stay 1)."""
    for name, child in module.named_children():
        if isinstance(child, nn.Conv2d):
            i = child.in_channels if child.in_channels == 1 else child.in_channels // factor
            setattr(module, name, nn.Conv2d(i, child.out_channels // factor, child.kernel_size, child.stride,
                                            child.padding, bias=child.bias is not None))
        elif isinstance(child, nn.BatchNorm2d):
            setattr(module, name, nn.BatchNorm2d(child.num_features // factor))
        elif isinstance(child, nn.Linear):
            setattr(module, name, nn.Linear(child.in_features // factor, child.out_features))
        else:
            narrow(child, factor)


def randomise_batchnorm(m, shape):
    """A few training-mode passes, then random affine parameters: evaluation mode is exercised."""
    m.train()
    with torch.no_grad():
        for _ in range(3):
            m(torch.randn(8, *shape) * 1.5 + 0.3)
        for mod in m.modules():
            if isinstance(mod, (nn.BatchNorm2d, nn.BatchNorm1d)):
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.3, 0.3)
    m.eval()


def run_ort(path, x):
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def save_io(name, path, x):
    y = run_ort(path, x)
    save_file({"x": np.ascontiguousarray(x), "y": np.ascontiguousarray(y)}, os.path.join(FX, f"onnx_{name}_io.safetensors"))
    print(f"{name}: {os.path.getsize(path)} bytes, output {y.shape}, scale {np.abs(y).max():.3f}")


def export(name, model, shape, batch=2, opset=17, **kw):
    model.eval()
    x = torch.randn(batch, *shape)
    path = os.path.join(FX, f"onnx_{name}.onnx")
    torch.onnx.export(model, x, path, opset_version=opset, dynamo=False, input_names=["x"], output_names=["y"], **kw)
    onnx.checker.check_model(onnx.load(path))
    save_io(name, path, x.numpy())
    return path


class MatMulAdd(nn.Module):
    def __init__(self, i, o):
        super().__init__()
        self.w = nn.Parameter(torch.randn(i, o) / i ** 0.5)
        self.b = nn.Parameter(torch.randn(o) * 0.1)

    def forward(self, x):
        return torch.matmul(x, self.w) + self.b


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(20, 16), nn.Sigmoid(), MatMulAdd(16, 12), nn.ReLU6(), nn.Linear(12, 5))


def resnet18():
    torch.manual_seed(1)
    m = torchvision.models.resnet18(num_classes=10)
    m.conv1 = nn.Conv2d(1, 64, 3, 1, 1, bias=False)
    m.maxpool = nn.Identity()
    narrow(m, 16)
    randomise_batchnorm(m, (1, 16, 16))
    return m


def resnet50():
    torch.manual_seed(7)
    m = torchvision.models.resnet50(num_classes=10)
    narrow(m, 16)
    m.conv1 = nn.Conv2d(3, 4, 7, 2, 3, bias=False)  # narrow() keeps inputs of 1 only
    randomise_batchnorm(m, (3, 32, 32))
    return m


def mobilenetv2():
    torch.manual_seed(2)
    setting = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 2, 2], [6, 64, 1, 1]]
    m = torchvision.models.mobilenet_v2(width_mult=0.25, num_classes=10, inverted_residual_setting=setting)
    out = m.features[0][0].out_channels
    m.features[0][0] = nn.Conv2d(1, out, 3, 1, 1, bias=False)
    last_in = m.features[-1][0].in_channels
    m.features[-1] = torchvision.ops.Conv2dNormActivation(last_in, 64, kernel_size=1, activation_layer=nn.ReLU6)
    m.classifier[1] = nn.Linear(64, 10)
    randomise_batchnorm(m, (1, 16, 16))
    return m


def mobilenetv3():
    torch.manual_seed(3)
    settings, _ = torchvision.models.mobilenetv3._mobilenet_v3_conf("mobilenet_v3_small", width_mult=0.25)
    m = torchvision.models.mobilenetv3.MobileNetV3(settings[:6], last_channel=64, num_classes=10)
    stem = m.features[0][0]
    m.features[0][0] = nn.Conv2d(1, stem.out_channels, 3, 2, 1, bias=False)
    for mod in m.classifier:
        if isinstance(mod, nn.Linear):
            mod.reset_parameters()  # torchvision's N(0, 0.01) makes the logits vanish
    randomise_batchnorm(m, (1, 32, 32))
    return m


class DenseLayer(nn.Module):
    def __init__(self, c, growth):
        super().__init__()
        self.bn = nn.BatchNorm2d(c)
        self.conv = nn.Conv2d(c, growth, 3, padding=1, bias=False)

    def forward(self, x):
        return torch.cat([x, self.conv(torch.relu(self.bn(x)))], 1)


class DenseNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=1)
        self.pool0 = nn.MaxPool2d(2)
        self.block1 = nn.Sequential(DenseLayer(8, 4), DenseLayer(12, 4))
        self.trans = nn.Sequential(nn.BatchNorm2d(16), nn.ReLU(), nn.Conv2d(16, 8, 1, bias=False), nn.AvgPool2d(2))
        self.block2 = nn.Sequential(DenseLayer(8, 4), DenseLayer(12, 4))
        self.norm = nn.BatchNorm2d(16)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.block2(self.trans(self.block1(self.pool0(self.stem(x)))))
        x = torch.relu(self.norm(x))
        x = nn.functional.adaptive_avg_pool2d(x, 1).reshape(-1, 16)
        return self.fc(x)


def densenet():
    torch.manual_seed(4)
    m = DenseNet()
    randomise_batchnorm(m, (1, 16, 16))
    return m


class Dilated(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=2, dilation=2, bias=False)
        self.bn2 = nn.BatchNorm2d(8)
        self.dw = nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=8)
        self.conv3 = nn.Conv2d(8, 12, 2, stride=2, padding=1, dilation=3)
        self.bn3 = nn.BatchNorm2d(12)
        self.fc = nn.Linear(12, 10)

    def forward(self, x):
        x = self.maxpool(torch.relu(self.bn1(self.conv1(x))))
        x = x + torch.relu(self.dw(torch.relu(self.bn2(self.conv2(x)))))
        x = torch.relu(self.bn3(self.conv3(x)))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def dilated():
    torch.manual_seed(6)
    m = Dilated()
    randomise_batchnorm(m, (3, 32, 32))
    return m


def tensor(name, a):
    return numpy_helper.from_array(np.asarray(a, dtype=np.float32), name)


def model_of(nodes, inits, in_shape, out_shape, opset=17):
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="make_onnx_fixtures")


def handmade():
    rng = np.random.default_rng(5)
    nodes = [
        helper.make_node("Flatten", ["x"], ["f"], name="flatten", axis=1),
        helper.make_node("MatMul", ["f", "mm.weight"], ["mm"], name="matmul"),
        helper.make_node("Add", ["mm", "mm.bias"], ["mmb"], name="add_bias"),
        helper.make_node("Identity", ["mmb"], ["id"], name="identity"),
        helper.make_node("Relu", ["id"], ["r"], name="relu"),
        helper.make_node("Dropout", ["r"], ["d"], name="dropout"),
        helper.make_node("Gemm", ["d", "fc.weight", "fc.bias"], ["y"], name="gemm", transB=0, alpha=0.5, beta=2.0),
    ]
    inits = [tensor("mm.weight", rng.standard_normal((12, 8)) * 0.3), tensor("mm.bias", rng.standard_normal(8) * 0.1),
             tensor("fc.weight", rng.standard_normal((8, 3)) * 0.3), tensor("fc.bias", rng.standard_normal(3) * 0.1)]
    m = model_of(nodes, inits, ["N", 3, 4], ["N", 3])
    onnx.checker.check_model(m)
    path = os.path.join(FX, "onnx_handmade.onnx")
    onnx.save(m, path)
    save_io("handmade", path, rng.standard_normal((4, 3, 4)).astype(np.float32))


def external():
    src = os.path.join(FX, "onnx_mlp.onnx")
    m = onnx.load(src)
    path = os.path.join(FX, "onnx_mlp_external.onnx")
    data = os.path.join(FX, "onnx_mlp_external.bin")
    if os.path.exists(data):
        os.remove(data)  # onnx appends to an existing external file
    onnx.save_model(m, path, save_as_external_data=True, all_tensors_to_one_file=True,
                    location="onnx_mlp_external.bin", size_threshold=0)
    onnx.checker.check_model(path)


def train_arrays():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((96, 20)).astype(np.float32)
    y = np.argmax(x @ rng.standard_normal((20, 5)), axis=1).astype(np.int64)
    np.savez_compressed(os.path.join(FX, "onnx_mlp_train.npz"), x=x, y=y)
    np.savez(os.path.join(FX, "onnx_mlp_train_stored.npz"), x=x, y=y.astype(np.int32))
    save_file({"x": x, "y": y}, os.path.join(FX, "onnx_mlp_train.safetensors"))


def bad_files():
    """One small file per class of bad input; each must be refused with one line."""
    conv_w = tensor("w", np.ones((2, 1, 3, 3)))

    def save(name, m):
        onnx.save(m, os.path.join(FX, f"bad_{name}.onnx"))

    save("dilation", model_of([helper.make_node("Conv", ["x", "w"], ["y"], name="dilated_conv", dilations=[2, 1])],
                              [conv_w], [1, 1, 8, 8], [1, 2, 4, 6]))
    save("operator", model_of([helper.make_node("Softmax", ["x"], ["y"], name="the_softmax", axis=1)], [], [1, 4], [1, 4]))
    save("dynamic", model_of([helper.make_node("Relu", ["x"], ["y"], name="relu")], [], ["N", 1, "H", 8], ["N", 1, "H", 8]))
    short = tensor("w", np.ones((2, 1, 3, 3)))
    short.raw_data = short.raw_data[:-4]
    save("tensor_size", model_of([helper.make_node("Conv", ["x", "w"], ["y"], name="conv")], [short], [1, 1, 8, 8], [1, 2, 6, 6]))
    huge = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[1 << 40, 1 << 40, 3, 3])
    huge.raw_data = b"\0" * 16
    save("absurd_dims", model_of([helper.make_node("Conv", ["x", "w"], ["y"], name="conv")], [huge], [1, 1, 8, 8], [1, 2, 6, 6]))
    save("clip", model_of([helper.make_node("Clip", ["x", "lo", "hi"], ["y"], name="clip_1_to_2")],
                          [tensor("lo", 1.0), tensor("hi", 2.0)], [1, 4], [1, 4]))
    for name, location in [("escape_parent", "../onnx_mlp_external.bin"), ("escape_absolute", "/etc/hostname"),
                           ("external_short", "onnx_mlp_external.bin")]:
        w = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[2, 1, 3, 3], data_location=TensorProto.EXTERNAL)
        offset = "0" if name != "external_short" else str(1 << 20)
        for k, v in [("location", location), ("offset", offset), ("length", "72")]:
            e = w.external_data.add()
            e.key, e.value = k, v
        save(name, model_of([helper.make_node("Conv", ["x", "w"], ["y"], name="conv")], [w], [1, 1, 8, 8], [1, 2, 6, 6]))


def main():
    os.makedirs(FX, exist_ok=True)
    export("mlp", mlp(), (20,), batch=3)
    export("resnet18", resnet18(), (1, 16, 16))
    export("resnet50", resnet50(), (3, 32, 32))
    export("mobilenetv2", mobilenetv2(), (1, 16, 16))
    export("mobilenetv3", mobilenetv3(), (1, 32, 32))
    export("mobilenetv3_opset13", mobilenetv3(), (1, 32, 32), opset=13)
    export("densenet", densenet(), (1, 16, 16))
    export("dilated", dilated(), (3, 32, 32))
    handmade()
    external()
    train_arrays()
    bad_files()
    with open(os.path.join(FX, "onnx_versions.txt"), "w") as f:
        f.write(f"torch {torch.__version__}\ntorchvision {torchvision.__version__}\nonnx {onnx.__version__}\n"
                f"onnxruntime {ort.__version__}\nnumpy {np.__version__}\n")


if __name__ == "__main__":
    main()
