#if canImport(Glibc)
    import Glibc
#endif

/// glibc's prctl, looked up by name (it is variadic in C, so Swift does not import it; all its
/// arguments are integers, which the C calling convention passes alike). Nil where the C
/// library has none.
public typealias PrctlFunction = @convention(c) (Int32, UInt, UInt, UInt, UInt) -> Int32
#if canImport(Glibc)
    public let prctl: PrctlFunction? = dlsym(nil, "prctl").map { unsafeBitCast($0, to: PrctlFunction.self) }
#else
    public let prctl: PrctlFunction? = nil
#endif
