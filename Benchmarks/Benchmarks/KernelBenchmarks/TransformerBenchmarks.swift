// The sentence encoder's kernels at all-MiniLM-L6-v2's sizes (hidden 384, 12 heads of 32, FFN 1536),
// 16 sentences of 32 tokens: multi-head attention, LayerNorm and GELU (C kernels, forward and
// backward), and a whole encoder forward (random weights of that size: 6 blocks).
import Benchmark
import CPruneKernels
import PruneKit

/// A BERT encoder of MiniLM-L6's shape with random weights (the timing does not depend on them).
func randomEncoder(hidden h: Int = 384, layers: Int = 6, heads: Int = 12, intermediate: Int = 1536,
                   vocab: Int = 30522, positions: Int = 512) throws -> BertEncoder {
    var g = SeededGenerator(seed: 5)
    func lin(_ i: Int, _ o: Int) throws -> Linear { let l = try Linear(i, o, rng: &g); l.execution = .dense; return l }
    func norm() throws -> LayerNorm {
        try LayerNorm(weight: Tensor.uniform([h], 0.8, 1.2, rng: &g), bias: Tensor.uniform([h], -0.1, 0.1, rng: &g), eps: 1e-12)
    }
    let context = SequenceContext()
    let blocks = try (0..<layers).map { _ in
        try BertEncoder.block(attention: MultiHeadAttention(query: lin(h, h), key: lin(h, h), value: lin(h, h), output: lin(h, h),
                                                            heads: heads, context: context),
                              attentionNorm: norm(), intermediate: lin(h, intermediate), output: lin(intermediate, h),
                              outputNorm: norm())
    }
    let config = BertConfig(hidden: h, layers: layers, heads: heads, intermediate: intermediate, vocab: vocab,
                            maxPositions: positions, layerNormEps: 1e-12, typeVocab: 1)
    let en = try norm()
    let embeddings = try BertEmbeddings(word: Tensor.uniform([vocab, h], -0.1, 0.1, rng: &g),
                                        position: Tensor.uniform([positions, h], -0.1, 0.1, rng: &g),
                                        tokenType: Tensor.uniform([1, h], -0.1, 0.1, rng: &g),
                                        normWeight: en.weight.value, normBias: en.bias.value, eps: 1e-12, context: context)
    return try BertEncoder(config: config, embeddings: embeddings, blocks: blocks, context: context)
}

func transformerBenchmarks() {
    let (b, t, heads, d) = (16, 32, 12, 32)
    let rows = b * t, hidden = heads * d, ffn = 4 * hidden
    // attention: QKᵀ and PV, 2·T·T·D each per (sequence, head)
    let attentionFlops = 4 * Double(b * heads) * Double(t * t * d)
    benchmark("attention.forward B\(b) T\(t) \(heads)×\(d)", .flops(attentionFlops)) {
        let q = Floats(rows * hidden, seed: 1), k = Floats(rows * hidden, seed: 2), v = Floats(rows * hidden, seed: 3)
        let out = Floats(rows * hidden)
        return Timed(call: {
            try check(pk_attention_f32(Int64(b), Int64(t), Int64(heads), Int64(d), q.pointer, k.pointer, v.pointer, Int64(hidden),
                                       nil, nil, out.pointer, Int64(hidden)))
            _ = (q, k, v, out)
        })
    }
    benchmark("attention.backward B\(b) T\(t) \(heads)×\(d)", .flops(2 * attentionFlops)) {
        let q = Floats(rows * hidden, seed: 1), k = Floats(rows * hidden, seed: 2), v = Floats(rows * hidden, seed: 3)
        let dout = Floats(rows * hidden, seed: 4)
        let dq = Floats(rows * hidden), dk = Floats(rows * hidden), dv = Floats(rows * hidden)
        return Timed(call: {
            try check(pk_attention_backward_f32(Int64(b), Int64(t), Int64(heads), Int64(d), q.pointer, k.pointer, v.pointer,
                                                Int64(hidden), nil, nil, dout.pointer, dq.pointer, dk.pointer, dv.pointer))
            _ = (q, k, v, dout, dq, dk, dv)
        })
    }
    // LayerNorm and GELU move memory: x read, y written (and dy read for the backward)
    benchmark("layernorm.forward \(rows)×\(hidden)", .bytes(Double(rows * hidden) * 8)) {
        let x = Floats(rows * hidden, seed: 1), gamma = Floats(hidden, seed: 2), beta = Floats(hidden, seed: 3)
        let y = Floats(rows * hidden)
        return Timed(call: {
            try check(pk_layernorm_f32(Int64(rows), Int64(hidden), x.pointer, Int64(hidden), gamma.pointer, beta.pointer, 1e-12,
                                       y.pointer, Int64(hidden)))
            _ = (x, gamma, beta, y)
        })
    }
    benchmark("layernorm.backward \(rows)×\(hidden)", .bytes(Double(rows * hidden) * 12)) {
        let x = Floats(rows * hidden, seed: 1), gamma = Floats(hidden, seed: 2), dy = Floats(rows * hidden, seed: 3)
        let dx = Floats(rows * hidden)
        return Timed(call: {
            try check(pk_layernorm_backward_f32(Int64(rows), Int64(hidden), x.pointer, gamma.pointer, 1e-12, dy.pointer, dx.pointer))
            _ = (x, gamma, dy, dx)
        })
    }
    benchmark("gelu.forward \(rows)×\(ffn)", .bytes(Double(rows * ffn) * 8)) {
        let x = Floats(rows * ffn, seed: 1), y = Floats(rows * ffn)
        return Timed(call: {
            try check(pk_gelu_f32(Int64(rows * ffn), x.pointer, y.pointer))
            _ = (x, y)
        })
    }
    benchmark("gelu.backward \(rows)×\(ffn)", .bytes(Double(rows * ffn) * 12)) {
        let x = Floats(rows * ffn, seed: 1), dy = Floats(rows * ffn, seed: 2), dx = Floats(rows * ffn)
        return Timed(call: {
            try check(pk_gelu_backward_f32(Int64(rows * ffn), x.pointer, dy.pointer, dx.pointer))
            _ = (x, dy, dx)
        })
    }
    // the encoder: per token, 2·(4·h² + 2·h·ffn) in the Linear layers and the attention above, per block
    let encoderFlops = 6 * (2 * Double(rows) * Double(4 * hidden * hidden + 2 * hidden * ffn) + attentionFlops)
    benchmark("encoder.forward MiniLM-L6 shape, \(b) sentences × \(t) tokens", .flops(encoderFlops)) {
        let encoder = try randomEncoder()
        var g = SeededGenerator(seed: 9)
        let ids = (0..<b).map { _ in (0..<t).map { _ in Int32(100 + Int(g.nextUnitFloat() * 20000)) } }
        let mask = [[Float]](repeating: [Float](repeating: 1, count: t), count: b)
        return Timed(call: { _ = try encoder.embed(ids: ids, mask: mask) })
    }
}
