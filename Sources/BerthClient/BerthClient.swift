import BerthModel
import BerthPOSIX
import FoundationEssentials
import Glibc
import NIOCore
import NIOHTTP1
import Synchronization

/// Typed client of berthd's HTTP API (`docs/openapi.yaml`).
public struct BerthClient: Sendable {
    public let endpoint: Endpoint
    let transport: HTTPTransport

    public init(endpoint: Endpoint) {
        self.endpoint = endpoint
        self.transport = HTTPTransport(endpoint: endpoint)
    }

    // MARK: - Requests

    func call<T: Decodable>(
        _ method: HTTPMethod, _ path: String, body: (some Encodable)? = nil as Int?, as type: T.Type
    ) async throws -> T {
        let data = try body.map { try JSONEncoder().encode($0) }
        let reply = try await transport.send(method: method, path: path, body: data)
        try check(reply)
        do {
            return try Self.decoder.decode(T.self, from: reply.body)
        } catch {
            throw BerthError(
                .internal, "berthd answered \(method) \(path) with a document this CLI cannot read: \(error)",
                remedy: "Use a berth CLI of the same version as berthd.")
        }
    }

    func check(_ reply: HTTPTransport.Reply) throws {
        guard !(200..<300).contains(reply.status) else { return }
        struct ErrorBody: Decodable { var error: BerthError }
        if let body = try? Self.decoder.decode(ErrorBody.self, from: reply.body) {
            guard body.error.code == .unauthorized, endpoint.isRemote else { throw body.error }
            // berthd's remedy names its own state directory; a remote client needs another way in.
            throw BerthError(
                .unauthorized, "\(endpoint) refused the request: \(body.error.message)",
                remedy:
                    "Present a client certificate signed by the CA berthd trusts (--tls-cert/--tls-key, or the defaults in \(DefaultPaths.current().pkiDirectory)), or set BERTH_TOKEN to the token in that host's <state>/api-token."
            )
        }
        let text = String(decoding: reply.body, as: UTF8.self)
        throw BerthError(.internal, "berthd answered HTTP \(reply.status): \(text)")
    }

