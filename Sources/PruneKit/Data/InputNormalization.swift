import Foundation

/// The input contract of an image model: how raw pixel values p (0–255) become the numbers the
/// model was trained on, x = (p · scale − mean) / std.
///
/// - `mean-std`: scale 1/255 and a mean and standard deviation on the [0, 1] scale, as torchvision's
///   `Normalize` after `ToTensor`. Without numbers it is Fashion-MNIST's training statistics
///   (0.2860, 0.3530), PruneKit's default.
/// - `unit`: x = p / 255.
/// - `none`: x = p (raw 0–255 values).
///
/// A saved model records its contract in the safetensors metadata (`prunekit.input.normalize`,
/// `prunekit.input.mean`, `prunekit.input.std`), so every later command reads it back. Two
/// contracts are equal when they compute the same x (a `mean-std` with Fashion-MNIST's numbers is
/// the default one, however it was spelled).
public struct InputNormalization: Sendable, Equatable, CustomStringConvertible {
    /// Which formula applies, by the name files and commands use (`rawValue`): `meanStd` ("mean-std"),
    /// x = (p/255 − mean) / std; `unit`, x = p/255; `none`, x = p.
    public enum Kind: String, Sendable, CaseIterable {
        /// x = (p/255 − mean) / std (spelled "mean-std"); x = p/255; x = p.
        case meanStd = "mean-std", unit, none
    }

    /// Which formula applies; `mean` and `std` are 0 and 1 unless it is `meanStd`.
    public let kind: Kind
    /// Mean and standard deviation on the [0, 1] scale (0 and 1 for `unit` and `none`).
    public let mean: Float
    /// Standard deviation on the [0, 1] scale: finite and > 0 (1 for `unit` and `none`).
    public let std: Float

    /// Fashion-MNIST's training-pixel statistics: PruneKit's default contract.
    public static let fashionMNIST = InputNormalization(checkedKind: .meanStd, mean: FashionMNIST.mean, std: FashionMNIST.std)
    /// x = p / 255.
    public static let unit = InputNormalization(checkedKind: .unit, mean: 0, std: 1)
    /// x = p.
    public static let none = InputNormalization(checkedKind: .none, mean: 0, std: 1)
    /// The contract assumed when neither a file nor the caller names one.
    public static let defaultContract = fashionMNIST

    private init(checkedKind: Kind, mean: Float, std: Float) {
        self.kind = checkedKind
        self.mean = mean
        self.std = std
    }

    /// x = (p/255 − mean) / std with any mean and std on the [0, 1] scale.
    public static func meanStd(mean: Float, std: Float) throws -> InputNormalization {
        guard mean.isFinite else { throw InputContractError("mean \(mean) is not a finite number") }
        guard std.isFinite, std > 0 else { throw InputContractError("std \(std) must be a positive finite number") }
        return InputNormalization(checkedKind: .meanStd, mean: mean, std: std)
    }

    /// A contract by name (`mean-std` is Fashion-MNIST's statistics).
    public init(name: String) throws {
        switch Kind(rawValue: name) {
        case .meanStd?: self = .fashionMNIST
        case .unit?: self = .unit
        case .none?: self = InputNormalization.none
        case nil: throw InputContractError("'\(name)' is not a normalisation: use mean-std, unit or none")
        }
    }

    /// Multiplier applied to the raw pixel before the mean is taken away.
    public var scale: Float { kind == .none ? 1 : 1 / 255 }

    /// The normalised value of one raw pixel value.
    @inlinable public func apply(_ pixel: Float) -> Float { (pixel * scale - mean) / std }

    public static func == (a: InputNormalization, b: InputNormalization) -> Bool {
        a.scale == b.scale && a.mean == b.mean && a.std == b.std
    }

    public var description: String {
        switch kind {
        case .unit: return "unit (x/255)"
        case .none: return "none (raw 0-255 values)"
        case .meanStd:
            let label = self == .fashionMNIST ? ", Fashion-MNIST's statistics" : ""
            return "mean-std ((x/255 - \(Self.format(mean)))/\(Self.format(std))\(label))"
        }
    }

