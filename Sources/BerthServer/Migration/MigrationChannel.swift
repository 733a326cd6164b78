import BerthModel
import BerthQEMU
import FoundationEssentials
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The streams of one migration, carried by berthd: QEMU opens no host path and the guest
/// firewall rejects its own connections to local addresses, so the destination berthd opens a
/// one-time TCP listener (a random port, a random secret the source learns over the
/// authenticated API), and the source berthd connects. Each connection begins with one line,
/// `BERTH-MIGRATE <secret> <channel>\n`, answered `OK\n`; after that the bytes are QEMU's.
/// Channel `memory` goes to the destination QEMU as it is (`migrate-incoming fd:`); channel
/// `nbd` is relayed by berthd into the destination QEMU's NBD server (a unix socket it listens
/// on, given to it as a descriptor), because QEMU's NBD server only accepts, never adopts.
enum MigrationChannel {
    static let greeting = "BERTH-MIGRATE"
    /// How long a connection may take to say who it is.
    static let helloTimeout: Int32 = 10_000

    /// A listening TCP socket on `host`, port chosen by the kernel.
    static func listen(host: String) throws -> (fd: Int32, port: Int) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw failure("socket") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else {
            close(fd)
            throw BerthError(
                .invalidArgument, "The migration listener's address '\(host)' is not an IPv4 address.",
                remedy: "Start berthd with --migration-listen ADDRESS (an IPv4 address of this host).")
        }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, Glibc.listen(fd, 8) == 0 else {
            let error = failure("bind \(host)")
            close(fd)
            throw error
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return (fd, Int(UInt16(bigEndian: address.sin_port)))
    }

    /// Waits (blocking: run off the cooperative pool) for the next connection that says the
    /// secret, until `deadline`; others are closed. Returns the channel name and the socket.
    static func accept(on listener: Int32, secret: String, deadline: Date) throws -> (channel: String, fd: Int32) {
        while true {
            let left = deadline.timeIntervalSinceNow
            guard left > 0 else {
                throw BerthError(.timeout, "The source host did not connect to this host's migration listener in time.")
            }
            guard wait(listener, events: Int16(POLLIN), milliseconds: Int32(min(left, 3600) * 1000)) else { continue }
            let fd = Glibc.accept(listener, nil, nil)
            guard fd >= 0 else {
                if errno == EINTR || errno == ECONNABORTED || errno == EAGAIN { continue }
                throw failure("accept")
            }
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            guard let line = readLine(fd), let channel = channel(of: line, secret: secret) else {
                close(fd)
                continue
            }
            guard writeAll(fd, Array("OK\n".utf8)) else {
                close(fd)
                continue
            }
            return (channel, fd)
        }
    }

    /// The channel a greeting line names, if it carries the secret.
    static func channel(of line: String, secret: String) -> String? {
        let words = line.split(separator: " ")
        guard words.count == 3, words[0] == greeting, constantTimeEqual(String(words[1]), secret),
            ["memory", "nbd"].contains(words[2])
        else { return nil }
        return String(words[2])
    }

    /// Source: connects to the destination's listener and names the channel.
    static func connect(host: String, port: Int, secret: String, channel: String) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw failure("socket") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(clamping: port).bigEndian)
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else {
            close(fd)
            throw BerthError(.invalidArgument, "The destination's migration address '\(host)' is not an IPv4 address.")
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0, writeAll(fd, Array("\(greeting) \(secret) \(channel)\n".utf8)), readLine(fd) == "OK" else {
            let error = BerthError(
                .connection, "Cannot open the migration channel to \(host):\(port): \(String(cString: strerror(errno))).",
                remedy: "Check that the destination's --migration-listen address is reachable from this host.")
            close(fd)
            throw error
        }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        return fd
    }

    /// Relays bytes both ways between `a` and `b` until both directions end (run on a thread
    /// of its own), then closes both.
    static func relay(_ a: Int32, _ b: Int32) {
        defer {
            close(a)
            close(b)
        }
        var buffer = [UInt8](repeating: 0, count: 1 << 18)
        var open: [(from: Int32, to: Int32)] = [(a, b), (b, a)]
        while !open.isEmpty {
            var fds = open.map { pollfd(fd: $0.from, events: Int16(POLLIN), revents: 0) }
            guard poll(&fds, nfds_t(fds.count), 60_000) >= 0 else {
                if errno == EINTR { continue }
                return
            }
            for (index, entry) in fds.enumerated().reversed() where entry.revents != 0 {
                let pair = open[index]
                let count = buffer.withUnsafeMutableBytes { read(pair.from, $0.baseAddress, $0.count) }
                if count > 0, writeAll(pair.to, Array(buffer[0..<count])) { continue }
                if count < 0, errno == EINTR { continue }
                shutdown(pair.to, Int32(SHUT_WR))
                open.remove(at: index)
            }
        }
    }

    // MARK: - Helpers

    /// One line of at most 200 bytes, within `helloTimeout`.
    static func readLine(_ fd: Int32) -> String? {
        var bytes: [UInt8] = []
        var byte: UInt8 = 0
        while bytes.count < 200 {
            guard wait(fd, events: Int16(POLLIN), milliseconds: helloTimeout), read(fd, &byte, 1) == 1 else { return nil }
            if byte == UInt8(ascii: "\n") { return String(decoding: bytes, as: UTF8.self) }
            bytes.append(byte)
        }
        return nil
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if written < 0, errno == EINTR { continue }
            guard written > 0 else { return false }
            offset += written
        }
        return true
    }

    static func wait(_ fd: Int32, events: Int16, milliseconds: Int32) -> Bool {
        var entry = pollfd(fd: fd, events: events, revents: 0)
        return poll(&entry, 1, milliseconds) == 1
    }

    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8)
        let y = Array(b.utf8)
        guard x.count == y.count else { return false }
        return zip(x, y).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } == 0
    }

    /// 32 random bytes in hex.
    static func secret() -> String {
        return Text.randomHex(byteCount: 32)
    }

    static func failure(_ what: String) -> BerthError {
        BerthError(.unavailable, "Migration channel: \(what) failed: \(String(cString: strerror(errno))).")
    }
}
