import BerthModel
import BerthQEMU
import Foundation
import Synchronization

@testable import BerthServer

/// A `GuestDriver` without QEMU: each start makes a `FakeGuest` whose lifecycle events the test
/// sends, so the supervisor's policies run in milliseconds. End-to-end tests keep what only
/// QEMU can show.
final class FakeGuestDriver: GuestDriver {
    struct State {
        var nextPID: Int32 = 1000
        var started: [FakeGuest] = []
        /// Guests an earlier daemon "left running", by domain name, for `reattach`.
        var leftRunning: [String: FakeGuest] = [:]
        /// Makes the next starts fail with this error.
        var startError: BerthError?
        /// How long a start takes (to overlap concurrent operations).
        var startDelay: Duration = .zero
        /// Whether guests take overlays live (their merging back always fails); by default
        /// they refuse them as a QEMU would refuse the transaction.
        var acceptOverlays = false
    }

    let state = Mutex(State())

    var started: [FakeGuest] { state.withLock { $0.started } }
    var lastGuest: FakeGuest? { started.last }

    func start(_ spec: DomainSpec, boot: BootFiles?, taps: [Int: Int32], identity: GuestIdentity?) async throws
        -> any GuestInstance
    {
        let delay = state.withLock { $0.startDelay }
        if delay > .zero { try await Task.sleep(for: delay) }
        return try state.withLock { state in
            if let error = state.startError { throw error }
            state.nextPID += 1
            let guest = FakeGuest(pid: state.nextPID, spec: spec, acceptOverlays: state.acceptOverlays)
            state.started.append(guest)
            return guest
        }
    }

    func reattach(_ spec: DomainSpec) async -> (any GuestInstance)? {
        state.withLock { $0.leftRunning.removeValue(forKey: spec.name) }
    }

    func removeStray(_ spec: DomainSpec) async -> Int32? { nil }

    func consoleLogPath(_ spec: DomainSpec) -> String { "/nonexistent/\(spec.name).log" }
    func consoleSocketPath(_ spec: DomainSpec) -> String { "/nonexistent/\(spec.name).sock" }
    func acceleratorVerdict() -> AcceleratorVerdict { AcceleratorVerdict(chosen: .tcg, reason: "fake", checks: []) }
    func qemuVersion() -> String? { nil }
}

/// One fake running guest. `emit` plays QEMU's side; `terminate` ends it as SIGTERM would.
final class FakeGuest: GuestInstance {
    let pid: Int32
    let spec: DomainSpec
    let accel = Accelerator.tcg
    let events: AsyncStream<GuestEvent>
    private let continuation: AsyncStream<GuestEvent>.Continuation
    private let calls = Mutex<[String]>([])
    private let acceptOverlays: Bool

    init(pid: Int32, spec: DomainSpec, acceptOverlays: Bool = false) {
        self.pid = pid
        self.spec = spec
        self.acceptOverlays = acceptOverlays
        (events, continuation) = AsyncStream<GuestEvent>.makeStream()
    }

    /// What the supervisor asked of this guest, in order (`powerdown`, `reset`, …).
    var requests: [String] { calls.withLock { $0 } }

    func emit(_ event: GuestEvent) { continuation.yield(event) }

    /// QEMU exiting for `reason`.
    func exit(reason: ShutdownReason) {
        continuation.yield(.shutdown(reason))
        continuation.yield(.exited)
        continuation.finish()
    }

    func powerdown() async throws {
        calls.withLock { $0.append("powerdown") }
        // A guest with ACPI powers off.
        exit(reason: .guestPowerOff)
    }

    func reset() async throws {
        calls.withLock { $0.append("reset") }
        // -no-reboot: QEMU exits on reset.
        exit(reason: .hostReset)
    }

    func pause() async throws {
        calls.withLock { $0.append("pause") }
        emit(.paused)
    }

    func resume() async throws {
        calls.withLock { $0.append("resume") }
        emit(.resumed)
    }

    func terminate() async {
        calls.withLock { $0.append("terminate") }
        exit(reason: .other("host-signal"))
    }

    func addOverlays(_ overlays: [DiskOverlay]) async throws {
        guard acceptOverlays else { throw BerthError(.unavailable, "fake QEMU refuses the overlays") }
        calls.withLock { $0.append("addOverlays") }
    }

    /// How many overlays (the first ones) a live merge switches back before QEMU fails the
    /// others at the pivot; nil: the commit jobs fail before they are ready and none switches.
    let mergeSwitches = Mutex<Int?>(nil)

    func commitOverlays(_ overlays: [DiskOverlay]) async throws -> [DiskOverlay] {
        calls.withLock { $0.append("commitOverlays") }
        guard let count = mergeSwitches.withLock({ $0 }), count > 0 else {
            throw BerthError(.unavailable, "QEMU could not merge the overlays into the disks under them: fake failure")
        }
        return Array(overlays.prefix(count))
    }
}
