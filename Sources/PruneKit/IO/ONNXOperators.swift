// The operators of an ONNX graph, each mapped onto PruneKit layers or refused (see ONNXImport.swift).
import Foundation

extension ONNXImporter {

    mutating func value(of n: Onnx_NodeProto, _ c: NodeContext) throws -> Value {
        switch n.opType {
        case "Constant": return try constant(n, c)
        case "Identity":
            // exporters alias shared initializers through Identity: the name then stands for the same constant
            guard let v = try operand(n, 0) else { throw c.fail("input 0 is missing") }
            if case .constant = v, let o = origin(n.input[0]) { aliases[n.output[0]] = o }
            return v
        case "Relu": return try elementwise(ReLU(), n, c)
        case "Sigmoid": return try elementwise(Activation(.sigmoid), n, c)
        case "Tanh": return try elementwise(Activation(.tanh), n, c)
        case "HardSwish": return try elementwise(Activation(.hardswish), n, c)
        case "HardSigmoid":
            let alpha = try c.float("alpha", default: 0.2), beta = try c.float("beta", default: 0.5)
            guard abs(alpha - 1 / 6) <= 1e-6, beta == 0.5 else {
                throw c.fail("HardSigmoid with alpha \(alpha), beta \(beta) is not supported (only PyTorch's alpha 1/6, beta 0.5)")
            }
            return try elementwise(Activation(.hardsigmoid), n, c)
        case "Clip": return try clip(n, c)
        case "Dropout": return try dropout(n, c)
        case "Conv": return try conv(n, c)
        case "BatchNormalization": return try batchNorm(n, c)
        case "Add": return try addOp(n, c)
        case "Mul": return try mul(n, c)
        case "Concat": return try concat(n, c)
        case "MaxPool": return try maxPool(n, c)
        case "AveragePool": return try avgPool(n, c)
        case "GlobalAveragePool":
            let x = try tensorInput(n, 0, c)
            guard x.physical.count == 3 else { throw c.fail("input of shape \(x.logical) is not [C, H, W]") }
            let name = add(GlobalAvgPool2d(), [x.source], n)
            return .tensor(source: name, logical: [x.logical[0], 1, 1], physical: [x.logical[0]])
        case "Flatten": return try flatten(n, c)
        case "Reshape": return try reshape(n, c)
        case "Gemm": return try gemm(n, c)
        case "MatMul": return try matmul(n, c)
        default: throw c.fail("operator \(n.opType) is not supported")
        }
    }

    mutating func elementwise(_ layer: any Layer, _ n: Onnx_NodeProto, _ c: NodeContext) throws -> Value {
        let x = try tensorInput(n, 0, c)
        return .tensor(source: add(layer, [x.source], n), logical: x.logical, physical: x.physical)
    }

    mutating func constant(_ n: Onnx_NodeProto, _ c: NodeContext) throws -> Value {
        guard c.attributes.count == 1, let (key, a) = c.attributes.first else { throw c.fail("needs exactly one value attribute") }
        switch key {
        case "value":
            var t = a.t
            if t.name.isEmpty { t.name = n.output[0] }
            return .constant(try tensors.read(t))
        case "value_float": return .constant(.float(try Tensor(shape: [], scalars: [a.f])))
        case "value_floats": return .constant(.float(try Tensor(shape: [a.floats.count], scalars: a.floats)))
        case "value_int": return .constant(.int([a.i], shape: []))
        default: return .constant(.int(a.ints, shape: [a.ints.count]))
        }
    }

    mutating func clip(_ n: Onnx_NodeProto, _ c: NodeContext) throws -> Value {
        func bound(_ k: Int) throws -> Float? {
            guard let t = try constantInput(n, k, c, k == 1 ? "min" : "max") else { return nil }
            guard t.count == 1 else { throw c.fail("\(k == 1 ? "min" : "max") is not a scalar") }
            return t.floats[0]
        }
        let lo = try bound(1), hi = try bound(2)
        if lo == 0, hi == 6 { return try elementwise(Activation(.relu6), n, c) }
        if lo == 0, hi == nil || hi == .infinity { return try elementwise(ReLU(), n, c) }
        throw c.fail("Clip(min \(lo.map { "\($0)" } ?? "none"), max \(hi.map { "\($0)" } ?? "none")) is neither ReLU (0, ∞) nor ReLU6 (0, 6)")
    }

