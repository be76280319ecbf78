import Foundation

/// A model or tensor file that cannot be read or written. The message names the file and the fault.
public struct IOError: Error, CustomStringConvertible, Equatable {
    /// The path at fault, or the tensor name or command-line option when the fault is there.
    public let file: String
    /// What is wrong, without the file name.
    public let reason: String
    /// `description` is "file: reason".
    public init(file: String, reason: String) { self.file = file; self.reason = reason }
    public var description: String { "\(file): \(reason)" }
}

/// The safetensors format (the weight files PyTorch users exchange): an 8-byte little-endian header
/// length, a JSON header naming each tensor's dtype, shape and byte range, then the raw data.
/// Reading validates everything before a tensor is built; writing is atomic (temp file + rename).
public enum SafeTensors {
    /// Largest JSON header accepted (the reference implementation's limit).
    public static let maxHeaderBytes = 100_000_000

    static let dtypeSizes: [String: Int] = ["F32": 4, "F16": 2, "BF16": 2, "F64": 8, "U8": 1, "I8": 1, "BOOL": 1,
                                            "I16": 2, "U16": 2, "I32": 4, "U32": 4, "I64": 8, "U64": 8]

    /// Reads every tensor of a file as f32 (F16, BF16, F64, integer and BOOL tensors are converted).
    public static func read(_ path: String) throws -> (tensors: [String: Tensor], metadata: [String: String]) {
        let r = try readAll(path)
        return (r.tensors, r.metadata)
    }

    /// As `read`, plus the integer tensors with their exact values (I8 … I64, U8 … U32; U64 values
    /// above 2⁶³ − 1 wrap to negative).
    public static func readAll(_ path: String) throws -> (tensors: [String: Tensor], integers: [String: [Int64]], metadata: [String: String]) {
        guard FileManager.default.fileExists(atPath: path) else { throw IOError(file: path, reason: "file not found") }
        guard let data = FileManager.default.contents(atPath: path) else { throw IOError(file: path, reason: "cannot read file") }
        return try parseAll(data, name: path)
    }

    /// Parses safetensors bytes.
    public static func parse(_ data: Data, name: String) throws -> (tensors: [String: Tensor], metadata: [String: String]) {
        let r = try parseAll(data, name: name)
        return (r.tensors, r.metadata)
    }

    static let integerTypes: Set<String> = ["I8", "I16", "I32", "I64", "U8", "U16", "U32", "U64"]

    /// Parses safetensors bytes, keeping integer tensors exact as well.
    public static func parseAll(_ data: Data, name: String) throws -> (tensors: [String: Tensor], integers: [String: [Int64]], metadata: [String: String]) {
        func fail(_ why: String) -> IOError { IOError(file: name, reason: why) }
        guard data.count >= 8 else { throw fail("truncated: \(data.count) bytes, no header length") }
        let b = data.startIndex
        var n: UInt64 = 0
        for i in 0..<8 { n |= UInt64(data[b + i]) << (8 * UInt64(i)) }
        guard n <= UInt64(maxHeaderBytes) else { throw fail("header length \(n) exceeds the \(maxHeaderBytes)-byte limit") }
        guard n <= UInt64(data.count - 8) else { throw fail("header length \(n) runs past the end of the file (\(data.count) bytes)") }
        let headerBytes = data.subdata(in: (b + 8)..<(b + 8 + Int(n)))
        guard let json = try? JSONSerialization.jsonObject(with: headerBytes), let header = json as? [String: Any] else {
            throw fail("header is not a JSON object")
        }
        let dataStart = 8 + Int(n)
        let dataCount = data.count - dataStart
        var metadata: [String: String] = [:]
        var entries: [(name: String, dtype: String, shape: [Int], begin: Int, end: Int)] = []
        for (key, value) in header {
            if key == "__metadata__" {
                guard let m = value as? [String: Any] else { throw fail("__metadata__ is not an object") }
                for (k, v) in m {
                    guard let s = v as? String else { throw fail("metadata value for '\(k)' is not a string") }
                    metadata[k] = s
                }
                continue
            }
            guard let info = value as? [String: Any] else { throw fail("entry '\(key)' is not an object") }
            guard let dtype = info["dtype"] as? String else { throw fail("tensor '\(key)' has no dtype") }
            guard let size = dtypeSizes[dtype] else { throw fail("tensor '\(key)' has unsupported dtype '\(dtype)'") }
            guard let shapeAny = info["shape"] as? [Any], let offsAny = info["data_offsets"] as? [Any], offsAny.count == 2 else {
                throw fail("tensor '\(key)' needs a shape and two data_offsets")
            }
            var shape: [Int] = []
            var numel = 1
            for d in shapeAny {
                guard let v = (d as? NSNumber)?.int64Value, v >= 0, v <= Int64(Int32.max) else {
                    throw fail("tensor '\(key)' has an invalid dimension \(d)")
                }
                shape.append(Int(v))
                let (p, o) = numel.multipliedReportingOverflow(by: Int(v))
                guard !o, p <= Int(Int32.max) * 16 else { throw fail("tensor '\(key)' shape \(shape) overflows") }
                numel = p
            }
            guard let o0 = (offsAny[0] as? NSNumber)?.int64Value, let o1 = (offsAny[1] as? NSNumber)?.int64Value,
                  o0 >= 0, o1 >= o0 else { throw fail("tensor '\(key)' has invalid data_offsets") }
            guard o1 <= Int64(dataCount) else {
                throw fail("tensor '\(key)' data [\(o0), \(o1)) runs past the end of the data (\(dataCount) bytes)")
            }
            guard o1 - o0 == Int64(numel * size) else {
                throw fail("tensor '\(key)' has \(o1 - o0) bytes, shape \(shape) of \(dtype) needs \(numel * size)")
            }
            entries.append((key, dtype, shape, Int(o0), Int(o1)))
        }
        entries.sort { ($0.begin, $0.end) < ($1.begin, $1.end) }
        var cursor = 0
        for e in entries where e.end > e.begin {
            guard e.begin >= cursor else { throw fail("tensor '\(e.name)' overlaps another tensor's bytes") }
            cursor = e.end
        }
        var tensors: [String: Tensor] = [:], integers: [String: [Int64]] = [:]
        for e in entries {
            let bytes = data.subdata(in: (b + dataStart + e.begin)..<(b + dataStart + e.end))
            tensors[e.name] = try Tensor(shape: e.shape, storage: convert(bytes, dtype: e.dtype))
            if integerTypes.contains(e.dtype) { integers[e.name] = exactIntegers(bytes, dtype: e.dtype) }
        }
        return (tensors, integers, metadata)
    }

