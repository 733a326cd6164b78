import BerthModel
import Foundation

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
    }

    /// Creates the directories (mode 0700 for the runtime one: its sockets control the guest)
    /// and checks that the socket paths fit in a `sockaddr_un`.
    ///
    /// - Throws: `BerthError` naming the path that could not be made or is too long.
    public func prepare() throws {
        for socket in [qmpSocket, consoleSocket] where socket.utf8.count >= UnixSocketConnection.maxPathBytes {
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
        } catch {
            throw BerthError(
                .unavailable, "Cannot create Berth's runtime or log directory: \(error.localizedDescription)",
                remedy: "Check that \(directory) and \(logDirectory) are writable by the daemon's user.")
        }
    }

    /// Removes the sockets and pidfile a QEMU left behind (it does not remove its sockets when
    /// killed), and the directory too if asked. Call only when no QEMU for this domain runs.
    public func removeRuntimeFiles(includingDirectory: Bool = false) {
        for path in [qmpSocket, consoleSocket, pidFile] { unlink(path) }
        if includingDirectory { rmdir(directory) }
    }

    /// Rotates the console log when it has grown past `maxBytes`: `<name>.log` becomes
    /// `<name>.log.1`, `.1` becomes `.2`, ... and the oldest beyond `keep` is deleted.
    /// Called before each start because QEMU appends to the log for the whole life of the guest.
    ///
    /// - Returns: whether a rotation happened.
    @discardableResult
    public func rotateConsoleLog(maxBytes: UInt64 = 1 << 20, keep: Int = 5) throws -> Bool {
        let fm = FileManager.default
        guard let size = (try? fm.attributesOfItem(atPath: consoleLog))?[.size] as? NSNumber,
            size.uint64Value > maxBytes
        else { return false }
        guard keep > 0 else {
            unlink(consoleLog)
            return true
        }
        unlink("\(consoleLog).\(keep)")
        for n in stride(from: keep - 1, through: 1, by: -1) where fm.fileExists(atPath: "\(consoleLog).\(n)") {
            guard rename("\(consoleLog).\(n)", "\(consoleLog).\(n + 1)") == 0 else {
                throw rotationError("\(consoleLog).\(n)")
            }
        }
        guard rename(consoleLog, "\(consoleLog).1") == 0 else { throw rotationError(consoleLog) }
        return true
    }

    private func rotationError(_ path: String) -> BerthError {
        BerthError(
            .unavailable, "Cannot rotate the console log \(path): \(String(cString: strerror(errno)))",
            remedy: "Check the permissions of \(logDirectory).")
    }
}