    mutating func dropout(_ n: Onnx_NodeProto, _ c: NodeContext) throws -> Value {
        var ratio: Float = 0.5
        if let r = try constantInput(n, 1, c, "ratio") {
            guard r.count == 1 else { throw c.fail("ratio is not a scalar") }
            ratio = r.floats[0]
        }
        if let m = try constantInput(n, 2, c, "training_mode") {
            guard m.count == 1, m.floats[0] == 0 else { throw c.fail("training_mode is true: PruneKit reads inference graphs") }
        }
        guard ratio >= 0, ratio < 1 else { throw c.fail("ratio \(ratio) is outside [0, 1)") }
        let seed = UInt64(truncatingIfNeeded: try c.int("seed", default: 0))
        return try elementwise(try Dropout(ratio, seed: seed), n, c)
    }

    /// kernel, stride, symmetric padding and dilation of a 2-D window operator, checked against
    /// PruneKit's square windows.
    func window(_ c: NodeContext, kernel given: [Int]?, x: [Int]) throws -> (k: Int, s: Int, p: Int, d: Int) {
        guard x.count == 3 else { throw c.fail("input of shape \(x) is not [C, H, W] (only 2-D windows are supported)") }
        guard let kernel = given, kernel.count == 2 else { throw c.fail("kernel_shape \(given ?? []) is not 2-D") }
        let autoPad = try c.string("auto_pad") ?? "NOTSET"
        guard autoPad == "NOTSET" || autoPad == "VALID" else { throw c.fail("auto_pad \(autoPad) is not supported (give explicit pads)") }
        let strides = try c.ints("strides") ?? [1, 1]
        let pads = autoPad == "VALID" ? [0, 0, 0, 0] : try c.ints("pads") ?? [0, 0, 0, 0]
        let dilations = try c.ints("dilations") ?? [1, 1]
        guard kernel[0] == kernel[1], kernel[0] > 0 else { throw c.fail("kernel \(kernel) is not square (PruneKit's layers have square kernels)") }
        guard strides.count == 2, allEqual(strides), strides[0] > 0 else { throw c.fail("strides \(strides) are not equal and positive") }
        guard pads.count == 4, allEqual(pads), pads[0] >= 0 else { throw c.fail("pads \(pads) are not symmetric (one padding on every side)") }
        guard dilations.count == 2, allEqual(dilations), dilations[0] > 0, dilations[0] <= 1 << 16 else {
            throw c.fail("dilations \(dilations) are not equal and positive (PruneKit's layers dilate both axes alike)")
        }
        let (k, s, p, d) = (kernel[0], strides[0], pads[0], dilations[0])
        let extent = d * (k - 1) + 1
        guard x[1] + 2 * p >= extent, x[2] + 2 * p >= extent else {
            throw c.fail("kernel \(k)" + (d > 1 ? " with dilation \(d)" : "") + " is larger than the padded input \(x)")
        }
        return (k, s, p, d)
    }

