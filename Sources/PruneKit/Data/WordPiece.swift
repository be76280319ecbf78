import Foundation

/// BERT's uncased WordPiece tokenizer, as the `BertTokenizer` of all-MiniLM-L6-v2 behaves: clean
/// the text (control characters dropped, whitespace normalised), space out CJK ideographs, lower
/// case and strip accents (NFD, combining marks removed), split on whitespace and punctuation, then
/// greedy longest-match WordPiece with the `##` continuation prefix (words over 100 characters
/// become [UNK]). `encode` adds [CLS] … [SEP] and truncates; `batch` pads with an attention mask.
public struct WordPieceTokenizer: Sendable {
    public let vocabulary: [String: Int32]
    public let unknown: Int32, cls: Int32, sep: Int32, pad: Int32
    public let maxLength: Int

    /// Reads `vocab.txt` (one token per line; the line number is its id).
    public init(vocabularyFile path: String, maxLength: Int = 256) throws {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw IOError(file: path, reason: "cannot read the vocabulary")
        }
        var v: [String: Int32] = [:]
        for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let token = line.hasSuffix("\r") ? String(line.dropLast()) : String(line)
            if !token.isEmpty && v[token] == nil { v[token] = Int32(i) }
        }
        try self.init(vocabulary: v, maxLength: maxLength, source: path)
    }

    public init(vocabulary: [String: Int32], maxLength: Int = 256, source: String = "vocabulary") throws {
        guard let u = vocabulary["[UNK]"], let c = vocabulary["[CLS]"], let s = vocabulary["[SEP]"], let p = vocabulary["[PAD]"] else {
            throw IOError(file: source, reason: "the vocabulary lacks [UNK], [CLS], [SEP] or [PAD]")
        }
        guard maxLength >= 2 else { throw IOError(file: source, reason: "maximum length \(maxLength) leaves no room for [CLS] and [SEP]") }
        self.vocabulary = vocabulary
        (unknown, cls, sep, pad) = (u, c, s, p)
        self.maxLength = maxLength
    }

    /// The basic tokens of `text` (cleaned, lower-cased, accents stripped, split on punctuation).
    public func basicTokens(_ text: String) -> [String] {
        var spaced = String.UnicodeScalarView()
        for u in text.unicodeScalars {
            let v = u.value
            if v == 0 || v == 0xFFFD { continue }
            if u == "\t" || u == "\n" || u == "\r" || u.properties.generalCategory == .spaceSeparator {
                spaced.append(" ")
                continue
            }
            let cat = u.properties.generalCategory
            if cat == .control || cat == .format || cat == .unassigned || cat == .privateUse || cat == .surrogate { continue }
            if Self.isCJK(v) {
                spaced.append(" "); spaced.append(u); spaced.append(" ")
            } else {
                spaced.append(u)
            }
        }
        var out: [String] = []
        for word in String(spaced).split(separator: " ") {
            let lowered = word.lowercased().decomposedStringWithCanonicalMapping
            var current = String.UnicodeScalarView()
            for u in lowered.unicodeScalars where u.properties.generalCategory != .nonspacingMark {
                if Self.isPunctuation(u) {
                    if !current.isEmpty { out.append(String(current)); current = String.UnicodeScalarView() }
                    out.append(String(u))
                } else {
                    current.append(u)
                }
            }
            if !current.isEmpty { out.append(String(current)) }
        }
        return out
    }

    /// WordPiece ids of one basic token.
    public func wordPieces(_ word: String) -> [Int32] {
        let chars = Array(word.unicodeScalars)
        if chars.count > 100 { return [unknown] }
        var ids: [Int32] = []
        var start = 0
        while start < chars.count {
            var end = chars.count
            var found: Int32? = nil
            while start < end {
                var piece = String(String.UnicodeScalarView(chars[start..<end]))
                if start > 0 { piece = "##" + piece }
                if let id = vocabulary[piece] { found = id; break }
                end -= 1
            }
            guard let id = found else { return [unknown] }
            ids.append(id)
            start = end
        }
        return ids
    }

    /// [CLS] + pieces + [SEP], truncated to `maxLength` ids.
    public func encode(_ text: String) -> [Int32] {
        var ids: [Int32] = [cls]
        for w in basicTokens(text) { ids += wordPieces(w) }
        if ids.count > maxLength - 1 { ids = Array(ids.prefix(maxLength - 1)) }
        ids.append(sep)
        return ids
    }

    /// Ids padded to the longest text of the batch, and the attention mask (1 real, 0 padding).
    public func batch(_ texts: [String]) -> (ids: [[Int32]], mask: [[Float]]) { pad(texts.map(encode)) }

    /// Already encoded sequences padded to the longest, with their attention mask.
    public func pad(_ enc: [[Int32]]) -> (ids: [[Int32]], mask: [[Float]]) {
        let n = enc.map(\.count).max() ?? 0
        return (enc.map { $0 + [Int32](repeating: pad, count: n - $0.count) },
                enc.map { [Float](repeating: 1, count: $0.count) + [Float](repeating: 0, count: n - $0.count) })
    }

    static func isCJK(_ v: UInt32) -> Bool {
        (0x4E00...0x9FFF).contains(v) || (0x3400...0x4DBF).contains(v) || (0x20000...0x2A6DF).contains(v)
            || (0x2A700...0x2B73F).contains(v) || (0x2B740...0x2B81F).contains(v) || (0x2B820...0x2CEAF).contains(v)
            || (0xF900...0xFAFF).contains(v) || (0x2F800...0x2FA1F).contains(v)
    }

    static func isPunctuation(_ u: Unicode.Scalar) -> Bool {
        let v = u.value
        if (33...47).contains(v) || (58...64).contains(v) || (91...96).contains(v) || (123...126).contains(v) { return true }
        switch u.properties.generalCategory {
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation, .initialPunctuation,
             .finalPunctuation, .otherPunctuation: return true
        default: return false
        }
    }
}
