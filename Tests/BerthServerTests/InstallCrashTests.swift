import BerthClient
import BerthModel
import Foundation
import Synchronization
import Testing

/// berthd SIGKILLed as soon as an install reports each of its phases, then started again on the
/// same state directory: catalog and disks agree (no volume or file under the domain's disk
/// name that no domain owns, no installer left behind for nothing), and the domain is one
/// `reinstall` (or, when the kill came before anything was defined, a new `berth install`) can
/// take to the installed system. The installer-running phase is
/// `InstallTests.berthdKilledWhileInstallersRun`.
@Suite(.serialized, .bootsGuests) struct InstallCrashTests {
    /// What is left defined after the kill, per phase: a kill before the define (fetch) leaves
    /// nothing; one after it (installer finished, first boot) a domain; the disk and defined
    /// phases are microseconds from the define, so either outcome is checked as such.
    static let phases: [OperationMessage.Phase] = [.fetch, .disk, .defined, .installerFinished, .firstBoot]

    @Test(arguments: phases)
    func berthdKilledAtAnInstallPhase(_ phase: OperationMessage.Phase) async throws {
        let (daemon, base) = try await InstallTests.setUp()
        defer { daemon.tearDown() }
        let state = daemon.stateDirectory
        let name = "crash-\(phase.rawValue)"
        // The fetch phase is caught on a tree served slowly (the kernel's "Fetched" event comes
        // while the initrd is still on its way); the others on berthd's own media server.
        let slow = phase == .fetch ? try SlowTreeServer(directory: InstallFixture.tree) : nil
        defer { slow?.stop() }
        let location = slow.map { "http://127.0.0.1:\($0.port)/" } ?? "\(base)/install/centos6/"
        let line = InstallTests.seedLine(
            name: name, disk: "size=1", location: location, ks: "\(base)/kickstarts/a.ks", mac: "52:54:00:00:00:51")

        // Kill berthd from inside the event stream, the moment the phase is reported.
        guard let pid = daemon.process?.processIdentifier else { throw SlowTreeServerError(message: "berthd is not running") }
        let killed = KillSwitch()
        let watcher = Task {
            try? await daemon.client.events { event in
                killed.listening()
                guard event.domain == name, event.kind == .installProgress,
                    event.detail?.hasPrefix(phase.rawValue + ": ") == true, killed.fire()
                else { return }
                kill(pid, SIGKILL)
                throw CancellationError()
            }
        }
        // The stream is open once it delivers an event: a volume made and removed is one.
        let deadline = Date().addingTimeInterval(60)
        while !killed.isListening, Date() < deadline {
            _ = try await daemon.client.createVolume(pool: "default", VolumeCreateRequest(name: "probe.img", capacity: 1 << 20, format: .raw))
            try await daemon.client.deleteVolume(pool: "default", name: "probe.img")
            try await Task.sleep(for: .milliseconds(100))
        }
        let run = try await BerthRun.run(line, state: state)
        guard killed.fired else {
            watcher.cancel()
            Issue.record("the install never reported \(phase.rawValue): \(run.stderr)")
            return
        }
        await watcher.value
        // The CLI lost berthd, or (killed at the end) saw the operation succeed just before.
        print("\(phase.rawValue): the install command ended with status \(run.status)")
        daemon.stop(signal: SIGKILL)
        try await daemon.start()

        let volumePath = state + "/images/\(name).img"
        let info = try? await daemon.client.info(name)
        switch phase {
        case .fetch: #expect(info == nil, "nothing is defined before the installer is fetched")
        case .installerFinished, .firstBoot: #expect(info != nil)
        default: break
        }
        // How many times the installed system has said it is up so far (the first boot may have).
        let before = info == nil ? "" : try await daemon.log(name)
        let markers = before.components(separatedBy: "BERTH-GUEST-MARKER INSTALLED-alpha").count
        if let info {
            // The domain owns its volume: it is in the catalog, on disk, and in use by it.
            let volume = try await daemon.client.volume(pool: "default", name: "\(name).img")
            #expect(volume.usedBy == [name])
            #expect(info.spec.disks.first?.path == volumePath && FileManager.default.fileExists(atPath: volumePath))
            // reinstall takes it from wherever the kill left it (--force: the installed system
            // may already run).
            // (A kill just after the installer's QEMU was spawned left that QEMU running,
            // unknown to the restarted berthd and holding the disk's lock, until berthd's start
            // stopped such strays: `DomainSupervisor.recover`.)
            let again = try await BerthRun.run(["reinstall", name, "--force", "--noautoconsole", "--wait=-1"], state: state)
            #expect(again.status == 0, "\(again.stderr)")
            try await Self.expectInstalled(daemon, name, markers: markers)
        } else {
            // Nothing defined: no volume, no file, no fetched installer; the same line again
            // (the domain name, the disk's name) installs.
            let volumes = try await daemon.client.volumes(pool: "default")
            #expect(!volumes.contains { $0.name == "\(name).img" }, "\(volumes.map(\.name))")
            #expect(!FileManager.default.fileExists(atPath: volumePath))
            #expect(!FileManager.default.fileExists(atPath: state + "/install/\(name)"))
            let retry = InstallTests.seedLine(
                name: name, disk: "size=1", location: "\(base)/install/centos6/", ks: "\(base)/kickstarts/a.ks", mac: "52:54:00:00:00:51")
            let again = try await BerthRun.run(retry, state: state)
            #expect(again.status == 0, "\(again.stderr)")
            try await Self.expectInstalled(daemon, name, markers: markers)
        }
        print("killed at \(phase.rawValue): \(info == nil ? "nothing defined; installed again" : "domain defined; reinstalled")")
        _ = try? await daemon.client.perform(.destroy, on: name)
    }

