// What the kernels run on: instruction set, threads, and the OpenBLAS build that is linked.
internal import CPruneKernels
internal import COpenBLAS

/// The run-time configuration of PruneKit's kernels.
public enum Runtime {
    /// Instruction set the kernels use now ("avx512", "avx2" or "scalar").
    public static var isa: String { String(cString: pk_isa_name(pk_active_isa())) }
    /// Best instruction set of this CPU.
    public static var cpuISA: String { String(cString: pk_isa_name(pk_cpu_isa())) }
    /// CPU features detected at run time.
    public static var cpuFeatures: String { String(cString: pk_cpu_features()) }
    /// True when the kernels were compiled with OpenMP (false: portable pthread pool).
    public static var openMP: Bool { pk_openmp_enabled() != 0 }

    /// Threads the kernels use. Results are bitwise identical for any value.
    public static var threads: Int {
        get { Int(pk_get_num_threads()) }
        set { pk_set_num_threads(Int32(clamping: newValue)) }
    }

    /// Bytes of freed tensor buffers PruneKit keeps for reuse (at most 1 GiB). Training reuses them
    /// every step instead of faulting in fresh pages.
    public static var cachedMemoryBytes: Int { BufferCache.shared.heldBytes }

    /// Returns the cached buffers to the system, e.g. when a tool embedding PruneKit has finished
    /// training and goes on to other work. Later allocations map fresh memory again.
    public static func releaseCachedMemory() { BufferCache.shared.releaseAll() }

    /// Caps the instruction set ("avx512", "avx2", "scalar"); used by tests to cover every path.
    public static func limitISA(_ name: String) {
        switch name {
        case "scalar": pk_set_isa_limit(PK_ISA_SCALAR)
        case "avx2": pk_set_isa_limit(PK_ISA_AVX2)
        default: pk_set_isa_limit(PK_ISA_AVX512)
        }
    }

    /// Measured fp32 FMA peak in GFLOP/s for `threads` threads (about `seconds` of probing).
    public static func measurePeakGFLOPS(threads: Int, seconds: Double = 0.5) -> Double {
        pk_measure_peak_gflops(Int32(clamping: threads), seconds)
    }

    /// OpenBLAS's kernel family ("Prescott", "SkylakeX", ...).
    public static var openBLASCoreName: String {
        guard let p = openblas_get_corename() else { return "unknown" }
        return String(cString: p)
    }

    /// OpenBLAS's build configuration string.
    public static var openBLASConfig: String {
        guard let p = openblas_get_config() else { return "unknown" }
        return String(cString: p)
    }

    /// A warning when OpenBLAS runs generic (pre-AVX) kernels on a CPU that has AVX-512/AVX2,
    /// as Debian's 0.3.21 does on Sapphire Rapids; nil when it uses the CPU properly.
    public static var openBLASWarning: String? { openBLASWarning(coreName: openBLASCoreName, cpuISA: cpuISA) }

    /// The warning for a given OpenBLAS core name on a CPU whose best ISA is `cpuISA`.
    public static func openBLASWarning(coreName: String, cpuISA: String) -> String? {
        let generic = ["prescott", "core2", "penryn", "dunnington", "nehalem", "atom", "katmai", "northwood",
                       "banias", "opteron", "barcelona", "generic", "unknown"]
        guard generic.contains(coreName.lowercased()), cpuISA != "scalar" else { return nil }
        let target = cpuISA == "avx512" ? "SkylakeX" : "Haswell"
        return "OpenBLAS fell back to its generic '\(coreName)' kernels on a CPU with \(cpuISA): "
            + "it runs at a fraction of this machine's speed. Start the process with "
            + "OPENBLAS_CORETYPE=\(target) to use its \(target) kernels."
    }

    /// Single-precision GEMM through OpenBLAS (C := A·Bᵀ, row-major A m×k, B n×k), for comparisons.
    public static func openBLASGemmNT(m: Int, n: Int, k: Int, a: FloatStorage, b: FloatStorage, c: FloatStorage) {
        precondition(a.count >= m * k && b.count >= n * k && c.count >= m * n)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(n), Int32(k), 1, a.base, Int32(k),
                    b.base, Int32(k), 0, c.base, Int32(n))
    }
}
