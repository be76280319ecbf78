/// Residual networks built from graphs, under torchvision's state_dict names:
///
/// - `resnet18`: torchvision's resnet18 for small images: `conv1` is a 3×3 convolution with stride 1
///   and padding 1 (no bias), `maxpool` is the identity, then `layer1`…`layer4` of two basic blocks
///   (64, 128, 256, 512 channels; the first block of layers 2-4 has stride 2 and a 1×1 `downsample`
///   projection with BatchNorm), global average pooling and `fc`.
/// - `resnet20`: He et al.'s CIFAR ResNet-20: a 3×3 stem of 16 channels, three layers of three basic
///   blocks (16, 32, 64 channels), 1×1 projection shortcuts where the shape changes, pooling, `fc`.
///
/// Channel counts come from the weights when a model is loaded, so structurally pruned files load.
extension Model {
    /// A fresh resnet18 (PyTorch's default initialisation; BatchNorm γ = 1, β = 0).
    public static func resnet18(inputChannels: Int = 1, classes: Int = 10, imageSize: Int = 28, seed: UInt64) throws -> Model {
        var g = SeededGenerator(seed: seed)
        return try ResNetBuilder(kind: .resnet18, inputChannels: inputChannels, classes: classes, imageSize: imageSize,
                                 shapes: nil).build(&g)
    }

    /// A fresh CIFAR ResNet-20.
    public static func resnet20(inputChannels: Int = 1, classes: Int = 10, imageSize: Int = 28, seed: UInt64) throws -> Model {
        var g = SeededGenerator(seed: seed)
        return try ResNetBuilder(kind: .resnet20, inputChannels: inputChannels, classes: classes, imageSize: imageSize,
                                 shapes: nil).build(&g)
    }
}

struct ResNetBuilder {
    enum Kind: String { case resnet18, resnet20 }
    let kind: Kind
    let inputChannels: Int
    let classes: Int
    let imageSize: Int
    /// Shapes of a state_dict to follow (nil: the architecture's own widths).
    let shapes: [String: [Int]]?

    var widths: [Int] { kind == .resnet18 ? [64, 128, 256, 512] : [16, 32, 64] }
    var blocks: Int { kind == .resnet18 ? 2 : 3 }

    func shape(_ name: String, _ fallback: [Int]) throws -> [Int] {
        guard let shapes else { return fallback }
        guard let s = shapes[name] ?? shapes[name + "_orig"] else { throw ModelError.missingTensor(name) }
        guard s.count == fallback.count else { throw ModelError.shapeMismatch(name: name, expected: fallback, got: s) }
        return s
    }

    func conv(_ name: String, _ i: Int, _ o: Int, _ k: Int, stride: Int, _ g: inout SeededGenerator) throws -> Conv2d {
        let s = try shape(name + ".weight", [o, i, k, k])
        guard s[1] == i, s[2] == k, s[3] == k else { throw ModelError.shapeMismatch(name: name + ".weight", expected: [s[0], i, k, k], got: s) }
        if shapes == nil { return try Conv2d(i, o, kernelSize: k, stride: stride, padding: k / 2, bias: false, rng: &g) }
        return try Conv2d(weight: Tensor(zeros: s), bias: nil, stride: stride, padding: k / 2)
    }

    func norm(_ name: String, _ c: Int) throws -> BatchNorm {
        let s = try shape(name + ".weight", [c])
        guard s == [c] else { throw ModelError.shapeMismatch(name: name + ".weight", expected: [c], got: s) }
        return try BatchNorm(c)
    }

    /// A convolution and the BatchNorm that alone reads its output. The Graph or Sequential that holds
    /// the pair links them, so inference folds the normalisation into the convolution's epilogue.
    func convNorm(_ convName: String, _ normName: String, _ i: Int, _ o: Int, _ k: Int, stride: Int,
                  _ g: inout SeededGenerator) throws -> (Conv2d, BatchNorm) {
        (try conv(convName, i, o, k, stride: stride, &g), try norm(normName, o))
    }

    func build(_ g: inout SeededGenerator) throws -> Model {
        let stemOut = try shape("conv1.weight", [widths[0], inputChannels, 3, 3])[0]
        let stem = try convNorm("conv1", "bn1", inputChannels, stemOut, 3, stride: 1, &g)
        var layers: [(String, any Layer)] = [("conv1", stem.0), ("bn1", stem.1), ("relu", ReLU())]
        if kind == .resnet18 { layers.append(("maxpool", Identity())) }
        var channels = stemOut
        for (li, width) in widths.enumerated() {
            var stage: [(String, any Layer)] = []
            for b in 0..<blocks {
                let p = "layer\(li + 1).\(b)"
                let stride = b == 0 && li > 0 ? 2 : 1
                let mid = try shape(p + ".conv1.weight", [width, channels, 3, 3])[0]
                let out = try shape(p + ".conv2.weight", [width, mid, 3, 3])[0]
                let first = try convNorm(p + ".conv1", p + ".bn1", channels, mid, 3, stride: stride, &g)
                let second = try convNorm(p + ".conv2", p + ".bn2", mid, out, 3, stride: 1, &g)
                var nodes: [(String, any Layer, [String])] = [
                    ("conv1", first.0, [Graph.inputName]), ("bn1", first.1, ["conv1"]), ("relu1", ReLU(), ["bn1"]),
                    ("conv2", second.0, ["relu1"]), ("bn2", second.1, ["conv2"]),
                ]
                let project = shapes.map { $0[p + ".downsample.0.weight"] != nil || $0[p + ".downsample.0.weight_orig"] != nil }
                    ?? (stride != 1 || channels != width)
                if project {
                    let proj = try convNorm(p + ".downsample.0", p + ".downsample.1", channels, out, 1, stride: stride, &g)
                    let down = Sequential([("0", proj.0), ("1", proj.1)])
                    nodes.append(("downsample", down, [Graph.inputName]))
                } else if channels != out || stride != 1 {
                    throw ModelError.shapeMismatch(name: p + ".conv2.weight", expected: [channels], got: [out])
                }
                nodes += [("add", Add(), ["bn2", project ? "downsample" : Graph.inputName]), ("relu", ReLU(), ["add"])]
                stage.append(("\(b)", try Graph(nodes)))
                channels = out
            }
            layers.append(("layer\(li + 1)", Sequential(stage)))
        }
        let fcShape = try shape("fc.weight", [classes, channels])
        guard fcShape[1] == channels else { throw ModelError.shapeMismatch(name: "fc.weight", expected: [fcShape[0], channels], got: fcShape) }
        let fc = shapes == nil ? try Linear(channels, classes, rng: &g)
            : try Linear(weight: Tensor(zeros: fcShape), bias: Tensor(zeros: [fcShape[0]]))
        layers += [("avgpool", GlobalAvgPool2d()), ("fc", fc)]
        return Model(architecture: kind.rawValue, network: Sequential(layers), inputShape: [inputChannels, imageSize, imageSize])
    }
}
