import Foundation

/// A data file that is missing, unreadable or malformed. The message names the file.
public struct DataError: Error, CustomStringConvertible, Equatable {
    /// The path, or the name passed to `IDXArray.decode` or `parse`.
    public let file: String
    /// What is missing or malformed, without the file name.
    public let reason: String
    public var description: String { "\(file): \(reason)" }
}

/// An IDX array (the MNIST file format): unsigned bytes with its dimensions.
public struct IDXArray: Sendable {
    /// Sizes from the header, outermost first: 1 to 4 of them, each ≥ 1.
    public let dimensions: [Int]
    /// The elements, row-major: exactly the product of `dimensions` bytes.
    public let bytes: Data

    /// Reads an IDX file, gzip-compressed (.gz) or not, validating magic number, dimensions and size.
    public static func read(_ path: String, expectedRank: Int? = nil) throws -> IDXArray {
        guard FileManager.default.fileExists(atPath: path) else { throw DataError(file: path, reason: "file not found") }
        guard let raw = FileManager.default.contents(atPath: path) else { throw DataError(file: path, reason: "cannot read file") }
        return try decode(raw, name: path, expectedRank: expectedRank)
    }

    /// Decodes IDX bytes, gzip-compressed or not (the gzip magic decides).
    public static func decode(_ raw: Data, name: String, expectedRank: Int? = nil, maxDecompressed: Int = 1 << 30) throws -> IDXArray {
        let data: Data
        if raw.count >= 2 && raw[raw.startIndex] == 0x1f && raw[raw.startIndex + 1] == 0x8b {
            do { data = try Bytes.gunzip(raw, maxOutput: maxDecompressed) } catch let Bytes.GzipError.corrupt(why) {
                throw DataError(file: name, reason: why)
            }
        } else {
            data = raw
        }
        return try parse(data, name: name, expectedRank: expectedRank)
    }

    /// Parses IDX bytes (already decompressed).
    public static func parse(_ data: Data, name: String, expectedRank: Int? = nil) throws -> IDXArray {
        let d = [UInt8](data.prefix(4))
        guard d.count == 4 else { throw DataError(file: name, reason: "truncated header (\(data.count) bytes)") }
        guard d[0] == 0, d[1] == 0 else {
            throw DataError(file: name, reason: String(format: "bad magic number 0x%02x%02x%02x%02x (not an IDX file)", d[0], d[1], d[2], d[3]))
        }
        guard d[2] == 0x08 else {
            throw DataError(file: name, reason: String(format: "unsupported IDX element type 0x%02x (only unsigned bytes, 0x08)", d[2]))
        }
        let rank = Int(d[3])
        guard rank >= 1 && rank <= 4 else { throw DataError(file: name, reason: "unsupported IDX rank \(rank)") }
        if let e = expectedRank, e != rank {
            throw DataError(file: name, reason: "expected a rank-\(e) IDX array, found rank \(rank)")
        }
        let headerSize = 4 + 4 * rank
        guard data.count >= headerSize else { throw DataError(file: name, reason: "truncated header (\(data.count) bytes)") }
        let base = data.startIndex
        var dims: [Int] = []
        var total = 1
        for i in 0..<rank {
            let o = base + 4 + 4 * i
            let v = Int(data[o]) << 24 | Int(data[o + 1]) << 16 | Int(data[o + 2]) << 8 | Int(data[o + 3])
            guard v > 0 else { throw DataError(file: name, reason: "dimension \(i) is \(v)") }
            dims.append(v)
            let (p, overflow) = total.multipliedReportingOverflow(by: v)
            guard !overflow, p <= 1 << 32 else { throw DataError(file: name, reason: "dimensions \(dims) are too large") }
            total = p
        }
        let payload = data.count - headerSize
        guard payload == total else {
            let what = payload < total ? "truncated" : "has trailing bytes"
            throw DataError(file: name, reason: "\(what): dimensions \(dims) need \(total) data bytes, found \(payload)")
        }
        return IDXArray(dimensions: dims, bytes: data.subdata(in: (base + headerSize)..<data.endIndex))
    }
}