    mutating func conv(_ n: Onnx_NodeProto, _ c: NodeContext) throws -> Value {
        let x = try tensorInput(n, 0, c)
        guard let w = try floatConstant(n, 1, c, "weight") else { throw c.fail("no weight") }
        let b = try floatConstant(n, 2, c, "bias")
        let groups = try c.int("group", default: 1)
        guard w.rank == 4, groups > 0, w.shape[0] % groups == 0 else {
            throw c.fail("weight of shape \(w.shape) with group \(groups) is not a 2-D convolution's [O, C/group, kH, kW]")
        }
        if let k = try c.ints("kernel_shape"), k != Array(w.shape[2...]) {
            throw c.fail("kernel_shape \(k) disagrees with the weight \(w.shape)")
        }
        guard x.logical.count == 3, x.logical[0] == w.shape[1] * groups else {
            throw c.fail("input of shape \(x.logical) does not match weight \(w.shape) with group \(groups)")
        }
        if let b, b.shape != [w.shape[0]] { throw c.fail("bias of shape \(b.shape) is not [\(w.shape[0])]") }
        let params = origins(n, b != nil ? ["weight": 1, "bias": 2] : ["weight": 1])
        let (k, s, p, d) = try window(c, kernel: Array(w.shape[2...]), x: x.logical)
        let extent = d * (k - 1) + 1
        let oh = (x.logical[1] + 2 * p - extent) / s + 1, ow = (x.logical[2] + 2 * p - extent) / s + 1
        if x.physical.count == 1 {
            // a 1×1 convolution of a pooled N×C value (squeeze-excitation) is a Linear layer
            guard k == 1, p == 0, groups == 1 else { throw c.fail("a \(k)×\(k) convolution of a pooled 1×1 input is not supported") }
            let layer = try Linear(weight: w.reshaped([w.shape[0], w.shape[1]]), bias: b)
            let name = add(layer, [x.source], n, params: params)
            exports[name] = .convAsLinear(node: currentNode)
            return .tensor(source: name, logical: [w.shape[0], 1, 1], physical: [w.shape[0]])
        }
        let layer = try Conv2d(weight: w, bias: b, stride: s, padding: p, dilation: d, groups: groups)
        let name = add(layer, [x.source], n, params: params)
        exports[name] = .conv(node: currentNode)
        return .tensor(source: name, logical: [w.shape[0], oh, ow], physical: [w.shape[0], oh, ow])
    }

    mutating func batchNorm(_ n: Onnx_NodeProto, _ c: NodeContext) throws -> Value {
        let x = try tensorInput(n, 0, c)
        guard try c.int("training_mode", default: 0) == 0 else { throw c.fail("training_mode 1: PruneKit reads inference graphs") }
        guard let ch = x.physical.first else { throw c.fail("input has no channel dimension") }
        let names = ["weight", "bias", "running_mean", "running_var"]
        var t: [Tensor] = []
        for (k, what) in names.enumerated() {
            guard let v = try floatConstant(n, k + 1, c, what) else { throw c.fail("no \(what) input") }
            guard v.shape == [ch] else { throw c.fail("\(what) of shape \(v.shape) is not [\(ch)]") }
            t.append(v)
        }
        let eps = try c.float("epsilon", default: 1e-5), momentum = try c.float("momentum", default: 0.9)
        guard eps > 0, eps.isFinite, momentum >= 0, momentum <= 1 else { throw c.fail("epsilon \(eps) or momentum \(momentum) is invalid") }
        guard t[3].scalars.allSatisfy({ $0 >= 0 }) else { throw c.fail("running_var has negative entries") }
        // ONNX's momentum weighs the old statistics, PyTorch's (and PruneKit's) the new batch
        let bn = try BatchNorm(ch, eps: eps, momentum: 1 - momentum)
        try bn.weight!.assign(t[0])
        try bn.bias!.assign(t[1])
        bn.runningMean.value = t[2]
        bn.runningVar.value = t[3]
        let params = origins(n, ["weight": 1, "bias": 2, "running_mean": 3, "running_var": 4])
        let name = add(bn, [x.source], n, params: params)
        exports[name] = .batchNorm(node: currentNode)
        return .tensor(source: name, logical: x.logical, physical: x.physical)
    }