    static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }()

    static func escape(_ name: String) -> String {
        // One path segment: RFC 3986's pchar characters stay, "/" and the rest are encoded.
        Text.percentEncoded(name, alsoAllowed: "!$&'()*+,;=:@")
    }

    // MARK: - The API

    public func host() async throws -> HostInfo { try await call(.GET, "/v1/host", as: HostInfo.self) }

    public func list() async throws -> [DomainSummary] {
        try await call(.GET, "/v1/domains", as: [DomainSummary].self)
    }

    public func info(_ name: String) async throws -> DomainInfo {
        try await call(.GET, "/v1/domains/\(Self.escape(name))", as: DomainInfo.self)
    }

    /// Where a running domain's graphical console is.
    public func display(_ name: String) async throws -> DisplayInfo {
        try await call(.GET, "/v1/domains/\(Self.escape(name))/display", as: DisplayInfo.self)
    }

    /// A running domain's counters (process CPU time and memory, disk I/O).
    public func stats(_ name: String) async throws -> DomainStats {
        try await call(.GET, "/v1/domains/\(Self.escape(name))/stats", as: DomainStats.self)
    }

    /// Every running domain's counters.
    public func allStats() async throws -> [DomainStats] {
        try await call(.GET, "/v1/stats", as: [DomainStats].self)
    }

    public func define(_ spec: DomainSpec) async throws -> DomainInfo {
        try await call(.POST, "/v1/domains", body: spec, as: DomainInfo.self)
    }

    public func update(_ spec: DomainSpec) async throws -> DomainInfo {
        try await call(.PUT, "/v1/domains/\(Self.escape(spec.name))", body: spec, as: DomainInfo.self)
    }

    /// `attach-disk`: a disk into the running guest and/or the definition.
    public func attachDisk(_ name: String, _ request: DiskAttachRequest) async throws -> DomainInfo {
        try await call(.POST, "/v1/domains/\(Self.escape(name))/disks", body: request, as: DomainInfo.self)
    }

    /// `detach-disk`: `target` is the disk's target (`vdb`) or its source path.
    public func detachDisk(_ name: String, target: String, scope: DiskChangeScope) async throws {
        let reply = try await transport.send(
            method: .DELETE,
            path:
                "/v1/domains/\(Self.escape(name))/disks/\(Self.escape(target))?live=\(scope.live)&config=\(scope.config)&persistent=\(scope.persistent)"
        )
        try check(reply)
    }

    public func undefine(_ name: String, keepLogs: Bool) async throws {
        let reply = try await transport.send(
            method: .DELETE, path: "/v1/domains/\(Self.escape(name))?keepLogs=\(keepLogs)")
        try check(reply)
    }

    public func setAutostart(_ name: String, _ enabled: Bool) async throws -> DomainInfo {
        struct Body: Encodable { var autostart: Bool }
        return try await call(
            .PUT, "/v1/domains/\(Self.escape(name))/autostart", body: Body(autostart: enabled), as: DomainInfo.self)
    }

    /// The kickstart stored with a domain by `berth install`.
    public func kickstart(_ name: String) async throws -> String {
        let reply = try await transport.send(method: .GET, path: "/v1/domains/\(Self.escape(name))/kickstart")
        try check(reply)
        return String(decoding: reply.body, as: UTF8.self)
    }

    public func setKickstart(_ name: String, _ text: String) async throws {
        let reply = try await transport.send(
            method: .PUT, path: "/v1/domains/\(Self.escape(name))/kickstart", body: Data(text.utf8))
        try check(reply)
    }

    /// Stores the definition that replaces `name`'s when its guest next powers off or reboots
    /// by itself (and whether to start it then): how an installer hands over to the installed
    /// system without the CLI waiting.
    public func setNextDefinition(_ spec: DomainSpec, start: Bool) async throws {
        struct Body: Encodable { var spec: DomainSpec; var start: Bool }
        let reply = try await transport.send(
            method: .PUT, path: "/v1/domains/\(Self.escape(spec.name))/next",
            body: try JSONEncoder().encode(Body(spec: spec, start: start)))
        try check(reply)
    }

    public func clearNextDefinition(_ name: String) async throws {
        try check(try await transport.send(method: .DELETE, path: "/v1/domains/\(Self.escape(name))/next"))
    }

    public typealias Action = DomainAction

    /// Runs a lifecycle action and waits for it to finish.
    public func perform(_ action: Action, on name: String, timeout: Int? = nil, force: Bool = false) async throws
        -> DomainInfo
    {
        var query = "wait=true"
        if let timeout { query += "&timeout=\(timeout)" }
        if force { query += "&force=true" }
        return try await call(.POST, "/v1/domains/\(Self.escape(name))/\(action.rawValue)?\(query)", as: DomainInfo.self)
    }

    /// Starts an action without waiting; poll with `operation(_:wait:)`.
    public func begin(_ action: Action, on name: String) async throws -> OperationInfo {
        try await call(.POST, "/v1/domains/\(Self.escape(name))/\(action.rawValue)", as: OperationInfo.self)
    }

    /// `berth install`: berthd runs the plan as an operation; follow it with `operation(_:wait:)`.
    public func install(_ plan: InstallPlan) async throws -> OperationInfo {
        try await call(.POST, "/v1/domains/\(Self.escape(plan.domain.name))/install", body: plan, as: OperationInfo.self)
    }

    /// `berth reinstall`: the stored installer again, as an operation.
    public func reinstall(_ name: String, _ request: ReinstallRequest) async throws -> OperationInfo {
        try await call(.POST, "/v1/domains/\(Self.escape(name))/reinstall", body: request, as: OperationInfo.self)
    }

    public func operation(_ id: String, wait seconds: Double = 0) async throws -> OperationInfo {
        try await call(.GET, "/v1/operations/\(id)?wait=\(seconds)", as: OperationInfo.self)
    }

    // MARK: - Saves and snapshots

    /// Starts saving a guest's state to `file` on berthd's host; poll the operation for progress.
    public func beginSave(_ name: String, _ request: SaveRequest) async throws -> OperationInfo {
        try await call(.POST, "/v1/domains/\(Self.escape(name))/save", body: request, as: OperationInfo.self)
    }

    /// Starts restoring a file written by `save`; the operation's `domain` is the one it names.
    public func beginRestore(_ request: RestoreRequest) async throws -> OperationInfo {
        try await call(.POST, "/v1/restore", body: request, as: OperationInfo.self)
    }

    public func beginManagedSave(_ name: String) async throws -> OperationInfo {
        try await call(.POST, "/v1/domains/\(Self.escape(name))/managedsave", as: OperationInfo.self)
    }

    public func removeManagedSave(_ name: String) async throws {
        try check(try await transport.send(method: .DELETE, path: "/v1/domains/\(Self.escape(name))/managedsave"))
    }

    public func snapshots(_ name: String) async throws -> [SnapshotInfo] {
        try await call(.GET, "/v1/domains/\(Self.escape(name))/snapshots", as: [SnapshotInfo].self)
    }

    public func snapshot(_ name: String, _ snapshot: String) async throws -> SnapshotInfo {
        try await call(
            .GET, "/v1/domains/\(Self.escape(name))/snapshots/\(Self.escape(snapshot))", as: SnapshotInfo.self)
    }

    /// Takes a snapshot and waits for it.
    public func createSnapshot(_ name: String, _ request: SnapshotRequest) async throws -> SnapshotInfo {
        try await call(
            .POST, "/v1/domains/\(Self.escape(name))/snapshots?wait=true", body: request, as: SnapshotInfo.self)
    }

    /// Reverts to a snapshot and waits for it.
    public func revertSnapshot(_ name: String, _ snapshot: String) async throws -> DomainInfo {
        try await call(
            .POST, "/v1/domains/\(Self.escape(name))/snapshots/\(Self.escape(snapshot))/revert?wait=true",
            as: DomainInfo.self)
    }

    public func deleteSnapshot(_ name: String, _ snapshot: String) async throws {
        try check(
            try await transport.send(
                method: .DELETE, path: "/v1/domains/\(Self.escape(name))/snapshots/\(Self.escape(snapshot))"))
    }

    /// Polls an operation until it ends, calling `progress` on the way; throws its error.
    @discardableResult
    public func finish(
        _ operation: OperationInfo, progress: (OperationProgress) -> Void = { _ in },
        messages: ([OperationMessage]) -> Void = { _ in }
    ) async throws -> OperationInfo {
        var current = operation
        while current.status == .running {
            current = try await self.operation(current.id, wait: 0.5)
            if let value = current.progress { progress(value) }
            if let lines = current.messages { messages(lines) }
        }
        if let error = current.error { throw error }
        return current
    }

    /// The console log: the last `tail` bytes, then new output while `follow`.
    public func consoleLog(
        _ name: String, tail: Int?, follow: Bool, onChunk: @escaping @Sendable (ByteBuffer) async throws -> Void
    ) async throws {
        var query = "follow=\(follow)"
        if let tail { query += "&tail=\(tail)" }
        let reply = try await transport.send(
            method: .GET, path: "/v1/domains/\(Self.escape(name))/console?\(query)", onChunk: onChunk)
        try check(reply)
    }

    // MARK: - Storage

    public func pools() async throws -> [PoolInfo] { try await call(.GET, "/v1/pools", as: [PoolInfo].self) }

    public func definePool(_ spec: PoolSpec) async throws -> PoolInfo {
        try await call(.POST, "/v1/pools", body: spec, as: PoolInfo.self)
    }

    public func pool(_ name: String) async throws -> PoolInfo {
        try await call(.GET, "/v1/pools/\(Self.escape(name))", as: PoolInfo.self)
    }

    public enum PoolAction: String, Sendable, CaseIterable { case start, build, destroy, refresh }

    public func perform(_ action: PoolAction, pool name: String) async throws -> PoolInfo {
        try await call(.POST, "/v1/pools/\(Self.escape(name))/\(action.rawValue)", as: PoolInfo.self)
    }

    public func setPoolAutostart(_ name: String, _ enabled: Bool) async throws -> PoolInfo {
        struct Body: Encodable { var autostart: Bool }
        return try await call(.PUT, "/v1/pools/\(Self.escape(name))/autostart", body: Body(autostart: enabled), as: PoolInfo.self)
    }

    public func undefinePool(_ name: String) async throws {
        try check(try await transport.send(method: .DELETE, path: "/v1/pools/\(Self.escape(name))"))
    }

    public func volumes(pool: String) async throws -> [VolumeInfo] {
        try await call(.GET, "/v1/pools/\(Self.escape(pool))/volumes", as: [VolumeInfo].self)
    }

    public func createVolume(pool: String, _ request: VolumeCreateRequest) async throws -> VolumeInfo {
        try await call(.POST, "/v1/pools/\(Self.escape(pool))/volumes", body: request, as: VolumeInfo.self)
    }

    public func volume(pool: String, name: String) async throws -> VolumeInfo {
        try await call(.GET, volumePath(pool, name), as: VolumeInfo.self)
    }

    /// The volume whose host path is `path`.
    public func volume(path: String) async throws -> VolumeInfo {
        let query = Text.percentEncoded(path)
        return try await call(.GET, "/v1/volumes?path=\(query)", as: VolumeInfo.self)
    }

    public func deleteVolume(pool: String, name: String) async throws {
        try check(try await transport.send(method: .DELETE, path: volumePath(pool, name)))
    }

    /// Starts `vol-wipe` as an operation (its `volume` is `POOL/NAME`).
    public func beginWipeVolume(pool: String, name: String) async throws -> OperationInfo {
        try await call(.POST, volumePath(pool, name) + "/wipe", as: OperationInfo.self)
    }

    /// Starts `vol-clone` as an operation with progress (its `volume` is the new `POOL/NAME`).
    public func beginCloneVolume(pool: String, name: String, to newName: String) async throws -> OperationInfo {
        try await call(.POST, volumePath(pool, name) + "/clone", body: VolumeCloneRequest(name: newName), as: OperationInfo.self)
    }

    /// `vol-wipe`, waited for; `progress` hears how far it got.
    public func wipeVolume(pool: String, name: String, progress: (OperationProgress) -> Void = { _ in }) async throws
        -> VolumeInfo
    {
        _ = try await finish(try await beginWipeVolume(pool: pool, name: name), progress: progress)
        return try await volume(pool: pool, name: name)
    }

    /// `vol-clone`, waited for; `progress` hears how far the copy got.
    public func cloneVolume(
        pool: String, name: String, to newName: String, progress: (OperationProgress) -> Void = { _ in }
    ) async throws -> VolumeInfo {
        _ = try await finish(try await beginCloneVolume(pool: pool, name: name, to: newName), progress: progress)
        return try await volume(pool: pool, name: newName)
    }

    public func resizeVolume(pool: String, name: String, _ request: VolumeResizeRequest) async throws -> VolumeInfo {
        try await call(.POST, volumePath(pool, name) + "/resize", body: request, as: VolumeInfo.self)
    }

    /// `vol-upload`: the first `length` bytes of `descriptor` (from its offset) become the raw
    /// volume's content; `progress` hears the bytes sent.
    public func uploadVolume(
        pool: String, name: String, from descriptor: Int32, length: UInt64, progress: @escaping @Sendable (UInt64) -> Void
    ) async throws -> VolumeInfo {
        let reply = try await transport.send(
            method: .PUT, path: volumePath(pool, name) + "/content",
            upload: .init(descriptor: descriptor, length: length, progress: progress))
        try check(reply)
        return try Self.decoder.decode(VolumeInfo.self, from: reply.body)
    }

    /// Starts `vol-upload` of `file`, a path on berthd's own host that berthd reads itself
    /// (offered on berthd's unix socket only).
    public func beginUploadVolume(pool: String, name: String, file: String) async throws -> OperationInfo {
        try await call(.POST, volumePath(pool, name) + "/upload", body: VolumeUploadFileRequest(file: file), as: OperationInfo.self)
    }

    /// `vol-upload` of a file on berthd's host, waited for; `progress` hears how far it got.
    public func uploadVolume(pool: String, name: String, file: String, progress: (OperationProgress) -> Void = { _ in })
        async throws -> VolumeInfo
    {
        _ = try await finish(try await beginUploadVolume(pool: pool, name: name, file: file), progress: progress)
        return try await volume(pool: pool, name: name)
    }

    /// `vol-download` into `file`, an empty file on berthd's own host that berthd fills itself
    /// (offered on berthd's unix socket only), waited for; `progress` hears how far it got.
    public func downloadVolume(pool: String, name: String, file: String, progress: (OperationProgress) -> Void = { _ in })
        async throws
    {
        let operation = try await call(
            .POST, volumePath(pool, name) + "/download", body: VolumeDownloadFileRequest(file: file), as: OperationInfo.self)
        _ = try await finish(operation, progress: progress)
    }

    /// `vol-download`: the volume's bytes written to `descriptor` as they arrive (no copy in
    /// between); `progress` hears each piece's size.
    public func downloadVolume(pool: String, name: String, to descriptor: Int32, progress: @escaping @Sendable (UInt64) -> Void)
        async throws
    {
        let reply = try await transport.send(method: .GET, path: volumePath(pool, name) + "/content") { buffer in
            do {
                try buffer.withUnsafeReadableBytes { try BerthPOSIX.writeAll(descriptor, $0) }
            } catch {
                throw BerthError(.unavailable, "Cannot write the downloaded bytes: \(error)", remedy: "Check free space where the file goes.")
            }
            progress(UInt64(buffer.readableBytes))
        }
        try check(reply)
    }

    private func volumePath(_ pool: String, _ name: String) -> String {
        "/v1/pools/\(Self.escape(pool))/volumes/\(Self.escape(name))"
    }

    /// Lifecycle events as they happen, until the handler throws or the connection ends.
    public func events(onEvent: @escaping @Sendable (LifecycleEvent) async throws -> Void) async throws {
        let decoder = Self.decoder
        let pending = PendingLines()
        let reply = try await transport.send(method: .GET, path: "/v1/events") { buffer in
            for line in pending.append(Array(buffer.readableBytesView)) {
                if let event = try? decoder.decode(LifecycleEvent.self, from: Data(line)) { try await onEvent(event) }
            }
        }
        try check(reply)
    }
}

/// Splits a byte stream into newline-terminated lines.
final class PendingLines: Sendable {
    private let buffer = Mutex<[UInt8]>([])

    func append(_ bytes: [UInt8]) -> [[UInt8]] {
        buffer.withLock { buffer in
            buffer += bytes
            var lines: [[UInt8]] = []
            while let newline = buffer.firstIndex(of: 0x0A) {
                lines.append(Array(buffer[..<newline]))
                buffer.removeSubrange(...newline)
            }
            return lines
        }
    }
}
