import BerthModel
import FoundationEssentials
import Glibc

/// Live migration: the CLI's side (`migrate`, `domjobabort`) and the source berthd's side of
/// the destination's API (`/v1/migrations…`).
extension BerthClient {
    /// Starts moving a running guest to another berthd; follow it with `finish(_:progress:)`.
    public func beginMigrate(_ name: String, _ request: MigrateRequest) async throws -> OperationInfo {
        try await call(.POST, "/v1/domains/\(Self.escape(name))/migrate", body: request, as: OperationInfo.self)
    }

    /// Cancels a running migration of `name` (`virsh domjobabort`): the guest stays here.
    public func abortMigration(_ name: String) async throws {
        try check(try await transport.send(method: .POST, path: "/v1/domains/\(Self.escape(name))/migrate/cancel"))
    }

    // MARK: - Destination (called by the source berthd)

    public func prepareIncoming(_ request: IncomingMigrationRequest) async throws -> MigrationTicket {
        try await call(.POST, "/v1/migrations", body: request, as: MigrationTicket.self)
    }

    public func incoming(_ id: String) async throws -> IncomingMigrationInfo {
        try await call(.GET, "/v1/migrations/\(Self.escape(id))", as: IncomingMigrationInfo.self)
    }

    /// The source's console log, written to the destination's before the guest runs there.
    public func sendIncomingConsole(_ id: String, _ log: Data) async throws {
        try check(try await transport.send(method: .PUT, path: "/v1/migrations/\(Self.escape(id))/console", body: log))
    }

    public func finishIncoming(_ id: String, _ request: IncomingFinishRequest) async throws -> DomainInfo {
        try await call(.POST, "/v1/migrations/\(Self.escape(id))/finish", body: request, as: DomainInfo.self)
    }

    /// Removes the half-made destination: its QEMU, its definition and the disks it created.
    public func abortIncoming(_ id: String) async throws {
        try check(try await transport.send(method: .DELETE, path: "/v1/migrations/\(Self.escape(id))"))
    }
}