    mutating func addOp(_ n: Onnx_NodeProto, _ c: NodeContext) throws -> Value {
        guard n.input.count == 2, let a = try operand(n, 0), let b = try operand(n, 1) else { throw c.fail("needs two inputs") }
        switch (a, b) {
        case let (.tensor(sa, la, pa), .tensor(sb, lb, pb)):
            guard la == lb, pa == pb else { throw c.fail("inputs of shapes \(la) and \(lb) differ (broadcasting Add is not supported)") }
            return .tensor(source: add(Add(), [sa, sb], n), logical: la, physical: pa)
        case let (.tensor(s, l, p), .constant(k)), let (.constant(k), .tensor(s, l, p)):
            // the bias of a MatMul (x·W + b), folded into its Linear layer
            var tensorFirst = false
            if case .tensor = a { tensorFirst = true }
            let (producer, biasName) = tensorFirst ? (n.input[0], n.input[1]) : (n.input[1], n.input[0])
            guard biasless.contains(s), let at = nodes.firstIndex(where: { $0.name == s }), let lin = nodes[at].layer as? Linear,
                  case let .float(bias) = k, bias.count == lin.outFeatures, bias.shape.last == lin.outFeatures,
                  bias.shape.dropLast().allSatisfy({ $0 == 1 }) else {
                throw c.fail("Add of a constant is supported only as the bias of a MatMul (x·W + b)")
            }
            guard readers[producer, default: 0] == 1 else {
                throw c.fail("the MatMul result '\(producer)' is read elsewhere too; its bias cannot be folded")
            }
            guard bias.isFinite else { throw c.fail("bias holds NaN or infinity") }
            nodes[at].layer = try Linear(weight: lin.weight.value, bias: bias.reshaped([lin.outFeatures]))
            biasless.remove(s)
            if case let .matmul(node, _, _)? = exports[s] { exports[s] = .matmul(node: node, add: currentNode, biasInput: tensorFirst ? 1 : 0) }
            if let o = origin(biasName) { sources[s, default: [:]]["bias"] = o }
            return .tensor(source: s, logical: l, physical: p)
        default:
            throw c.fail("both inputs are constants (constant folding is not supported)")
        }
    }

    mutating func mul(_ n: Onnx_NodeProto, _ c: NodeContext) throws -> Value {
        guard n.input.count == 2, let a = try operand(n, 0), let b = try operand(n, 1),
              case let .tensor(sa, la, pa) = a, case let .tensor(sb, lb, pb) = b else {
            throw c.fail("Mul is supported only between two computed tensors (a channel gate times a feature map)")
        }
        // x [C, H, W] times a gate [C, 1, 1], in either order, or two equal shapes element by element
        // (HardSwish as x · HardSigmoid(x) before opset 14)
        if la == lb, pa == pb {
            return .tensor(source: add(ChannelScale(), [sa, sb], n), logical: la, physical: pa)
        }
        func isGate(_ l: [Int], of x: [Int]) -> Bool { l.count == x.count && l.count >= 2 && l[0] == x[0] && l.dropFirst().allSatisfy { $0 == 1 } }
        if isGate(lb, of: la), la != lb {
            return .tensor(source: add(ChannelScale(), [sa, sb], n), logical: la, physical: pa)
        }
        if isGate(la, of: lb), la != lb {
            return .tensor(source: add(ChannelScale(), [sb, sa], n), logical: lb, physical: pb)
        }
        throw c.fail("Mul of shapes \(la) and \(lb) is not supported (only a per-channel gate [C, 1, 1] times [C, H, W], or two equal shapes)")
    }

    mutating func concat(_ n: Onnx_NodeProto, _ c: NodeContext) throws -> Value {
        guard c.attributes["axis"] != nil else { throw c.fail("no axis attribute") }
        var xs: [(source: String, logical: [Int], physical: [Int])] = []
        for k in 0..<n.input.count { xs.append(try tensorInput(n, k, c)) }
        guard let first = xs.first else { throw c.fail("no inputs") }
        let rank = first.logical.count + 1
        var axis = try c.int("axis", default: 1)
        if axis < 0 { axis += rank }
        guard axis == 1 else { throw c.fail("axis \(axis) is not supported (only the channel axis 1)") }
        for x in xs where x.logical.count != first.logical.count || x.logical.dropFirst() != first.logical.dropFirst()
            || x.physical.count != first.physical.count {
            throw c.fail("inputs of shapes \(xs.map(\.logical)) differ beyond the channel axis")
        }
        let channels = xs.reduce(0) { $0 + $1.logical[0] }
        let name = add(Concat(), xs.map(\.source), n)
        return .tensor(source: name, logical: [channels] + first.logical.dropFirst(), physical: [channels] + first.physical.dropFirst())
    }

