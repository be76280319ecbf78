// ONNX model files: reading a float32 network (opset 13-18) into a PruneKit graph of layers.
// The file is untrusted input: every size, offset, path and dimension is checked before it is used,
// and anything PruneKit cannot represent exactly is refused with one line naming the node or tensor.
import Foundation
internal import SwiftProtobuf

/// A model read from an ONNX file: the PruneKit model (a `Graph` of layers) plus what the file says
/// about itself.
public struct ONNXModel {
    /// The network as a `Graph` of PruneKit layers; `inputShape` is the ONNX input's shape without
    /// the batch dimension.
    public let model: Model
    /// The graph input's and output's names in the file.
    public let inputName: String
    /// The graph output's name in the file.
    public let outputName: String
    /// The default-domain opset the file declares (13...18).
    public let opset: Int
    /// The file's metadata properties (key → value).
    public let metadata: [String: String]
    /// PruneKit parameter or buffer name ("layer1_0_conv1.weight") → the ONNX initializer it was read from
    /// unchanged ("layer1.0.conv1.weight"). Parameters derived from an initializer (a transposed or
    /// scaled Gemm weight) are not listed.
    public let initializerNames: [String: String]
    /// The file as read: writing keeps everything PruneKit does not change (names, opset, metadata,
    /// operators' attributes) and replaces the tensors of the layers (ONNXModel+Write.swift).
    let proto: Onnx_ModelProto
    /// The folder external data files were read from.
    let folder: String
    /// PruneKit node name → the ONNX node (and its inputs) that hold the layer's tensors.
    let exports: [String: ONNXExport]
    /// Reshape nodes whose target shape names the flattened feature count explicitly.
    let reshapes: [ONNXReshape]
    /// Value names that stand for an initializer under another name (through Identity).
    let aliases: [String: String]

    /// Supported default-domain opsets.
    public static let opsets = 13...18
    /// Largest model file read (protobuf's own 2 GiB limit).
    public static let maxFileBytes = Int(Int32.max)
    /// Largest tensor accepted, in elements.
    public static let maxTensorElements = 1 << 30
    /// Largest single dimension of the graph input.
    public static let maxInputDimension = 1 << 16

    /// Reads `path` (and external data files in its folder). Throws `ONNXError`, one line naming the
    /// file and the node, tensor or input at fault.
    public static func load(_ path: String) throws -> ONNXModel {
        let folder = (path as NSString).deletingLastPathComponent
        return try parse(try readFile(path), name: path, folder: folder.isEmpty ? "." : folder)
    }

    /// Reads ONNX bytes; `name` names them in errors and external data files are looked up in
    /// `folder` (and refused outside it).
    public static func parse(_ data: Data, name: String, folder: String) throws -> ONNXModel {
        guard data.count <= maxFileBytes else { throw ONNXError(file: name, reason: "\(data.count) bytes exceed the \(maxFileBytes)-byte protobuf limit") }
        let proto: Onnx_ModelProto
        do {
            proto = try Onnx_ModelProto(serializedBytes: data)
        } catch {
            throw ONNXError(file: name, reason: "not a valid ONNX protobuf (\(error))")
        }
        var importer = ONNXImporter(file: name, folder: folder, proto: proto)
        return try importer.run()
    }

    static func readFile(_ path: String) throws -> Data {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir), !isDir.boolValue else {
            throw ONNXError(file: path, reason: "file not found")
        }
        let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? nil
        guard let size else { throw ONNXError(file: path, reason: "cannot read file") }
        guard size <= maxFileBytes else { throw ONNXError(file: path, reason: "\(size) bytes exceed the \(maxFileBytes)-byte protobuf limit") }
        guard size > 0 else { throw ONNXError(file: path, reason: "empty file") }
        guard let data = FileManager.default.contents(atPath: path) else { throw ONNXError(file: path, reason: "cannot read file") }
        return data
    }
}

