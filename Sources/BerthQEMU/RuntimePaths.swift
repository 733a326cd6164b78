import BerthModel
import BerthPOSIX
import FoundationEssentials
import Glibc

/// Where one domain's QEMU keeps its live files and its console log.
///
/// Live files go under `<runtime>/<uuid>/` (keyed by UUID so a renamed domain keeps finding its
/// running QEMU); the console log is `<logs>/<name>.log`, where a user looks for it.
public struct RuntimePaths: Sendable, Equatable {
    public var directory: String
    public var qmpSocket: String
    public var consoleSocket: String
    public var pidFile: String
    public var consoleLog: String
    public var logDirectory: String
    /// QEMU's own messages (its stdout and stderr), as libvirt keeps `qemu/NAME.log`.
    public var qemuLog: String
    /// QEMU's working directory, the one place it may create files (its display socket); owned by
    /// the guest's user when berthd runs as root. Its VNC or SPICE socket is made there.
    public var displayDirectory: String
    public var vncSocket: String { displayDirectory + "/" + Self.vncSocketName }
    public static let vncSocketName = "vnc.sock"
    public var spiceSocket: String { displayDirectory + "/" + Self.spiceSocketName }
    public static let spiceSocketName = "spice.sock"

    /// - Parameters:
    ///   - runtimeRoot: such as `/run/berth`.
    ///   - logRoot: such as `/var/log/berth`.
    public init(runtimeRoot: String, logRoot: String, name: String, uuid: UUID) {
        directory = runtimeRoot + "/" + uuid.uuidString.lowercased()
        qmpSocket = directory + "/qmp.sock"
        consoleSocket = directory + "/console.sock"
        pidFile = directory + "/qemu.pid"
        logDirectory = logRoot
        consoleLog = logRoot + "/" + name + ".log"
        qemuLog = logRoot + "/" + name + ".qemu.log"
        displayDirectory = directory + "/display"
    }

    /// Creates the directories (mode 0700 for the runtime one: its sockets control the guest;
    /// the display directory owned by `owner`, where QEMU runs) and checks that the socket
    /// paths fit in a `sockaddr_un`.
    ///
    /// - Throws: `BerthError` naming the path that could not be made or is too long.
    public func prepare(owner: GuestIdentity? = nil) throws {
        for socket in [qmpSocket, consoleSocket, vncSocket, spiceSocket] where socket.utf8.count >= UnixSocketConnection.maxPathBytes {
            throw BerthError(
                .invalidArgument,
                "Socket path '\(socket)' is \(socket.utf8.count) bytes; Unix sockets allow at most \(UnixSocketConnection.maxPathBytes - 1).",
                remedy: "Use a shorter runtime directory (for example /run/berth).")
        }
        let fm = FileManager.default
        do {
            try fm.createDirectory(
                atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            try fm.createDirectory(atPath: logDirectory, withIntermediateDirectories: true)
            try fm.createDirectory(
                atPath: displayDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw BerthError(
                .unavailable, "Cannot create Berth's runtime or log directory: \(BerthError.reason(error))",
                remedy: "Check that \(directory) and \(logDirectory) are writable by the daemon's user.")
        }
        // A directory left by an earlier run may belong to another user: take it back first.
        for path in [directory, displayDirectory] {
            var info = stat()
            guard lstat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR else {
                throw BerthError(.unavailable, "\(path) is not a directory.", remedy: "Remove it and start the guest again.")
            }
        }
        if let owner {
            guard chown(displayDirectory, owner.uid, owner.gid) == 0 else {
                throw BerthError(
                    .unavailable, "Cannot hand \(displayDirectory) to the guest's user: \(String(cString: strerror(errno)))",
                    remedy: "berthd must run as root to run guests under their own users.")
            }
        }
    }

    /// Removes the sockets and pidfile a QEMU left behind (it does not remove its sockets when
    /// killed), and the directory too if asked. Call only when no QEMU for this domain runs.
    public func removeRuntimeFiles(includingDirectory: Bool = false) {
        for path in [qmpSocket, consoleSocket, pidFile, vncSocket, spiceSocket, directory + "/nbd.sock"] { unlink(path) }
        if includingDirectory {
            rmdir(displayDirectory)
            rmdir(directory)
        }
    }

    /// Rotates the console log when it has grown past `maxBytes`: `<name>.log` becomes
    /// `<name>.log.1`, `.1` becomes `.2`, ... and the oldest beyond `keep` is deleted.
    /// Called before each start because QEMU appends to the log for the whole life of the guest.
    ///
    /// - Returns: whether a rotation happened.
    @discardableResult
    public func rotateConsoleLog(maxBytes: UInt64 = 1 << 20, keep: Int = 5) throws -> Bool {
        guard let size = FileBytes.size(consoleLog), size > maxBytes else { return false }
        guard keep > 0 else {
            unlink(consoleLog)
            return true
        }
        try shiftRotatedLogs(keep: keep)
        guard rename(consoleLog, "\(consoleLog).1") == 0 else { throw rotationError(consoleLog) }
        return true
    }

    /// Keeps a running guest's console log under `maxBytes`: when it is over, its bytes move to
    /// `<name>.log.1` (older ones shift up, as in `rotateConsoleLog`) and the live file is
    /// truncated in place. QEMU holds the log open with O_APPEND, so its next write lands at the
    /// new end of the same file, which `berth log -f` keeps following. Output written between
    /// the copy and the truncation (microseconds) is lost; a guest flooding its console loses
    /// far more to the cap itself.
    ///
    /// - Returns: whether the log was cut.
    @discardableResult
    public func capConsoleLog(maxBytes: UInt64, keep: Int) throws -> Bool {
        let fd = open(consoleLog, O_RDWR | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG, UInt64(info.st_size) > maxBytes else {
            return false
        }
        if keep > 0 {
            try shiftRotatedLogs(keep: keep)
            let copy = open("\(consoleLog).1", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o600)
            guard copy >= 0 else { throw rotationError("\(consoleLog).1") }
            defer { close(copy) }
            // Only the last `maxBytes`: a flood between two checks must not make `.1` huge.
            var offset = off_t(UInt64(info.st_size) - maxBytes)
            let end = off_t(info.st_size)
            var buffer = [UInt8](repeating: 0, count: 64 * 1024)
            while offset < end {
                let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, min($0.count, Int(end - offset)), offset) }
                if n < 0, errno == EINTR { continue }
                guard n > 0 else { break }
                do {
                    try writeAll(copy, buffer[..<n])
                } catch {
                    throw rotationError("\(consoleLog).1")
                }
                offset += off_t(n)
            }
        }
        guard ftruncate(fd, 0) == 0 else { throw rotationError(consoleLog) }
        return true
    }

    /// Makes room for a new `<name>.log.1`: `.1` becomes `.2`, … and the oldest beyond `keep` goes.
    private func shiftRotatedLogs(keep: Int) throws {
        unlink("\(consoleLog).\(keep)")
        for n in stride(from: keep - 1, through: 1, by: -1) where FileManager.default.fileExists(atPath: "\(consoleLog).\(n)") {
            guard rename("\(consoleLog).\(n)", "\(consoleLog).\(n + 1)") == 0 else {
                throw rotationError("\(consoleLog).\(n)")
            }
        }
    }

    private func rotationError(_ path: String) -> BerthError {
        BerthError(
            .unavailable, "Cannot rotate the console log \(path): \(String(cString: strerror(errno)))",
            remedy: "Check the permissions of \(logDirectory).")
    }
}
