/// A network with the name of its architecture and the shape of one input example. The network is
/// any layer: a Sequential, a Graph (any DAG), or a user's own container.
public final class Model {
    /// "mlp", "cnn", or a user-defined name.
    public let architecture: String
    /// The layers; batches reach them reshaped to N × `inputShape`.
    public let network: any Layer
    /// Shape of one example (without the batch dimension), e.g. [784] or [1, 28, 28].
    public let inputShape: [Int]

    /// A model of `network` under the name `architecture`, taking examples of shape `inputShape`.
    public init(architecture: String, network: any Layer, inputShape: [Int]) {
        self.architecture = architecture
        self.network = network
        self.inputShape = inputShape
    }

    /// Parameters with their full names ("fc1.weight").
    public var namedParameters: [(name: String, parameter: Parameter)] { network.namedParameters }
    /// Every parameter, in `namedParameters` order.
    public var parameters: [Parameter] { network.parameters }
    /// Buffers (running statistics) with their full names ("bn1.running_mean").
    public var namedBuffers: [(name: String, buffer: Buffer)] { network.namedBuffers }
    /// Number of scalar parameters.
    public var parameterCount: Int { parameters.reduce(0) { $0 + $1.count } }

    /// Sets how every Linear and Conv2d layer executes its weight (see `Execution`).
    public func setExecution(_ e: Execution) {
        for (_, l) in network.namedLayers {
            (l as? Linear)?.execution = e
            (l as? Conv2d)?.execution = e
        }
    }

    /// Reshapes a batch (N×features) to N×inputShape and runs the network.
    public func forward(_ x: Tensor, training: Bool = false) throws -> Tensor {
        let n = x.shape.first ?? 0
        let per = inputShape.reduce(1, *)
        guard x.rank >= 1, x.count == n * per else {
            throw LayerError.badInput(layer: "model \(architecture)", expected: "[batch, \(per)] or [batch, \(inputShape.map(String.init).joined(separator: ", "))]",
                                      got: x.shape)
        }
        return try network.forward(x.reshaped([n] + inputShape), training: training)
    }

    /// A deep copy of a model of a built-in architecture: the same widths, values, masks and
    /// buffers in new layers (nothing shared).
    public func copy() throws -> Model {
        var shapes: [String: Tensor] = [:]
        for (n, p) in namedParameters { shapes[n] = Tensor(zeroed: p.shape) }
        for (n, b) in namedBuffers { shapes[n] = Tensor(zeroed: b.shape) }
        let out = try Model.build(architecture, shapesFrom: shapes, imageSize: inputShape.last ?? 28)
        for ((_, a), (_, b)) in zip(namedParameters, out.namedParameters) {
            try b.assign(a.value)
            if let m = a.mask { try b.setMask(m) }
        }
        for ((_, a), (_, b)) in zip(namedBuffers, out.namedBuffers) { b.value = a.value }
        return out
    }

    /// LeNet-300-100: 784-300-100-10 with ReLU.
    public static func mlp(seed: UInt64) -> Model {
        var rng = SeededGenerator(seed: seed)
        // fixed, valid sizes: the throwing initialisers cannot fail here
        let net = Sequential([
            ("fc1", try! Linear(784, 300, rng: &rng)), ("relu1", ReLU()),
            ("fc2", try! Linear(300, 100, rng: &rng)), ("relu2", ReLU()),
            ("fc3", try! Linear(100, 10, rng: &rng)),
        ])
        return Model(architecture: "mlp", network: net, inputShape: [784])
    }

    /// conv(1→32, 5×5) relu maxpool2, conv(32→64, 5×5) relu maxpool2, linear(1024→10).
    /// The max-pool runs before the ReLU: the two commute exactly (relu is monotonic, so the pooled
    /// maximum and the gradient that reaches the input are the same), and the ReLU then touches a
    /// quarter of the values.
    public static func cnn(seed: UInt64) -> Model {
        var rng = SeededGenerator(seed: seed)
        let net = Sequential([
            // fixed, valid sizes: the throwing initialisers cannot fail here
            ("conv1", try! Conv2d(1, 32, kernelSize: 5, rng: &rng)), ("pool1", try! MaxPool2d(2)), ("relu1", ReLU()),
            ("conv2", try! Conv2d(32, 64, kernelSize: 5, rng: &rng)), ("pool2", try! MaxPool2d(2)), ("relu2", ReLU()),
            ("flatten", Flatten()), ("fc", try! Linear(1024, 10, rng: &rng)),
        ])
        return Model(architecture: "cnn", network: net, inputShape: [1, 28, 28])
    }

