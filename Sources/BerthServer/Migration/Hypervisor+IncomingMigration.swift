import BerthHost
import BerthModel
import BerthPOSIX
import BerthQEMU
import FoundationEssentials

#if canImport(Glibc)
    import Glibc
#endif

/// One incoming migration on the destination.
struct IncomingMigration: Sendable {
    var journal: MigrationJournal.Incoming
    /// The one-time listener while its accept loop runs (which closes it), then -1.
    var listener: Int32
    var secret: String
    var phase: IncomingMigrationInfo.Phase
    var started: Date
    var finishedAt: Date?
}

/// Live migration, the destination's side (`/v1/migrations…`, called by the source berthd).
extension Hypervisor {
    /// How long a prepared destination waits for the source to finish before it removes itself.
    static var incomingLimit: TimeInterval { 1800 }

    /// Checks the offer, defines the domain, makes the disks to be copied, starts QEMU waiting
    /// for the state and opens the one-time listener. Any refusal comes before anything is made.
    func prepareIncoming(_ offer: IncomingMigrationRequest) async throws -> MigrationTicket {
        try checkIncoming(offer)
        try await checkIncomingCPU(offer)
        let id = UUID().uuidString.lowercased()
        var journal = MigrationJournal.Incoming(
            id: id, domain: offer.spec.name, uuid: offer.spec.uuid, createdFiles: [], createdVolumes: [])
        try migrationJournal.save(incoming: journal)
        do {
            var spec = offer.spec
            for copy in offer.copies {
                spec.disks[copy.index] = try await createCopyTarget(spec.disks[copy.index], bytes: copy.bytes, journal: &journal)
            }
            _ = try define(spec)
            let guest = try await supervisor(spec.name).startIncoming()
            guard let qemu = guest.qemuProcess else { throw BerthError(.unavailable, "This guest driver cannot migrate guests.") }
            if !offer.copies.isEmpty { try await qemu.exportDisks(offer.copies.map { "disk\($0.index)" }) }
            let opened = try MigrationChannel.listen(host: migrationHost)
            let secret = MigrationChannel.secret()
            incoming.withLock {
                $0[id] = IncomingMigration(
                    journal: journal, listener: opened.fd, secret: secret, phase: .waiting, started: Date())
            }
            let accepting = opened.fd
            Task { await self.acceptStreams(id: id, listener: accepting, secret: secret, qemu: qemu) }
            Task { await self.watchIncoming(id) }
            hub.publish(
                LifecycleEvent(domain: spec.name, kind: .migrationProgress, state: .paused, detail: "arriving; QEMU waits for the guest"))
            return MigrationTicket(id: id, domain: spec.name, host: migrationHost, port: opened.port, secret: secret)
        } catch {
            await removeHalfMade(journal)
            throw error
        }
    }

