// PruneKit's package-benchmark suites, one file per kernel family:
//   GemmBenchmarks        masked GEMM: forward, input and weight gradients, fused update; OpenBLAS's SGEMM beside
//   FormatBenchmarks      CSR, N:M and block-sparse kernels; Linear forward, fused update, step; compression
//   SelectionBenchmarks   global top-k, N:M and block selection
//   ConvBenchmarks        convolution forward and backward
//   TransformerBenchmarks attention, LayerNorm, GELU (forward and backward), the encoder forward
//   LayerBenchmarks       BatchNorm, pooling, activations, add + ReLU, cross-entropy, Adam, sparse conv, SparseGPT
//   TrainingBenchmarks    a whole training step of the Fashion-MNIST models
// Each reports wall-clock and CPU time and a rate (MFLOP/s or MB/s) to hold against the machine's
// peak. One-time work never lands in a sample (see Support.swift). Run from this folder:
//   swift package --disable-sandbox benchmark --filter "gemm.*"
import Benchmark

let benchmarks: @Sendable () -> Void = {
    gemmBenchmarks()
    formatBenchmarks()
    selectionBenchmarks()
    convBenchmarks()
    transformerBenchmarks()
    layerBenchmarks()
    trainingBenchmarks()
}
