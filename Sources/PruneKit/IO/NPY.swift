// NumPy's .npy format for one array in C order (float32 and float64 for models' inputs; integer
// and boolean dtypes too for labels and raw pixels): the magic "\x93NUMPY", a version, a header
// length (2 bytes in version 1, 4 in versions 2 and 3), a Python dict literal
// {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } padded with spaces to a multiple of
// 64 bytes and ended by a newline, then the data.
import Foundation

/// NumPy's .npy files: one C-order array after the "\x93NUMPY" magic and a Python-dict header.
/// Reads little-endian float, integer and boolean dtypes; writes float32 (version 1).
public enum NPY {
    /// Largest header accepted.
    public static let maxHeaderBytes = 1 << 16

    /// Reads a float32 (or float64, converted) little-endian C-order array. Throws `IOError`, one
    /// line, for anything else.
    public static func read(_ path: String) throws -> Tensor {
        guard FileManager.default.fileExists(atPath: path) else { throw IOError(file: path, reason: "file not found") }
        guard let data = FileManager.default.contents(atPath: path) else { throw IOError(file: path, reason: "cannot read file") }
        return try parse(data, name: path)
    }

    /// Parses .npy bytes: a float32 or float64 array (float64 converted).
    public static func parse(_ bytes: Data, name: String) throws -> Tensor {
        let a = try parseArray(bytes, name: name, floatOnly: true)
        return a.values
    }

    /// An array of any numeric dtype: its values as floats, and exactly as integers for integer
    /// and boolean dtypes.
    public struct NumericArray {
        /// Dimensions, outermost first (empty for a scalar).
        public let shape: [Int]
        /// The elements as Float, row-major: float64 values and integers beyond ±2^24 are rounded.
        public let values: Tensor
        /// nil for float arrays.
        public let integers: [Int64]?
    }

    /// Element size and kind of the little-endian (or byte-sized) dtypes read.
    static let dtypes: [String: (bytes: Int, kind: Character)] = [
        "<f4": (4, "f"), "<f8": (8, "f"), "<f2": (2, "f"), "|u1": (1, "u"), "|i1": (1, "i"), "|b1": (1, "u"), "<u2": (2, "u"),
        "<i2": (2, "i"), "<u4": (4, "u"), "<i4": (4, "i"), "<u8": (8, "u"), "<i8": (8, "i"),
    ]

    /// Parses .npy bytes of any numeric dtype in `dtypes` (C order). Throws `IOError`, one line.
    public static func parseArray(_ bytes: Data, name: String) throws -> NumericArray {
        try parseArray(bytes, name: name, floatOnly: false)
    }

