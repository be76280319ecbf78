// swift-tools-version:6.1
// PruneKit's kernel benchmarks (package-benchmark). Run from this folder:
//   swift package benchmark            (all suites)
//   swift package benchmark --filter "gemm.*"
import PackageDescription

let package = Package(
    name: "PruneKitBenchmarks",
    platforms: [.macOS(.v13)],
    dependencies: [
        .package(name: "PruneKit", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "KernelBenchmarks",
            dependencies: [
                .product(name: "PruneKit", package: "PruneKit"),
                .product(name: "CPruneKernels", package: "PruneKit"),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/KernelBenchmarks",
            swiftSettings: [.swiftLanguageMode(.v5)],
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
