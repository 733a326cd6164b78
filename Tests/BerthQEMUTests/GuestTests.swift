import BerthModel
import Foundation
import Testing

@testable import BerthQEMU

/// The test guest: a Debian cloud kernel and a busybox initramfs that prints
/// `BERTH-GUEST-READY` and obeys `berth.mode=` (built by fixtures/guest/build.sh).
enum GuestFixture {
    static var directory: String {
        let base =
            ProcessInfo.processInfo.environment["BERTH_FIXTURES"]
            ?? URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("fixtures/out").path
        return base + "/guest"
    }
    static var kernel: String { directory + "/vmlinuz" }
    static var initrd: String { directory + "/initrd.img" }
    static var available: Bool {
        FileManager.default.fileExists(atPath: kernel) && FileManager.default.fileExists(atPath: initrd)
    }
}

/// A scratch runtime and log directory with short paths (socket paths are limited to 107 bytes).
struct Scratch {
    let root = "/tmp/bq-\(UUID().uuidString.prefix(8).lowercased())"

    func paths(for spec: DomainSpec) -> RuntimePaths {
        RuntimePaths(runtimeRoot: root + "/run", logRoot: root + "/log", name: spec.name, uuid: spec.uuid)
    }

    func remove() { try? FileManager.default.removeItem(atPath: root) }
}