/// An ONNX file PruneKit cannot read: one line naming the file, the node or tensor, and what is
/// wrong or missing.
public struct ONNXError: Error, CustomStringConvertible, Equatable {
    /// The path, or the name passed to `ONNXModel.parse`.
    public let file: String
    /// "node 'conv1' (Conv)", "initializer 'fc.weight'", "input 'x'", or nil for the whole file.
    public let subject: String?
    /// What is wrong or missing, without the file or subject.
    public let reason: String

    /// `description` is "file: subject: reason" (no subject when nil), on one line.
    public init(file: String, subject: String? = nil, reason: String) {
        self.file = file
        self.subject = subject
        self.reason = reason
    }

    public var description: String {
        let text = subject.map { "\(file): \($0): \(reason)" } ?? "\(file): \(reason)"
        return ONNXError.oneLine(text)
    }

    /// Control characters (newlines in names taken from the file) become spaces; very long text is cut.
    static func oneLine(_ s: String) -> String {
        let flat = String(s.unicodeScalars.map { $0.properties.generalCategory == .control ? " " : Character($0) })
        return flat.count <= 600 ? flat : String(flat.prefix(600)) + "…"
    }
}

/// A constant read from an initializer or a Constant node: float32 values (DOUBLE converted) or
/// exact integers (INT32, INT64), with their shape.
enum ONNXConstant {
    case float(Tensor)
    case int([Int64], shape: [Int])

    var shape: [Int] {
        switch self {
        case let .float(t): return t.shape
        case let .int(_, shape): return shape
        }
    }

    var count: Int { shape.reduce(1, *) }

    /// The values as floats (integers converted).
    var floats: [Float] {
        switch self {
        case let .float(t): return t.scalars
        case let .int(v, _): return v.map(Float.init)
        }
    }
}

/// Decodes TensorProto messages, reading external data from files inside the model's folder.
struct ONNXTensorReader {
    let file: String
    let folder: String
    /// External files already read (mapped), by resolved path.
    private var externalFiles: [String: Data] = [:]

    init(file: String, folder: String) {
        self.file = file
        self.folder = folder
    }

    func fail(_ name: String, _ why: String) -> ONNXError { ONNXError(file: file, subject: "initializer '\(name)'", reason: why) }

    /// The shape of `t`, checked: no negative dimension, at most `maxTensorElements` elements.
    func shape(of t: Onnx_TensorProto) throws -> (shape: [Int], count: Int) {
        guard t.dims.count <= 8 else { throw fail(t.name, "rank \(t.dims.count) is absurd (at most 8)") }
        var count = 1
        for d in t.dims {
            guard d >= 0 else { throw fail(t.name, "negative dimension in \(t.dims)") }
            let (p, o) = count.multipliedReportingOverflow(by: Int(clamping: d))
            guard !o, p <= ONNXModel.maxTensorElements else {
                throw fail(t.name, "absurd dimensions \(t.dims) (more than \(ONNXModel.maxTensorElements) elements)")
            }
            count = p
        }
        return (t.dims.map { Int($0) }, count)
    }

