import BerthModel
import BerthQEMU
import FoundationEssentials
import Glibc
import Synchronization

/// What one host can take at once: how many guest starts run in parallel (the rest wait their
/// turn, in order) and how much memory is left for another guest. A boot storm (autostart of
/// every guest, a host back from a power cut, a script starting fifty guests) goes through here.
public final class HostCapacity: Sendable {
    /// Starts that may run at once (bootloader, taps, QEMU up to its QMP greeting).
    let startLimit: Int
    /// Memory kept for the host itself (MiB): a guest is admitted only if this stays free.
    let hostReserveMiB: Int
    /// `MemAvailable` of the host in MiB (from /proc/meminfo; a test may give its own).
    private let available: @Sendable () -> Int
    /// A running guest's resident memory in MiB (from /proc/PID/status).
    private let resident: @Sendable (Int32) -> Int?

    private struct State {
        var running = 0
        var waiting: [(id: UUID, continuation: CheckedContinuation<Void, any Error>)] = []
        /// Guests admitted (starting or running): what each may use, and its QEMU once known.
        var admitted: [String: (entitledMiB: Int, pid: Int32?)] = [:]
    }

    private let state = Mutex(State())

    public init(
        startLimit: Int, hostReserveMiB: Int = 256,
        available: @escaping @Sendable () -> Int = { Int(HostCapacity.hostMemory().available >> 20) },
        resident: @escaping @Sendable (Int32) -> Int? = HostCapacity.residentMiB
    ) {
        self.startLimit = max(1, startLimit)
        self.hostReserveMiB = hostReserveMiB
        self.available = available
        self.resident = resident
    }

    /// The default start limit: two starts per core. Measured on 2 cores (`bench/density/run.py`,
    /// storms in ABBA order): one per core made 25-guest storms 9–10 % slower than no limit;
    /// two per core was as fast as no limit at 10 and 25 guests, and the API's worst answer
    /// during a 25-guest storm was 51–334 ms against 340–481 ms without a limit.
    public static var defaultStartLimit: Int { 2 * max(1, ProcessInfo.processInfo.activeProcessorCount) }

    // MARK: - Start slots

    /// Takes a start slot (give it back with `releaseStartSlot`); while every slot is taken,
    /// calls `waiting` once with the number of starts ahead and waits its turn, without any
    /// deadline: a slow host is no failure.
    func acquireStartSlot(waiting: (_ ahead: Int) -> Void) async throws {
        let id = UUID()
        let ahead = state.withLock { state -> Int? in
            if state.running < startLimit, state.waiting.isEmpty {
                state.running += 1
                return nil
            }
            return state.waiting.count + 1
        }
        guard let ahead else { return }
        waiting(ahead)
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let granted = state.withLock { state -> Bool in
                    if state.running < startLimit, state.waiting.isEmpty {
                        state.running += 1
                        return true
                    }
                    state.waiting.append((id, continuation))
                    return false
                }
                if granted { continuation.resume() }
            }
        } onCancel: {
            let removed = state.withLock { state -> CheckedContinuation<Void, any Error>? in
                guard let index = state.waiting.firstIndex(where: { $0.id == id }) else { return nil }
                return state.waiting.remove(at: index).continuation
            }
            removed?.resume(throwing: CancellationError())
        }
    }

    /// Hands the slot to the first waiting start, or frees it.
    func releaseStartSlot() {
        let next = state.withLock { state -> CheckedContinuation<Void, any Error>? in
            guard !state.waiting.isEmpty else {
                state.running -= 1
                return nil
            }
            return state.waiting.removeFirst().continuation
        }
        next?.resume()
    }

    /// Starts running and waiting now (for the operation's message and the metrics).
    var startsInProgress: (running: Int, waiting: Int) { state.withLock { ($0.running, $0.waiting.count) } }

    // MARK: - Memory admission

    /// Whether `error` is a memory refusal from `admit`.
    static func isRefusal(_ error: any Error) -> Bool {
        (error as? BerthError)?.message.hasPrefix(refusalPrefix) == true
    }

    private static let refusalPrefix = "Not enough memory to start"

    /// What a guest of `memoryMiB` may use on the host: its RAM, QEMU's own memory and (under
    /// TCG) its translation buffer.
    static func entitlementMiB(memoryMiB: Int) -> Int {
        memoryMiB + 64 + QEMUCommandLine.translationBufferMiB(memoryMiB: memoryMiB)
    }

    /// Admits guest `name` of `memoryMiB`, or refuses it with what it needs and what is left.
    /// Memory is what the host has available now, minus what admitted guests have not touched
    /// yet of their entitlement (a booting guest grows into it), minus the host's reserve.
    func admit(_ name: String, memoryMiB: Int) throws {
        let entitled = Self.entitlementMiB(memoryMiB: memoryMiB)
        let now = available()
        try state.withLock { state in
            state.admitted[name] = nil
            let promised = state.admitted.values.reduce(0) { sum, guest in
                sum + max(0, guest.entitledMiB - (guest.pid.flatMap(resident) ?? 0))
            }
            let free = now - promised - hostReserveMiB
            guard entitled <= free else {
                throw BerthError(
                    .unavailable,
                    "\(Self.refusalPrefix) '\(name)': it needs \(entitled) MiB (\(memoryMiB) MiB of RAM and QEMU's own), the host has \(max(0, free)) MiB for guests (\(now) MiB available, \(promised) MiB promised to \(state.admitted.count) running or starting guests, \(hostReserveMiB) MiB kept for the host).",
                    remedy: "Stop another guest, lower its \"memory\" ('berth edit \(name)'), or start it when memory is free.")
            }
            state.admitted[name] = (entitled, nil)
        }
    }

    /// The admitted guest now runs as `pid` (after a start, or re-attached by a new berthd).
    func attached(_ name: String, memoryMiB: Int, pid: Int32) {
        state.withLock { $0.admitted[name] = (Self.entitlementMiB(memoryMiB: memoryMiB), pid) }
    }

    /// The guest stopped or its start failed: its memory is no longer promised.
    func released(_ name: String) {
        _ = state.withLock { $0.admitted.removeValue(forKey: name) }
    }

    // MARK: - Host readings

    public static func hostMemory() -> (total: Int64, available: Int64) {
        guard let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8) else { return (0, 0) }
        func value(_ key: String) -> Int64 {
            guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(key + ":") }) else { return 0 }
            let kib = Int64(line.split(separator: " ").dropFirst().first ?? "") ?? 0
            return kib.multipliedReportingOverflow(by: 1024).overflow ? 0 : kib * 1024
        }
        return (value("MemTotal"), value("MemAvailable"))
    }

    @Sendable public static func residentMiB(_ pid: Int32) -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
            let kib = Int(line.split(separator: " ").dropFirst().first ?? "")
        else { return nil }
        return kib >> 10
    }
}
