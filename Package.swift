// swift-tools-version:6.1
// PruneKit: neural-network pruning from Swift, hot loops in C (OpenMP).
//
// OpenMP needs `-fopenmp`, an unsafe flag, and SwiftPM refuses unsafe flags in a package that is
// used as a versioned dependency. So the flag is added only when this package is built as the root
// package (from its own clone: `swift build`, `swift test`, the README commands). When it is
// resolved as a dependency (its directory sits under a `checkouts/` folder) the C kernels are
// built without OpenMP and run on PruneKit's own portable pthread pool instead: same results,
// same parallelism, only the thread pool differs. PRUNEKIT_OPENMP=1 / =0 forces either way.
import PackageDescription

let env = Context.environment
let asDependency = Context.packageDirectory.contains("/checkouts/")
let useOpenMP: Bool = {
    switch env["PRUNEKIT_OPENMP"] {
    case "1", "on", "yes", "true": return true
    case "0", "off", "no", "false": return false
    default: return !asDependency
    }
}()

var kernelCSettings: [CSetting] = [.define("_GNU_SOURCE")]
var kernelLinker: [LinkerSetting] = [.linkedLibrary("m"), .linkedLibrary("pthread")]
if useOpenMP {
    kernelCSettings.append(.unsafeFlags(["-fopenmp"]))
    kernelLinker.append(.linkedLibrary(":libomp.so.5"))
}
if !asDependency && env["PRUNEKIT_KERNEL_O3"] != "0" {
    // Kernels are timed and tested: keep them optimised even in debug builds. PRUNEKIT_KERNEL_O3=0
    // leaves SwiftPM's own level (what a dependency gets), to measure the difference.
    kernelCSettings.append(.unsafeFlags(["-O3"]))
}

// The documentation plugin (`swift package generate-documentation`, scripts/build-docs.sh) is a
// development tool: only a root build resolves it, so consumers never fetch it.
var developmentDependencies: [Package.Dependency] = []
if !asDependency {
    developmentDependencies.append(.package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.4.0"))
}

let package = Package(
    name: "PruneKit",
    products: [
        .library(name: "PruneKit", targets: ["PruneKit"]),
        // the C kernels' own API (prunekit_kernels.h), for kernel benchmarks and callers that want the
        // kernels without the Swift layers
        .library(name: "CPruneKernels", targets: ["CPruneKernels"]),
        .executable(name: "prunekit", targets: ["prunekit"]),
        // data-parallel training over Open MPI (libopenmpi-dev), with the MPI trait on
        .library(name: "PruneKitMPI", targets: ["PruneKitMPI"]),
    ],
    traits: [
        // `swift build --traits MPI`: the prunekit command runs data-parallel under mpirun
        // (scripts/prunekit-mpi). Off by default: the library and the plain prunekit need no MPI.
        .trait(name: "MPI", description: "prunekit train and finetune run data-parallel under mpirun (Open MPI)"),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // ONNX model files (protobuf); the Swift code is generated once and committed
        // (scripts/gen-onnx-proto.sh): only the runtime library is built, never the protoc plugin
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        // tests only (property-based tests of the public API); consumers never resolve it
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.1"),
    ] + developmentDependencies,
    targets: [
        .target(
            name: "CPruneKernels",
            path: "CKernels",
            cSettings: kernelCSettings,
            linkerSettings: kernelLinker
        ),
        .systemLibrary(name: "COpenBLAS", path: "Sources/COpenBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib", pkgConfig: "zlib",
                       providers: [.apt(["zlib1g-dev"])]),
        .target(
            name: "PruneKit",
            dependencies: ["CPruneKernels", "COpenBLAS", "CZlib", .product(name: "SwiftProtobuf", package: "swift-protobuf")],
            path: "Sources/PruneKit",
            exclude: ["IO/ONNXProto/onnx_subset.proto"]
        ),
        .systemLibrary(name: "CMPI", path: "Sources/CMPI", pkgConfig: "ompi-c",
                       providers: [.apt(["libopenmpi-dev"])]),
        // empty unless the MPI trait is on, so that `swift build` of the whole package needs no MPI
        .target(name: "PruneKitMPI", dependencies: ["PruneKit", .target(name: "CMPI", condition: .when(traits: ["MPI"]))],
                path: "Sources/PruneKitMPI"),
        .executableTarget(
            name: "prunekit",
            dependencies: ["PruneKit", .product(name: "ArgumentParser", package: "swift-argument-parser"),
                           .target(name: "PruneKitMPI", condition: .when(traits: ["MPI"]))],
            path: "Sources/prunekit"
        ),
        .testTarget(
            name: "PruneKitTests",
            dependencies: ["PruneKit", "CPruneKernels", .product(name: "PropertyBased", package: "swift-property-based")],
            path: "Tests/PruneKitTests",
            resources: [.copy("Fixtures")]
        ),
    ]
)
