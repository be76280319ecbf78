import Foundation

/// BERT's WordPiece tokenizer, as HuggingFace's `BertTokenizerFast` behaves: clean the text
/// (control characters dropped, whitespace normalised), space out CJK ideographs, strip accents
/// (NFD, combining marks removed) and lower-case as `options` say, split on whitespace and
/// punctuation, then greedy longest-match WordPiece with the `##` continuation prefix (words over
/// 100 characters become the unknown token). `encode` adds [CLS] … [SEP] and truncates; `batch`
/// pads with an attention mask.
public struct WordPieceTokenizer: Sendable {
    /// The normalisation options of tokenizer_config.json.
    public struct Options: Sendable, Equatable {
        /// Lower-case the text (`do_lower_case`).
        public var lowercase: Bool
        /// Strip accents (`strip_accents`; nil: when lower-casing, as BERT's tokenizers do).
        public var stripAccents: Bool?
        /// Space out CJK ideographs (`tokenize_chinese_chars`).
        public var chineseCharacters: Bool
        /// Options as tokenizer_config.json gives them; the defaults are uncased BERT's.
        public init(lowercase: Bool = true, stripAccents: Bool? = nil, chineseCharacters: Bool = true) {
            (self.lowercase, self.stripAccents, self.chineseCharacters) = (lowercase, stripAccents, chineseCharacters)
        }
        /// Uncased BERT's (all-MiniLM-L6-v2's): lower-case and strip accents.
        public static let uncased = Options()
        /// Cased BERT's: neither.
        public static let cased = Options(lowercase: false)
    }

    /// The special tokens' strings (tokenizer_config.json's unk_token, cls_token, sep_token, pad_token).
    public struct SpecialTokens: Sendable, Equatable {
        /// The strings of the unknown, classification, separator and padding tokens, as in the vocabulary.
        public var unknown: String, cls: String, sep: String, pad: String
        /// Special tokens; the defaults are BERT's [UNK], [CLS], [SEP] and [PAD].
        public init(unknown: String = "[UNK]", cls: String = "[CLS]", sep: String = "[SEP]", pad: String = "[PAD]") {
            (self.unknown, self.cls, self.sep, self.pad) = (unknown, cls, sep, pad)
        }
    }

    /// Token string → id.
    public let vocabulary: [String: Int32]
    /// Ids of the unknown, classification ([CLS]), separator ([SEP]) and padding tokens.
    public let unknown: Int32, cls: Int32, sep: Int32, pad: Int32
    /// Most ids `encode` returns, [CLS] and [SEP] included (at least 2).
    public let maxLength: Int
    /// The normalisation applied before splitting.
    public let options: Options

