import BerthModel
import Foundation
import Testing

/// berthd refuses to start on a state directory or token others could tamper with, and a
/// listener it cannot open is an error naming it and the fix, never a half-started daemon.
@Suite(.serialized) struct DaemonStartupTests {
    struct Outcome {
        var status: Int32
        var stderr: String
    }

    /// Runs berthd until it exits, or kills it after `timeout` seconds (nil status: it ran).
    /// Runs berthd until it exits, `ready` says it is (polled), or `timeout` passes; nil when it
    /// was still running (then it is stopped).
    static func runBerthd(_ arguments: [String], timeout: TimeInterval = 20, ready: (() -> Bool)? = nil) throws -> Outcome? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: TestDaemon.binary)
        process.arguments = arguments + ["--log-level", "warning"]
        let err = Pipe()
        process.standardError = err
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning, Date() < deadline, ready?() != true { usleep(50_000) }
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
            return nil
        }
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        return Outcome(status: process.terminationStatus, stderr: text)
    }

    static func scratch() throws -> String {
        let path = "/tmp/berth-start-" + String(UUID().uuidString.prefix(8)).lowercased()
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    static func base(_ state: String) -> [String] {
        ["--state-dir", state, "--listen", "none", "--media-listen", "none"]
    }

    @Test func unsafeStateDirectoryOrTokenIsRefused() throws {
        let root = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: root) }

        let open = root + "/open"
        try FileManager.default.createDirectory(atPath: open, withIntermediateDirectories: true)
        chmod(open, 0o777)
        let worldWritable = try #require(try Self.runBerthd(Self.base(open)))
        #expect(worldWritable.status == 6)
        #expect(
            worldWritable.stderr.contains("writable by its group or others") && worldWritable.stderr.contains("chmod go-w \(open)"),
            "\(worldWritable.stderr)")

        let real = root + "/real"
        try FileManager.default.createDirectory(atPath: real, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: root + "/link", withDestinationPath: real)
        let symlink = try #require(try Self.runBerthd(Self.base(root + "/link")))
        #expect(symlink.status == 6 && symlink.stderr.contains("is a symlink"), "\(symlink.stderr)")

        let theirs = root + "/theirs"
        try FileManager.default.createDirectory(atPath: theirs, withIntermediateDirectories: true)
        chown(theirs, 4242, 4242)
        let foreign = try #require(try Self.runBerthd(Self.base(theirs)))
        #expect(
            foreign.status == 6 && foreign.stderr.contains("owned by uid 4242") && foreign.stderr.contains("chown \(geteuid()) \(theirs)"),
            "\(foreign.stderr)")

        let leaky = root + "/leaky"
        try FileManager.default.createDirectory(atPath: leaky, withIntermediateDirectories: true)
        chmod(leaky, 0o700)
        try "0123\n".write(toFile: leaky + "/api-token", atomically: false, encoding: .utf8)
        chmod(leaky + "/api-token", 0o644)
        let token = try #require(try Self.runBerthd(Self.base(leaky)))
        #expect(token.status == 6 && token.stderr.contains("chmod 600 \(leaky)/api-token"), "\(token.stderr)")

        let linked = root + "/linked"
        try FileManager.default.createDirectory(atPath: linked, withIntermediateDirectories: true)
        chmod(linked, 0o700)
        try FileManager.default.createSymbolicLink(atPath: linked + "/api-token", withDestinationPath: "/etc/hostname")
        let tokenLink = try #require(try Self.runBerthd(Self.base(linked)))
        #expect(tokenLink.status == 6 && tokenLink.stderr.contains("not a regular file"), "\(tokenLink.stderr)")

        // 0711 (so guest processes of other uids can traverse it) is fine.
        let traversable = root + "/traversable"
        try FileManager.default.createDirectory(atPath: traversable, withIntermediateDirectories: true)
        chmod(traversable, 0o711)
        var started = false
        let fine = try Self.runBerthd(Self.base(traversable), timeout: 60) {
            started = TestDaemon.accepts(traversable + "/run/berthd.sock")
            return started
        }
        #expect(fine == nil, "berthd exited: \(fine?.stderr ?? "")")
        #expect(started)
    }

    @Test func aListenerThatCannotOpenIsNamed() throws {
        let root = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: root) }
        // A port somebody else holds.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        listen(fd, 1)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        let taken = Int(UInt16(bigEndian: address.sin_port))

        let media = try #require(try Self.runBerthd(["--state-dir", root + "/a", "--listen", "none", "--media-listen", "127.0.0.1:\(taken)"]))
        #expect(media.status != 0)
        #expect(
            media.stderr.contains("the media address 127.0.0.1:\(taken)") && media.stderr.contains("already in use")
                && media.stderr.contains("--media-listen"), "\(media.stderr)")
        #expect(!TestDaemon.accepts(root + "/a/run/berthd.sock"), "berthd left its socket listening")

        let api = try #require(try Self.runBerthd(["--state-dir", root + "/b", "--listen", "127.0.0.1:\(taken)", "--media-listen", "none"]))
        #expect(api.status != 0)
        #expect(api.stderr.contains("the API address 127.0.0.1:\(taken)") && api.stderr.contains("--listen"), "\(api.stderr)")

        // A unix socket path berthd cannot create.
        let config = root + "/xend-config.sxp"
        try "(xend-http-server no)\n(xend-unix-server yes)\n(xend-unix-path /proc/berth-nowhere/xend-socket)\n".write(
            toFile: config, atomically: true, encoding: .utf8)
        let unix = try #require(try Self.runBerthd(["--state-dir", root + "/c", "--config", config, "--media-listen", "none"]))
        #expect(unix.status != 0)
        #expect(unix.stderr.contains("/proc/berth-nowhere"), "\(unix.stderr)")
    }

    /// Issue 14: `(xend-unix-server yes)` without a path means /var/lib/xend/xend-socket, whose
    /// directory berthd creates as xend did.
    @Test func xendUnixServerCreatesItsDirectory() throws {
        let directory = "/var/lib/xend"
        var isDirectory: ObjCBool = false
        let existed = FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory)
        if existed {
            // Only an empty directory left by an earlier run may be removed to test the creation.
            guard (try? FileManager.default.contentsOfDirectory(atPath: directory))?.isEmpty == true else {
                Issue.record("\(directory) exists and is not empty: move it away to run this test (rm -r \(directory) if it is left over).")
                return
            }
            rmdir(directory)
        }
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let root = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let config = root + "/xend-config.sxp"
        try "(xend-http-server no)\n(xend-unix-server yes)\n".write(toFile: config, atomically: true, encoding: .utf8)
        var listening = false
        let outcome = try Self.runBerthd(["--state-dir", root + "/state", "--config", config, "--media-listen", "none"], timeout: 60) {
            listening = TestDaemon.accepts(directory + "/xend-socket")
            return listening
        }
        #expect(outcome == nil, "berthd exited: \(outcome?.stderr ?? "")")
        #expect(listening)
        var info = stat()
        #expect(stat(directory, &info) == 0 && info.st_mode & 0o777 == 0o755)
    }
}