    /// A model of a named architecture whose layer sizes come from `tensors` (state_dict names,
    /// plain or PyTorch's pruned form): loads models made smaller by structural surgery.
    public static func build(_ architecture: String, shapesFrom tensors: [String: Tensor], imageSize: Int = 28) throws -> Model {
        var unused = SeededGenerator(seed: 0)
        func shape(_ name: String) throws -> [Int] {
            guard let t = tensors[name] ?? tensors[name + "_orig"] else { throw ModelError.missingTensor(name) }
            return t.shape
        }
        func linear(_ name: String) throws -> Linear {
            let w = try shape(name + ".weight")
            guard w.count == 2 else { throw ModelError.shapeMismatch(name: name + ".weight", expected: [-1, -1], got: w) }
            return try Linear(weight: Tensor(zeros: w), bias: tensors[name + ".bias"].map { try Tensor(zeros: $0.shape) })
        }
        func conv(_ name: String) throws -> Conv2d {
            let w = try shape(name + ".weight")
            guard w.count == 4 else { throw ModelError.shapeMismatch(name: name + ".weight", expected: [-1, -1, -1, -1], got: w) }
            return try Conv2d(weight: Tensor(zeros: w), bias: tensors[name + ".bias"].map { try Tensor(zeros: $0.shape) })
        }
        switch architecture {
        case "mlp":
            let net = Sequential([("fc1", try linear("fc1")), ("relu1", ReLU()), ("fc2", try linear("fc2")), ("relu2", ReLU()),
                                  ("fc3", try linear("fc3"))])
            return Model(architecture: "mlp", network: net, inputShape: [784])
        case "cnn":
            let net = Sequential([("conv1", try conv("conv1")), ("pool1", try MaxPool2d(2)), ("relu1", ReLU()),
                                  ("conv2", try conv("conv2")), ("pool2", try MaxPool2d(2)), ("relu2", ReLU()),
                                  ("flatten", Flatten()), ("fc", try linear("fc"))])
            return Model(architecture: "cnn", network: net, inputShape: [1, 28, 28])
        case "resnet18", "resnet20":
            let stem = try shape("conv1.weight")
            guard stem.count == 4, let fc = tensors["fc.weight"] ?? tensors["fc.weight_orig"], fc.rank == 2 else {
                throw ModelError.shapeMismatch(name: "conv1.weight", expected: [-1, -1, 3, 3], got: stem)
            }
            return try ResNetBuilder(kind: .init(rawValue: architecture)!, inputChannels: stem[1], classes: fc.shape[0],
                                     imageSize: imageSize, shapes: tensors.mapValues(\.shape)).build(&unused)
        case "mobilenetv2":
            let stem = try shape("features.0.0.weight")
            guard stem.count == 4, let fc = tensors["classifier.1.weight"] ?? tensors["classifier.1.weight_orig"], fc.rank == 2 else {
                throw ModelError.shapeMismatch(name: "features.0.0.weight", expected: [-1, -1, 3, 3], got: stem)
            }
            return try MobileNetV2Builder(inputChannels: stem[1], classes: fc.shape[0], imageSize: imageSize,
                                          shapes: tensors.mapValues(\.shape)).build(&unused)
        default: throw ModelError.unknownArchitecture(architecture)
        }
    }

    /// Architectures `make` knows.
    public static let architectures = ["mlp", "cnn", "resnet18", "resnet20", "mobilenetv2"]

    /// A freshly initialised model of a named architecture.
    public static func make(_ architecture: String, seed: UInt64) throws -> Model {
        switch architecture {
        case "mlp": return mlp(seed: seed)
        case "cnn": return cnn(seed: seed)
        case "resnet18": return try resnet18(seed: seed)
        case "resnet20": return try resnet20(seed: seed)
        case "mobilenetv2": return try mobilenetv2(seed: seed)
        default: throw ModelError.unknownArchitecture(architecture)
        }
    }
}

/// A model that cannot be built or does not match its weights.
public enum ModelError: Error, CustomStringConvertible, Equatable {
    /// The name is not one of `Model.architectures`.
    case unknownArchitecture(String)
    /// A tensor the model needs (named by its state_dict name) is absent from the loaded set.
    case missingTensor(String)
    /// A loaded tensor is neither a parameter nor a buffer of the model.
    case unexpectedTensor(String)
    /// Tensor `name` has shape `got` where the model needs `expected` (−1: any size).
    case shapeMismatch(name: String, expected: [Int], got: [Int])

    public var description: String {
        switch self {
        case let .unknownArchitecture(a): return "unknown architecture '\(a)' (known: \(Model.architectures.joined(separator: ", ")))"
        case let .missingTensor(n): return "missing tensor '\(n)'"
        case let .unexpectedTensor(n): return "unexpected tensor '\(n)' (not a parameter of this model)"
        case let .shapeMismatch(n, e, g): return "tensor '\(n)' has shape \(g), the model needs \(e)"
        }
    }
}
