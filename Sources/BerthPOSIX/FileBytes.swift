#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Reading and appending files by path with plain system calls: logs, pidfiles, leases.
/// (FoundationEssentials has no `FileHandle`; berthd links no more than it.)
public enum FileBytes {
    /// At most `maxBytes` of the file at `path` from `offset`; nil if it cannot be opened.
    public static func read(_ path: String, from offset: UInt64 = 0, maxBytes: Int) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        return read(fd: fd, from: offset, maxBytes: maxBytes)
    }

    /// The last `maxBytes` of the file (all of it when smaller); nil if it cannot be opened.
    public static func tail(_ path: String, maxBytes: Int) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        let size = self.size(fd: fd)
        let start = size > UInt64(maxBytes) ? size - UInt64(maxBytes) : 0
        return read(fd: fd, from: start, maxBytes: maxBytes)
    }

    /// The file's size in bytes; nil if it cannot be opened.
    public static func size(_ path: String) -> UInt64? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return UInt64(max(0, info.st_size))
    }

    /// Appends `bytes` to the existing file at `path`.
    public static func append(_ bytes: [UInt8], to path: String) throws(SystemCallError) {
        let fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC)
        guard fd >= 0 else { throw SystemCallError(errno: errno) }
        defer { close(fd) }
        try writeAll(fd, bytes)
    }

    private static func size(fd: Int32) -> UInt64 {
        var info = stat()
        guard fstat(fd, &info) == 0 else { return 0 }
        return UInt64(max(0, info.st_size))
    }

    /// Short reads and EINTR are retried until `maxBytes` or the end of the file.
    private static func read(fd: Int32, from offset: UInt64, maxBytes: Int) -> [UInt8] {
        guard maxBytes > 0, offset <= UInt64(Int64.max) else { return [] }
        var bytes = [UInt8](repeating: 0, count: maxBytes)
        var count = 0
        while count < maxBytes {
            let n = bytes[count...].withUnsafeMutableBytes { buffer in
                pread(fd, buffer.baseAddress, buffer.count, off_t(offset) + off_t(count))
            }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { break }
            count += n
        }
        bytes.removeSubrange(count...)
        return bytes
    }
}
