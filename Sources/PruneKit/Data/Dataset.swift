import Foundation

/// Images (N×1×28×28 or N×784, normalised floats) with integer labels.
public struct LabeledImages: Sendable {
    /// The images, first dimension N (N×784 from `FashionMNIST.load`).
    public let images: Tensor
    /// Class labels, one per image (0–9 from `FashionMNIST.load`).
    public let labels: [Int32]
    /// Number of examples, N.
    public var count: Int { labels.count }

    /// Throws `TensorError.shapeMismatch` unless the first dimension of `images` equals `labels.count`.
    public init(images: Tensor, labels: [Int32]) throws {
        guard images.rank >= 1, images.shape[0] == labels.count else {
            throw TensorError.shapeMismatch(expected: [labels.count], got: Array(images.shape.prefix(1)))
        }
        self.images = images
        self.labels = labels
    }

    /// The first `n` examples (or all when fewer).
    public func prefix(_ n: Int) throws -> LabeledImages {
        let k = min(max(n, 0), count)
        return try LabeledImages(images: images.rows(0, k), labels: Array(labels.prefix(k)))
    }

    /// The same images viewed as N×1×28×28 (for convolutional models) or N×784.
    public func reshapedImages(_ perImage: [Int]) throws -> LabeledImages {
        try LabeledImages(images: images.reshaped([count] + perImage), labels: labels)
    }
}

/// Fashion-MNIST (or MNIST) in IDX files, as Debian's dataset-fashion-mnist installs them.
public enum FashionMNIST {
    /// Where Debian's `dataset-fashion-mnist` package puts the files.
    public static let defaultDirectory = "/usr/share/datasets/fashion-mnist"
    /// Mean and standard deviation of the training pixels (scaled to [0, 1]).
    public static let mean: Float = 0.2860
    /// Standard deviation of the training pixels (scaled to [0, 1]).
    public static let std: Float = 0.3530

    /// Loads the train or test split as N×784 images normalised by the input contract (by default
    /// (x/255 − mean)/std with Fashion-MNIST's statistics) and labels 0–9.
    public static func load(directory: String = defaultDirectory, train: Bool,
                            normalization: InputNormalization = .defaultContract) throws -> LabeledImages {
        let prefix = train ? "train" : "t10k"
        let imgPath = try locate(directory, "\(prefix)-images-idx3-ubyte")
        let lblPath = try locate(directory, "\(prefix)-labels-idx1-ubyte")
        let img = try IDXArray.read(imgPath, expectedRank: 3)
        let lbl = try IDXArray.read(lblPath, expectedRank: 1)
        guard img.dimensions[1] == 28, img.dimensions[2] == 28 else {
            throw DataError(file: imgPath, reason: "expected 28×28 images, found \(img.dimensions[1])×\(img.dimensions[2])")
        }
        guard img.dimensions[0] == lbl.dimensions[0] else {
            throw DataError(file: lblPath, reason: "\(lbl.dimensions[0]) labels for \(img.dimensions[0]) images in \(imgPath)")
        }
        let labels = [UInt8](lbl.bytes).map { Int32($0) } // one bulk copy: Data's element iterator is slow
        if let bad = labels.firstIndex(where: { $0 > 9 }) {
            throw DataError(file: lblPath, reason: "label \(labels[bad]) at index \(bad) is outside 0–9")
        }
        let n = img.dimensions[0]
        let c = normalization
        let scale = c.kind == .none ? 1 / c.std : 1 / (255 * c.std), shift = c.mean / c.std
        let pixels = [UInt8](img.bytes).map { Float($0) * scale - shift }
        return try LabeledImages(images: Tensor(shape: [n, 784], scalars: pixels), labels: labels)
    }

    private static func locate(_ dir: String, _ base: String) throws -> String {
        for candidate in ["\(dir)/\(base).gz", "\(dir)/\(base)"] where FileManager.default.fileExists(atPath: candidate) {
            return candidate
        }
        throw DataError(file: "\(dir)/\(base).gz", reason: "file not found (install Debian's dataset-fashion-mnist or pass --data DIR)")
    }
}

/// Mini-batches over a dataset, reshuffled each epoch from a seeded generator.
public struct BatchSampler {
    /// Number of examples: batches hold indices in 0..<count.
    public let count: Int
    /// Indices per batch (≥ 1); the last batch of an epoch may be shorter.
    public let batchSize: Int
    private var rng: SeededGenerator

    /// Throws on a batch size below 1 or a negative count.
    public init(count: Int, batchSize: Int, seed: UInt64) throws {
        guard batchSize > 0, count >= 0 else { throw TensorError.invalidShape([count, batchSize]) }
        self.count = count
        self.batchSize = batchSize
        self.rng = SeededGenerator(seed: seed)
    }

    public var batchesPerEpoch: Int { (count + batchSize - 1) / batchSize }

    /// The shuffling generator's state (checkpoints save it to replay an epoch's order).
    public var rngState: [UInt64] {
        get { rng.state }
        set { rng.state = newValue }
    }

    /// A fresh permutation cut into batches of indices (the last may be short).
    public mutating func epoch() -> [ArraySlice<Int>] {
        var order = Array(0..<count)
        // Fisher–Yates with our generator: the same seed gives the same order everywhere
        if count > 1 {
            for i in stride(from: count - 1, to: 0, by: -1) {
                let j = Int(rng.next() % UInt64(i + 1))
                order.swapAt(i, j)
            }
        }
        return stride(from: 0, to: count, by: batchSize).map { order[$0..<min($0 + batchSize, count)] }
    }
}
