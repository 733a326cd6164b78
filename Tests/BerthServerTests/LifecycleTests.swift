import BerthClient
import BerthModel
import Foundation
import Testing

/// End to end: a real berthd, real QEMU guests on TCG, the real catalog file.
@Suite(.serialized, .bootsGuests) struct LifecycleTests {
    @Test func defineStartMarkerSuspendResumeShutdown() async throws {
        let daemon = try await TestDaemon()
        defer { daemon.tearDown() }
        let client = daemon.client
        let defined = try await client.define(try GuestFixture.spec("life"))
        #expect(defined.state == .shutoff)
        #expect(defined.spec.nics.isEmpty || defined.spec.nics.allSatisfy { $0.mac != nil })

        let started = try await client.perform(.start, on: "life")
        #expect(started.state == .running)
        let pid = try #require(started.pid)
        // What the host's probe decided (TCG on this project's kvm_pvm machines, KVM elsewhere).
        #expect(started.accel == (try await client.host().accelerator.chosen))
        let cmdline = try String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)
        #expect(cmdline.contains(defined.spec.uuid.uuidString.lowercased()))
        // On microvm (Berth's machine for it wherever the host TSC rate is known) the guest boots
        // its kernel's ELF through the PVH entry, unpacked into berthd's cache by the bootloader.
        let arguments = cmdline.split(separator: "\0").map(String.init)
        if arguments.contains(where: { $0.hasPrefix("microvm") }), let at = arguments.firstIndex(of: "-kernel") {
            let fd = arguments[at + 1].split(separator: "/").last.map(String.init) ?? ""
            let kernel = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(fd)")
            #expect(kernel.hasPrefix(daemon.stateDirectory + "/boot/pvh/") && kernel.hasSuffix(".elf"), "\(kernel)")
        }
        // A TCG guest's QEMU runs without transparent huge pages (Spawn.withoutHugePages);
        // berthd itself keeps them.
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        if let line = status.split(separator: "\n").first(where: { $0.hasPrefix("THP_enabled:") }) {
            #expect(line.hasSuffix(started.accel == .tcg ? "0" : "1"), "\(line)")
        }
        _ = try await daemon.waitForLog("life", "BERTH-GUEST-READY")

        #expect(try await client.perform(.suspend, on: "life").state == .paused)
        #expect(try await client.perform(.resume, on: "life").state == .running)