    static func exactIntegers(_ bytes: Data, dtype: String) -> [Int64] {
        let size = dtypeSizes[dtype]!
        let signed = dtype.hasPrefix("I")
        return bytes.withUnsafeBytes { raw -> [Int64] in
            (0..<(bytes.count / size)).map { i in
                var v: UInt64 = 0
                for k in 0..<size { v |= UInt64(raw[i * size + k]) << (8 * UInt64(k)) }
                if signed && size < 8 && v & (1 << UInt64(8 * size - 1)) != 0 { v |= ~0 << UInt64(8 * size) } // sign-extend
                return Int64(bitPattern: v)
            }
        }
    }

    static func convert(_ bytes: Data, dtype: String) -> FloatStorage {
        if dtype == "F32" { return Bytes.floats(fromLittleEndian: bytes) }
        let u = [UInt8](bytes)
        func le(_ i: Int, _ w: Int) -> UInt64 { (0..<w).reduce(UInt64(0)) { $0 | UInt64(u[i + $1]) << (8 * UInt64($1)) } }
        let size = dtypeSizes[dtype]!
        let n = u.count / size
        var out = [Float](repeating: 0, count: n)
        for i in 0..<n {
            let raw = le(i * size, size)
            switch dtype {
            case "F16": out[i] = Float(Float16(bitPattern: UInt16(raw)))
            case "BF16": out[i] = Float(bitPattern: UInt32(raw) << 16)
            case "F64": out[i] = Float(Double(bitPattern: raw))
            case "U8", "BOOL", "U16", "U32", "U64": out[i] = Float(raw)
            case "I8": out[i] = Float(Int8(truncatingIfNeeded: raw))
            case "I16": out[i] = Float(Int16(truncatingIfNeeded: raw))
            case "I32": out[i] = Float(Int32(truncatingIfNeeded: raw))
            default: out[i] = Float(Int64(bitPattern: raw))
            }
        }
        return FloatStorage(out)
    }