    /// What must hold before anything moves: the name and UUID are free here, the accelerator
    /// and QEMU can load the guest's state, its networks, bridges and pools exist and are
    /// active, and disks that are not copied are already here (shared storage).
    func checkIncoming(_ offer: IncomingMigrationRequest) throws {
        let spec = offer.spec
        if (try? catalog.domain(named: spec.name)) != nil {
            throw BerthError(
                .alreadyExists, "A domain named '\(spec.name)' is already defined on this host.",
                remedy: "Undefine it here first ('berth undefine \(spec.name)'), if it is not the guest's own running copy.")
        }
        try checkAgainstHost(spec)
        // Refusals are 409s: the offer is fine, this host cannot take it.
        let accel = try? AcceleratorProbe.resolve(spec.accel, verdict: driver.acceleratorVerdict())
        guard let accel, accel == offer.accel else {
            throw BerthError(
                .wrongState,
                "The guest runs on \(offer.accel.rawValue) at the source but cannot here (\(driver.acceleratorVerdict().reason)); a guest's CPU state does not move between accelerators.",
                remedy: "Migrate it to a host with the same accelerator (see 'berth host-check' on both).")
        }
        guard let here = driver.qemuVersion() else {
            throw BerthError(.unavailable, "QEMU is not installed on this host.", remedy: "apt-get install qemu-system-x86")
        }
        if let there = offer.qemuVersion, Self.isOlder(here, than: there) {
            throw BerthError(
                .wrongState, "This host's QEMU \(here) is older than the source's \(there); it cannot load the guest's state.",
                remedy: "Upgrade QEMU here, or migrate to a host with QEMU \(there) or newer.")
        }
        for (index, nic) in spec.nics.enumerated() where nic.mode != .user {
            if let network = nic.network {
                guard let record = try? catalog.network(named: network) else {
                    throw BerthError(
                        .notFound, "NIC \(index) of '\(spec.name)' uses network '\(network)', which this host does not have.",
                        remedy: "Define and start '\(network)' on this host ('berth net-define', 'berth net-start'), then migrate again.")
                }
                guard record.active else { throw BerthError.networkInactive(network) }
            } else if nic.mode == .bridge, let bridge = nic.bridge, !HostLinks.isBridge(bridge) {
                throw BerthError(
                    .notFound, "NIC \(index) of '\(spec.name)' is on the bridge '\(bridge)', which this host does not have.",
                    remedy: "Create the bridge here, then migrate again.")
            }
        }
        let copied = Set(offer.copies.map(\.index))
        guard copied.count == offer.copies.count,
            offer.copies.allSatisfy({ spec.disks.indices.contains($0.index) && spec.disks[$0.index].device == .disk })
        else {
            throw BerthError(
                .invalidArgument, "The disks to copy must be distinct disks (not CD-ROMs) of the definition.",
                remedy: "This is a bug in the source berthd; use the same Berth version on both hosts.")
        }
        for (index, disk) in spec.disks.enumerated() {
            if copied.contains(index) {
                if let volume = disk.volume {
                    let parts = volume.split(separator: "/", maxSplits: 1).map(String.init)
                    _ = try activePool(parts.first ?? "")
                    if parts.count == 2, (try? catalog.volume(pool: parts[0], name: parts[1])) != nil {
                        throw BerthError(
                            .alreadyExists, "Volume \(volume) already exists on this host; --copy-storage-all would overwrite it.",
                            remedy: "Delete or rename it here ('berth vol-delete'), or migrate without --copy-storage-all if it is shared.")
                    }
                } else if access(disk.path, F_OK) == 0 {
                    throw BerthError(
                        .alreadyExists, "\(disk.path) already exists on this host; --copy-storage-all would overwrite it.",
                        remedy: "Move that file away here, or migrate without --copy-storage-all if it is the same (shared) disk.")
                }
            } else if access(disk.path, R_OK) != 0 {
                throw BerthError(
                    .notFound, "Disk \(disk.path) of '\(spec.name)' is not on this host.",
                    remedy: "Use --copy-storage-all to copy it, or put it on storage both hosts share.")
            }
        }
    }

    /// The guest's CPU features (as its source QEMU expanded them) are all ones this host's
    /// QEMU can give under the same accelerator: a guest must not lose an instruction set it
    /// found at boot.
    func checkIncomingCPU(_ offer: IncomingMigrationRequest) async throws {
        guard let guest = offer.cpuFeatures, let host = try await driver.cpuFeatures(accel: offer.accel) else { return }
        let missing = CPUFeatures.missing(guest, host: host)
        if !missing.isEmpty { throw CPUFeatures.refusal(missing: missing, accel: offer.accel) }
    }

