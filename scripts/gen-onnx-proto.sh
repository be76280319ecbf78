#!/usr/bin/env bash
# Regenerates Sources/PruneKit/IO/ONNXProto/onnx_subset.pb.swift from onnx_subset.proto.
# Needs Debian's protoc (apt-get install protobuf-compiler) and the protoc-gen-swift plugin of the
# swift-protobuf version in Package.swift (1.39.0), built OUTSIDE this repository, for example:
#   mkdir -p /tmp/pgs && cd /tmp/pgs   # a package depending on apple/swift-protobuf exact 1.39.0
#   swift build -c release --product protoc-gen-swift   (about 10 minutes)
# Usage: scripts/gen-onnx-proto.sh [path/to/protoc-gen-swift]   (default: /tmp/pgs/.build/release/protoc-gen-swift)
# The generated file is committed: building and testing PruneKit never needs protoc or the plugin.
set -euo pipefail
cd "$(dirname "$0")/.."
plugin="${1:-/tmp/pgs/.build/release/protoc-gen-swift}"
[ -x "$plugin" ] || { echo "no protoc-gen-swift at $plugin (see the comment at the top of $0)" >&2; exit 1; }
command -v protoc >/dev/null || { echo "protoc not found: apt-get install protobuf-compiler" >&2; exit 1; }
dir=Sources/PruneKit/IO/ONNXProto
protoc --plugin=protoc-gen-swift="$plugin" --proto_path="$dir" \
       --swift_opt=Visibility=Internal --swift_opt=UseAccessLevelOnImports=true --swift_opt=FileNaming=DropPath --swift_out="$dir" onnx_subset.proto
echo "wrote $dir/onnx_subset.pb.swift ($(protoc --version), $("$plugin" --version 2>&1 | head -1))"
