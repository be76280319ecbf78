// NumPy's .npz archives (np.savez, np.savez_compressed): a zip file of .npy members named
// "<array>.npy". The zip is read through its central directory (the end-of-central-directory
// record at the end of the file, zip64 sizes when a field says 0xFFFFFFFF); each member is stored
// (method 0) or deflated (method 8), and its CRC-32 is checked. Every offset and size is checked
// against the file before it is used: a bad archive is one line naming the file and the member.
import Foundation

/// NumPy's .npz archives (np.savez, np.savez_compressed): a zip file of stored or deflated .npy
/// members, read through its central directory with every offset, size and CRC-32 checked.
public enum NPZ {
    /// Largest member accepted (uncompressed).
    public static let maxMemberBytes = 1 << 31

    /// The arrays of an .npz file by name ("x" for the member "x.npy").
    public static func read(_ path: String) throws -> [String: NPY.NumericArray] {
        guard FileManager.default.fileExists(atPath: path) else { throw IOError(file: path, reason: "file not found") }
        guard let data = try? Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped) else {
            throw IOError(file: path, reason: "cannot read file")
        }
        return try parse(data, name: path)
    }

    /// The arrays in .npz bytes by name ("x" for the member "x.npy"); members not ending in ".npy"
    /// are skipped. `name` names the bytes in errors. Throws `IOError`, one line naming the member at fault.
    public static func parse(_ data: Data, name: String) throws -> [String: NPY.NumericArray] {
        func fail(_ why: String) -> IOError { IOError(file: name, reason: why) }
        let b = [UInt8](data)
        func u16(_ at: Int) -> Int { Int(b[at]) | Int(b[at + 1]) << 8 }
        func u32(_ at: Int) -> Int { u16(at) | u16(at + 2) << 16 }
        func u64(_ at: Int) -> Int? {
            let v = (0..<8).reduce(UInt64(0)) { $0 | UInt64(b[at + $1]) << UInt64(8 * $1) }
            return v <= UInt64(Int.max) ? Int(v) : nil
        }
        // the end-of-central-directory record: the last "PK\5\6" within the final 64 KiB + 22 bytes
        guard b.count >= 22 else { throw fail("not a zip archive (\(b.count) bytes)") }
        var eocd = -1
        var at = b.count - 22
        while at >= max(0, b.count - 22 - 65535) {
            if b[at] == 0x50, b[at + 1] == 0x4B, b[at + 2] == 5, b[at + 3] == 6 { eocd = at; break }
            at -= 1
        }
        guard eocd >= 0 else { throw fail("not a zip archive (no end-of-central-directory record)") }
        var entries = u16(eocd + 10), dirSize = u32(eocd + 12), dirOffset = u32(eocd + 16)
        if entries == 0xFFFF || dirSize == 0xFFFF_FFFF || dirOffset == 0xFFFF_FFFF {
            // zip64: its locator sits right before the record and points at the zip64 record
            let loc = eocd - 20
            guard loc >= 0, u32(loc) == 0x0706_4B50, let rec = u64(loc + 8), rec >= 0, rec <= b.count - 56, u32(rec) == 0x0606_4B50,
                  let n = u64(rec + 32), let size = u64(rec + 40), let off = u64(rec + 48) else {
                throw fail("malformed zip64 end-of-central-directory record")
            }
            (entries, dirSize, dirOffset) = (n, size, off)
        }
        guard dirOffset <= b.count, dirSize <= b.count - dirOffset else { throw fail("central directory runs past the end of the file") }
        var arrays: [String: NPY.NumericArray] = [:]
        var p = dirOffset
        for _ in 0..<entries {
            guard p <= b.count - 46, u32(p) == 0x0201_4B50 else { throw fail("malformed central directory entry at byte \(p)") }
            let flags = u16(p + 8), method = u16(p + 10), crc = UInt32(u32(p + 16))
            var packed = u32(p + 20), size = u32(p + 24)
            let nameLength = u16(p + 28), extraLength = u16(p + 30), commentLength = u16(p + 32)
            var local = u32(p + 42)
            guard p + 46 + nameLength + extraLength + commentLength <= b.count else { throw fail("central directory entry runs past the end") }
            let member = String(decoding: b[(p + 46)..<(p + 46 + nameLength)], as: UTF8.self)
            func bad(_ why: String) -> IOError { IOError(file: name, reason: "member '\(member)': \(why)") }
            // zip64 extra field: the sizes and offset that were 0xFFFFFFFF, in that order
            var e = p + 46 + nameLength
            let extraEnd = e + extraLength
            while e + 4 <= extraEnd {
                let id = u16(e), len = u16(e + 2)
                guard e + 4 + len <= extraEnd else { throw bad("malformed extra field") }
                if id == 1 {
                    var q = e + 4
                    func next() throws -> Int {
                        guard q + 8 <= e + 4 + len, let v = u64(q) else { throw bad("malformed zip64 extra field") }
                        q += 8
                        return v
                    }
                    if size == 0xFFFF_FFFF { size = try next() }
                    if packed == 0xFFFF_FFFF { packed = try next() }
                    if local == 0xFFFF_FFFF { local = try next() }
                }
                e += 4 + len
            }
            p = extraEnd + commentLength
            guard flags & 1 == 0 else { throw bad("encrypted members are not supported") }
            guard size <= maxMemberBytes else { throw bad("\(size) bytes exceed the \(maxMemberBytes)-byte limit") }
            guard local <= b.count - 30, u32(local) == 0x0403_4B50 else { throw bad("no local header at byte \(local)") }
            let start = local + 30 + u16(local + 26) + u16(local + 28)
            guard start <= b.count, packed <= b.count - start else { throw bad("data runs past the end of the file") }
            let raw = data.subdata(in: (data.startIndex + start)..<(data.startIndex + start + packed))
            let content: Data
            switch method {
            case 0:
                guard packed == size else { throw bad("stored member of \(packed) bytes says it holds \(size)") }
                content = raw
            case 8:
                do { content = try Bytes.inflateRaw(raw, maxOutput: size) } catch { throw bad("\(error)") }
                guard content.count == size else { throw bad("inflates to \(content.count) bytes, not \(size)") }
            default: throw bad("compression method \(method) is not supported (stored or deflate)")
            }
            guard Bytes.crc32(content) == crc else { throw bad("CRC-32 mismatch (corrupted data)") }
            guard member.hasSuffix(".npy") else { continue }
            let key = String(member.dropLast(4))
            guard arrays[key] == nil else { throw bad("array '\(key)' appears twice") }
            arrays[key] = try NPY.parseArray(content, name: "\(name): \(member)")
        }
        return arrays
    }
}
