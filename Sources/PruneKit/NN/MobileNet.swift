/// MobileNetV2 under torchvision's state_dict names (`features.N...`, `classifier.1`), with a
/// stride-1 stem for small images: `features.0` is conv 3×3 (stride 1) + BatchNorm + ReLU6, then
/// seventeen inverted residual blocks (1×1 expansion + BatchNorm + ReLU6, 3×3 depthwise + BatchNorm +
/// ReLU6, 1×1 projection + BatchNorm, and a residual join when the stride is 1 and the widths
/// agree), `features.18` (1×1 conv to 1280 + BatchNorm + ReLU6), global average pooling, dropout
/// and `classifier.1`. Widths come from the weights when loading, so pruned and narrower
/// (width_mult) files load.
extension Model {
    /// A fresh MobileNetV2 (width multiplier 1).
    public static func mobilenetv2(inputChannels: Int = 1, classes: Int = 10, imageSize: Int = 28, seed: UInt64) throws -> Model {
        var g = SeededGenerator(seed: seed)
        return try MobileNetV2Builder(inputChannels: inputChannels, classes: classes, imageSize: imageSize, shapes: nil).build(&g)
    }
}

struct MobileNetV2Builder {
    let inputChannels: Int
    let classes: Int
    let imageSize: Int
    let shapes: [String: [Int]]?

    /// (expansion t, output channels c, blocks n, first stride s) of the paper's table 2.
    static let settings = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]

    func shape(_ name: String, _ fallback: [Int]) throws -> [Int] {
        guard let shapes else { return fallback }
        guard let s = shapes[name] ?? shapes[name + "_orig"] else { throw ModelError.missingTensor(name) }
        guard s.count == fallback.count else { throw ModelError.shapeMismatch(name: name, expected: fallback, got: s) }
        return s
    }

    func has(_ name: String) -> Bool { shapes.map { $0[name] != nil || $0[name + "_orig"] != nil } ?? false }

    /// conv + BatchNorm (+ ReLU6): torchvision's Conv2dNormActivation, children "0", "1", "2".
    func convNormAct(_ p: String, _ i: Int, _ o: Int, _ k: Int, stride: Int, depthwise: Bool, act: Bool,
                     _ g: inout SeededGenerator) throws -> (Sequential, Int) {
        let s = try shape(p + ".0.weight", [o, depthwise ? 1 : i, k, k])
        let out = depthwise ? i : s[0]
        guard s[1] == (depthwise ? 1 : i), s[2] == k, !depthwise || s[0] == i else {
            throw ModelError.shapeMismatch(name: p + ".0.weight", expected: [out, depthwise ? 1 : i, k, k], got: s)
        }
        let groups = depthwise ? i : 1
        let conv = shapes == nil ? try Conv2d(i, out, kernelSize: k, stride: stride, padding: k / 2, groups: groups, bias: false, rng: &g)
            : try Conv2d(weight: Tensor(zeroed: s), bias: nil, stride: stride, padding: k / 2, groups: groups)
        var layers: [(String, any Layer)] = [("0", conv), ("1", try BatchNorm(out))]
        if act { layers.append(("2", Activation(.relu6))) }
        return (Sequential(layers), out)
    }

    func build(_ g: inout SeededGenerator) throws -> Model {
        var features: [(String, any Layer)] = []
        var (stem, channels) = try convNormAct("features.0", inputChannels, 32, 3, stride: 1, depthwise: false, act: true, &g)
        features.append(("0", stem))
        var index = 1
        for (t, c, n, s) in Self.settings {
            for b in 0..<n {
                let p = "features.\(index).conv"
                let stride = b == 0 ? s : 1
                var parts: [(String, any Layer)] = []
                var hidden = channels
                let expands = shapes == nil ? t != 1 : has(p + ".3.weight")
                if expands {
                    let (e, out) = try convNormAct(p + ".0", channels, channels * t, 1, stride: 1, depthwise: false, act: true, &g)
                    parts.append(("0", e))
                    hidden = out
                }
                let (dw, _) = try convNormAct(p + ".\(parts.count)", hidden, hidden, 3, stride: stride, depthwise: true, act: true, &g)
                parts.append(("\(parts.count)", dw))
                let projName = p + ".\(parts.count)"
                let ps = try shape(projName + ".weight", [c, hidden, 1, 1])
                guard ps[1] == hidden, ps[2] == 1 else { throw ModelError.shapeMismatch(name: projName + ".weight", expected: [ps[0], hidden, 1, 1], got: ps) }
                let proj = shapes == nil ? try Conv2d(hidden, c, kernelSize: 1, bias: false, rng: &g)
                    : try Conv2d(weight: Tensor(zeroed: ps), bias: nil)
                parts.append(("\(parts.count)", proj))
                parts.append(("\(parts.count)", try BatchNorm(ps[0])))
                let body = Sequential(parts)
                // torchvision joins when the stride is 1 and the block keeps its width. Every block after
                // the first of a stage does; a first block does when its widths agree (width_mult files).
                // Pruning keeps joined widths equal; a first block whose separate widths a global
                // pruning made equal by chance would be read as joined.
                let residual = shapes == nil ? stride == 1 && channels == c : stride == 1 && (b > 0 || channels == ps[0])
                let block: any Layer
                if residual {
                    guard ps[0] == channels else { throw ModelError.shapeMismatch(name: projName + ".weight", expected: [channels, hidden, 1, 1], got: ps) }
                    block = try Graph([("conv", body, [Graph.inputName]), ("add", Add(), ["conv", Graph.inputName])])
                } else {
                    block = Sequential([("conv", body)])
                }
                features.append(("\(index)", block))
                channels = ps[0]
                index += 1
            }
        }
        let (last, lastOut) = try convNormAct("features.\(index)", channels, 1280, 1, stride: 1, depthwise: false, act: true, &g)
        features.append(("\(index)", last))
        let fc = try shape("classifier.1.weight", [classes, lastOut])
        guard fc[1] == lastOut else { throw ModelError.shapeMismatch(name: "classifier.1.weight", expected: [fc[0], lastOut], got: fc) }
        let linear = shapes == nil ? try Linear(lastOut, classes, rng: &g) : try Linear(weight: Tensor(zeros: fc), bias: Tensor(zeros: [fc[0]]))
        let net = Sequential([
            ("features", Sequential(features)), ("avgpool", GlobalAvgPool2d()),
            ("classifier", Sequential([("0", try Dropout(0.2)), ("1", linear)])),
        ])
        return Model(architecture: "mobilenetv2", network: net, inputShape: [inputChannels, imageSize, imageSize])
    }
}
