import XCTest
@testable import PruneKit

/// Deterministic random arrays for tests.
struct TestRNG {
    var g: SeededGenerator
    init(_ seed: UInt64) { g = SeededGenerator(seed: seed) }
    mutating func floats(_ n: Int, _ lo: Float = -1, _ hi: Float = 1) -> [Float] { (0..<n).map { _ in g.uniform(lo, hi) } }
    mutating func mask(_ n: Int, keep: Double) -> [UInt8] { (0..<n).map { _ in Double(g.nextUnitFloat()) < keep ? 1 : 0 } }
    mutating func int(_ n: Int) -> Int { Int(g.next() % UInt64(n)) }
}

/// Runs `body` with the kernels limited to each ISA this CPU has, then restores the limit.
func forEachISA(_ body: (String) throws -> Void) rethrows {
    let order = ["scalar", "avx2", "avx512"]
    let best = order.firstIndex(of: Runtime.cpuISA) ?? 0
    defer { Runtime.limitISA("avx512") }
    for isa in order[0...best] {
        Runtime.limitISA(isa)
        try body(isa)
    }
}

/// Runs `body` with the given kernel thread count, then restores it.
func withThreads<T>(_ n: Int, _ body: () throws -> T) rethrows -> T {
    let saved = Runtime.threads
    Runtime.threads = n
    defer { Runtime.threads = saved }
    return try body()
}

func assertClose(_ a: [Float], _ b: [Float], rtol: Float, atol: Float, _ what: String,
                 file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.count, b.count, "\(what): count", file: file, line: line)
    var worst: Float = 0
    var at = -1
    for i in 0..<min(a.count, b.count) {
        let err = abs(a[i] - b[i]) - (atol + rtol * abs(b[i]))
        if !(err <= 0) && (at < 0 || err > worst || err.isNaN) { worst = err; at = i }
    }
    if at >= 0 { XCTFail("\(what): element \(at) is \(a[at]), expected \(b[at])", file: file, line: line) }
}

func tensor(_ shape: [Int], _ values: [Float]) -> Tensor { try! Tensor(shape: shape, scalars: values) }

/// Folder with the Fashion-MNIST files (gzipped or not), or nil.
var fashionMNISTDirectory: String? {
    let base = FashionMNIST.defaultDirectory + "/t10k-labels-idx1-ubyte"
    return [base + ".gz", base].contains { FileManager.default.fileExists(atPath: $0) } ? FashionMNIST.defaultDirectory : nil
}

/// The Fashion-MNIST folder; skips when absent, but fails where the data is required (CI sets
/// PRUNEKIT_REQUIRE_DATASETS=1: scripts/setup.sh installs it, so a skip there hides a broken setup).
func requireFashionMNIST(file: StaticString = #filePath, line: UInt = #line) throws -> String {
    if let d = fashionMNISTDirectory { return d }
    if ProcessInfo.processInfo.environment["PRUNEKIT_REQUIRE_DATASETS"] == "1" {
        XCTFail("dataset-fashion-mnist is missing from \(FashionMNIST.defaultDirectory), but scripts/setup.sh installs it",
                file: file, line: line)
        throw CocoaError(.fileNoSuchFile)
    }
    throw XCTSkip("dataset-fashion-mnist is not installed", file: file, line: line)
}

/// The prunekit executable `swift test` built next to the test bundle (or $PRUNEKIT_BINARY).
var prunekitBinary: String {
    if let b = ProcessInfo.processInfo.environment["PRUNEKIT_BINARY"] { return b }
    let me = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    var dir = me.deletingLastPathComponent()
    if dir.lastPathComponent == "MacOS" || dir.lastPathComponent == "Contents" { dir = dir.deletingLastPathComponent() }
    return dir.appendingPathComponent("prunekit").path
}

