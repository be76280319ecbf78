import Foundation
import PruneKit

/// Any byte string (raw or gzip): the IDX decoder returns an array whose size matches its
/// dimensions or throws DataError — it never crashes.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzIDX(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let data = count == 0 ? Data() : Data(bytes: start, count: count)
    do {
        let a = try IDXArray.decode(data, name: "fuzz", maxDecompressed: 1 << 20)
        precondition(a.bytes.count == a.dimensions.reduce(1, *))
    } catch is DataError {
    } catch {
        fatalError("unexpected error type: \(error)")
    }
    return 0
}

// SwiftPM links an executable with main = FuzzIDX_main; libFuzzer's driver runs from there.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<CInt>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ callback: @convention(c) (UnsafeRawPointer?, Int) -> CInt) -> CInt

@_cdecl("FuzzIDX_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var c = argc
    var v = argv
    return LLVMFuzzerRunDriver(&c, &v) { data, size in
        guard let data else { return fuzzIDX(UnsafeRawPointer(bitPattern: 1)!, 0) }
        return fuzzIDX(data, size)
    }
}
