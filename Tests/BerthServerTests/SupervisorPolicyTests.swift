import BerthModel
import BerthStore
import Foundation
import Synchronization
import Testing

@testable import BerthServer

/// The supervisor's lifecycle policies against a fake guest driver and a real catalog file:
/// what on_poweroff, on_reboot and on_crash do, restart throttling, re-attach, the install
/// hand-over and concurrent operations, in milliseconds instead of QEMU boots.
@Suite struct SupervisorPolicyTests {
    struct Host {
        let directory: String
        let driver = FakeGuestDriver()
        let hypervisor: Hypervisor

        init() throws {
            directory = "/tmp/berth-policy-" + String(UUID().uuidString.prefix(8)).lowercased()
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            hypervisor = try Hypervisor(
                catalog: try Catalog(path: directory + "/catalog.sqlite"), driver: driver,
                bootPreparer: BootPreparer { _, _ in nil }, stateDirectory: directory, isolateGuests: false)
        }

        func remove() { try? FileManager.default.removeItem(atPath: directory) }

        /// A domain with a kernel that exists (define checks the host).
        func define(_ name: String, _ configure: (inout DomainSpec) -> Void = { _ in }) throws {
            let kernel = directory + "/vmlinuz"
            guard FileManager.default.createFile(atPath: kernel, contents: Data("k".utf8)) else {
                throw BerthError(.internal, "cannot write \(kernel)")
            }
            var spec = DomainSpec(name: name, memory: 128, kernel: kernel)
            configure(&spec)
            _ = try hypervisor.define(spec)
        }

        func state(_ name: String) throws -> DomainState { try hypervisor.info(name).state }

        /// Polls until `condition` holds (the supervisor reacts to events asynchronously).
        func until(_ what: String, _ condition: () throws -> Bool) async throws {
            // Generous: when the whole suite runs at once the test runner's two cooperative
            // threads are busy, and this only bounds a failure's wait.
            let deadline = ContinuousClock.now + .seconds(60)
            while try !condition() {
                guard ContinuousClock.now < deadline else {
                    Issue.record("timed out waiting for \(what)")
                    return
                }
                try await Task.sleep(for: .milliseconds(2))
            }
        }
    }

    @Test(arguments: [(LifecycleAction.destroy, DomainState.shutoff, 1), (.restart, .running, 2)])
    func guestPowerOff(policy: LifecycleAction, expected: DomainState, starts: Int) async throws {
        let host = try Host()
        defer { host.remove() }
        try host.define("p") { $0.onPoweroff = policy }
        try await host.hypervisor.supervisor("p").start()
        let first = try #require(host.driver.lastGuest)
        first.exit(reason: .guestPowerOff)
        try await host.until("\(starts) starts and \(expected)") {
            try host.state("p") == expected && host.driver.started.count == starts
        }
        #expect(try host.state("p") == expected)
    }

    @Test func guestRebootFollowsOnReboot() async throws {
        let host = try Host()
        defer { host.remove() }
        try host.define("r") { $0.onReboot = .destroy }
        try await host.hypervisor.supervisor("r").start()
        host.driver.lastGuest?.exit(reason: .guestReset)
        try await host.until("off") { try host.state("r") == .shutoff }
        #expect(host.driver.started.count == 1)

        // `berth reboot` restarts whatever on_reboot says.
        try await host.hypervisor.supervisor("r").start()
        try await host.hypervisor.supervisor("r").reboot()
        try await host.until("a fresh guest") { try host.state("r") == .running && host.driver.started.count == 3 }
        #expect(host.driver.started[1].requests == ["reset"])
    }

    @Test func panicPreservedOrRestarted() async throws {
        let host = try Host()
        defer { host.remove() }
        try host.define("keep") { $0.onCrash = .preserve }
        try await host.hypervisor.supervisor("keep").start()
        host.driver.lastGuest?.emit(.panicked)
        try await host.until("crashed") { try host.state("keep") == .crashed }
        // Preserved: kept for inspection, not ended.
        #expect(host.driver.lastGuest?.requests.contains("terminate") == false)

        try host.define("again") { $0.onCrash = .restart }
        try await host.hypervisor.supervisor("again").start()
        let crashed = try #require(host.driver.lastGuest)
        crashed.emit(.panicked)
        try await host.until("a restart") { host.driver.lastGuest?.pid != crashed.pid }
        #expect(crashed.requests.contains("terminate"))
        try await host.until("running") { try host.state("again") == .running }
    }

    @Test func aCrashLoopIsThrottled() async throws {
        let host = try Host()
        defer { host.remove() }
        try host.define("loop") { $0.onCrash = .restart }
        try await host.hypervisor.supervisor("loop").start()
        for round in 0...RestartThrottle.limit {
            let guest = try #require(host.driver.lastGuest)
            guest.exit(reason: .other("host-signal"))  // QEMU died under the guest
            if round < RestartThrottle.limit {
                try await host.until("restart \(round + 1)") { host.driver.started.count == round + 2 }
            }
        }
        try await host.until("given up") { (try host.hypervisor.info("loop").lastError ?? "").contains("stopped restarting") }
        #expect(host.driver.started.count == RestartThrottle.limit + 1)
        #expect(try host.state("loop") == .crashed)
        // A start the user asks for is allowed again, and resets the count.
        try await host.hypervisor.supervisor("loop").start()
        #expect(try host.state("loop") == .running)
    }