/// Waits until `file` contains `text`; returns the time it took, or nil after `timeout`.
func waitFor(_ text: String, in file: String, timeout: Duration = .seconds(90)) async -> Duration? {
    let clock = ContinuousClock()
    let start = clock.now
    while clock.now - start < timeout {
        if let data = FileManager.default.contents(atPath: file), String(decoding: data, as: UTF8.self).contains(text) {
            return clock.now - start
        }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return nil
}

/// Collects a QMP client's events in the background.
actor EventLog {
    private(set) var events: [QMP.Event] = []
    private var task: Task<Void, Never>?

    func start(_ client: QMP.Client) {
        task = Task {
            for await event in client.events { self.append(event) }
        }
    }

    private func append(_ event: QMP.Event) { events.append(event) }

    /// Waits until an event of this kind arrived (true) or the timeout passed (false).
    func wait(for match: @Sendable (QMP.Event.Kind) -> Bool, timeout: Duration = .seconds(30)) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if events.contains(where: { match($0.kind) }) { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return false
    }
}

func guestSpec(name: String, cmdline: String = "console=ttyS0", kernel: String = GuestFixture.kernel) -> DomainSpec {
    DomainSpec(
        name: name, memory: 256, accel: .tcg, kernel: kernel, initrd: GuestFixture.initrd, cmdline: cmdline,
        nics: [NICSpec(mac: MACAddress("52:54:00:be:47:01"))])
}

/// Launches a guest, runs `body`, and always stops QEMU and removes the scratch directory —
/// also when `body` throws or an expectation fails.
func withGuest(
    _ spec: DomainSpec, _ body: (QEMUProcess, RuntimePaths) async throws -> Void
) async throws {
    guard GuestFixture.available else {
        Issue.record("The test guest is missing at \(GuestFixture.directory): run fixtures/guest/build.sh")
        throw BerthError(.notFound, "guest fixture missing")
    }
    let scratch = Scratch()
    let paths = scratch.paths(for: spec)
    defer { scratch.remove() }
    let binary = try QEMUBinary.locate()
    let line = try QEMUCommandLine(spec: spec, accel: .tcg, paths: paths)
    let process: QEMUProcess
    do {
        process = try await QEMUProcess.launch(line, binary: binary, paths: paths)
    } catch {
        // Never leave a QEMU behind, whatever failed.
        if let pid = QEMUProcess.runningPID(uuid: spec.uuid, paths: paths) { kill(pid, SIGKILL) }
        throw error
    }
    do {
        try await body(process, paths)
    } catch {
        await process.stop(grace: .seconds(2))
        throw error
    }
    await process.stop(grace: .seconds(2))
    #expect(!process.isAlive)
}

// A missing guest fixture fails each test (in withGuest) with the command that builds it.
@Suite(.serialized)
struct GuestTests {
    /// The default machine for this guest is microvm; pc is what disk-booted guests get.
    @Test(arguments: ["pc", "microvm"])
    func bootsToTheMarkerAndPowersOffOnACPI(machine: String) async throws {
        var spec = guestSpec(name: "bq-powerdown")
        spec.machine = machine
        try await withGuest(spec) { process, paths in
            let events = EventLog()
            await events.start(process.qmp)
            #expect(process.qmp.greeting.major >= 7)
            let ready = await waitFor("BERTH-GUEST-READY", in: paths.consoleLog)
            try #require(ready != nil, "no marker in \(paths.consoleLog)")
            let arguments = try #require(QEMUProcess.commandLine(pid: process.pid))
            #expect(arguments.contains { $0.hasPrefix(machine) })
            #expect(try await process.status() == "running")

            try await process.powerdown()
            #expect(await events.wait { $0 == .powerdown })
            #expect(await events.wait { $0 == .shutdown(guest: true, reason: "guest-shutdown") })
            #expect(await process.waitForExit(timeout: .seconds(30)))
            #expect(!process.isAlive)
            // The reader sees the socket's end a moment after the reaper sees the exit.
            let closedBy = ContinuousClock.now + .seconds(30)
            while !process.qmp.isClosed && ContinuousClock.now < closedBy {
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(process.qmp.isClosed)
            // The console log outlives the QEMU that wrote it.
            #expect(FileManager.default.fileExists(atPath: paths.consoleLog))
        }
    }

    @Test func pauseResumeReattachAndWrongUUID() async throws {
        let spec = guestSpec(name: "bq-reattach")
        try await withGuest(spec) { process, paths in
            let events = EventLog()
            await events.start(process.qmp)
            try await process.qmp.execute("stop")
            #expect(await events.wait { $0 == .stop })
            #expect(try await process.qmp.execute("query-status")["status"]?.string == "paused")
            try await process.qmp.execute("cont")
            #expect(await events.wait { $0 == .resume })

            // The UUID is on QEMU's command line, where a re-attaching daemon checks it.
            let cmdline = try #require(QEMUProcess.commandLine(pid: process.pid))
            #expect(QEMUProcess.hasUUID(cmdline, spec.uuid))

            // A second start of the same domain is refused while it runs.
            let again = await #expect(throws: BerthError.self) {
                _ = try await QEMUProcess.launch(
                    try QEMUCommandLine(spec: spec, accel: .tcg, paths: paths), binary: try QEMUBinary.locate(),
                    paths: paths)
            }
            #expect(again?.code == .wrongState)

            // A daemon restart: drop the connection, attach again from scratch.
            process.qmp.close()
            await process.qmp.waitUntilClosed()
            let fresh = try await QEMUProcess.attach(uuid: spec.uuid, paths: paths)
            #expect(fresh.pid == process.pid)
            #expect(try await fresh.qmp.execute("query-status")["status"]?.string == "running")
            let name = try await fresh.qmp.execute("query-name")
            #expect(name["name"]?.string == "bq-reattach")

            // Another domain's UUID with these files is not this QEMU.
            let wrong = await #expect(throws: BerthError.self) {
                _ = try await QEMUProcess.attach(uuid: UUID(), paths: paths)
            }
            #expect(wrong?.code == .notFound)
            #expect(wrong?.message.contains("PID \(process.pid)") == true)

            // A pidfile naming a live process that is not QEMU (this test runner) is refused.
            let decoy = Scratch()
            defer { decoy.remove() }
            let decoyPaths = decoy.paths(for: spec)
            try decoyPaths.prepare()
            try "\(getpid())\n".write(toFile: decoyPaths.pidFile, atomically: true, encoding: .utf8)
            await #expect(throws: BerthError.self) {
                _ = try await QEMUProcess.attach(uuid: spec.uuid, paths: decoyPaths)
            }

            #expect(await fresh.stop(grace: .seconds(5)) == .quit)
            #expect(!fresh.isAlive)
            #expect(!FileManager.default.fileExists(atPath: paths.pidFile))
        }
    }

    @Test func guestRebootEndsQEMUSoBerthCanRestartIt() async throws {
        var spec = guestSpec(name: "bq-reboot", cmdline: "console=ttyS0 berth.mode=reboot")
        spec.machine = "pc"
        try await withGuest(spec) { process, paths in
            let events = EventLog()
            await events.start(process.qmp)
            #expect(await waitFor("BERTH-GUEST-REBOOT", in: paths.consoleLog) != nil)
            #expect(await events.wait { $0 == .shutdown(guest: true, reason: "guest-reset") })
            #expect(await process.waitForExit(timeout: .seconds(30)))
        }
    }

    @Test func guestPanicIsReportedThroughPVPanic() async throws {
        try await withGuest(guestSpec(name: "bq-panic", cmdline: "console=ttyS0 berth.mode=panic")) { process, paths in
            let events = EventLog()
            await events.start(process.qmp)
            #expect(await events.wait(for: { $0 == .guestPanicked(action: "poweroff") }, timeout: .seconds(90)))
            #expect(await events.wait { $0 == .shutdown(guest: true, reason: "guest-panic") })
            #expect(await process.waitForExit(timeout: .seconds(30)))
        }
    }

    /// A QEMU that answers nothing (stopped with SIGSTOP: QMP `quit` times out and SIGTERM
    /// stays pending) is ended with SIGKILL after the grace periods.
    @Test func stopEscalatesToSIGKILL() async throws {
        try await withGuest(guestSpec(name: "bq-hung")) { process, _ in
            kill(process.pid, SIGSTOP)
            #expect(await process.stop(grace: .milliseconds(500)) == .killed)
            #expect(!process.isAlive)
            #expect(await process.stop() == .alreadyGone)
        }
    }

    @Test func missingKernelIsAClearError() async throws {
        let spec = guestSpec(name: "bq-nokernel", kernel: "/nonexistent/vmlinuz")
        let scratch = Scratch()
        defer { scratch.remove() }
        let paths = scratch.paths(for: spec)
        let error = await #expect(throws: BerthError.self) {
            _ = try await QEMUProcess.launch(
                try QEMUCommandLine(spec: spec, accel: .tcg, paths: paths), binary: try QEMUBinary.locate(),
                paths: paths)
        }
        #expect(error?.code == .notFound)
        #expect(
            error?.message
                == "QEMU could not start 'bq-nokernel': cannot open /nonexistent/vmlinuz: No such file or directory"
        )
        #expect(error?.message.contains("bq-nokernel") == true)
        #expect(error?.remedy?.contains("kernel") == true)
        #expect(QEMUProcess.runningPID(uuid: spec.uuid, paths: paths) == nil)
    }
}