    /// Serialises tensors as F32 (names sorted, data in that order) with string metadata.
    /// Integer tensors (`integers`: name → shape and values) are written as I32, `bytes` as U8.
    public static func encode(_ tensors: [String: Tensor], integers: [String: (shape: [Int], values: [Int32])] = [:],
                              bytes: [String: (shape: [Int], values: [UInt8])] = [:],
                              metadata: [String: String] = [:]) throws -> Data {
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var offset = 0
        let names = (Array(tensors.keys) + Array(integers.keys) + Array(bytes.keys)).sorted()
        if let twice = zip(names, names.dropFirst()).first(where: { $0.0 == $0.1 }) { throw IOError(file: twice.0, reason: "name used twice") }
        for name in names {
            let (shape, count, dtype, size) = tensors[name].map { ($0.shape, $0.count, "F32", 4) }
                ?? integers[name].map { ($0.shape, $0.values.count, "I32", 4) } ?? (bytes[name]!.shape, bytes[name]!.values.count, "U8", 1)
            guard shape.reduce(1, *) == count else { throw TensorError.countMismatch(shape: shape, count: count) }
            header[name] = ["dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size * count]] as [String: Any]
            offset += size * count
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while json.count % 8 != 0 { json.append(0x20) } // pad with spaces, as the reference writer does
        var out = Data()
        var len = UInt64(json.count).littleEndian
        withUnsafeBytes(of: &len) { out.append(contentsOf: $0) }
        out.append(json)
        for name in names {
            if let t = tensors[name] { out.append(Bytes.littleEndianData(t.storage)); continue }
            if let b = bytes[name] { out.append(contentsOf: b.values); continue }
            for v in integers[name]!.values { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        }
        return out
    }

    /// Writes atomically: a temporary file in the same folder, flushed, then renamed over `path`.
    public static func write(_ tensors: [String: Tensor], integers: [String: (shape: [Int], values: [Int32])] = [:],
                             bytes: [String: (shape: [Int], values: [UInt8])] = [:],
                             metadata: [String: String] = [:], to path: String) throws {
        try AtomicFile.write(try encode(tensors, integers: integers, bytes: bytes, metadata: metadata), to: path)
    }
}

/// Atomic file replacement: nothing half-written is ever visible at the destination.
public enum AtomicFile {
    /// Throws, naming the path, unless a file can be written there: its folder exists and takes a
    /// new file, and the path itself is not a folder. Commands call this before any work starts.
    public static func checkWritable(_ path: String) throws {
        let url = URL(fileURLWithPath: path)
        let dir = url.deletingLastPathComponent().path
        var isDir: ObjCBool = false
        guard !path.isEmpty, !path.hasSuffix("/") else { throw IOError(file: path, reason: "expected a file name, got a folder path") }
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue {
            throw IOError(file: path, reason: "is a folder, expected a file to write")
        }
        guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue else {
            throw IOError(file: path, reason: "folder \(dir) does not exist")
        }
        guard access(dir, W_OK) == 0 else { throw IOError(file: path, reason: "folder \(dir) is not writable") }
    }

    /// Throws `IOError` unless `path` can become an output folder: an existing writable folder, or a
    /// new one whose parent folder exists and is writable (not a file).
    public static func checkWritableFolder(_ path: String) throws {
        guard !path.isEmpty else { throw IOError(file: path, reason: "expected a folder path") }
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDir) {
            guard isDir.boolValue else { throw IOError(file: path, reason: "is a file, expected a folder to write") }
            guard access(path, W_OK) == 0 else { throw IOError(file: path, reason: "folder is not writable") }
            return
        }
        let parent = URL(fileURLWithPath: path).deletingLastPathComponent().path
        guard FileManager.default.fileExists(atPath: parent, isDirectory: &isDir), isDir.boolValue else {
            throw IOError(file: path, reason: "folder \(parent) does not exist")
        }
        guard access(parent, W_OK) == 0 else { throw IOError(file: path, reason: "folder \(parent) is not writable") }
    }

    /// Writes `data` to a temporary file in the folder of `path`, flushes it and renames it over `path`;
    /// on failure the temporary file is removed. Throws `IOError`; `checkWritable` runs first.
    public static func write(_ data: Data, to path: String) throws {
        let url = URL(fileURLWithPath: path)
        let dir = url.deletingLastPathComponent().path
        try checkWritable(path)
        let tmp = dir + "/." + url.lastPathComponent + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        guard FileManager.default.createFile(atPath: tmp, contents: nil) else {
            throw IOError(file: path, reason: "cannot create a temporary file in \(dir)")
        }
        do {
            let h = try FileHandle(forWritingTo: URL(fileURLWithPath: tmp))
            try h.write(contentsOf: data)
            try h.synchronize()
            try h.close()
            guard rename(tmp, path) == 0 else {
                throw IOError(file: path, reason: "cannot move the written file into place: \(String(cString: strerror(errno)))")
            }
        } catch {
            try? FileManager.default.removeItem(atPath: tmp)
            if let e = error as? IOError { throw e }
            throw IOError(file: path, reason: "write failed: \(error)")
        }
    }
}
