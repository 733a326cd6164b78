import Foundation
import Testing

/// Tests that boot TCG guests take one of a few slots. Suites run in parallel; on a two-core
/// machine a dozen guests booting at once each get a sixth of a core and miss every sensible
/// wait. `BERTH_TEST_GUEST_SLOTS` sets how many such tests run at once (default 3).
struct BootsGuests: SuiteTrait, TestTrait, TestScoping {
    var isRecursive: Bool { true }

    func provideScope(
        for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void
    ) async throws {
        // A suite's scope spans its tests; only a running test case holds a slot.
        guard testCase != nil else { return try await function() }
        await GuestSlots.shared.acquire()
        do {
            try await function()
        } catch {
            await GuestSlots.shared.release()
            throw error
        }
        await GuestSlots.shared.release()
    }
}

extension Trait where Self == BootsGuests {
    /// The test (or every test of the suite) boots real guests: see `BootsGuests`.
    static var bootsGuests: Self { BootsGuests() }
}

/// A counting semaphore that suspends (never blocks a thread) while every slot is taken.
actor GuestSlots {
    static let shared = GuestSlots(
        count: ProcessInfo.processInfo.environment["BERTH_TEST_GUEST_SLOTS"].flatMap { Int($0) }.map { max(1, $0) } ?? 3)

    private var free: Int
    private var waiting: [CheckedContinuation<Void, Never>] = []

    init(count: Int) { free = count }

    func acquire() async {
        if free > 0 {
            free -= 1
            return
        }
        await withCheckedContinuation { waiting.append($0) }
    }

    func release() {
        if waiting.isEmpty {
            free += 1
        } else {
            waiting.removeFirst().resume()
        }
    }
}