    /// Makes the empty disk a copy will land on: a volume in the same pool, or a file at the
    /// same path; same format and size, no backing (the copy is whole).
    private func createCopyTarget(_ disk: DiskSpec, bytes: UInt64, journal: inout MigrationJournal.Incoming) async throws
        -> DiskSpec
    {
        var disk = disk
        let format = disk.format ?? .raw
        disk.backing = nil
        if let volume = disk.volume {
            let parts = volume.split(separator: "/", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { throw BerthError(.invalidArgument, "Volume '\(volume)' is not POOL/NAME.") }
            // Recorded once made: a volume that was already there is never the half-made one's.
            let made = try await createVolume(pool: parts[0], VolumeCreateRequest(name: parts[1], capacity: bytes, format: format))
            journal.createdVolumes.append(volume)
            try migrationJournal.save(incoming: journal)
            disk.path = made.path
        } else {
            // Claimed exclusively first: a file that appeared since the check is never overwritten.
            let claimed = open(disk.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
            guard claimed >= 0 else {
                throw BerthError(
                    errno == EEXIST ? .alreadyExists : .unavailable,
                    "Cannot create \(disk.path) for the copy: \(String(cString: strerror(errno))).",
                    remedy: "Check the directory exists here and nothing else is at that path.")
            }
            close(claimed)
            journal.createdFiles.append(disk.path)
            try migrationJournal.save(incoming: journal)
            let outcome = try await QEMUImg.run(["create", "-q", "-f", format.rawValue, disk.path, String(bytes)])
            guard outcome.status == 0 else {
                throw BerthError(
                    .unavailable, "Cannot create \(disk.path) for the copy: \(outcome.output)",
                    remedy: "Check the directory exists and has room for \(bytes >> 20) MiB.")
            }
        }
        return disk
    }

    /// Accepts the source's connections: `nbd` ones are relayed to QEMU's NBD server, the
    /// `memory` one goes to QEMU itself; then the listener closes.
    private func acceptStreams(id: String, listener: Int32, secret: String, qemu: QEMUProcess) async {
        let deadline = Date().addingTimeInterval(Self.incomingLimit)
        defer {
            // Marked closed under the lock `abortIncoming` shuts it down under, so an abort never
            // touches a descriptor number the kernel has handed out again.
            incoming.withLock { $0[id]?.listener = -1 }
            close(listener)
        }
        while true {
            let accepted: (channel: String, fd: Int32)
            do {
                accepted = try await BlockingIO.run { try MigrationChannel.accept(on: listener, secret: secret, deadline: deadline) }
            } catch {
                return  // closed by an abort, or timed out: the watcher removes the rest
            }
            if accepted.channel == "nbd" {
                guard let server = try? qemu.connectToDiskExport() else {
                    close(accepted.fd)
                    continue
                }
                do {
                    try startThread(named: "berthd-migration-nbd") { MigrationChannel.relay(accepted.fd, server) }
                } catch {
                    close(accepted.fd)
                    close(server)
                }
                continue
            }
            do {
                try await qemu.acceptIncoming(over: accepted.fd)
            } catch {
                close(accepted.fd)
                return
            }
            close(accepted.fd)
            return
        }
    }

    /// Removes a prepared destination whose QEMU died (a failed incoming migration) or that the
    /// source never finished.
    private func watchIncoming(_ id: String) async {
        while true {
            try? await Task.sleep(for: .seconds(1))
            guard let entry = incoming.withLock({ $0[id] }) else { return }
            if entry.phase == .finished {
                guard let finishedAt = entry.finishedAt, Date().timeIntervalSince(finishedAt) > 600 else { continue }
                incoming.withLock { _ = $0.removeValue(forKey: id) }
                return
            }
            let alive = (try? await supervisor(entry.journal.domain).isRunning) ?? false
            if !alive || Date().timeIntervalSince(entry.started) > Self.incomingLimit {
                try? await abortIncoming(id)
                return
            }
        }
    }

    func incomingInfo(_ id: String) throws -> IncomingMigrationInfo {
        guard let entry = incoming.withLock({ $0[id] }) else { throw Self.unknownIncoming(id) }
        return IncomingMigrationInfo(id: id, domain: entry.journal.domain, phase: entry.phase)
    }

    /// The source's console log becomes this domain's, before the guest runs here (QEMU appends
    /// to the same file once the guest prints again).
    func writeIncomingConsole(_ id: String, _ log: Data) throws {
        guard let entry = incoming.withLock({ $0[id] }), entry.phase == .waiting else { throw Self.unknownIncoming(id) }
        let path = driver.consoleLogPath(try catalog.domain(named: entry.journal.domain).spec)
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw BerthError(.unavailable, "Cannot write \(path): \(String(cString: strerror(errno))).") }
        defer { close(fd) }
        let written = log.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == log.count else { throw BerthError(.unavailable, "Cannot write \(path): short write.") }
    }

    /// The source's memory migration completed: wait for this QEMU to have loaded it, end the
    /// disk export, and let the guest run here.
    func finishIncoming(_ id: String, _ request: IncomingFinishRequest) async throws -> DomainInfo {
        guard let entry = incoming.withLock({ $0[id] }), entry.phase == .waiting else { throw Self.unknownIncoming(id) }
        let name = entry.journal.domain
        let supervisor = try supervisor(name)
        guard let qemu = await supervisor.attachedInstance?.qemuProcess else {
            throw BerthError(.unavailable, "The incoming guest's QEMU is gone.", remedy: "See the destination's 'berth log \(name)'.")
        }
        try await qemu.waitForIncoming(timeout: .seconds(120))
        await qemu.stopDiskExport()
        // From here on the guest is this host's: a restarted destination must not remove it.
        migrationJournal.removeIncoming(id)
        incoming.withLock {
            $0[id]?.phase = .finished
            $0[id]?.finishedAt = Date()
        }
        try await supervisor.finishIncoming(running: request.running, detail: "migration \(id)")
        return try info(name)
    }

    /// Removes the half-made destination: QEMU, definition, created disks.
    func abortIncoming(_ id: String) async throws {
        guard let entry = incoming.withLock({ $0[id] }), entry.phase == .waiting else { throw Self.unknownIncoming(id) }
        incoming.withLock { table in
            if let listener = table.removeValue(forKey: id)?.listener, listener >= 0 { shutdown(listener, Int32(SHUT_RDWR)) }
        }
        await removeHalfMade(entry.journal)
    }

    private func removeHalfMade(_ journal: MigrationJournal.Incoming) async {
        if let record = try? catalog.domain(named: journal.domain), record.spec.uuid == journal.uuid {
            if let supervisor = try? supervisor(journal.domain) { await supervisor.abortIncoming() }
            // A QEMU an earlier berthd left (no supervisor watches it yet).
            if let orphan = await driver.reattach(record.spec) { await orphan.terminate() }
            try? await undefine(journal.domain, keepLogs: false)
        }
        for volume in journal.createdVolumes {
            let parts = volume.split(separator: "/", maxSplits: 1).map(String.init)
            if parts.count == 2 { try? await deleteVolume(pool: parts[0], name: parts[1]) }
        }
        for path in journal.createdFiles { unlink(path) }
        migrationJournal.removeIncoming(journal.id)
    }

    /// At start, before guests are re-attached: half-made destinations an earlier berthd left
    /// are removed (the source's copy is the guest until `finish`).
    func recoverIncomingMigrations() async {
        for journal in migrationJournal.incoming() { await removeHalfMade(journal) }
    }

    static func unknownIncoming(_ id: String) -> BerthError {
        BerthError(
            .notFound, "No incoming migration \(id) is waiting on this host.",
            remedy: "It finished, was cancelled or timed out; start the migration again from the source.")
    }

    /// Whether QEMU version `a` (`7.2.0`, `7.2.0 (Debian …)`) is older than `b`.
    static func isOlder(_ a: String, than b: String) -> Bool {
        func numbers(_ text: String) -> [Int] {
            (text.split(separator: " ").first ?? "").split(separator: ".").map { Int($0.prefix { $0.isNumber }) ?? 0 }
        }
        let (x, y) = (numbers(a), numbers(b))
        for index in 0..<max(x.count, y.count) {
            let (p, q) = (index < x.count ? x[index] : 0, index < y.count ? y[index] : 0)
            if p != q { return p < q }
        }
        return false
    }
}
