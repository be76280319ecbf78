// swift-tools-version:6.1
// libFuzzer targets for PruneKit's file parsers. Built and run by scripts/run-fuzzers.sh:
//   swift build -c release --package-path Fuzz -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library
import PackageDescription

let package = Package(
    name: "PruneKitFuzz",
    dependencies: [.package(name: "PruneKit", path: "..")],
    targets: [
        .executableTarget(name: "FuzzSafeTensors", dependencies: [.product(name: "PruneKit", package: "PruneKit")]),
        .executableTarget(name: "FuzzIDX", dependencies: [.product(name: "PruneKit", package: "PruneKit")]),
        .executableTarget(name: "FuzzONNX", dependencies: [.product(name: "PruneKit", package: "PruneKit")]),
    ]
)
