import BerthModel
import FoundationEssentials
import Glibc

/// Live migration between two QEMUs, over sockets berthd connected and hands over with
/// SCM_RIGHTS: QEMU opens no host path and its own connections to local addresses are
/// rejected by the guest firewall, so berthd carries every stream (`migrate fd:`,
/// `migrate-incoming fd:`, and for disks an NBD server and client on `SocketAddress` `fd`).
extension QEMUProcess {
    /// What QEMU reported when a live migration completed.
    public struct MigrationFigures: Sendable, Equatable {
        /// From `migrate` to completion, milliseconds.
        public var totalTime: Int64
        /// How long the guest was stopped at the end, milliseconds (QEMU's own figure).
        public var downtime: Int64
        /// RAM bytes sent.
        public var transferred: Int64
    }

    /// Sends the guest's memory and device state over `socket` (connected by berthd to the
    /// destination berthd, which gave its end to the destination QEMU), polling `query-migrate`.
    /// The guest keeps running until QEMU's final pass (it may already be paused: then one
    /// pass). On success QEMU is in `postmigrate`: paused, its disks released.
    ///
    /// Cancelling the calling task runs `migrate_cancel`: QEMU goes back to where it was.
    ///
    /// - Parameter bandwidth: bytes per second at most.
    /// - Parameter beforeSwitchover: run while the vCPUs are stopped and the disks still
    ///   active (QEMU's `pause-before-switchover`): where disk mirrors are brought to an end, as
    ///   libvirt does, so the destination's disks are complete before it may run.
    /// - Throws: `BerthError(.unavailable)` with QEMU's reason, `CancellationError` when cancelled.
    public func migrateLive(
        over socket: Int32, bandwidth: Int64 = 1 << 40, progress: MigrationProgress, beforeSwitchover: (@Sendable () async throws -> Void)? = nil
    ) async throws -> MigrationFigures {
        do {
            try await qmp.execute(
                "migrate-set-capabilities",
                arguments: [
                    "capabilities": .array([
                        .object(["capability": .string("pause-before-switchover"), "state": .bool(beforeSwitchover != nil)])
                    ])
                ], timeout: .seconds(10))
            // QEMU's default limit (128 MiB/s in 7.2) is for shared links; berthd's own channel
            // takes what the link gives unless the user says (virsh --bandwidth).
            try await qmp.execute(
                "migrate-set-parameters", arguments: ["max-bandwidth": .int(bandwidth)], timeout: .seconds(10))
            try await qmp.execute("getfd", arguments: ["fdname": .string("berth-live")], passing: socket)
            try await qmp.execute("migrate", arguments: ["uri": .string("fd:berth-live")], timeout: .seconds(30))
        } catch let error as QMP.Error {
            throw BerthError(
                .unavailable, "QEMU could not begin migrating the guest: \(error)",
                remedy: "See the guest's QEMU log ('berth log'); the guest keeps running here.")
        }
        var switchedOver = false
        while true {
            if Task.isCancelled {
                await cancelMigration()
                throw CancellationError()
            }
            let info = try await queryMigrate()
            let ram = info["ram"]
            let total = UInt64(max(ram?["total"]?.int ?? 0, 0))
            let done = UInt64(max(ram?["transferred"]?.int ?? 0, 0))
            progress(done, max(total, done))
            switch info["status"]?.string ?? "none" {
            case "completed":
                return MigrationFigures(
                    totalTime: info["total-time"]?.int ?? 0, downtime: info["downtime"]?.int ?? 0,
                    transferred: ram?["transferred"]?.int ?? 0)
            case "pre-switchover" where !switchedOver:
                switchedOver = true
                do {
                    try await beforeSwitchover?()
                } catch {
                    await cancelMigration()
                    throw error
                }
                do {
                    try await qmp.execute("migrate-continue", arguments: ["state": .string("pre-switchover")])
                } catch let error as QMP.Error {
                    throw error.berthError
                }
            case "failed", "cancelled":
                throw BerthError(
                    .unavailable, "QEMU could not migrate the guest: \(info["error-desc"]?.string ?? "migration failed")",
                    remedy: "Check that the destination host is reachable and berthd runs there; the guest keeps running here.")
            default:
                try? await Task.sleep(for: .milliseconds(50))
            }
        }
    }

