import BerthModel
import Foundation
import Synchronization

/// Long actions answered with an operation id the client can wait on.
final class OperationRegistry: Sendable {
    private struct Entry {
        var info: OperationInfo
        var task: Task<Void, Never>
        var finishedAt: Date?
    }

    private let entries = Mutex<[String: Entry]>([:])
    /// Finished operations are kept this long for late pollers.
    private let retention: TimeInterval = 600

    func run(domain: String, action: String, _ body: @escaping @Sendable () async throws -> Void) -> OperationInfo {
        let id = UUID().uuidString.lowercased()
        let info = OperationInfo(id: id, domain: domain, action: action, status: .running)
        // Registered under the lock before the task can finish, so its result is never lost.
        entries.withLock { table in
            let cutoff = Date().addingTimeInterval(-retention)
            table = table.filter { ($0.value.finishedAt ?? .distantFuture) > cutoff }
            let task = Task {
                var result = info
                do {
                    try await body()
                    result.status = .succeeded
                } catch {
                    result.status = .failed
                    result.error = (error as? BerthError) ?? BerthError(.internal, "\(error)")
                }
                self.finish(result)
            }
            table[id] = Entry(info: info, task: task)
        }
        return info
    }

    private func finish(_ info: OperationInfo) {
        entries.withLock { table in
            table[info.id]?.info = info
            table[info.id]?.finishedAt = Date()
        }
    }

    /// The operation's state, after waiting up to `wait` for it to finish.
    func get(_ id: String, wait: Duration) async throws -> OperationInfo {
        guard let task = entries.withLock({ $0[id]?.task }) else {
            throw BerthError(.notFound, "No operation \(id).", remedy: "Operations are kept for 10 minutes after they end.")
        }
        if wait > .zero {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await task.value }
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