    /// Reads `vocab.txt` (one token per line; the line number is its id).
    public init(vocabularyFile path: String, maxLength: Int = 256, options: Options = .uncased,
                specialTokens: SpecialTokens = SpecialTokens()) throws {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw IOError(file: path, reason: "cannot read the vocabulary")
        }
        var v: [String: Int32] = [:]
        for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let token = line.hasSuffix("\r") ? String(line.dropLast()) : String(line)
            if !token.isEmpty && v[token] == nil { v[token] = Int32(i) }
        }
        try self.init(vocabulary: v, maxLength: maxLength, source: path, options: options, specialTokens: specialTokens)
    }

    /// A tokenizer over `vocabulary` (token → id). Throws `IOError`, naming `source`, when a special
    /// token is missing from it or `maxLength` is below 2.
    public init(vocabulary: [String: Int32], maxLength: Int = 256, source: String = "vocabulary", options: Options = .uncased,
                specialTokens st: SpecialTokens = SpecialTokens()) throws {
        guard let u = vocabulary[st.unknown], let c = vocabulary[st.cls], let s = vocabulary[st.sep], let p = vocabulary[st.pad] else {
            throw IOError(file: source, reason: "the vocabulary lacks \(st.unknown), \(st.cls), \(st.sep) or \(st.pad)")
        }
        guard maxLength >= 2 else { throw IOError(file: source, reason: "maximum length \(maxLength) leaves no room for \(st.cls) and \(st.sep)") }
        self.vocabulary = vocabulary
        (unknown, cls, sep, pad) = (u, c, s, p)
        self.maxLength = maxLength
        self.options = options
    }

    /// The tokenizer of a model folder: vocab.txt, with the options and special tokens of
    /// tokenizer_config.json (else tokenizer.json's BertNormalizer, else uncased BERT's), and the
    /// maximum length as sentence-transformers sets it: sentence_bert_config.json's `max_seq_length`,
    /// else the smaller of `maxPositions` and `model_max_length`; never above `maxPositions`.
    /// sentence_bert_config.json's `do_lower_case` lower-cases the text too.
    public init(folder dir: String, maxPositions: Int) throws {
        func object(_ name: String) throws -> [String: Any]? {
            let path = dir + "/" + name
            guard let data = FileManager.default.contents(atPath: path) else { return nil }
            guard let o = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw IOError(file: path, reason: "not a JSON object")
            }
            return o
        }
        let tc = try object("tokenizer_config.json") ?? [:]
        let normalizer = (try object("tokenizer.json"))?["normalizer"] as? [String: Any] ?? [:]
        let st = try object("sentence_bert_config.json") ?? [:]
        func flag(_ key: String, _ fast: String) -> Bool? {
            if let v = tc[key] as? Bool { return v }
            if normalizer["type"] as? String == "BertNormalizer", let v = normalizer[fast] as? Bool { return v }
            return nil
        }
        var options = Options(lowercase: flag("do_lower_case", "lowercase") ?? true, stripAccents: flag("strip_accents", "strip_accents"),
                              chineseCharacters: flag("tokenize_chinese_chars", "handle_chinese_chars") ?? true)
        if st["do_lower_case"] as? Bool == true {
            // sentence-transformers lower-cases the text before the tokenizer sees it (no accent stripping)
            if !options.lowercase { options.stripAccents = options.stripAccents ?? false }
            options.lowercase = true
        }
        func token(_ key: String, _ fallback: String) -> String {
            if let s = tc[key] as? String { return s }
            if let d = tc[key] as? [String: Any], let s = d["content"] as? String { return s }
            return fallback
        }
        let special = SpecialTokens(unknown: token("unk_token", "[UNK]"), cls: token("cls_token", "[CLS]"), sep: token("sep_token", "[SEP]"),
                                    pad: token("pad_token", "[PAD]"))
        var maxLength = maxPositions
        if let m = (st["max_seq_length"] as? NSNumber)?.intValue, m > 0 {
            maxLength = min(m, maxPositions)
        } else if let m = (tc["model_max_length"] as? NSNumber)?.doubleValue, m >= 2 {
            maxLength = Int(min(m, Double(maxPositions)))
        }
        try self.init(vocabularyFile: dir + "/vocab.txt", maxLength: maxLength, options: options, specialTokens: special)
    }

    /// The basic tokens of `text`: cleaned, CJK spaced, accents stripped and lower-cased as the
    /// options say, split on whitespace and punctuation.
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
            if options.chineseCharacters && Self.isCJK(v) {
                spaced.append(" "); spaced.append(u); spaced.append(" ")
            } else {
                spaced.append(u)
            }
        }
        let strip = options.stripAccents ?? options.lowercase
        var out: [String] = []
        for word in String(spaced).unicodeScalars.split(separator: " ") {
            // HuggingFace's fast BertNormalizer strips accents first, then lower-cases
            var scalars = String.UnicodeScalarView(word)
            if strip {
                scalars = String.UnicodeScalarView(String(scalars).decomposedStringWithCanonicalMapping.unicodeScalars
                    .filter { $0.properties.generalCategory != .nonspacingMark })
            }
            let normal = options.lowercase ? String(scalars).lowercased() : String(scalars)
            var current = String.UnicodeScalarView()
            for u in normal.unicodeScalars {
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
