import BerthModel
import BerthPOSIX
import FoundationEssentials
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A connected AF_UNIX stream socket with a reader thread that hands out complete lines.
///
/// A blocking reader thread (rather than SwiftNIO, which this module may not use) keeps the
/// code small; the daemon runs one per running guest.
public final class UnixSocketConnection: Sendable {
    private let fd: Int32
    /// True once the reader has closed the descriptor; writers check it under the same lock so
    /// they never write to a descriptor number the kernel has reused.
    private let closed = Mutex(false)

    private init(fd: Int32) { self.fd = fd }

    /// Largest path a `sockaddr_un` holds, including the terminating NUL.
    static let maxPathBytes = 108

    static func connect(path: String) throws(QMP.Error) -> UnixSocketConnection {
        UnixSocketConnection(fd: try connectedDescriptor(path: path))
    }

    /// A descriptor connected to the stream socket at `path` (close-on-exec), for callers
    /// that do their own I/O on it (`berth proxy-stdio`).
    public static func connected(path: String) throws -> Int32 {
        do {
            return try connectedDescriptor(path: path)
        } catch {
            throw BerthError(.connection, "Cannot connect to \(path): \(error)")
        }
    }

    /// A connected socket's bare descriptor (the caller owns and closes it).
    static func connectedDescriptor(path: String) throws(QMP.Error) -> Int32 {
        let pathBytes = Array(path.utf8)
        guard pathBytes.count < maxPathBytes else {
            throw .transport("socket path '\(path)' is longer than \(maxPathBytes - 1) bytes")
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .transport("socket(): \(String(cString: strerror(errno)))") }
        var address = Self.address(pathBytes)
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard result == 0 else {
            let why = String(cString: strerror(errno))
            Glibc.close(fd)
            throw .transport("connect to \(path): \(why)")
        }
        return fd
    }

    /// A listening socket at `path` (any stale file there is replaced), close-on-exec, for a
    /// child to inherit by `Spawn.launch`: QEMU accepts on it without creating it, so QEMU
    /// needs no write access to the runtime directory.
    ///
    /// - Returns: the descriptor; the caller closes it once the child holds it.
    static func listen(path: String) throws -> Int32 {
        let pathBytes = Array(path.utf8)
        guard pathBytes.count < maxPathBytes else {
            throw BerthError(
                .invalidArgument, "Socket path '\(path)' is longer than \(maxPathBytes - 1) bytes.",
                remedy: "Use a shorter runtime directory (for example /run/berth).")
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw BerthError(.internal, "socket(): \(String(cString: strerror(errno)))") }
        unlink(path)
        var address = Self.address(pathBytes)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard bound == 0, Glibc.listen(fd, 16) == 0 else {
            let why = String(cString: strerror(errno))
            Glibc.close(fd)
            throw BerthError(
                .unavailable, "Cannot listen on \(path): \(why).", remedy: "Check the runtime directory's permissions.")
        }
        return fd
    }

