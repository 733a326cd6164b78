import Foundation
import Testing

/// Tests that boot TCG guests take one of a few slots, and run on the slot's own threads.
///
/// Suites run in parallel: on a two-core machine a dozen guests booting at once each get a sixth
/// of a core and miss every sensible wait. And the cooperative pool has one thread a core, which
/// CPU-bound unit tests (the disk fuzzers) and synchronous waits can hold for minutes; a guest
/// test whose continuations queue behind them misses its own deadlines, and berthd closes its
/// idle connections. `BERTH_TEST_GUEST_SLOTS` sets how many such tests run at once (default 3).
struct BootsGuests: SuiteTrait, TestTrait, TestScoping {
    var isRecursive: Bool { true }

    func provideScope(
        for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void
    ) async throws {
        // A suite's scope spans its tests; only a running test case holds a slot.
        guard testCase != nil else { return try await function() }
        let slot = await GuestSlots.shared.acquire()
        do {
            try await GuestSlots.$current.withValue(slot) {
                try await withTaskExecutorPreference(slot) { try await function() }
            }
        } catch {
            await GuestSlots.shared.release(slot)
            throw error
        }
        await GuestSlots.shared.release(slot)
    }
}

extension Trait where Self == BootsGuests {
    /// The test (or every test of the suite) boots real guests: see `BootsGuests`.
    static var bootsGuests: Self { BootsGuests() }
}

/// The slots: each an executor of its own; acquiring suspends (never blocks a thread) while all
/// are taken.
actor GuestSlots {
    static let shared = GuestSlots(
        count: ProcessInfo.processInfo.environment["BERTH_TEST_GUEST_SLOTS"].flatMap { Int($0) }.map { max(1, $0) } ?? 3)

    /// The running test's slot. Child tasks run on it by themselves; an unstructured task does
    /// not, so a test passes it on: `Task(executorPreference: GuestSlots.current) { … }`.
    @TaskLocal static var current: SlotExecutor?

    private var free: [SlotExecutor]
    private var waiting: [CheckedContinuation<SlotExecutor, Never>] = []

    init(count: Int) { free = (0..<count).map { _ in SlotExecutor(threads: 4) } }

    func acquire() async -> SlotExecutor {
        if let slot = free.popLast() { return slot }
        return await withCheckedContinuation { waiting.append($0) }
    }

    func release(_ slot: SlotExecutor) {
        if waiting.isEmpty {
            free.append(slot)
        } else {
            waiting.removeFirst().resume(returning: slot)
        }
    }
}

/// A task executor on a few threads of its own (more than one, so a test that blocks one of them
/// in a synchronous wait still has its other tasks run).
final class SlotExecutor: TaskExecutor, @unchecked Sendable {
    // `jobs` is guarded by `condition`.
    private let condition = NSCondition()
    private var jobs: [UnownedJob] = []

    init(threads: Int) {
        for index in 0..<threads {
            let thread = Thread { [unowned self] in self.work() }
            thread.name = "guest-slot-\(index)"
            thread.stackSize = 8 << 20
            thread.start()
        }
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        condition.lock()
        jobs.append(job)
        condition.signal()
        condition.unlock()
    }

    private func work() {
        while true {
            condition.lock()
            while jobs.isEmpty { condition.wait() }
            let job = jobs.removeFirst()
            condition.unlock()
            job.runSynchronously(on: asUnownedTaskExecutor())
        }
    }
}
