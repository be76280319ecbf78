import Foundation
import PruneKit

/// Any byte string: the ONNX reader either returns a model or throws ONNXError — it never crashes,
/// traps or reads out of bounds. A model that loads runs one small input (errors allowed, traps not).
/// External data is looked up in an empty folder, so references fail cleanly.
let emptyFolder: String = {
    let dir = NSTemporaryDirectory() + "prunekit-fuzz-onnx-\(getpid())"
    try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzONNX(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let data = count == 0 ? Data() : Data(bytes: start, count: count)
    do {
        let m = try ONNXModel.parse(data, name: "fuzz", folder: emptyFolder)
        let n = m.model.inputShape.reduce(1, *)
        if n <= 4096, let x = try? Tensor(shape: [1] + m.model.inputShape, repeating: 0.25) {
            _ = try? m.model.forward(x)
        }
    } catch is ONNXError {
    } catch {
        fatalError("unexpected error type: \(error)")
    }
    return 0
}

// SwiftPM links an executable with main = FuzzONNX_main; libFuzzer's driver runs from there.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<CInt>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ callback: @convention(c) (UnsafeRawPointer?, Int) -> CInt) -> CInt

@_cdecl("FuzzONNX_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var c = argc
    var v = argv
    return LLVMFuzzerRunDriver(&c, &v) { data, size in
        guard let data else { return fuzzONNX(UnsafeRawPointer(bitPattern: 1)!, 0) }
        return fuzzONNX(data, size)
    }
}
