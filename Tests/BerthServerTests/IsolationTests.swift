import BerthClient
import BerthModel
import Foundation
import Testing

@testable import BerthServer

/// Guests are hostile: each attack from the isolation issue, end to end against a real berthd
/// and real QEMU guests. Each failed before the fix it checks.
@Suite(.serialized, .bootsGuests) struct IsolationTests {
    /// The output of the guest's `berth.run=` command (between its BEGIN and END lines).
    static func runOutput(_ log: String) -> String {
        // The output starts on the line after the marker (a kernel message may share its line).
        // Lines end in "\r\n" on the serial console: one Character, so split on `isNewline`.
        guard let marker = log.range(of: "BERTH-GUEST-RUN-BEGIN"),
            let newline = log[marker.upperBound...].firstIndex(where: \.isNewline),
            let end = log.range(of: "BERTH-GUEST-RUN-END", range: log.index(after: newline)..<log.endIndex)
        else { return "" }
        return log[log.index(after: newline)..<end.lowerBound].split(omittingEmptySubsequences: false, whereSeparator: \.isNewline)
            .filter { !isKernelMessage($0) }.joined(separator: "\n")
    }

    /// The kernel's own messages (`[    1.590791] clocksource: …`) land between the run's lines
    /// when the kernel prints late on a slow host; they are not what the guest's command wrote.
    static func isKernelMessage(_ line: Substring) -> Bool {
        guard line.first == "[", let close = line.firstIndex(of: "]") else { return false }
        let stamp = line[line.index(after: line.startIndex)..<close]
        return stamp.contains(".") && stamp.allSatisfy { $0 == " " || $0 == "." || $0.isNumber }
    }

    static func status(_ pid: Int32) -> [String: String] {
        let text = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        var fields: [String: String] = [:]
        for line in text.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            fields[String(line[..<colon])] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return fields
    }

    @Test func qemuRunsAsTheGuestsOwnUserUnderSeccomp() async throws {
        let daemon = try await TestDaemon()
        defer { daemon.tearDown() }
        _ = try await daemon.client.define(try GuestFixture.spec("iso-a"))
        _ = try await daemon.client.define(try GuestFixture.spec("iso-b"))
        let a = try #require(try await daemon.client.perform(.start, on: "iso-a").pid)
        let b = try #require(try await daemon.client.perform(.start, on: "iso-b").pid)
        _ = try await daemon.waitForLog("iso-a", "BERTH-GUEST-READY")
        let statusA = Self.status(a)
        let statusB = Self.status(b)
        // seccomp filter mode (2) and no way back to privileges, whoever runs berthd.
        #expect(statusA["Seccomp"] == "2")
        #expect(statusA["NoNewPrivs"] == "1")
        let uidA = statusA["Uid"]?.split(separator: "\t").map(String.init) ?? []
        let uidB = statusB["Uid"]?.split(separator: "\t").map(String.init) ?? []
        if getuid() == 0 {
            // Real, effective, saved and filesystem IDs: none is root, and each guest has its own.
            #expect(uidA.count == 4 && !uidA.contains("0"))
            #expect(Set(uidA).count == 1 && Set(uidB).count == 1 && uidA != uidB)
            #expect(statusA["Groups"] == "")
            #expect(statusA["CapEff"] == "0000000000000000")
        } else {
            #expect(uidA.first == String(getuid()))
        }
        // Its parent is berthd (no -daemonize), in a session of its own so it outlives berthd.
        #expect(getsid(a) == a)
    }

