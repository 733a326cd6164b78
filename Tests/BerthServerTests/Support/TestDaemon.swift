import BerthClient
import BerthModel
import BerthQEMU
import Foundation
import Testing

/// A real `berthd` process with its own state directory, for end-to-end tests.
final class TestDaemon: @unchecked Sendable {
    // Mutated only by the test that owns it, from one task at a time.
    let stateDirectory: String
    private(set) var port: Int
    /// The media listener's port (`--media-listen 127.0.0.1:PORT`): install media, no token.
    private(set) var mediaPort: Int
    /// More berthd arguments (e.g. `--idle-timeout 1`).
    let extraArguments: [String]
    /// The network namespace berthd (and so its guests, taps, bridges and dnsmasq) runs in;
    /// nil: the host's. Every networking test gives one.
    let namespace: TestNamespace?
    private(set) var process: Process?

    var socketPath: String { stateDirectory + "/run/berthd.sock" }
    var client: BerthClient { BerthClient(endpoint: .unix(path: socketPath)) }
    var token: String {
        (try? String(contentsOfFile: stateDirectory + "/api-token", encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
    }

    init(extraArguments: [String] = [], namespace: TestNamespace? = nil) async throws {
        self.namespace = namespace
        // Unix socket paths are limited to 108 bytes: keep the directory short.
        stateDirectory = "/tmp/berth-test-" + String(UUID().uuidString.prefix(8)).lowercased()
        self.extraArguments = extraArguments
        try FileManager.default.createDirectory(atPath: stateDirectory, withIntermediateDirectories: true)
        // Below Linux's ephemeral range (32768+), where outgoing connections take their ports.
        (port, mediaPort) = Self.twoPorts()
        for attempt in 1...5 {
            do {
                try await start()
                break
            } catch let error as BerthError where attempt < 5 && error.code == .alreadyExists {
                (port, mediaPort) = Self.twoPorts()  // taken by another test's daemon: try others
            }
        }
    }

    static func twoPorts() -> (Int, Int) {
        let api = Int.random(in: 10000...32000)
        var media = Int.random(in: 10000...32000)
        while media == api { media = Int.random(in: 10000...32000) }
        return (api, media)
    }

    static var binary: String {
        let executable = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var directory = executable.deletingLastPathComponent()
        // swift test runs <build>/debug/BerthPackageTests.xctest
        if directory.lastPathComponent.hasSuffix(".xctest") { directory = directory.deletingLastPathComponent() }
        return directory.appendingPathComponent("berthd").path
    }

    static var berthBinary: String {
        URL(fileURLWithPath: binary).deletingLastPathComponent().appendingPathComponent("berth").path
    }

    func start() async throws {
        guard FileManager.default.isExecutableFile(atPath: Self.binary) else {
            Issue.record("berthd is not built at \(Self.binary): run 'swift build' before 'swift test'.")
            throw BerthError(.notFound, "berthd not built")
        }
        unlink(socketPath)
        let process = Process()
        let arguments =
            [
                "--state-dir", stateDirectory, "--listen", "127.0.0.1:\(port)", "--media-listen", "127.0.0.1:\(mediaPort)",
                "--log-level", "warning",
            ] + extraArguments
        if let namespace {
            // `ip netns exec` enters the namespace and execs berthd (same PID); the unix socket
            // in the state directory reaches it from the test's namespace.
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["ip", "netns", "exec", namespace.name, Self.binary] + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: Self.binary)
            process.arguments = arguments
        }
        let log =
            FileHandle(forWritingAtPath: stateDirectory + "/berthd.log")
            ?? {
                _ = FileManager.default.createFile(atPath: stateDirectory + "/berthd.log", contents: nil)
                return FileHandle(forWritingAtPath: stateDirectory + "/berthd.log")
            }()
        log?.seekToEndOfFile()
        process.standardOutput = log
        process.standardError = log
        try process.run()
        self.process = process
        let deadline = Date().addingTimeInterval(20)
        // All three listeners: the unix socket can be up before the TCP ones are bound. A
        // namespaced daemon's TCP listeners are on its namespace's loopback, out of reach here.
        while !Self.accepts(socketPath) || namespace == nil && (!Self.acceptsTCP(port) || !Self.acceptsTCP(mediaPort)) {
            guard Date() < deadline, process.isRunning else {
                let log = (try? String(contentsOfFile: stateDirectory + "/berthd.log", encoding: .utf8)) ?? ""
                if log.contains("in use") { throw BerthError(.alreadyExists, "port \(port) in use") }
                throw BerthError(.unavailable, "berthd did not come up: \(log.suffix(500))")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Whether something listens on the unix socket (the file appears just before listen()).
    static func accepts(_ path: String) -> Bool {
        guard let fd = connectUnix(path) else { return false }
        close(fd)
        return true
    }

    /// A stream connection to the unix socket at `path` (the caller closes it), nil if refused.
    static func connectUnix(_ path: String) -> Int32? {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard fd >= 0, bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            close(fd)
            return nil
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) == 0
            }
        }
        guard connected else {
            close(fd)
            return nil
        }
        return fd
    }

    /// Whether something listens on 127.0.0.1:`port`.
    static func acceptsTCP(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }

    /// Ends the daemon with `signal` (SIGKILL to simulate a crash); guests keep running.
    func stop(signal: Int32 = SIGTERM) {
        guard let process else { return }
        kill(process.processIdentifier, signal)
        // berthd must stop promptly even with log followers and event streams attached.
        let deadline = Date().addingTimeInterval(15)
        while process.isRunning, Date() < deadline { usleep(20_000) }
        if process.isRunning {
            Issue.record("berthd did not exit within 15 s of signal \(signal)")
            kill(process.processIdentifier, SIGKILL)
        }
        process.waitUntilExit()
        self.process = nil
    }

    /// Stops the daemon and every QEMU it started, and removes the state directory.
    func tearDown() {
        stop(signal: SIGTERM)
        let runtime = stateDirectory + "/run"
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: runtime)) ?? [] {
            let pidFile = "\(runtime)/\(entry)/qemu.pid"
            // Only a live QEMU of that guest: the PID of one that exited may be another's now.
            if let text = try? String(contentsOfFile: pidFile, encoding: .utf8),
                let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)),
                let uuid = UUID(uuidString: entry), QEMUProcess.isAlive(pid: pid, uuid: uuid)
            {
                kill(pid, SIGKILL)
            }
        }
        // berthd leaves its guest firewall in place for guests that outlive it; the test's goes
        // (a namespaced daemon's goes with its namespace, deleted by the test).
        if namespace == nil,
            let table = try? String(contentsOfFile: runtime + "/guest-firewall.table", encoding: .utf8)
                .trimmingCharacters(in: .whitespacesAndNewlines), table.hasPrefix("berthd_")
        {
            let nft = Process()
            nft.executableURL = URL(fileURLWithPath: "/usr/sbin/nft")
            nft.arguments = ["delete", "table", "inet", table]
            try? nft.run()
            nft.waitUntilExit()
        }
        // BERTH_TEST_KEEP=1 keeps the state directory (berthd.log, console logs) for a post-mortem.
        if ProcessInfo.processInfo.environment["BERTH_TEST_KEEP"] == nil {
            try? FileManager.default.removeItem(atPath: stateDirectory)
        }
    }

    /// The console log so far.
    func log(_ name: String) async throws -> String {
        let collected = Collector()
        try await client.consoleLog(name, tail: nil, follow: false) { buffer in
            collected.append(Array(buffer.readableBytesView))
        }
        return collected.text
    }

    /// Waits until the console log contains `text` `count` times.
    func waitForLog(_ name: String, _ text: String, count: Int = 1, timeout: TimeInterval = guestWait) async throws -> String {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let log = try await log(name)
            if log.components(separatedBy: text).count - 1 >= count { return log }
            guard Date() < deadline else {
                Issue.record("'\(text)' did not appear \(count)× in \(name)'s console within \(timeout) s. Log tail:\n\(log.suffix(1500))")
                throw BerthError(.timeout, "console wait")
            }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    /// Waits until the domain reaches `state`.
    func waitForState(_ name: String, _ state: DomainState, timeout: TimeInterval = guestWait) async throws -> DomainInfo {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let info = try await client.info(name)
            if info.state == state { return info }
            guard Date() < deadline else {
                Issue.record("\(name) stayed \(info.state.rawValue), expected \(state.rawValue) (last error: \(info.lastError ?? "none"))")
                throw BerthError(.timeout, "state wait")
            }
            try await Task.sleep(for: .milliseconds(100))
        }
    }
}

