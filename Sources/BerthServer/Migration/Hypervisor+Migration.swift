import BerthHost
import BerthModel
import BerthPOSIX
import BerthQEMU
import BerthStore
import FoundationEssentials

#if canImport(Glibc)
    import Glibc
#endif

/// Live migration, the source's side: `berth migrate NAME --to URL`.
///
/// 1. The destination is offered the definition (the disks to create and the CPU features
///    the guest sees) and checks it can run the guest before anything moves; it starts its
///    QEMU with `-incoming defer` and answers with a one-time listener and secret
///    (`Hypervisor+IncomingMigration.swift`).
/// 2. `--copy-storage-all`: one connection per writable disk, handed to this QEMU as an NBD
///    client node; `blockdev-mirror` (sync full) until every job is ready.
/// 3. Memory: one connection handed to this QEMU for `migrate fd:`. With disks, QEMU pauses
///    before switch-over and the mirrors are completed then (vCPUs stopped).
/// 4. The console log goes to the destination, which then lets the guest run; this QEMU ends.
/// Any failure or a cancel before step 4 cancels the migration, ends the mirrors, removes the
/// half-made destination and lets the guest run on here.
extension Hypervisor {
    var migrationJournal: MigrationJournal { MigrationJournal(directory: stateDirectory + "/migrations") }

    /// Runs as the `migrate` operation `operation`.
    func migrate(_ name: String, _ request: MigrateRequest, operation: String, progress: @escaping ProgressSink) async throws {
        let peer = try MigrationPeer(url: request.destination, token: request.token, options: peerOptions)
        let supervisor = try supervisor(name)
        try await supervisor.migrateOut { instance, record in
            try await self.move(instance, record, request, peer: peer, operation: operation, progress: progress)
        }
        if request.undefineSource { try await undefine(name, keepLogs: false) }
        migrationJournal.removeOutgoing(name)
    }

    /// A progress line on the operation and a `migration-progress` event.
    func noteMigration(_ operation: String, _ domain: String, _ text: String) {
        operations.note(operation, OperationMessage(text))
        let state = (try? catalog.domain(named: domain).state) ?? .running
        hub.publish(LifecycleEvent(domain: domain, kind: .migrationProgress, state: state, detail: text))
    }

    private func move(
        _ instance: any GuestInstance, _ record: DomainRecord, _ request: MigrateRequest, peer: MigrationPeer,
        operation: String, progress: @escaping ProgressSink
    ) async throws -> String {
        guard let qemu = instance.qemuProcess else {
            throw BerthError(.unavailable, "This guest driver cannot migrate guests.")
        }
        let spec = record.spec
        let name = spec.name
        let wasRunning = record.state == .running
        var copies: [DiskCopy] = []
        if request.copyStorageAll {
            for (index, disk) in spec.disks.enumerated() where disk.device == .disk && !disk.readOnly {
                copies.append(DiskCopy(index: index, bytes: try await qemu.virtualSize(ofNode: "disk\(index)")))
            }
        }
        noteMigration(operation, name, "asking \(peer.url) to take the guest")
        let cpu: [String]
        do {
            cpu = try await qemu.cpuFeatures(fallbackModel: QEMUCommandLine.cpuModel(accel: instance.accel))
        } catch {
            throw BerthError(
                .unavailable, "Cannot tell which CPU features '\(name)' uses: \(error)",
                remedy: "See 'berth log \(name)'; the guest keeps running here.")
        }
        let offer = IncomingMigrationRequest(
            spec: spec, accel: instance.accel, qemuVersion: driver.qemuVersion(), copies: copies, cpuFeatures: cpu)
        let ticket: MigrationTicket
        do {
            ticket = try await peer.client.prepareIncoming(offer)
        } catch {
            throw MigrationPeer.refused(error, url: peer.url)
        }
        var entry = MigrationJournal.Outgoing(
            domain: name, destination: peer.url, token: request.token, ticket: ticket.id, wasRunning: wasRunning,
            undefineSource: request.undefineSource, handingOver: false)
        let nodes = copies.map { "disk\($0.index)" }
        do {
            try migrationJournal.save(outgoing: entry)
            noteMigration(operation, name, "the destination's QEMU waits on \(ticket.host):\(ticket.port)")
            if !nodes.isEmpty {
                try await copyDisks(nodes, qemu: qemu, ticket: ticket, progress: progress)
                noteMigration(operation, name, "disks copied (\(nodes.count)); writes now go to both hosts")
            }
            if !request.live, wasRunning {
                try await instance.pause()
                noteMigration(operation, name, "guest paused for the copy (no --live)")
            }
            let figures = try await sendMemory(
                qemu: qemu, ticket: ticket, mirrors: nodes, bandwidth: request.bandwidth, progress: progress)
            noteMigration(
                operation, name,
                "memory moved: \(figures.transferred >> 20) MiB, total time \(figures.totalTime) ms, downtime \(figures.downtime) ms")
            try await peer.client.sendIncomingConsole(ticket.id, Self.consoleTail(driver.consoleLogPath(spec)))
            entry.handingOver = true
            try migrationJournal.save(outgoing: entry)
            _ = try await peer.client.finishIncoming(ticket.id, IncomingFinishRequest(running: wasRunning))
            noteMigration(operation, name, "the guest runs on \(peer.url)")
            return "to \(peer.url): total time \(figures.totalTime) ms, downtime \(figures.downtime) ms"
        } catch {
            let cancelled = Task.isCancelled
            // Cleanup runs in a task of its own: a cancelled task's QMP and HTTP calls would fail.
            let outcome = await Task {
                await self.rollBack(
                    instance, qemu: qemu, entry: entry, peer: peer, mirrors: nodes, error: error)
            }.value
            if let outcome { return outcome }
            if cancelled {
                throw BerthError(
                    .wrongState, "The migration of '\(name)' was cancelled; the guest runs on here.",
                    remedy: "Run 'berth migrate' again when you want to move it.")
            }
            throw Self.migrationFailed(error, name: name, destination: peer.url)
        }
    }