    static func parseArray(_ bytes: Data, name: String, floatOnly: Bool) throws -> NumericArray {
        func fail(_ why: String) -> IOError { IOError(file: name, reason: why) }
        let d = [UInt8](bytes)
        guard d.count >= 10, d[0] == 0x93, Array(d[1..<6]) == Array("NUMPY".utf8) else { throw fail("not a .npy file (no \\x93NUMPY magic)") }
        let major = d[6]
        let headerStart: Int, headerLength: Int
        switch major {
        case 1:
            headerStart = 10
            headerLength = Int(d[8]) | Int(d[9]) << 8
        case 2, 3:
            guard d.count >= 12 else { throw fail("truncated header") }
            headerStart = 12
            headerLength = Int(d[8]) | Int(d[9]) << 8 | Int(d[10]) << 16 | Int(d[11]) << 24
        default: throw fail("unsupported .npy version \(major)")
        }
        guard headerLength <= maxHeaderBytes, headerStart + headerLength <= d.count else {
            throw fail("header length \(headerLength) runs past the end of the file (\(d.count) bytes)")
        }
        let header = String(decoding: d[headerStart..<(headerStart + headerLength)], as: UTF8.self)
        func field(_ key: String) -> Substring? {
            guard let r = header.range(of: "'\(key)'") ?? header.range(of: "\"\(key)\"") else { return nil }
            var rest = header[r.upperBound...].drop { $0 == " " }
            guard rest.first == ":" else { return nil }
            rest = rest.dropFirst().drop { $0 == " " }
            return rest
        }
        guard let descrField = field("descr"), let quote = descrField.first, quote == "'" || quote == "\"",
              let end = descrField.dropFirst().firstIndex(of: quote) else { throw fail("header has no 'descr'") }
        let descr = String(descrField[descrField.index(after: descrField.startIndex)..<end])
        guard let (elementBytes, kind) = dtypes[descr], !floatOnly || descr == "<f4" || descr == "<f8" else {
            throw fail(floatOnly ? "dtype '\(descr)' is not supported (float32 '<f4' or float64 '<f8')"
                                 : "dtype '\(descr)' is not supported (little-endian floats, integers or booleans)")
        }
        guard let order = field("fortran_order") else { throw fail("header has no 'fortran_order'") }
        guard order.hasPrefix("False") else { throw fail("Fortran-order arrays are not supported (save with C order)") }
        guard let shapeField = field("shape"), shapeField.first == "(", let close = shapeField.firstIndex(of: ")") else {
            throw fail("header has no 'shape' tuple")
        }
        var shape: [Int] = []
        for part in shapeField[shapeField.index(after: shapeField.startIndex)..<close].split(separator: ",") {
            let t = part.trimmingCharacters(in: .whitespaces)
            if t.isEmpty { continue }
            guard let v = Int(t), v >= 0, v <= Int(Int32.max) else { throw fail("shape entry '\(t)' is not a size") }
            shape.append(v)
        }
        let count: Int
        do { count = try Tensor.elementCount(shape) } catch { throw fail("absurd shape \(shape)") }
        let start = headerStart + headerLength
        guard d.count - start == count * elementBytes else {
            throw fail("\(d.count - start) bytes of data for shape \(shape) of \(count) × \(elementBytes)-byte elements")
        }
        let payload = bytes.subdata(in: (bytes.startIndex + start)..<bytes.endIndex)
        if descr == "<f4" { return NumericArray(shape: shape, values: try Tensor(shape: shape, storage: Bytes.floats(fromLittleEndian: payload)), integers: nil) }
        // every other dtype: element by element from its little-endian bytes
        func raw(_ i: Int) -> UInt64 {
            var v: UInt64 = 0
            for k in 0..<elementBytes { v |= UInt64(d[start + i * elementBytes + k]) << UInt64(8 * k) }
            return v
        }
        if kind == "f" {
            let values: [Float] = (0..<count).map { i in
                elementBytes == 8 ? Float(Double(bitPattern: raw(i))) : Float(Float16(bitPattern: UInt16(raw(i))))
            }
            return NumericArray(shape: shape, values: try Tensor(shape: shape, scalars: values), integers: nil)
        }
        let bits = UInt64(8 * elementBytes)
        let ints: [Int64] = (0..<count).map { i in
            var v = raw(i)
            if kind == "i", bits < 64, v & (1 << (bits - 1)) != 0 { v |= ~0 << bits } // sign-extend
            return Int64(bitPattern: v)
        }
        return NumericArray(shape: shape, values: try Tensor(shape: shape, scalars: ints.map { Float($0) }), integers: ints)
    }

    /// The .npy bytes (version 1, '<f4', C order) of `t`.
    public static func encode(_ t: Tensor) -> Data {
        let dims = t.shape.map(String.init).joined(separator: ", ") + (t.rank == 1 ? "," : "")
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': (\(dims)), }"
        let unpadded = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        var out = Data([0x93] + Array("NUMPY".utf8) + [1, 0])
        let n = header.utf8.count
        out.append(contentsOf: [UInt8(n & 0xFF), UInt8(n >> 8)])
        out.append(contentsOf: Array(header.utf8))
        out.append(Bytes.littleEndianData(t.storage))
        return out
    }

    /// Writes `t` atomically (temporary file, then rename).
    public static func write(_ t: Tensor, to path: String) throws {
        try AtomicFile.write(encode(t), to: path)
    }
}