final class Collector: @unchecked Sendable {
    // Appended to by one connection handler at a time.
    private var bytes: [UInt8] = []
    private let lock = NSLock()
    func append(_ more: [UInt8]) { lock.withLock { bytes += more } }
    var text: String { lock.withLock { String(decoding: bytes, as: UTF8.self) } }
}

/// How long a test waits for a guest by default. A TCG boot takes seconds on a quiet machine and a
/// minute or more on a loaded CI host; a wait that passes costs nothing, so it is generous.
let guestWait: TimeInterval = 240

/// The test guest built by fixtures/guest/build.sh.
enum GuestFixture {
    static var directory: String {
        if let root = ProcessInfo.processInfo.environment["BERTH_FIXTURES"] { return root + "/guest" }
        let here = URL(fileURLWithPath: #filePath)
        let package = here.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        return package.appendingPathComponent("fixtures/out/guest").path
    }

    static var kernel: String { directory + "/vmlinuz" }
    static var initrd: String { directory + "/initrd.img" }

    /// A direct-kernel test guest; `mode` is the init's `berth.mode=` (stay, poweroff, reboot, panic).
    static func spec(_ name: String, mode: String = "stay", marker: String? = nil) throws -> DomainSpec {
        guard FileManager.default.fileExists(atPath: kernel) else {
            Issue.record("The test guest is missing at \(directory): run fixtures/guest/build.sh first.")
            throw BerthError(.notFound, "guest fixture missing")
        }
        var cmdline = "console=ttyS0 berth.mode=\(mode)"
        if let marker { cmdline += " berth.marker=\(marker)" }
        return DomainSpec(name: name, memory: 256, kernel: kernel, initrd: initrd, cmdline: cmdline)
    }
}