    @Test func failingAutomaticStartsStopToo() async throws {
        let host = try Host()
        defer { host.remove() }
        try host.define("bad") { $0.onCrash = .restart }
        try await host.hypervisor.supervisor("bad").start()
        host.driver.state.withLock { $0.startError = BerthError(.notFound, "the disk went away") }
        host.driver.lastGuest?.exit(reason: .other("host-signal"))
        try await host.until("given up") { (try host.hypervisor.info("bad").lastError ?? "").contains("stopped restarting") }
        #expect(host.driver.started.count == 1)
    }

    @Test func reattachOrSettleAtDaemonStart() async throws {
        let host = try Host()
        defer { host.remove() }
        try host.define("alive")
        try host.define("gone") { $0.onCrash = .destroy }
        try host.define("halfway") { $0.autostart = true }
        try host.define("auto") { $0.autostart = true }
        let catalog = host.hypervisor.catalog
        try catalog.setObserved("alive", ObservedState(state: .running, pid: 4242))
        try catalog.setObserved("gone", ObservedState(state: .running, pid: 4343))
        try catalog.setObserved("halfway", ObservedState(state: .starting))
        host.driver.state.withLock { $0.leftRunning["alive"] = FakeGuest(pid: 4242, spec: DomainSpec(name: "alive")) }

        await host.hypervisor.recoverAll()
        try await host.until("auto started") { try host.state("auto") == .running }
        #expect(try host.hypervisor.info("alive").pid == 4242)
        #expect(try host.state("alive") == .running)
        #expect(try host.state("gone") == .crashed)
        #expect(try host.hypervisor.info("gone").lastError?.contains("exited while berthd was not running") == true)
        // Never re-run blindly, autostart or not.
        #expect(try host.state("halfway") == .shutoff)
        #expect(host.driver.started.map(\.spec.name) == ["auto"])
    }

    @Test func theNextDefinitionTakesOverWhenTheInstallerPowersOff() async throws {
        let host = try Host()
        defer { host.remove() }
        try host.define("inst") { $0.cmdline = "installer" }
        var installed = try host.hypervisor.info("inst").spec
        installed.cmdline = "installed"
        try host.hypervisor.setNextDefinition("inst", installed, start: true)
        try await host.hypervisor.supervisor("inst").start()
        #expect(host.driver.lastGuest?.spec.cmdline == "installer")
        host.driver.lastGuest?.exit(reason: .guestPowerOff)
        try await host.until("the installed system") { host.driver.lastGuest?.spec.cmdline == "installed" }
        #expect(try host.hypervisor.info("inst").spec.cmdline == "installed")
        #expect(try host.state("inst") == .running)
    }

    @Test func concurrentStartsStartOneGuestAndDestroyComesLast() async throws {
        let host = try Host()
        defer { host.remove() }
        try host.define("c")
        host.driver.state.withLock { $0.startDelay = .milliseconds(50) }
        let supervisor = try host.hypervisor.supervisor("c")
        let succeeded = await withTaskGroup(of: Bool.self) { group in
            for _ in 0..<3 { group.addTask { (try? await supervisor.start()) != nil } }
            return await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(succeeded == 1)
        #expect(host.driver.started.count == 1)

        // A destroy queued behind a start runs after it and leaves the guest off.
        try await supervisor.destroy()
        async let start: Void = supervisor.start()
        async let destroy: Void = supervisor.destroy()
        _ = try await (start, destroy)
        #expect(try host.state("c") == .shutoff)
    }
}

extension SupervisorPolicyTests {
    /// A catalog from before formats were recorded: each disk's format is read once from its
    /// content when berthd starts, and the domain's notes say so.
    @Test func oldCatalogsGetTheirDiskFormatsRecordedOnce() async throws {
        let host = try Host()
        defer { host.remove() }
        let raw = host.directory + "/old.img"
        #expect(FileManager.default.createFile(atPath: raw, contents: Data(count: 4096)))
        var spec = DomainSpec(name: "old", memory: 128)
        spec.disks = [DiskSpec(path: raw)]
        _ = try host.hypervisor.catalog.define(spec)  // as an older berthd stored it: no format
        #expect(try host.hypervisor.catalog.domain(named: "old").spec.disks.first?.format == nil)

        await host.hypervisor.recoverAll()
        let recorded = try host.hypervisor.catalog.domain(named: "old").spec
        #expect(recorded.disks.first?.format == .raw)
        #expect(recorded.notes.contains { $0.contains("format raw recorded") })
    }
}

extension SupervisorPolicyTests {
    /// A console log that cannot be capped is told on the event stream, and the guest runs on.
    @Test func aConsoleLogThatCannotBeCappedIsReported() async throws {
        let host = try Host()
        defer { host.remove() }
        try host.define("log")
        let events = host.hypervisor.hub.subscribe()
        let seen = Mutex<[LifecycleEvent]>([])
        let reader = Task { for await event in events { seen.withLock { $0.append(event) } } }
        defer { reader.cancel() }
        try await host.hypervisor.supervisor("log").start()
        host.driver.lastGuest?.emit(.consoleLogNotCapped("rename failed: No space left on device"))
        try await host.until("a console-log-error event") {
            seen.withLock { $0.contains { $0.kind == .consoleLogError } }
        }
        let reported = seen.withLock { $0.first { $0.kind == .consoleLogError } }
        #expect(reported?.domain == "log")
        #expect(reported?.detail?.contains("No space left on device") == true)
        #expect(try host.state("log") == .running)
    }
}
