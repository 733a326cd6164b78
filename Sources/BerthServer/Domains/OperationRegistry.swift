import BerthModel
import FoundationEssentials
import Glibc
import Synchronization

/// Long actions answered with an operation id the client can wait on.
final class OperationRegistry: Sendable {
    private struct Entry {
        var info: OperationInfo
        var task: Task<Void, Never>
        var finishedAt: Date?
        /// `get` callers waiting for the end, resumed by `finish` or by their own cancellation.
        var waiters: [UUID: CheckedContinuation<Void, Never>] = [:]
    }

    private let entries = Mutex<[String: Entry]>([:])
    /// Finished operations are kept this long for late pollers.
    private let retention: TimeInterval = 600

    func run(domain: String, action: String, _ body: @escaping @Sendable () async throws -> Void) -> OperationInfo {
        runWithProgress(domain: domain, action: action) { _ in try await body() }
    }

    /// Like `run`, for operations that move data: `body` reports bytes done and the total,
    /// which `get` shows as the operation's `progress`.
    func runWithProgress(
        domain: String, volume: String? = nil, action: String,
        _ body: @escaping @Sendable (_ progress: @escaping @Sendable (UInt64, UInt64) -> Void) async throws -> Void
    ) -> OperationInfo {
        runWithID(domain: domain, volume: volume, action: action) { _, progress in try await body(progress) }
    }

    /// Like `run`, for operations that say what they do: `body` gets the operation's id, which
    /// `note` takes to add progress lines (an install's steps).
    func runNoting(domain: String, action: String, _ body: @escaping @Sendable (_ id: String) async throws -> Void) -> OperationInfo {
        runWithID(domain: domain, action: action) { id, _ in try await body(id) }
    }

    /// Both: progress lines and bytes (a migration).
    func runNotingWithProgress(
        domain: String, action: String,
        _ body: @escaping @Sendable (_ id: String, _ progress: @escaping @Sendable (UInt64, UInt64) -> Void) async throws -> Void
    ) -> OperationInfo {
        runWithID(domain: domain, action: action, body)
    }

    /// Cancels the running operations of `domain` named `action` (`berth domjobabort`);
    /// returns how many there were.
    func cancel(domain: String, action: String) -> Int {
        let tasks = entries.withLock { table in
            table.values.filter { $0.info.domain == domain && $0.info.action == action && $0.finishedAt == nil }.map(\.task)
        }
        tasks.forEach { $0.cancel() }
        return tasks.count
    }

    private func runWithID(
        domain: String, volume: String? = nil, action: String,
        _ body: @escaping @Sendable (_ id: String, _ progress: @escaping @Sendable (UInt64, UInt64) -> Void) async throws -> Void
    ) -> OperationInfo {
        let id = UUID().uuidString.lowercased()
        let progress: @Sendable (UInt64, UInt64) -> Void = { [weak self] bytes, total in
            self?.entries.withLock { table in
                table[id]?.info.progress = OperationProgress(bytes: bytes, total: total)
            }
        }
        let info = OperationInfo(id: id, domain: domain, action: action, status: .running, volume: volume)
        // Registered under the lock before the task can finish, so its result is never lost.
        entries.withLock { table in
            let cutoff = Date().addingTimeInterval(-retention)
            table = table.filter { ($0.value.finishedAt ?? .distantFuture) > cutoff }
            let task = Task {
                var result = info
                do {
                    try await body(id, progress)
                    result.progress = self.entries.withLock { $0[id]?.info.progress }
                    result.status = .succeeded
                } catch {
                    result.status = .failed
                    result.progress = self.entries.withLock { $0[id]?.info.progress }
                    result.error = (error as? BerthError) ?? BerthError(.internal, "\(error)")
                }
                self.finish(result)
            }
            table[id] = Entry(info: info, task: task)
        }
        return info
    }

    /// Adds a progress line to a running operation (kept with it, returned by `get`).
    func note(_ id: String, _ message: OperationMessage) {
        entries.withLock { table in
            guard var entry = table[id] else { return }
            entry.info.messages = (entry.info.messages ?? []) + [message]
            table[id] = entry
        }
    }

    private func finish(_ info: OperationInfo) {
        let waiters = entries.withLock { table -> [CheckedContinuation<Void, Never>] in
            var info = info
            info.messages = table[info.id]?.info.messages
            table[info.id]?.info = info
            table[info.id]?.finishedAt = Date()
            let waiters = table[info.id].map { Array($0.waiters.values) } ?? []
            table[info.id]?.waiters = [:]
            return waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Returns when the operation has finished, or as soon as the calling task is cancelled
    /// (`await task.value` would not: it ignores cancellation, so a `wait` could never end early).
    private func finished(_ id: String) async {
        let key = UUID()
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let waiting = entries.withLock { table -> Bool in
                    guard let entry = table[id], entry.finishedAt == nil, !Task.isCancelled else { return false }
                    table[id]?.waiters[key] = continuation
                    return true
                }
                if !waiting { continuation.resume() }
            }
        } onCancel: {
            let waiter = entries.withLock { $0[id]?.waiters.removeValue(forKey: key) }
            waiter?.resume()
        }
    }

    /// The operation's state, after waiting up to `wait` for it to finish.
    func get(_ id: String, wait: Duration) async throws -> OperationInfo {
        guard entries.withLock({ $0[id] != nil }) else {
            throw BerthError(.notFound, "No operation \(id).", remedy: "Operations are kept for 10 minutes after they end.")
        }
        if wait > .zero {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.finished(id) }
                group.addTask { try? await Task.sleep(for: wait) }
                await group.next()
                group.cancelAll()
            }
        }
        guard let info = entries.withLock({ $0[id]?.info }) else {
            throw BerthError(.notFound, "No operation \(id).", remedy: "Operations are kept for 10 minutes after they end.")
        }
        return info
    }
}
