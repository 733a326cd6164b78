#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A failed system call's errno; callers turn it into their own error, naming the path.
public struct SystemCallError: Error, Sendable, Equatable, CustomStringConvertible {
    public let errno: Int32

    public init(errno: Int32) { self.errno = errno }

    public var description: String { String(cString: strerror(errno)) }
}

/// Writes every byte of `bytes` to `fd`, through short writes and EINTR: Berth's one write loop.
/// Links nothing but libc, so `berth-bootloader` uses it too.
public func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws(SystemCallError) {
    guard let base = bytes.baseAddress else { return }
    var offset = 0
    while offset < bytes.count {
        let n = write(fd, base + offset, bytes.count - offset)
        if n < 0, errno == EINTR { continue }
        guard n > 0 else { throw SystemCallError(errno: n < 0 ? errno : EIO) }
        offset += n
    }
}

public func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws(SystemCallError) {
    try writeAll(fd, bytes[...])
}

public func writeAll(_ fd: Int32, _ bytes: ArraySlice<UInt8>) throws(SystemCallError) {
    // withUnsafeBytes rethrows untyped errors: carry the errno out by hand.
    let failure: SystemCallError? = bytes.withUnsafeBytes { raw in
        do throws(SystemCallError) { try writeAll(fd, raw) } catch { return error }
        return nil
    }
    if let failure { throw failure }
}