    /// The installed system came up (once more than `markers` - 1 times) from its own disk.
    static func expectInstalled(_ daemon: TestDaemon, _ name: String, markers: Int) async throws {
        _ = try await daemon.waitForLog(name, "BERTH-GUEST-MARKER INSTALLED-alpha", count: markers, timeout: 120)
        let after = try await daemon.client.info(name)
        #expect(after.spec.bootloader != nil && after.spec.kernel == nil && after.state == .running)
    }

    /// `reinstall --force` while the installer runs (the state a kill after the installer was
    /// stored also leaves): the definition to install is the waiting next one, not the
    /// installer's own, so the guest ends on its disk through the bootloader, not in a second
    /// installer run.
    @Test func reinstallWhileTheInstallerRunsInstallsTheInstalledDefinition() async throws {
        let (daemon, base) = try await InstallTests.setUp()
        defer { daemon.tearDown() }
        let state = daemon.stateDirectory
        var line = InstallTests.seedLine(
            name: "busy", disk: "path=\(state)/busy.img,size=1", location: "\(base)/install/centos6/", ks: "\(base)/kickstarts/a.ks",
            mac: "52:54:00:00:00:52")
        line.removeAll { $0 == "--wait=-1" }
        let first = try await BerthRun.run(line, state: state)
        #expect(first.status == 0, "\(first.stderr)")
        let during = try await daemon.client.info("busy")
        #expect(during.spec.kernel != nil, "the installer runs")
        let again = try await BerthRun.run(["reinstall", "busy", "--force", "--noautoconsole", "--wait=-1"], state: state)
        #expect(again.status == 0, "\(again.stderr)")
        _ = try await daemon.waitForLog("busy", "BERTH-GUEST-MARKER INSTALLED-alpha", timeout: 120)
        let after = try await daemon.client.info("busy")
        #expect(after.spec.bootloader != nil && after.spec.kernel == nil, "the installed definition: \(after.spec)")
        #expect(after.state == .running)
        _ = try? await daemon.client.perform(.destroy, on: "busy")
    }

    /// The kill between creating the disks and defining the domain, made by hand (it is too
    /// short to hit from the event stream every time): the journal names a volume and a file
    /// that no domain owns, beside a half-fetched installer; the next start removes all three,
    /// and keeps a defined domain's installer and disks.
    @Test func disksMadeBeforeTheDefineAreRemovedAtTheNextStart() async throws {
        let daemon = try await TestDaemon()
        defer { daemon.tearDown() }
        let state = daemon.stateDirectory
        let volume = try await daemon.client.createVolume(pool: "default", VolumeCreateRequest(name: "lost.img", capacity: 1 << 20, format: .raw))
        let file = state + "/lost-file.img"
        FileManager.default.createFile(atPath: file, contents: Data(count: 4096))
        let lost = state + "/install/lost"
        try FileManager.default.createDirectory(atPath: lost, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: lost + "/vmlinuz", contents: Data(count: 4096))
        try Data(#"{"paths":["\#(file)"],"volumes":["default/lost.img"]}"#.utf8).write(to: URL(fileURLWithPath: lost + "/new-disks.json"))
        // A defined domain's installer directory, with a journal left from before its define.
        let keptDisk = state + "/kept.img"
        FileManager.default.createFile(atPath: keptDisk, contents: Data(count: 1 << 20))
        _ = try await daemon.client.define(
            DomainSpec(name: "kept", memory: 64, bootloader: BootloaderSpec(), disks: [DiskSpec(path: keptDisk, format: .raw)]))
        let kept = state + "/install/kept"
        try FileManager.default.createDirectory(atPath: kept, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: kept + "/vmlinuz", contents: Data(count: 4096))
        try Data(#"{"paths":["\#(keptDisk)"],"volumes":[]}"#.utf8).write(to: URL(fileURLWithPath: kept + "/new-disks.json"))

        daemon.stop(signal: SIGKILL)
        try await daemon.start()
        await #expect(throws: BerthError.self) { try await daemon.client.volume(pool: "default", name: "lost.img") }
        #expect(!FileManager.default.fileExists(atPath: volume.path))
        #expect(!FileManager.default.fileExists(atPath: file))
        #expect(!FileManager.default.fileExists(atPath: lost))
        #expect(FileManager.default.fileExists(atPath: keptDisk))
        #expect(FileManager.default.fileExists(atPath: kept + "/vmlinuz"))
        #expect(!FileManager.default.fileExists(atPath: kept + "/new-disks.json"))
        // undefine takes a domain's installer directory with it.
        try await daemon.client.undefine("kept", keepLogs: false)
        #expect(!FileManager.default.fileExists(atPath: kept))
    }
}

/// Fires once; knows whether its event stream delivers yet.
final class KillSwitch: Sendable {
    private let state = Mutex((listening: false, fired: false))
    var fired: Bool { state.withLock { $0.fired } }
    var isListening: Bool { state.withLock { $0.listening } }
    func listening() { state.withLock { $0.listening = true } }
    /// True the first time only.
    func fire() -> Bool {
        state.withLock { state in
            defer { state.fired = true }
            return !state.fired
        }
    }
}