    /// `migrate_cancel`, then waits (up to 30 s) until QEMU says the migration is over.
    public func cancelMigration() async {
        _ = try? await qmp.execute("migrate_cancel", timeout: .seconds(10))
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            let status = (try? await queryMigrate())?["status"]?.string ?? "none"
            if ["cancelled", "failed", "completed", "none"].contains(status) { return }
            try? await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Starts loading state from `socket` into a QEMU started with `-S -incoming defer`;
    /// `waitForIncoming` follows it.
    public func acceptIncoming(over socket: Int32) async throws {
        do {
            try await qmp.execute("getfd", arguments: ["fdname": .string("berth-live")], passing: socket)
            try await qmp.execute(
                "migrate-incoming", arguments: ["uri": .string("fd:berth-live")], timeout: .seconds(30))
        } catch let error as QMP.Error {
            throw BerthError(.unavailable, "The destination QEMU could not take the incoming guest: \(error)")
        }
    }

    /// Waits until the incoming migration completed (QEMU stays paused), or throws its failure.
    public func waitForIncoming(timeout: Duration) async throws {
        let deadline = ContinuousClock.now + timeout
        while true {
            let info = try await queryMigrate()
            switch info["status"]?.string ?? "none" {
            case "completed":
                return
            case "failed", "cancelled":
                throw BerthError(
                    .unavailable,
                    "The destination QEMU could not load the guest: \(info["error-desc"]?.string ?? "migration failed")")
            default:
                guard ContinuousClock.now < deadline else {
                    throw BerthError(.timeout, "The incoming guest did not arrive within \(timeout.components.seconds) s.")
                }
                try await Task.sleep(for: .milliseconds(50))
            }
        }
    }

    /// The run state QEMU reports (`running`, `paused`, `postmigrate`, `inmigrate` …).
    public func runState() async throws -> String {
        do {
            return try await qmp.execute("query-status", timeout: .seconds(10))["status"]?.string ?? "unknown"
        } catch let error as QMP.Error {
            throw error.berthError
        }
    }

    private func queryMigrate() async throws -> QMP.Value {
        do {
            return try await qmp.execute("query-migrate", timeout: .seconds(30))
        } catch let error as QMP.Error {
            throw BerthError(
                .unavailable, "QEMU stopped answering during the migration: \(error)",
                remedy: "See the guest's QEMU log ('berth log').")
        }
    }

    // MARK: - Disks over NBD (--copy-storage-all)

    /// The destination's NBD server socket: bound by berthd in the guest's runtime directory
    /// (root's, 0700), so only berthd connects to it.
    public var diskExportSocket: String { paths.directory + "/nbd.sock" }

    /// Destination: a connection to this QEMU's NBD server (berthd relays the source's to it).
    public func connectToDiskExport() throws -> Int32 {
        do {
            return try UnixSocketConnection.connectedDescriptor(path: diskExportSocket)
        } catch {
            throw error.berthError
        }
    }

    /// The virtual size of format node `node` (`diskN`), from `query-named-block-nodes`.
    public func virtualSize(ofNode node: String) async throws -> UInt64 {
        let nodes: QMP.Value
        do {
            nodes = try await qmp.execute("query-named-block-nodes", arguments: ["flat": .bool(true)])
        } catch let error as QMP.Error {
            throw error.berthError
        }
        guard let entry = nodes.array?.first(where: { $0["node-name"]?.string == node }),
            let size = entry["image"]?["virtual-size"]?.int, size >= 0
        else { throw BerthError(.internal, "QEMU did not report the size of \(node).") }
        return UInt64(size)
    }

    /// Destination: serves the format nodes `nodes` (writable, export name = node name) over an
    /// NBD server listening on `diskExportSocket`.
    public func exportDisks(_ nodes: [String]) async throws {
        let listener = try UnixSocketConnection.listen(path: diskExportSocket)
        defer { close(listener) }
        do {
            try await qmp.execute("getfd", arguments: ["fdname": .string("berth-nbd")], passing: listener)
            try await qmp.execute(
                // nbd-server-start takes QEMU's legacy SocketAddress form (the fields under `data`).
                "nbd-server-start",
                arguments: ["addr": .object(["type": .string("fd"), "data": .object(["str": .string("berth-nbd")])])])
            for node in nodes {
                try await qmp.execute(
                    "block-export-add",
                    arguments: [
                        "type": .string("nbd"), "id": .string("export-\(node)"), "node-name": .string(node),
                        "name": .string(node), "writable": .bool(true),
                    ])
            }
        } catch let error as QMP.Error {
            throw BerthError(.unavailable, "The destination QEMU could not export its new disks: \(error)")
        }
    }

    /// Destination: ends the NBD server (before the guest runs there).
    public func stopDiskExport() async {
        _ = try? await qmp.execute("nbd-server-stop", timeout: .seconds(30))
    }

    /// Source: mirrors format node `node` onto the destination's export of the same name,
    /// reached over `socket`. The job is `mirror-NODE`; the target node `mirror-NODE-target`.
    public func startMirror(_ node: String, over socket: Int32) async throws {
        let fdName = "berth-nbd-\(node)"
        do {
            try await qmp.execute("getfd", arguments: ["fdname": .string(fdName)], passing: socket)
            try await qmp.execute(
                "blockdev-add",
                arguments: [
                    "driver": .string("nbd"), "node-name": .string("mirror-\(node)-target"),
                    "server": .object(["type": .string("fd"), "str": .string(fdName)]), "export": .string(node),
                ], timeout: .seconds(60))
            try await qmp.execute(
                "blockdev-mirror",
                arguments: [
                    "job-id": .string("mirror-\(node)"), "device": .string(node), "target": .string("mirror-\(node)-target"),
                    "sync": .string("full"), "auto-finalize": .bool(true), "auto-dismiss": .bool(true),
                ])
        } catch let error as QMP.Error {
            throw BerthError(.unavailable, "QEMU could not start copying \(node) to the destination: \(error)")
        }
    }

    /// Source: the mirror jobs' progress (bytes done, total) and whether all are `ready`
    /// (the target has caught up and follows every write).
    public func mirrorProgress(_ nodes: [String]) async throws -> (done: UInt64, total: UInt64, ready: Bool) {
        let jobs: [QMP.Value]
        do {
            jobs = try await qmp.execute("query-block-jobs", timeout: .seconds(30)).array ?? []
        } catch let error as QMP.Error {
            throw error.berthError
        }
        var done: UInt64 = 0
        var total: UInt64 = 0
        var ready = true
        for node in nodes {
            guard let job = jobs.first(where: { $0["device"]?.string == "mirror-\(node)" }) else {
                throw BerthError(.unavailable, "Copying \(node) to the destination stopped (the connection may have broken).")
            }
            if let error = job["error"]?.string { throw BerthError(.unavailable, "Copying \(node) failed: \(error)") }
            done += UInt64(max(job["offset"]?.int ?? 0, 0))
            total += UInt64(max(job["len"]?.int ?? 0, 0))
            ready = ready && job["ready"]?.bool == true
        }
        return (done, total, ready)
    }

    /// Source: ends the mirror jobs and removes their NBD targets. `synchronise` (after the
    /// memory migration, vCPUs stopped) lets each ready job write what is outstanding first, so
    /// the destination's disks equal the source's; otherwise (an abort) the jobs just stop.
    public func endMirrors(_ nodes: [String], synchronise: Bool) async throws {
        for node in nodes {
            _ = try? await qmp.execute(
                "block-job-cancel", arguments: ["device": .string("mirror-\(node)"), "force": .bool(!synchronise)])
        }
        let deadline = ContinuousClock.now + .seconds(120)
        while ContinuousClock.now < deadline {
            let jobs = (try? await qmp.execute("query-block-jobs", timeout: .seconds(30)).array) ?? []
            if !jobs.contains(where: { job in nodes.contains { "mirror-\($0)" == job["device"]?.string } }) { break }
            try? await Task.sleep(for: .milliseconds(50))
        }
        for node in nodes {
            _ = try? await qmp.execute("blockdev-del", arguments: ["node-name": .string("mirror-\(node)-target")])
        }
        if ContinuousClock.now >= deadline {
            throw BerthError(.timeout, "The disk copies did not finish within 120 s of the memory migration.")
        }
    }
}

extension QEMUProcess {
    /// The CPU features this guest sees: its `-cpu` model (read back from the process's
    /// command line, so a guest an earlier berthd started is described as it runs) expanded
    /// by its own QEMU (`CPUFeatures`).
    public func cpuFeatures(fallbackModel: String) async throws -> [String] {
        let model = Self.argument(after: "-cpu", ofPID: pid) ?? fallbackModel
        let expansion = try await qmp.execute(
            "query-cpu-model-expansion", arguments: CPUFeatures.expansionArguments(model), timeout: .seconds(30))
        return CPUFeatures.enabled(in: expansion)
    }

    /// The argument after `option` on a process's command line (`/proc/PID/cmdline`).
    static func argument(after option: String, ofPID pid: Int32) -> String? {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return nil }
        let arguments = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        guard let index = arguments.firstIndex(of: option), index + 1 < arguments.count else { return nil }
        return arguments[index + 1]
    }
}