        let stopped = try await client.perform(.shutdown, on: "life", timeout: 60)
        #expect(stopped.state == .shutoff)
        // The PID may linger as a zombie where nothing reaps daemonized processes: check the
        // command line, which a zombie no longer has.
        #expect(qemuProcesses(uuid: defined.spec.uuid).isEmpty)
        #expect(try await daemon.log("life").contains("BERTH-GUEST-POWEROFF"))
        #expect(try await client.list().first { $0.name == "life" }?.state == .shutoff)
    }

    @Test func rebootStartsAFreshQEMUAndKeepsTheLog() async throws {
        let daemon = try await TestDaemon()
        defer { daemon.tearDown() }
        let client = daemon.client
        _ = try await client.define(try GuestFixture.spec("rb", marker: "BOOT-MARK"))
        let first = try await client.perform(.start, on: "rb")
        _ = try await daemon.waitForLog("rb", "BERTH-GUEST-READY")
        _ = try await client.perform(.reboot, on: "rb")
        let second = try await daemon.waitForState("rb", .running)
        #expect(second.pid != nil && second.pid != first.pid)
        _ = try await daemon.waitForLog("rb", "BERTH-GUEST-READY", count: 2)
        _ = try await client.perform(.destroy, on: "rb")
        #expect(try await client.info("rb").state == .shutoff)
    }

    @Test func guestPowerOffAndRebootFollowTheirPolicies() async throws {
        let daemon = try await TestDaemon()
        defer { daemon.tearDown() }
        let client = daemon.client
        // The guest powers itself off right after its marker: on_poweroff=destroy → shut off.
        _ = try await client.define(try GuestFixture.spec("off", mode: "poweroff"))
        _ = try await client.perform(.start, on: "off")
        let off = try await daemon.waitForState("off", .shutoff)
        #expect(off.lastError == nil)

        // The guest reboots itself; on_reboot=destroy (the installer's policy) → shut off.
        var spec = try GuestFixture.spec("rebooter", mode: "reboot")
        spec.onReboot = .destroy
        _ = try await client.define(spec)
        _ = try await client.perform(.start, on: "rebooter")
        _ = try await daemon.waitForState("rebooter", .shutoff)
        #expect(try await daemon.log("rebooter").contains("BERTH-GUEST-READY"))
    }

    @Test func panicAppliesOnCrash() async throws {
        let daemon = try await TestDaemon()
        defer { daemon.tearDown() }
        let client = daemon.client
        _ = try await client.define(try GuestFixture.spec("crash", mode: "panic"))
        _ = try await client.perform(.start, on: "crash")
        let crashed = try await daemon.waitForState("crash", .crashed)
        #expect(crashed.lastError?.contains("panic") == true)
        // on_crash=destroy: the QEMU process goes (give a loaded machine time to end it).
        let deadline = Date().addingTimeInterval(20)
        while try await client.info("crash").pid != nil, Date() < deadline {
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(try await client.info("crash").pid == nil)
        #expect(qemuProcesses(uuid: crashed.spec.uuid).isEmpty)

        var restarting = try GuestFixture.spec("phoenix", mode: "panic")
        restarting.onCrash = .restart
        _ = try await client.define(restarting)
        _ = try await client.perform(.start, on: "phoenix")
        _ = try await daemon.waitForLog("phoenix", "BERTH-GUEST-READY", count: 2)
        _ = try? await client.perform(.destroy, on: "phoenix")
    }

    @Test func guestsOutliveAKilledDaemonAndAreReattached() async throws {
        let daemon = try await TestDaemon()
        defer { daemon.tearDown() }
        _ = try await daemon.client.define(try GuestFixture.spec("survivor"))
        _ = try await daemon.client.define(try GuestFixture.spec("second"))
        let started = try await daemon.client.perform(.start, on: "survivor")
        let secondUUID = try await daemon.client.perform(.start, on: "second").spec.uuid
        let logPath = try #require(started.consoleLog)
        daemon.stop(signal: SIGKILL)

        // With no daemon, the guest keeps running and QEMU keeps writing its console log.
        let deadline = Date().addingTimeInterval(guestWait)
        while !((try? String(contentsOfFile: logPath, encoding: .utf8))?.contains("BERTH-GUEST-READY") ?? false) {
            #expect(Date() < deadline, "the console log did not grow while berthd was down")
            if Date() >= deadline { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        // One guest dies while the daemon is away.
        let secondPID = try #require(qemuProcesses(uuid: secondUUID).first)
        kill(secondPID, SIGKILL)
        try await Task.sleep(for: .milliseconds(300))

        try await daemon.start()
        let info = try await daemon.client.info("survivor")
        #expect(info.state == .running)
        #expect(info.pid == started.pid)
        #expect(try await daemon.log("survivor").contains("BERTH-GUEST-READY"))
        let dead = try await daemon.client.info("second")
        #expect(dead.state == .crashed)
        #expect(dead.lastError?.contains("while berthd was not running") == true)
        // The re-attached guest is still controllable.
        #expect(try await daemon.client.perform(.destroy, on: "survivor").state == .shutoff)
    }

    @Test func autostartDomainsStartWithTheDaemon() async throws {
        let daemon = try await TestDaemon()
        defer { daemon.tearDown() }
        _ = try await daemon.client.define(try GuestFixture.spec("auto"))
        _ = try await daemon.client.setAutostart("auto", true)
        #expect(try await daemon.client.list().first?.autostart == true)
        daemon.stop()
        try await daemon.start()
        let info = try await daemon.waitForState("auto", .running)
        #expect(info.spec.autostart)
        _ = try await daemon.client.perform(.destroy, on: "auto")
    }

    @Test func aGuestWithoutACPICannotBeShutDownGracefully() async throws {
        let daemon = try await TestDaemon()
        defer { daemon.tearDown() }
        var spec = try GuestFixture.spec("noacpi")
        spec.acpi = false
        _ = try await daemon.client.define(spec)
        _ = try await daemon.client.perform(.start, on: "noacpi")
        do {
            _ = try await daemon.client.perform(.shutdown, on: "noacpi", timeout: 5)
            Issue.record("shutdown of a guest without ACPI succeeded")
        } catch let error as BerthError {
            #expect(error.message.contains("no ACPI"))
            #expect(error.remedy?.contains("berth destroy noacpi") == true)
        }
        #expect(try await daemon.client.info("noacpi").state == .running)
        #expect(try await daemon.client.perform(.shutdown, on: "noacpi", force: true).state == .shutoff)
    }

    @Test func concurrentStartsRunOneQEMU() async throws {
        let daemon = try await TestDaemon()
        defer { daemon.tearDown() }
        let client = daemon.client
        _ = try await client.define(try GuestFixture.spec("race"))
        let outcomes = await withTaskGroup(of: Result<DomainInfo, BerthError>.self) { group in
            for _ in 0..<3 {
                group.addTask {
                    do { return .success(try await client.perform(.start, on: "race")) } catch let error as BerthError {
                        return .failure(error)
                    } catch { return .failure(BerthError(.internal, "\(error)")) }
                }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        let successes = outcomes.compactMap { try? $0.get() }
        let failures = outcomes.compactMap { if case .failure(let error) = $0 { error } else { nil } }
        #expect(successes.count == 1)
        #expect(failures.count == 2)
        #expect(failures.allSatisfy { $0.code == .wrongState && $0.message.contains("already running") })
        #expect(qemuProcesses(uuid: try await client.info("race").spec.uuid).count == 1)

        // A destroy queued behind a start ends with the guest off.
        _ = try await client.perform(.destroy, on: "race")
        async let start = try? client.perform(.start, on: "race")
        try await Task.sleep(for: .milliseconds(20))
        async let destroy = try? client.perform(.destroy, on: "race")
        _ = await (start, destroy)
        let final = try await client.info("race")
        #expect(final.state == .shutoff)
        #expect(qemuProcesses(uuid: final.spec.uuid).isEmpty)
    }
}

/// PIDs of processes whose command line carries `uuid`.
func qemuProcesses(uuid: UUID) -> [Int32] {
    let needle = uuid.uuidString.lowercased()
    return ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { entry in
        guard let pid = Int32(entry),
            let data = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline"),
            String(decoding: data, as: UTF8.self).contains(needle)
        else { return nil }
        return pid
    }
}

extension LifecycleTests {
    /// `scripts/demo` stops reading at the READY line; the follow must end then, not at the
    /// guest's next line (which may never come).
    @Test func followEndsAsSoonAsItsReaderLeaves() async throws {
        let daemon = try await TestDaemon()
        defer { daemon.tearDown() }
        _ = try await daemon.client.define(try GuestFixture.spec("follow"))
        _ = try await daemon.client.perform(.start, on: "follow")
        _ = try await daemon.waitForLog("follow", "berth-guest# ")
        let shell = Process()
        shell.executableURL = URL(fileURLWithPath: "/bin/sh")
        shell.arguments = ["-c", "\"$0\" log -f follow | sed -n '/BERTH-GUEST-READY/{p;q}'", TestDaemon.berthBinary]
        shell.environment = ["BERTH_STATE_DIR": daemon.stateDirectory, "PATH": "/usr/bin:/bin"]
        let output = Pipe()
        shell.standardOutput = output
        try shell.run()
        let deadline = Date().addingTimeInterval(20)
        while shell.isRunning, Date() < deadline { try await Task.sleep(for: .milliseconds(50)) }
        let ended = !shell.isRunning
        if !ended { shell.terminate() }
        #expect(ended, "berth log -f kept running after its reader left")
        shell.waitUntilExit()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(text.contains("BERTH-GUEST-READY"))
    }
}
