import BerthClient
import BerthModel
import Foundation
import Synchronization
import Testing

@testable import BerthServer

/// Many guests on one host: a boot storm through the CLI, memory admission, start slots.
@Suite(.serialized, .bootsGuests) struct DensityTests {
    /// Ten 128 MiB guests started at once by ten `berth start` processes, two start slots: all
    /// reach init, the API answers throughout, nothing is left after destroy.
    @Test func stormOfTenGuestsThroughTheCLI() async throws {
        let daemon = try await TestDaemon(extraArguments: ["--start-limit", "2"])
        defer { daemon.tearDown() }
        let client = daemon.client
        let names = (0..<10).map { "storm\($0)" }
        var uuids: [UUID] = []
        for name in names {
            var spec = try GuestFixture.spec(name)
            spec.memory = 128
            uuids.append(try await client.define(spec).spec.uuid)
        }

        let poller = APIPoller(client: client)
        let polling = Task(executorPreference: GuestSlots.current) { await poller.run() }
        let runs = try await withThrowingTaskGroup(of: BerthRun.self) { group in
            for name in names {
                group.addTask { try await BerthRun.run(["start", name], state: daemon.stateDirectory) }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        for run in runs { #expect(run.status == 0, "berth start: \(run.stderr)") }
        for name in names { _ = try await daemon.waitForLog(name, "BERTH-GUEST-READY", timeout: 300) }
        polling.cancel()
        let polls = await polling.value
        print("DensityTests: GET /v1/domains every 100 ms during a storm of 10: \(polls.answered) answered, worst \(polls.worstMilliseconds) ms")
        #expect(polls.failures.isEmpty, "unanswered: \(polls.failures.prefix(3))")
        #expect(polls.answered > 0)
        for summary in try await client.list() { #expect(summary.state == .running, "\(summary.name): \(summary.state)") }

        for name in names {
            let run = try await BerthRun.run(["destroy", name], state: daemon.stateDirectory)
            #expect(run.status == 0, "berth destroy: \(run.stderr)")
        }
        for uuid in uuids { #expect(qemuProcesses(uuid: uuid).isEmpty) }
        // Per-guest runtime directories (QMP and console sockets, pidfile) go with their QEMU.
        let runtime = (try? FileManager.default.contentsOfDirectory(atPath: daemon.stateDirectory + "/run")) ?? []
        let leftovers = runtime.filter { entry in uuids.contains { $0.uuidString.lowercased() == entry } }
        #expect(leftovers.isEmpty, "left behind: \(leftovers)")
    }

    /// A storm larger than the host's memory: the guests that fit run, the others are refused
    /// with the reason and never half-started. The host's reserve is set so that about two and a
    /// half of four large guests fit (the margin absorbs other programs on a shared machine).
    @Test func stormBeyondMemoryRefusesWhatDoesNotFit() async throws {
        let memory = 4096
        let entitled = HostCapacity.entitlementMiB(memoryMiB: memory)
        let available = Int(HostCapacity.hostMemory().available >> 20)
        let reserve = available - entitled * 5 / 2
        try #require(reserve >= 0, "this test needs \(entitled * 5 / 2) MiB available, the host has \(available) MiB")
        let daemon = try await TestDaemon(extraArguments: ["--memory-reserve", "\(reserve)"])
        defer { daemon.tearDown() }
        let client = daemon.client
        let names = (0..<4).map { "big\($0)" }
        for name in names {
            var spec = try GuestFixture.spec(name)
            spec.memory = memory
            _ = try await client.define(spec)
        }
        let runs = try await withThrowingTaskGroup(of: (String, BerthRun).self) { group in
            for name in names {
                group.addTask { (name, try await BerthRun.run(["start", name], state: daemon.stateDirectory)) }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        let refused = runs.filter { $0.1.status != 0 }
        #expect(!refused.isEmpty && refused.count < names.count, "refused \(refused.count) of \(names.count)")
        for (name, run) in refused {
            #expect(run.stderr.contains("Not enough memory to start '\(name)'"), "\(run.stderr)")
            let info = try await client.info(name)
            #expect(info.state == .shutoff)
            #expect(info.lastError?.contains("Not enough memory") == true)
            #expect(qemuProcesses(uuid: info.spec.uuid).isEmpty)
        }
        for (name, run) in runs where run.status == 0 {
            _ = try await daemon.waitForLog(name, "BERTH-GUEST-READY", timeout: 300)
            _ = try await client.perform(.destroy, on: name)
        }
    }

    /// Start slots are handed out in order; a start over the limit is told how many are ahead.
    @Test func startSlotsQueueInOrder() async throws {
        let capacity = HostCapacity(startLimit: 1, available: { 100_000 })
        try await capacity.acquireStartSlot { _ in Issue.record("the first start must not wait") }
        let told = Recorder()
        let order = Recorder()
        let waiters = (1...2).map { index in
            Task(executorPreference: GuestSlots.current) {
                if index == 2 { try await Task.sleep(for: .milliseconds(200)) }
                try await capacity.acquireStartSlot { ahead in told.append(ahead) }
                order.append(index)
                capacity.releaseStartSlot()
            }
        }
        while capacity.startsInProgress.waiting < 2 { try await Task.sleep(for: .milliseconds(10)) }
        #expect(told.values == [1, 2])
        capacity.releaseStartSlot()
        for waiter in waiters { try await waiter.value }
        #expect(order.values == [1, 2])
        #expect(capacity.startsInProgress.running == 0 && capacity.startsInProgress.waiting == 0)
    }

    /// Admission counts what admitted guests have not touched yet of their memory.
    /// `balloon: true` gives the guest a virtio-balloon (device id 5) that its driver binds
    /// with free page reporting; the same guest without it has none. Both boot at once.
    @Test func balloonIsSeenByTheGuestOnlyWhenAskedFor() async throws {
        let daemon = try await TestDaemon()
        defer { daemon.tearDown() }
        let probe = #" berth.run="cat /sys/bus/virtio/devices/*/device; ls /sys/bus/virtio/drivers""#
        for (name, balloon) in [("ballooned", true), ("plain", false)] {
            var spec = try GuestFixture.spec(name)
            spec.memory = 256
            spec.balloon = balloon ? true : nil
            spec.cmdline = (spec.cmdline ?? "") + probe
            _ = try await daemon.client.define(spec)
            _ = try await daemon.client.perform(.start, on: name)
        }
        let ballooned = try await daemon.waitForLog("ballooned", "BERTH-GUEST-RUN-END")
        let plain = try await daemon.waitForLog("plain", "BERTH-GUEST-RUN-END")
        #expect(IsolationTests.runOutput(ballooned).contains("0x0005"), "\(IsolationTests.runOutput(ballooned))")
        #expect(IsolationTests.runOutput(ballooned).contains("virtio_balloon"))
        #expect(!IsolationTests.runOutput(plain).contains("0x0005"), "\(IsolationTests.runOutput(plain))")
        _ = try await daemon.waitForLog("ballooned", "Free page reporting enabled")
        for name in ["ballooned", "plain"] { _ = try await daemon.client.perform(.destroy, on: name) }
    }

    @Test func admissionCountsWhatRunningGuestsMayStillUse() throws {
        let entitled = HostCapacity.entitlementMiB(memoryMiB: 128)
        let capacity = HostCapacity(
            startLimit: 2, hostReserveMiB: 100, available: { 100 + 2 * entitled + entitled / 2 }, resident: { _ in 0 })
        try capacity.admit("a", memoryMiB: 128)
        capacity.attached("a", memoryMiB: 128, pid: 1)
        try capacity.admit("b", memoryMiB: 128)
        #expect(throws: BerthError.self) { try capacity.admit("c", memoryMiB: 128) }
        do {
            try capacity.admit("c", memoryMiB: 128)
        } catch {
            #expect(HostCapacity.isRefusal(error))
            #expect("\(error)".contains("needs \(entitled) MiB"))
        }
        capacity.released("a")
        try capacity.admit("c", memoryMiB: 128)
    }
}

/// `GET /v1/domains` every 100 ms until cancelled: how many answered, the worst latency, and
/// what failed.
struct APIPoller {
    let client: BerthClient

    struct Result {
        var answered = 0
        var worstMilliseconds = 0
        var failures: [String] = []
    }

    func run() async -> Result {
        var result = Result()
        while !Task.isCancelled {
            let started = ContinuousClock.now
            do {
                _ = try await client.list()
                result.answered += 1
                let elapsed = (ContinuousClock.now - started).components
                let milliseconds = Int(elapsed.seconds) * 1000 + Int(elapsed.attoseconds / 1_000_000_000_000_000)
                result.worstMilliseconds = max(result.worstMilliseconds, milliseconds)
            } catch  where !Task.isCancelled {
                result.failures.append("\(error)")
            } catch {}
            try? await Task.sleep(for: .milliseconds(100))
        }
        return result
    }
}

/// Numbers appended from several tasks.
final class Recorder: Sendable {
    private let list = Mutex<[Int]>([])
    func append(_ value: Int) { list.withLock { $0.append(value) } }
    var values: [Int] { list.withLock { $0 } }
}