    private static func address(_ pathBytes: [UInt8]) -> sockaddr_un {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, byte) in pathBytes.enumerated() { raw[i] = byte }
            raw[pathBytes.count] = 0
        }
        return address
    }

    /// Writes all of `bytes`. MSG_NOSIGNAL: a peer that went away must give EPIPE, not kill the
    /// daemon with SIGPIPE.
    func send(_ bytes: [UInt8]) throws(QMP.Error) {
        let failure: QMP.Error? = closed.withLock { isClosed in
            if isClosed { return .closed }
            var offset = 0
            while offset < bytes.count {
                let n = bytes.withUnsafeBytes { raw in
                    Glibc.send(fd, raw.baseAddress.map { $0 + offset }, bytes.count - offset, Int32(MSG_NOSIGNAL))
                }
                if n < 0 {
                    if errno == EINTR { continue }
                    return .transport("write: \(String(cString: strerror(errno)))")
                }
                offset += n
            }
            return nil
        }
        if let failure { throw failure }
    }

    /// Writes `bytes` with `descriptor` attached as SCM_RIGHTS ancillary data (QMP `getfd`,
    /// `add-fd`): QEMU, which opens no host path, gets a file berthd opened. The descriptor
    /// travels with the first byte; the rest of the line follows with plain `send`.
    func send(_ bytes: [UInt8], passing descriptor: Int32) throws(QMP.Error) {
        guard !bytes.isEmpty else { return }
        let failure: QMP.Error? = closed.withLock { isClosed in
            if isClosed { return .closed }
            let space = Self.controlSpace(descriptors: 1)
            var control = [UInt8](repeating: 0, count: space)
            var sent = -1
            while true {
                sent = bytes.withUnsafeBytes { raw -> Int in
                    control.withUnsafeMutableBytes { controlRaw -> Int in
                        var iov = iovec(
                            iov_base: UnsafeMutableRawPointer(mutating: raw.baseAddress), iov_len: 1)
                        guard let controlBase = controlRaw.baseAddress else { return -1 }
                        return withUnsafeMutablePointer(to: &iov) { iovPointer in
                            var message = msghdr()
                            message.msg_iov = iovPointer
                            message.msg_iovlen = 1
                            message.msg_control = controlBase
                            message.msg_controllen = space
                            // cmsghdr: length, level, type, then the descriptor (aligned).
                            let header = controlBase.assumingMemoryBound(to: cmsghdr.self)
                            header.pointee.cmsg_len = Self.controlLength(descriptors: 1)
                            header.pointee.cmsg_level = SOL_SOCKET
                            header.pointee.cmsg_type = Int32(SCM_RIGHTS)
                            let dataOffset = Self.align(MemoryLayout<cmsghdr>.size)
                            controlRaw.storeBytes(of: descriptor, toByteOffset: dataOffset, as: Int32.self)
                            return Glibc.sendmsg(fd, &message, Int32(MSG_NOSIGNAL))
                        }
                    }
                }
                if sent < 0, errno == EINTR { continue }
                break
            }
            if sent < 0 { return .transport("sendmsg: \(String(cString: strerror(errno)))") }
            return nil
        }
        if let failure { throw failure }
        if bytes.count > 1 { try send(Array(bytes[1...])) }
    }

    private static func align(_ length: Int) -> Int {
        let word = MemoryLayout<Int>.size
        return (length + word - 1) & ~(word - 1)
    }

    /// CMSG_SPACE and CMSG_LEN for `descriptors` Int32s (the C macros are not imported).
    static func controlSpace(descriptors: Int) -> Int {
        align(MemoryLayout<cmsghdr>.size) + align(descriptors * MemoryLayout<Int32>.size)
    }

    static func controlLength(descriptors: Int) -> Int {
        align(MemoryLayout<cmsghdr>.size) + descriptors * MemoryLayout<Int32>.size
    }

    /// Ends the connection: the reader sees end-of-file and finishes.
    func shutdown() {
        closed.withLock { isClosed in
            if !isClosed { _ = Glibc.shutdown(fd, Int32(SHUT_RDWR)) }
        }
    }

    /// Starts the reader thread. `onLine` gets each line without its `\r\n`; `onEnd` is called
    /// once, after the last line, with nil on a clean end-of-file.
    func startReading(
        onLine: @escaping @Sendable ([UInt8]) -> Void, onEnd: @escaping @Sendable (QMP.Error?) -> Void
    ) {
        let finish = { @Sendable [self] (ending: QMP.Error?) in
            closed.withLock { isClosed in
                isClosed = true
                Glibc.close(fd)
            }
            onEnd(ending)
        }
        do {
            try startThread(named: "berth-qmp-reader") { [self] in finish(readLoop(onLine: onLine)) }
        } catch {
            finish(.transport("cannot start a reader thread: \(error)"))
        }
    }

    private func readLoop(onLine: @Sendable ([UInt8]) -> Void) -> QMP.Error? {
        var buffer: [UInt8] = []
        // QMP's messages are small; a longer one takes a few reads. Every running guest has
        // a reader, so this buffer is paid per guest in berthd's resident memory.
        var chunk = [UInt8](repeating: 0, count: 8192)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n == 0 { return nil }
            if n < 0 {
                if errno == EINTR { continue }
                // shutdown() on our side shows up as a reset on some kernels: still a clean end.
                return errno == ECONNRESET ? nil : .transport("read: \(String(cString: strerror(errno)))")
            }
            // Only the new bytes can hold a newline: rescanning the whole buffer would be
            // quadratic on a long line.
            var scan = buffer.count
            buffer.append(contentsOf: chunk[0..<n])
            var start = 0
            while let newline = buffer[scan...].firstIndex(of: 0x0A) {
                var end = newline
                if end > start, buffer[end - 1] == 0x0D { end -= 1 }
                if end > start { onLine(Array(buffer[start..<end])) }
                start = newline + 1
                scan = start
            }
            if start > 0 { buffer.removeFirst(start) }
            if buffer.count > QMP.maxLineBytes {
                return .decoding(
                    "a line longer than \(QMP.maxLineBytes) bytes",
                    raw: String(decoding: buffer.prefix(200), as: UTF8.self))
            }
        }
    }
}