    mutating func maxPool(_ n: Onnx_NodeProto, _ c: NodeContext) throws -> Value {
        let x = try tensorInput(n, 0, c)
        guard try c.int("ceil_mode", default: 0) == 0 else { throw c.fail("ceil_mode 1 is not supported") }
        guard try c.int("storage_order", default: 0) == 0 else { throw c.fail("storage_order 1 is not supported") }
        let (k, s, p, d) = try window(c, kernel: try c.ints("kernel_shape"), x: x.physical)
        guard d == 1 else { throw c.fail("dilations [\(d), \(d)] are not supported for MaxPool") }
        guard 2 * p <= k else { throw c.fail("padding \(p) is more than half the kernel \(k) (PyTorch's limit, which PruneKit's MaxPool2d keeps)") }
        let layer = try MaxPool2d(k, stride: s, padding: p)
        let shape = [x.logical[0], (x.logical[1] + 2 * p - k) / s + 1, (x.logical[2] + 2 * p - k) / s + 1]
        return .tensor(source: add(layer, [x.source], n), logical: shape, physical: shape)
    }

    mutating func avgPool(_ n: Onnx_NodeProto, _ c: NodeContext) throws -> Value {
        let x = try tensorInput(n, 0, c)
        guard try c.int("ceil_mode", default: 0) == 0 else { throw c.fail("ceil_mode 1 is not supported") }
        let (k, s, p, d) = try window(c, kernel: try c.ints("kernel_shape"), x: x.physical)
        guard d == 1 else { throw c.fail("dilations [\(d), \(d)] are not supported for AveragePool") }
        if p > 0, try c.int("count_include_pad", default: 0) == 0 {
            throw c.fail("padding \(p) with count_include_pad 0 is not supported (PruneKit's AvgPool2d counts the padding)")
        }
        guard 2 * p <= k else { throw c.fail("padding \(p) is more than half the kernel \(k)") }
        let layer = try AvgPool2d(k, stride: s, padding: p)
        let shape = [x.logical[0], (x.logical[1] + 2 * p - k) / s + 1, (x.logical[2] + 2 * p - k) / s + 1]
        return .tensor(source: add(layer, [x.source], n), logical: shape, physical: shape)
    }

    mutating func flatten(_ n: Onnx_NodeProto, _ c: NodeContext) throws -> Value {
        let x = try tensorInput(n, 0, c)
        var axis = try c.int("axis", default: 1)
        if axis < 0 { axis += x.logical.count + 1 }
        guard axis == 1 else { throw c.fail("axis \(axis) is not supported (only 1: keep the batch, flatten the rest)") }
        let flat = [x.logical.reduce(1, *)]
        if x.physical.count == 1 { return .tensor(source: x.source, logical: flat, physical: flat) }
        return .tensor(source: add(Flatten(), [x.source], n), logical: flat, physical: flat)
    }

    mutating func reshape(_ n: Onnx_NodeProto, _ c: NodeContext) throws -> Value {
        let x = try tensorInput(n, 0, c)
        guard let target = try constantInput(n, 1, c, "shape"), case let .int(t, shape) = target, shape.count == 1 else {
            throw c.fail("the target shape is not a constant 1-D int64 tensor")
        }
        let allowZero = try c.int("allowzero", default: 0) != 0
        let features = x.logical.reduce(1, *)
        let keepsBatch = t.count == 2 && (t[0] == -1 || (t[0] == 0 && !allowZero) || (batch != nil && t[0] == Int64(batch!)))
        let flattens = t.count == 2 && (t[1] == Int64(features) || (t[1] == -1 && t[0] != -1))
        guard keepsBatch, flattens else {
            throw c.fail("Reshape to \(t) is not supported (only a flatten to [N, -1] of the [\(features)] features)")
        }
        let flat = [features]
        // a target that names the feature count must follow it when channels are removed
        if t[1] != -1, x.source != Graph.inputName { reshapes.append(ONNXReshape(node: currentNode, source: x.source, leading: t[0])) }
        if x.physical.count == 1 { return .tensor(source: x.source, logical: flat, physical: flat) }
        return .tensor(source: add(Flatten(), [x.source], n), logical: flat, physical: flat)
    }