    @Test func aQcow2HeaderWrittenOntoARawDiskStaysRawBytes() async throws {
        let daemon = try await TestDaemon()
        defer { daemon.tearDown() }
        let dir = daemon.stateDirectory
        let disk = dir + "/data.img"
        let secret = dir + "/secret"
        try "HOST-SECRET-\(UUID().uuidString)\n".write(toFile: secret, atomically: true, encoding: .utf8)
        #expect(FileManager.default.createFile(atPath: disk, contents: Data(count: 1 << 20)))
        var spec = try GuestFixture.spec("rawdisk")
        spec.disks = [DiskSpec(path: disk)]  // no format: decided once, at define
        spec.cmdline = (spec.cmdline ?? "") + #" berth.run="head -c 4 /dev/vda; echo; grep -c HOST-SEC""RET /dev/vda""#
        let defined = try await daemon.client.define(spec)
        #expect(defined.spec.disks.first?.format == .raw)

        // What a guest would write into its own disk: a qcow2 header whose backing file is a
        // host file (CVE-2008-2004), then a reboot.
        let header = dir + "/header.qcow2"
        try await run("/usr/bin/qemu-img", ["create", "-q", "-f", "qcow2", "-b", secret, "-F", "raw", header, "1M"])
        let bytes = try Data(contentsOf: URL(fileURLWithPath: header))
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: disk))
        try handle.write(contentsOf: bytes)
        try handle.close()

        _ = try await daemon.client.perform(.start, on: "rawdisk")
        let log = try await daemon.waitForLog("rawdisk", "BERTH-GUEST-RUN-END")
        let seen = Self.runOutput(log)
        #expect(seen.hasPrefix("QFI"), "the guest reads its own bytes: \(seen)")
        #expect(seen.contains("\n0") || seen.contains("\r\n0"), "the host file is not the disk: \(seen)")
        #expect(!seen.contains("HOST-SECRET"))
        #expect(try await daemon.client.info("rawdisk").spec.disks.first?.format == .raw)
    }

    @Test func aQcow2OverlayOnAHostFileIsRefusedAtDefine() async throws {
        let daemon = try await TestDaemon()
        defer { daemon.tearDown() }
        let overlay = daemon.stateDirectory + "/overlay.qcow2"
        try await run(
            "/usr/bin/qemu-img",
            ["create", "-q", "-f", "qcow2", "-b", daemon.stateDirectory + "/api-token", "-F", "raw", overlay, "1M"])
        var spec = try GuestFixture.spec("overlay")
        spec.disks = [DiskSpec(path: overlay)]
        let error = await #expect(throws: BerthError.self) { _ = try await daemon.client.define(spec) }
        #expect(error?.message.contains("api-token") == true)
        #expect(error?.remedy?.contains("qemu-img convert") == true)
        #expect(try await daemon.client.list().isEmpty)
    }

    @Test func aConsoleFloodIsCappedWhileTheGuestRuns() async throws {
        let cap = 65_536
        let daemon = try await TestDaemon(extraArguments: ["--console-log-max", String(cap)])
        defer { daemon.tearDown() }
        var spec = try GuestFixture.spec("flood")
        // About 2 MB of output, far past the cap, then a last line to wait for.
        spec.cmdline =
            (spec.cmdline ?? "")
            + #" berth.run="i=0; while [ $i -lt 20000 ]; do echo flood-line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; i=$((i+1)); done""#
        _ = try await daemon.client.define(spec)
        _ = try await daemon.client.perform(.start, on: "flood")
        let info = try await daemon.client.info("flood")
        let path = try #require(info.consoleLog)
        let deadline = Date().addingTimeInterval(180)
        var largest: UInt64 = 0
        var rotated = false
        while Date() < deadline {
            let size = ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.uint64Value ?? 0
            largest = max(largest, size)
            rotated = rotated || FileManager.default.fileExists(atPath: path + ".1")
            if (try? String(contentsOfFile: path, encoding: .utf8))?.contains("BERTH-GUEST-RUN-END") == true { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(rotated, "the log was rotated while the guest ran")
        // Checked once a second: it may overshoot by what a guest prints in a second, never grow without end.
        #expect(largest < UInt64(cap) * 8, "largest log seen: \(largest) bytes")
        let old = ((try? FileManager.default.attributesOfItem(atPath: path + ".1"))?[.size] as? NSNumber)?.uint64Value ?? 0
        #expect(old <= UInt64(cap))
        #expect(try await daemon.client.info("flood").state == .running)
    }

    @Test func aDomainFoundStartingIsSettledOffAndNotRunAgain() async throws {
        let daemon = try await TestDaemon()
        defer { daemon.tearDown() }
        var spec = try GuestFixture.spec("halfway")
        spec.autostart = true
        _ = try await daemon.client.define(spec)
        daemon.stop()
        // What a berthd killed in the middle of a start leaves in its catalog.
        try await run(
            "/usr/bin/sqlite3",
            [daemon.stateDirectory + "/catalog.sqlite", "UPDATE domain SET state = 'starting' WHERE name = 'halfway'"])
        try await daemon.start()
        let info = try await daemon.client.info("halfway")
        #expect(info.state == .shutoff)
        #expect(info.lastError?.contains("was starting") == true)
        try await Task.sleep(for: .seconds(2))
        #expect(try await daemon.client.info("halfway").state == .shutoff)
    }
}

/// Runs a host tool and fails the test with its output when it fails. On a thread of its own
/// (BerthRun.command): a blocking wait on one of the test runner's two cooperative threads would
/// stall every other test meanwhile.
func run(_ tool: String, _ arguments: [String]) async throws {
    guard FileManager.default.isExecutableFile(atPath: tool) else {
        Issue.record("\(tool) is missing: run scripts/install-host-deps")
        throw BerthError(.notFound, "\(tool) missing")
    }
    let outcome = try await BerthRun.command([tool] + arguments, timeout: 120)
    guard outcome.status == 0 else {
        Issue.record("\(tool) \(arguments.joined(separator: " ")) failed: \(outcome.stdout)\(outcome.stderr)")
        throw BerthError(.internal, "\(tool) failed")
    }
}

extension IsolationTests {
    /// The three menus that crashed the bootloader (an overflow trap twice, a stack overflow),
    /// each on a guest's own disk: the guest does not start and says why; berthd and a guest
    /// already running are untouched. Before, berthd parsed these menus itself and died.
    @Test func hostileBootMenusCostOnlyThatGuestsStart() async throws {
        let daemon = try await TestDaemon()
        defer { daemon.tearDown() }
        _ = try await daemon.client.define(try GuestFixture.spec("bystander"))
        let bystander = try #require(try await daemon.client.perform(.start, on: "bystander").pid)
        let menus = [
            // Read past the trap, the menu's entry is chosen and its (fake) kernel reaches QEMU.
            (
                "trap-grub", "boot/grub/grub.cfg", "echo ${-9223372036854775808}\nmenuentry 'x' { linux /vmlinuz }\n",
                "invalid kernel header"
            ),
            (
                "trap-extlinux", "boot/extlinux/extlinux.conf", "TIMEOUT 9223372036854775807\nLABEL x\n  KERNEL /vmlinuz\n",
                "invalid kernel header"
            ),
            // Endless nesting is refused by the bootloader.
            (
                "trap-recursion", "boot/grub/grub.cfg", "function f { submenu x { f } }\nf\nmenuentry 'y' { linux /vmlinuz }\n",
                "nest more than"
            ),
        ]
        for (name, path, text, why) in menus {
            let tree = daemon.stateDirectory + "/\(name)-tree"
            let file = tree + "/" + path
            try FileManager.default.createDirectory(
                atPath: (file as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try text.write(toFile: file, atomically: true, encoding: .utf8)
            try "not a kernel".write(toFile: tree + "/vmlinuz", atomically: true, encoding: .utf8)
            let image = daemon.stateDirectory + "/\(name).img"
            try await run("/usr/sbin/mke2fs", ["-q", "-F", "-t", "ext4", "-d", tree, image, "16M"])
            _ = try await daemon.client.define(
                DomainSpec(name: name, bootloader: BootloaderSpec(), disks: [DiskSpec(path: image, format: .raw)]))
            let error = await #expect(throws: BerthError.self) { _ = try await daemon.client.perform(.start, on: name) }
            // Refused for what the menu holds, not for anything about the host.
            let message = error?.message ?? "started"
            #expect(message.contains(why), "\(name): \(message)")
            #expect(!message.contains("Permission denied") && !message.contains("signal"), "\(name): \(message)")
            let info = try await daemon.client.info(name)
            #expect(info.state == .shutoff)
            #expect(info.lastError?.contains(why) == true)
        }
        // berthd answered every request above and is still the same process; the bystander too.
        #expect(daemon.process?.isRunning == true)
        let after = try await daemon.client.info("bystander")
        #expect(after.state == .running && after.pid == bystander)
    }
}

extension IsolationTests {
    /// A guest that panics at every boot with on_crash=restart is restarted five times, then
    /// left crashed with the reason, instead of burning the host's CPU forever.
    @Test func aCrashLoopStopsBeingRestarted() async throws {
        let daemon = try await TestDaemon()
        defer { daemon.tearDown() }
        var spec = try GuestFixture.spec("crashloop", mode: "panic")
        spec.onCrash = .restart
        _ = try await daemon.client.define(spec)
        _ = try await daemon.client.perform(.start, on: "crashloop")
        let deadline = Date().addingTimeInterval(150)
        var info = try await daemon.client.info("crashloop")
        while Date() < deadline {
            info = try await daemon.client.info("crashloop")
            if info.lastError?.contains("stopped restarting") == true { break }
            try await Task.sleep(for: .milliseconds(250))
        }
        #expect(info.lastError?.contains("stopped restarting") == true, "last error: \(info.lastError ?? "none")")
        #expect(info.state == .crashed)
        // 1 start + 5 restarts within the throttle's minute (more when a loaded host makes the
        // boots slower than 12 s each, so that the first restarts leave the window), then quiet.
        let boots = try await daemon.log("crashloop").components(separatedBy: "BERTH-GUEST-PANIC").count - 1
        try await Task.sleep(for: .seconds(3))
        #expect(try await daemon.client.info("crashloop").state == .crashed)
        #expect(boots >= RestartThrottle.limit + 1, "boots: \(boots)")
        let later = try await daemon.log("crashloop").components(separatedBy: "BERTH-GUEST-PANIC").count - 1
        #expect(later == boots, "booted again after it stopped restarting: \(boots) -> \(later)")
    }
}

extension IsolationTests {
    /// From inside a user-mode guest (the host's loopback is 10.0.2.2 to it): its install
    /// media download, while berthd's API, another guest's VNC display and a kickstart under
    /// a guessable name are out of reach.
    @Test func aUserModeGuestReachesItsMediaAndNothingElseOnTheHost() async throws {
        let daemon = try await TestDaemon()
        defer { daemon.tearDown() }
        let tree = daemon.stateDirectory + "/tree"
        try FileManager.default.createDirectory(atPath: tree, withIntermediateDirectories: true)
        try "MEDIA-CONTENT-OK\n".write(toFile: tree + "/hello.txt", atomically: true, encoding: .utf8)
        #expect(try await BerthRun.run(["media", "add", "mytree", tree], state: daemon.stateDirectory).status == 0)
        try FileManager.default.createDirectory(
            atPath: daemon.stateDirectory + "/kickstarts", withIntermediateDirectories: true)
        // A kickstart as `berth install` publishes it: under a name nobody can guess.
        let published = "devel1-\(UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()).ks"
        try "rootpw secret\n".write(
            toFile: daemon.stateDirectory + "/kickstarts/" + published, atomically: true, encoding: .utf8)

        // Another guest with a VNC display on the host's loopback (a password, as berthd insists).
        let vncPort = Int.random(in: 5910...5990)
        var shown = try GuestFixture.spec("shown")
        shown.machine = "pc"
        shown.graphics = GraphicsSpec(kind: .vnc, listen: "127.0.0.1", port: vncPort)
        _ = try await daemon.client.define(shown)
        _ = try await daemon.client.perform(.start, on: "shown")
        // The test itself (not a guest) reaches that display: it is there to be reached.
        #expect(try RawTCP.banner(port: vncPort).hasPrefix("RFB"))

        func fetch(_ port: Int, _ path: String) -> String {
            #"printf 'GET \#(path) HTTP/1.0\r\nHost: 10.0.2.2:\#(port)\r\n\r\n' | nc -w 5 10.0.2.2 \#(port)"#
        }
        let probes = [
            "echo MEDIA=$(\(fetch(daemon.mediaPort, "/install/mytree/hello.txt")) | tail -1)",
            "echo API=$(\(fetch(daemon.port, "/v1/host")) | head -1)",
            "echo VNC=$(nc -w 5 10.0.2.2 \(vncPort) </dev/null | head -c 3)",
            "echo KS=$(\(fetch(daemon.mediaPort, "/kickstarts/devel1.ks")) | head -1)",
            "echo KSLIST=$(\(fetch(daemon.mediaPort, "/kickstarts/")) | grep -c devel1-)",
        ]
        var spec = try GuestFixture.spec("inside")
        spec.nics = [NICSpec()]
        spec.cmdline = (spec.cmdline ?? "") + " berth.net=dhcp berth.run=\"\(probes.joined(separator: "; "))\""
        _ = try await daemon.client.define(spec)
        _ = try await daemon.client.perform(.start, on: "inside")
        let log = try await daemon.waitForLog("inside", "BERTH-GUEST-RUN-END", timeout: 120)
        let seen = Self.runOutput(log)
        #expect(seen.contains("MEDIA=MEDIA-CONTENT-OK"), "\(seen)")
        #expect(!seen.contains("API=HTTP"), "\(seen)")
        #expect(!seen.contains("VNC=RFB"), "\(seen)")
        // The media listener answers, but a guessable kickstart name is nothing, and the
        // directory lists nothing.
        #expect(seen.contains("KS=HTTP/1.1 404"), "\(seen)")
        #expect(seen.contains("KSLIST=0"), "\(seen)")
        if getuid() != 0 {
            Issue.record("Run as root: without it berthd cannot run guests under their own users, so the API stays reachable.")
        }
    }
}

/// The first bytes a TCP server sends on connect (a VNC server's `RFB 003.008`).
enum RawTCP {
    static func banner(port: Int) throws -> String {
        let fd = try RawHTTP.connect(port: port)
        defer { close(fd) }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var buffer = [UInt8](repeating: 0, count: 12)
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, 12) }
        return n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self) : ""
    }
}