    mutating func read(_ t: Onnx_TensorProto) throws -> ONNXConstant {
        let (shape, count) = try shape(of: t)
        let elementBytes: Int
        switch t.dataType {
        case 1, 6: elementBytes = 4   // FLOAT, INT32
        case 7, 11: elementBytes = 8  // INT64, DOUBLE
        default: throw fail(t.name, "element type \(t.dataType) is not supported (float32, float64, int32 and int64 are)")
        }
        var raw: Data? = nil
        if t.dataLocation == .external {
            raw = try external(t, bytes: count * elementBytes)
        } else if t.hasRawData {
            raw = t.rawData
        }
        if let raw {
            guard raw.count == count * elementBytes else {
                throw fail(t.name, "\(raw.count) bytes of data for shape \(shape) of \(count) elements × \(elementBytes) bytes")
            }
            switch t.dataType {
            case 1: return .float(try Tensor(shape: shape, storage: Bytes.floats(fromLittleEndian: raw)))
            case 11: return .float(try Tensor(shape: shape, scalars: littleEndian(raw, as: UInt64.self).map { Float(Double(bitPattern: $0)) }))
            case 6: return .int(littleEndian(raw, as: UInt32.self).map { Int64(Int32(bitPattern: $0)) }, shape: shape)
            default: return .int(littleEndian(raw, as: UInt64.self).map { Int64(bitPattern: $0) }, shape: shape)
            }
        }
        let typed: Int
        switch t.dataType {
        case 1: typed = t.floatData.count
        case 11: typed = t.doubleData.count
        case 6: typed = t.int32Data.count
        default: typed = t.int64Data.count
        }
        guard typed == count else { throw fail(t.name, "\(typed) values for shape \(shape) of \(count) elements") }
        switch t.dataType {
        case 1: return .float(try Tensor(shape: shape, scalars: t.floatData))
        case 11: return .float(try Tensor(shape: shape, scalars: t.doubleData.map { Float($0) }))
        case 6: return .int(t.int32Data.map(Int64.init), shape: shape)
        default: return .int(t.int64Data, shape: shape)
        }
    }

    private func littleEndian<T: FixedWidthInteger>(_ d: Data, as: T.Type) -> [T] {
        let size = MemoryLayout<T>.size
        return d.withUnsafeBytes { raw in
            (0..<(d.count / size)).map { T(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * size, as: T.self)) }
        }
    }

    /// The bytes of an external tensor: "location" must name a file inside the model's folder
    /// (relative, no "..", and no symbolic link leading out of it); "offset" and "length" must lie
    /// inside that file and agree with the tensor's shape.
    mutating func external(_ t: Onnx_TensorProto, bytes: Int) throws -> Data {
        var entries: [String: String] = [:]
        for e in t.externalData { entries[e.key] = e.value }
        guard let location = entries["location"], !location.isEmpty else { throw fail(t.name, "external data without a location") }
        guard !location.hasPrefix("/"), !location.hasPrefix("\\"), !location.contains("\0") else {
            throw fail(t.name, "external data location '\(location)' is an absolute path (it must lie in the model's folder)")
        }
        let parts = location.split(whereSeparator: { $0 == "/" || $0 == "\\" })
        guard !parts.contains("..") else {
            throw fail(t.name, "external data location '\(location)' leaves the model's folder")
        }
        let base = URL(fileURLWithPath: folder).resolvingSymlinksInPath().standardizedFileURL.path
        let resolved = URL(fileURLWithPath: folder).appendingPathComponent(location).resolvingSymlinksInPath().standardizedFileURL.path
        guard resolved.hasPrefix(base.hasSuffix("/") ? base : base + "/") else {
            throw fail(t.name, "external data location '\(location)' resolves to \(resolved), outside the model's folder")
        }
        func number(_ key: String) throws -> Int? {
            guard let v = entries[key] else { return nil }
            guard let n = Int(v), n >= 0 else { throw fail(t.name, "external data \(key) '\(v)' is not a byte count") }
            return n
        }
        let offset = try number("offset") ?? 0
        let length = try number("length")
        if let length, length != bytes {
            throw fail(t.name, "external data length \(length) disagrees with its shape (\(bytes) bytes)")
        }
        if externalFiles[resolved] == nil {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: resolved, isDirectory: &isDir), !isDir.boolValue else {
                throw fail(t.name, "external data file '\(location)' not found next to the model")
            }
            guard let d = try? Data(contentsOf: URL(fileURLWithPath: resolved), options: .alwaysMapped) else {
                throw fail(t.name, "cannot read external data file '\(location)'")
            }
            externalFiles[resolved] = d
        }
        let d = externalFiles[resolved]!
        guard offset <= d.count, bytes <= d.count - offset else {
            throw fail(t.name, "external data [\(offset), \(offset) + \(bytes)) runs past the end of '\(location)' (\(d.count) bytes)")
        }
        return d.subdata(in: (d.startIndex + offset)..<(d.startIndex + offset + bytes))
    }
}