    mutating func gemm(_ n: Onnx_NodeProto, _ c: NodeContext) throws -> Value {
        let x = try tensorInput(n, 0, c)
        guard x.physical.count == 1 else { throw c.fail("input of shape \(x.logical) is not [features] (flatten it first)") }
        guard try c.int("transA", default: 0) == 0 else { throw c.fail("transA 1 is not supported (the input is the batch)") }
        let transB = try c.int("transB", default: 0) != 0
        let alpha = try c.float("alpha", default: 1), beta = try c.float("beta", default: 1)
        guard alpha.isFinite, beta.isFinite else { throw c.fail("alpha or beta is not finite") }
        guard let b = try floatConstant(n, 1, c, "B") else { throw c.fail("no B input") }
        guard b.rank == 2 else { throw c.fail("B of shape \(b.shape) is not 2-D") }
        var w = transB ? b : try transpose(b)
        guard w.shape[1] == x.physical[0] else { throw c.fail("B of shape \(b.shape) (transB \(transB ? 1 : 0)) does not take \(x.physical[0]) features") }
        if alpha != 1 { w = w.map { $0 * alpha } }
        var bias: Tensor? = nil
        if let cT = try floatConstant(n, 2, c, "C") {
            let o = w.shape[0]
            guard cT.count == o || cT.count == 1, cT.shape.count <= 2, cT.shape.last.map({ $0 == o || $0 == 1 }) ?? true,
                  cT.shape.dropLast().allSatisfy({ $0 == 1 }) else {
                throw c.fail("C of shape \(cT.shape) is not a bias of \(o) outputs")
            }
            let v = cT.scalars.map { $0 * beta }
            bias = try Tensor(shape: [o], scalars: v.count == o ? v : [Float](repeating: v[0], count: o))
        }
        var params = origins(n, ["weight": 1, "bias": 2])
        if !transB || alpha != 1 { params["weight"] = nil }
        let cShape = try floatConstant(n, 2, c, "C")?.shape
        if bias == nil || beta != 1 || cShape != [w.shape[0]] { params["bias"] = nil }
        let layer = try Linear(weight: w, bias: bias)
        let o = w.shape[0]
        let name = add(layer, [x.source], n, params: params)
        exports[name] = .gemm(node: currentNode, transB: transB)
        return .tensor(source: name, logical: [o], physical: [o])
    }

    mutating func matmul(_ n: Onnx_NodeProto, _ c: NodeContext) throws -> Value {
        let x = try tensorInput(n, 0, c)
        guard x.physical.count == 1 else { throw c.fail("input of shape \(x.logical) is not [features] (batched MatMul is not supported)") }
        guard let b = try floatConstant(n, 1, c, "the right operand") else { throw c.fail("no right operand") }
        guard b.rank == 2, b.shape[0] == x.physical[0] else {
            throw c.fail("the right operand of shape \(b.shape) is not a [\(x.physical[0]), out] weight")
        }
        let layer = try Linear(weight: try transpose(b), bias: nil)
        let name = add(layer, [x.source], n)
        exports[name] = .matmul(node: currentNode, add: nil, biasInput: 0)
        biasless.insert(name)
        return .tensor(source: name, logical: [b.shape[1]], physical: [b.shape[1]])
    }

    func transpose(_ t: Tensor) throws -> Tensor {
        let (r, k) = (t.shape[0], t.shape[1])
        let s = t.scalars
        var out = [Float](repeating: 0, count: s.count)
        // r×k → k×r
        for i in 0..<r { for j in 0..<k { out[j * r + i] = s[i * k + j] } }
        return try Tensor(shape: [k, r], scalars: out)
    }
}
