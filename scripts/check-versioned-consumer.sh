#!/usr/bin/env bash
# Proves PruneKit works as a versioned SwiftPM dependency (`.package(url:, from:)`), which SwiftPM
# refuses for products with unsafe build flags: a tiny consumer package depends on a tagged copy of
# this repository's committed HEAD, builds, and runs a masked Linear layer on the portable thread pool.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/prunekit-consumer.XXXXXX)
trap 'rm -rf "$work"' EXIT
git clone -q "$root" "$work/PruneKit"
git -C "$work/PruneKit" -c user.email=ci@prunekit -c user.name=ci tag -a 1.0.0 -m "consumer check" >/dev/null
mkdir -p "$work/Consumer/Sources/Consumer"
cat > "$work/Consumer/Package.swift" <<SWIFT
// swift-tools-version:6.1
import PackageDescription
let package = Package(
    name: "Consumer",
    dependencies: [.package(url: "file://$work/PruneKit", from: "1.0.0")],
    targets: [.executableTarget(name: "Consumer", dependencies: [.product(name: "PruneKit", package: "PruneKit")])]
)
SWIFT
cat > "$work/Consumer/Sources/Consumer/main.swift" <<'SWIFT'
import PruneKit
import Foundation
// A 100-50 masked Linear on 4 inputs, checked against a naive loop; threads 1 vs 2 must agree bitwise.
var g = SeededGenerator(seed: 1)
let layer = try Linear(100, 50, rng: &g)
try layer.weight.setMask(Mask(shape: [50, 100], kept: (0..<5000).map { $0 % 2 == 0 }))
let x = Tensor.uniform([4, 100], -1, 1, rng: &g)
Runtime.threads = 1
let y1 = try layer(x)
Runtime.threads = 2
let y2 = try layer(x)
let w = layer.weight.value.scalars, b = layer.bias!.value.scalars, xs = x.scalars
var worst: Float = 0
for i in 0..<4 { for j in 0..<50 {
    var s: Float = b[j]
    for p in 0..<100 { s += xs[i * 100 + p] * w[j * 100 + p] }
    worst = max(worst, abs(s - y2.scalars[i * 50 + j]))
} }
guard y1 == y2, worst < 1e-4 else { print("consumer FAILED: worst error \(worst)"); exit(1) }
// nested parallel loops on the pthread pool: a chunked convolution runs im2col and GEMMs inside
// its chunks; one training step of a small CNN must finish and match across thread counts
func convStep(_ threads: Int) throws -> [Float] {
    Runtime.threads = threads
    var r = SeededGenerator(seed: 3)
    let conv = try Conv2d(1, 8, kernelSize: 3, rng: &r)
    let x = Tensor.uniform([400, 1, 28, 28], -1, 1, rng: &r)
    let y = try conv.forward(x, training: true)
    let opt = try Adam()
    opt.prepareFusedStep(conv.parameters)
    _ = try conv.backward(y, needInputGradient: true)
    try opt.step(conv.parameters)
    return conv.weight.value.scalars
}
guard try convStep(1) == convStep(2) else { print("consumer FAILED: convolution differs across threads"); exit(1) }
print("versioned consumer ok: openmp=\(Runtime.openMP) threads=\(Runtime.threads) isa=\(Runtime.isa) max error \(worst)")
SWIFT
cd "$work/Consumer"
swift build >build.log 2>&1 || { tail -30 build.log; exit 1; }
timeout 300 ./.build/debug/Consumer