    /// Shortest decimal text that reads back as the same Float.
    static func format(_ v: Float) -> String { "\(v)" }

    // MARK: metadata

    /// Metadata key of the contract's name (a `Kind.rawValue`).
    public static let nameKey = "prunekit.input.normalize"
    /// Metadata key of `mean`, as decimal text.
    public static let meanKey = "prunekit.input.mean"
    /// Metadata key of `std`, as decimal text.
    public static let stdKey = "prunekit.input.std"

    /// The metadata entries that record this contract.
    public var metadata: [String: String] {
        [Self.nameKey: kind.rawValue, Self.meanKey: Self.format(mean), Self.stdKey: Self.format(std)]
    }

    /// The contract recorded in a file's metadata; nil when the file records none. Malformed entries
    /// throw an error naming `file` and the key.
    public static func recorded(in metadata: [String: String], file: String) throws -> InputNormalization? {
        guard let name = metadata[nameKey] else {
            if let stray = [meanKey, stdKey].first(where: { metadata[$0] != nil }) {
                throw InputContractError(file: file, "metadata has \(stray) but no \(nameKey)")
            }
            return nil
        }
        func number(_ key: String) throws -> Float? {
            guard let text = metadata[key] else { return nil }
            guard let v = Float(text.trimmingCharacters(in: .whitespaces)), v.isFinite else {
                throw InputContractError(file: file, "metadata \(key) = '\(text)' is not a finite number")
            }
            return v
        }
        let mean = try number(meanKey), std = try number(stdKey)
        switch Kind(rawValue: name) {
        case nil:
            throw InputContractError(file: file, "metadata \(nameKey) = '\(name)' is not mean-std, unit or none")
        case .meanStd?:
            guard let mean, let std else { throw InputContractError(file: file, "metadata \(nameKey) = mean-std needs \(meanKey) and \(stdKey)") }
            do { return try .meanStd(mean: mean, std: std) } catch let e as InputContractError {
                throw InputContractError(file: file, "metadata: \(e.reason)")
            }
        case .unit?, .none?:
            if (mean.map { $0 != 0 } ?? false) || (std.map { $0 != 1 } ?? false) {
                throw InputContractError(file: file, "metadata \(nameKey) = \(name) contradicts \(meanKey)/\(stdKey) (must be 0 and 1)")
            }
            return name == "unit" ? .unit : InputNormalization.none
        }
    }

    /// The contract a command uses for a model file: the caller's (`requested`) when given, else the
    /// file's, else the default. A requested contract that contradicts the file's is an error naming
    /// both. `note` is set when the default was assumed: one line for stderr.
    public static func resolve(requested: InputNormalization?, metadata: [String: String], file: String)
        throws -> (contract: InputNormalization, note: String?) {
        let recorded = try recorded(in: metadata, file: file)
        switch (requested, recorded) {
        case let (r?, f?) where r != f:
            throw InputContractError(file: file, "the requested normalisation \(r) contradicts the file's \(f)")
        case let (r?, _): return (r, nil)
        case let (nil, f?): return (f, nil)
        case (nil, nil):
            return (defaultContract, "note: \(file) records no input normalisation; assuming \(defaultContract). "
                    + "Pass --normalize unit|none|mean-std or --mean M --std S if the model was trained otherwise.")
        }
    }
}

/// A bad input contract: an unknown name, a std that is not positive, malformed metadata, a request
/// that contradicts a file.
public struct InputContractError: Error, CustomStringConvertible, Sendable {
    /// The file whose metadata is at fault; nil when the fault is in the caller's arguments.
    public let file: String?
    /// What is wrong, without the file name.
    public let reason: String
    /// `description` is "file: reason", or `reason` alone when `file` is nil.
    public init(file: String? = nil, _ reason: String) {
        self.file = file
        self.reason = reason
    }
    public var description: String { file.map { "\($0): \(reason)" } ?? reason }
}
