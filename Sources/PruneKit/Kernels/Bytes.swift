// Conversions between raw little-endian bytes and typed storage (file formats), and gunzip.
import Foundation
internal import CZlib

enum Bytes {
    /// Float32 little-endian bytes → storage. `data.count` must be 4·count.
    static func floats(fromLittleEndian data: Data) -> FloatStorage {
        let n = data.count / 4
        let s = FloatStorage(count: n)
        data.withUnsafeBytes { raw in
            for i in 0..<n {
                s.base[i] = Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
            }
        }
        return s
    }

    /// Storage → Float32 little-endian bytes.
    static func littleEndianData(_ s: FloatStorage) -> Data {
        var d = Data(count: s.count * 4)
        d.withUnsafeMutableBytes { raw in
            for i in 0..<s.count { raw.storeBytes(of: s.base[i].bitPattern.littleEndian, toByteOffset: 4 * i, as: UInt32.self) }
        }
        return d
    }

    static func bytes(_ data: Data) -> ByteStorage {
        let s = ByteStorage(count: data.count)
        data.withUnsafeBytes { raw in
            if let b = raw.baseAddress { s.base.update(from: b.assumingMemoryBound(to: UInt8.self), count: data.count) }
        }
        return s
    }

    static func data(_ s: ByteStorage) -> Data { Data(bytes: s.base, count: s.count) }

    enum GzipError: Error { case corrupt(String) }

    /// Inflates gzip (or zlib) data. Throws on corrupt or truncated input.
    static func gunzip(_ input: Data, maxOutput: Int = 1 << 31) throws -> Data {
        // 15 + 32: accept gzip and zlib headers
        try inflateStream(input, windowBits: 15 + 32, maxOutput: maxOutput)
    }

    /// Inflates a raw deflate stream (no header: a zip entry's data). Throws on corrupt or truncated input.
    static func inflateRaw(_ input: Data, maxOutput: Int) throws -> Data {
        try inflateStream(input, windowBits: -15, maxOutput: maxOutput)
    }

    /// The CRC-32 of `data` (zip's and gzip's checksum).
    static func crc32(_ data: Data) -> UInt32 {
        data.withUnsafeBytes { raw -> UInt32 in
            guard let base = raw.baseAddress else { return 0 }
            var crc = CZlib.crc32(0, nil, 0)
            var offset = 0
            while offset < raw.count {
                let n = min(raw.count - offset, 1 << 30)
                crc = CZlib.crc32(crc, base.advanced(by: offset).assumingMemoryBound(to: Bytef.self), uInt(n))
                offset += n
            }
            return UInt32(crc)
        }
    }

    private static func inflateStream(_ input: Data, windowBits: Int32, maxOutput: Int) throws -> Data {
        var stream = z_stream()
        guard inflateInit2_(&stream, windowBits, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw GzipError.corrupt("zlib could not initialise")
        }
        defer { inflateEnd(&stream) }
        var out = Data()
        let chunk = 1 << 20
        var buffer = [UInt8](repeating: 0, count: chunk)
        var status: Int32 = Z_OK
        try input.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            guard let base = raw.baseAddress else { throw GzipError.corrupt("empty input") }
            stream.next_in = UnsafeMutablePointer(mutating: base.assumingMemoryBound(to: Bytef.self))
            stream.avail_in = uInt(raw.count)
            repeat {
                try buffer.withUnsafeMutableBufferPointer { buf in
                    stream.next_out = buf.baseAddress
                    stream.avail_out = uInt(chunk)
                    status = inflate(&stream, Z_NO_FLUSH)
                    if status != Z_OK && status != Z_STREAM_END {
                        let msg = stream.msg.map { String(cString: $0) } ?? "code \(status)"
                        throw GzipError.corrupt(status == Z_BUF_ERROR ? "truncated gzip stream" : "corrupt gzip data: \(msg)")
                    }
                    out.append(buf.baseAddress!, count: chunk - Int(stream.avail_out))
                }
                if out.count > maxOutput { throw GzipError.corrupt("decompressed size exceeds \(maxOutput) bytes") }
                if status != Z_STREAM_END && stream.avail_in == 0 && stream.avail_out != 0 {
                    throw GzipError.corrupt("truncated gzip stream")
                }
            } while status != Z_STREAM_END
        }
        return out
    }
}