/// Runs prunekit with `args`; returns its status, stdout and stderr.
func runPrunekit(_ args: [String]) throws -> (status: Int32, out: String, err: String) {
    guard FileManager.default.isExecutableFile(atPath: prunekitBinary) else {
        XCTFail("prunekit binary not found at \(prunekitBinary)")
        throw CocoaError(.fileNoSuchFile)
    }
    return try runProcess(prunekitBinary, args)
}

/// Runs `executable` with `args`; returns its status, stdout and stderr.
func runProcess(_ executable: String, _ args: [String]) throws -> (status: Int32, out: String, err: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = args
    let o = Pipe(), e = Pipe()
    p.standardOutput = o
    p.standardError = e
    try p.run()
    let out = o.fileHandleForReading.readDataToEndOfFile(), err = e.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: out, as: UTF8.self), String(decoding: err, as: UTF8.self))
}

/// A 2-block BERT encoder (hidden 8, 2 heads, FFN 12, vocabulary 20) with random weights.
func tinyEncoder(seed: UInt64) throws -> BertEncoder {
    var g = SeededGenerator(seed: seed)
    let (h, heads, inter) = (8, 2, 12)
    func lin(_ i: Int, _ o: Int) throws -> Linear { let l = try Linear(i, o, rng: &g); l.execution = .dense; return l }
    func norm() throws -> LayerNorm {
        try LayerNorm(weight: Tensor(shape: [h], scalars: (0..<h).map { _ in 1 + 0.2 * g.uniform(-1, 1) }),
                      bias: Tensor.uniform([h], -0.1, 0.1, rng: &g), eps: 1e-12)
    }
    let context = SequenceContext()
    let blocks = try (0..<2).map { _ in
        try BertEncoder.block(attention: MultiHeadAttention(query: lin(h, h), key: lin(h, h), value: lin(h, h), output: lin(h, h),
                                                            heads: heads, context: context),
                              attentionNorm: norm(), intermediate: lin(h, inter), output: lin(inter, h), outputNorm: norm())
    }
    let config = BertConfig(hidden: h, layers: 2, heads: heads, intermediate: inter, vocab: 20, maxPositions: 16, layerNormEps: 1e-12,
                            typeVocab: 1)
    let word = Tensor.uniform([20, h], -1, 1, rng: &g), position = Tensor.uniform([16, h], -0.5, 0.5, rng: &g)
    let type0 = Tensor.uniform([1, h], -0.1, 0.1, rng: &g)
    let en = try norm()
    let embeddings = try BertEmbeddings(word: word, position: position, tokenType: type0, normWeight: en.weight.value,
                                        normBias: en.bias.value, eps: 1e-12, context: context)
    return try BertEncoder(config: config, embeddings: embeddings, blocks: blocks, context: context)
}

/// A tokenizer for the tiny encoder's vocabulary and `n` random sentences of its words.
func tinySentences(_ n: Int, seed: UInt64) throws -> (WordPieceTokenizer, [String]) {
    var vocab: [String: Int32] = ["[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3]
    let words = (0..<16).map { "w\($0)" }
    for (i, w) in words.enumerated() { vocab[w] = Int32(4 + i) }
    let tok = try WordPieceTokenizer(vocabulary: vocab, maxLength: 12)
    var g = SeededGenerator(seed: seed)
    return (tok, (0..<n).map { _ in (0..<(2 + Int(g.next() % 7))).map { _ in words[Int(g.next() % 16)] }.joined(separator: " ") })
}

/// (loss(p[i] + eps) − loss(p[i] − eps)) / 2·eps, with p restored afterwards.
func centralDifference(_ p: Parameter, _ i: Int, eps: Float, _ loss: () throws -> Double) throws -> Double {
    let saved = p.value
    defer { p.value = saved }
    var v = saved
    v[flat: i] += eps
    p.value = v
    let lp = try loss()
    v[flat: i] -= 2 * eps
    p.value = v
    let lm = try loss()
    return (lp - lm) / Double(2 * eps)
}