    /// A migration that failed after the destination took the offer (the destination gone,
    /// a stream broken): the guest runs on here; the error says so and where to look.
    static func migrationFailed(_ error: any Error, name: String, destination: String) -> BerthError {
        let known = error as? BerthError
        let cause = known?.message ?? "\(error)"
        return BerthError(
            known?.code ?? .unavailable, "The migration of '\(name)' to \(destination) failed; the guest runs on here. \(cause)",
            remedy: known?.remedy
                ?? "Check that berthd on \(destination) is still up (its log says why it stopped), then run 'berth migrate' again.")
    }

    private func copyDisks(_ nodes: [String], qemu: QEMUProcess, ticket: MigrationTicket, progress: ProgressSink) async throws {
        for node in nodes {
            let socket = try await BlockingIO.run {
                try MigrationChannel.connect(host: ticket.host, port: ticket.port, secret: ticket.secret, channel: "nbd")
            }
            defer { close(socket) }
            try await qemu.startMirror(node, over: socket)
        }
        while true {
            try Task.checkCancellation()
            let state = try await qemu.mirrorProgress(nodes)
            progress(state.done, state.total)
            if state.ready { return }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    private func sendMemory(
        qemu: QEMUProcess, ticket: MigrationTicket, mirrors: [String], bandwidth: Int?, progress: @escaping ProgressSink
    ) async throws -> QEMUProcess.MigrationFigures {
        let socket = try await BlockingIO.run {
            try MigrationChannel.connect(host: ticket.host, port: ticket.port, secret: ticket.secret, channel: "memory")
        }
        defer { close(socket) }
        let limit: Int64 = bandwidth.map { Int64($0) << 20 } ?? (1 << 40)
        var completeMirrors: (@Sendable () async throws -> Void)?
        if !mirrors.isEmpty {
            completeMirrors = { @Sendable in try await qemu.endMirrors(mirrors, synchronise: true) }
        }
        return try await qemu.migrateLive(
            over: socket, bandwidth: limit, progress: progress, beforeSwitchover: completeMirrors)
    }

    /// After a failure: if the destination was already told to run the guest and does, the
    /// migration happened (returns the outcome); otherwise everything is undone and the guest
    /// runs on here (returns nil).
    private func rollBack(
        _ instance: any GuestInstance, qemu: QEMUProcess, entry: MigrationJournal.Outgoing, peer: MigrationPeer,
        mirrors: [String], error: any Error
    ) async -> String? {
        if entry.handingOver, await Self.destinationRuns(peer, ticket: entry.ticket) {
            migrationJournal.removeOutgoing(entry.domain)
            return "to \(peer.url) (its answer was lost: \(error))"
        }
        await qemu.cancelMigration()
        if !mirrors.isEmpty { try? await qemu.endMirrors(mirrors, synchronise: false) }
        try? await peer.client.abortIncoming(entry.ticket)
        if let supervisor = try? supervisor(entry.domain) {
            await supervisor.resumeAfterFailedMigration(instance, wasRunning: entry.wasRunning)
        }
        migrationJournal.removeOutgoing(entry.domain)
        return nil
    }

    /// Whether the destination says the guest runs there (its migration `finished`).
    static func destinationRuns(_ peer: MigrationPeer, ticket: String) async -> Bool {
        (try? await peer.client.incoming(ticket))?.phase == .finished
    }

    /// The last `maxBytes` of the console log (the part the guest's readers want to continue).
    static func consoleTail(_ path: String, maxBytes: Int = 8 << 20) -> Data {
        Data(FileBytes.tail(path, maxBytes: maxBytes) ?? [])
    }

    // MARK: - A source berthd killed mid-migration

    /// At start, after re-attaching guests: a migration this berthd was running when it died
    /// ends in exactly one place. Before the destination was asked to run the guest, the
    /// migration is cancelled and the guest runs on here (the destination's half-made copy is
    /// removed, by this request or by the destination's own timeout). After it, the destination
    /// is asked: if the guest runs there, this QEMU ends; if it cannot be reached, the guest
    /// stays paused here with the reason, never run twice.
    func recoverOutgoingMigrations() async {
        for entry in migrationJournal.outgoing() {
            guard let supervisor = try? supervisor(entry.domain), let instance = await supervisor.attachedInstance,
                let qemu = instance.qemuProcess
            else {
                migrationJournal.removeOutgoing(entry.domain)
                continue
            }
            let peer = try? MigrationPeer(url: entry.destination, token: entry.token, options: peerOptions)
            if entry.handingOver {
                if let peer, await Self.destinationRuns(peer, ticket: entry.ticket) {
                    await supervisor.endMigratedSource(instance, detail: "to \(entry.destination) (settled after a restart)")
                    if entry.undefineSource { try? await undefine(entry.domain, keepLogs: false) }
                    migrationJournal.removeOutgoing(entry.domain)
                    continue
                }
                if (try? await peer?.client.incoming(entry.ticket)) == nil {
                    let reason =
                        "berthd stopped while handing this guest over to \(entry.destination), which cannot be asked now; it stays paused here so that it never runs twice. If it does not run there, resume it with 'berth resume \(entry.domain)'."
                    await supervisor.recordMigrationLimbo(reason)
                    continue
                }
            }
            await qemu.cancelMigration()
            try? await peer?.client.abortIncoming(entry.ticket)
            await supervisor.resumeAfterFailedMigration(instance, wasRunning: entry.wasRunning)
            migrationJournal.removeOutgoing(entry.domain)
        }
    }
}
