import Foundation
import PruneKit

/// Any byte string: the safetensors parser either returns tensors that match their headers or
/// throws IOError — it never crashes, traps or reads out of bounds.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSafeTensors(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let data = count == 0 ? Data() : Data(bytes: start, count: count)
    do {
        let (tensors, _) = try SafeTensors.parse(data, name: "fuzz")
        for (_, t) in tensors { precondition(t.count == t.shape.reduce(1, *)) }
        // whatever parses must survive a write and a re-read unchanged
        let again = try SafeTensors.parse(try SafeTensors.encode(tensors), name: "again").tensors
        precondition(Set(again.keys) == Set(tensors.keys))
        for (k, t) in tensors {
            let b = again[k]!
            precondition(b.shape == t.shape && zip(b.scalars, t.scalars).allSatisfy { $0.bitPattern == $1.bitPattern })
        }
    } catch is IOError {
    } catch {
        fatalError("unexpected error type: \(error)")
    }
    return 0
}

// SwiftPM links an executable with main = FuzzSafeTensors_main; libFuzzer's driver runs from there.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<CInt>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ callback: @convention(c) (UnsafeRawPointer?, Int) -> CInt) -> CInt

@_cdecl("FuzzSafeTensors_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var c = argc
    var v = argv
    return LLVMFuzzerRunDriver(&c, &v) { data, size in
        guard let data else { return fuzzSafeTensors(UnsafeRawPointer(bitPattern: 1)!, 0) }
        return fuzzSafeTensors(data, size)
    }
}
