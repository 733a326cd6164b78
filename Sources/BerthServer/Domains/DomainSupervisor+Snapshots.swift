import BerthModel
import BerthQEMU
import BerthStore
import FoundationEssentials
import Glibc

/// Internal snapshots of qcow2 disks: with the guest's memory while it runs (QMP
/// `snapshot-save`/`-load`/`-delete` jobs on the disks' format nodes), disks only while it is
/// shut off (`qemu-img snapshot`). The catalog lists them; the images hold them. External
/// (`--disk-only`) snapshots are in `DomainSupervisor+ExternalSnapshots.swift`.
extension DomainSupervisor {
    func createSnapshot(_ request: SnapshotRequest) async throws -> SnapshotInfo {
        try await serialized { try await self.performCreateSnapshot(request) }
    }

    func revertSnapshot(_ snapshot: String) async throws {
        try await serialized { try await self.performRevertSnapshot(snapshot) }
    }

    func deleteSnapshot(_ snapshot: String) async throws {
        try await serialized { try await self.performDeleteSnapshot(snapshot) }
    }

    /// The writable disks a snapshot covers, with their format node names (`diskN`), all qcow2.
    private func snapshotDisks(_ spec: DomainSpec) throws -> [(path: String, node: String)] {
        let disks = spec.disks.enumerated().filter { !$0.element.readOnly && $0.element.device == .disk }
        guard !disks.isEmpty else {
            throw BerthError(
                .invalidArgument, "Domain '\(name)' has no writable disk, and snapshots are kept inside qcow2 disks.",
                remedy:
                    "Give it a qcow2 disk ('berth vol-create-as default \(name) 8G --format qcow2'), or use 'berth save' to keep its memory in a file."
            )
        }
        let raw = disks.filter { $0.element.format != .qcow2 }.map(\.element.path)
        guard raw.isEmpty else {
            throw BerthError(
                .invalidArgument,
                "Domain '\(name)' has raw disks (\(raw.joined(separator: ", "))); a snapshot lives inside qcow2 images, and a raw file has no room for one.",
                remedy:
                    "Shut it off and convert each disk: 'qemu-img convert -f raw -O qcow2 DISK DISK.qcow2', then point the definition at the new files ('berth define --update'). Or keep the guest's state in a file with 'berth save'."
            )
        }
        return disks.map { (path: $0.element.path, node: "disk\($0.offset)") }
    }

    static func checkSnapshotName(_ snapshot: String) throws {
        let allowed = snapshot.utf8.allSatisfy { byte in
            (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte)
                || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".")
        }
        guard (1...64).contains(snapshot.utf8.count), allowed, !snapshot.hasPrefix("-"), !snapshot.hasPrefix(".") else {
            throw BerthError(
                .invalidArgument, "'\(snapshot)' is not a snapshot name.",
                remedy: "Use 1–64 letters, digits, '-', '_' or '.', not starting with '-' or '.'.")
        }
    }

    private func performCreateSnapshot(_ request: SnapshotRequest) async throws -> SnapshotInfo {
        try Self.checkSnapshotName(request.name)
        if request.diskOnly == true { return try await performCreateExternalSnapshot(request) }
        let record = try catalog.domain(named: name)
        let disks = try snapshotDisks(record.spec)
        if instance != nil { try checkLiveDisksMatch(record.spec, what: "snapshotted") }
        if try catalog.snapshots(name).contains(where: { $0.info.name == request.name }) {
            throw BerthError(
                .alreadyExists, "Domain '\(name)' already has a snapshot '\(request.name)'.",
                remedy: "Choose another name, or delete it first with 'berth snapshot-delete \(name) \(request.name)'.")
        }
        let memory: Bool
        let state: DomainState
        if let instance {
            guard [.running, .paused].contains(record.state), !guestState.isPanicked else {
                throw BerthError(
                    .wrongState, "Domain '\(name)' is \(record.state.rawValue).",
                    remedy: "Snapshot it while it runs, or once it is shut off.")
            }
            // The memory state goes into the first disk's image.
            try await instance.snapshot("snapshot-save", tag: request.name, vmstate: disks[0].node, devices: disks.map(\.node))
            memory = true
            state = record.state
        } else {
            var done: [String] = []
            do {
                for disk in disks {
                    try await QEMUImg.run(["snapshot", "-c", request.name] + Self.imageOptions(disk.path))
                    done.append(disk.path)
                }
            } catch {
                for path in done { _ = try? await QEMUImg.run(["snapshot", "-d", request.name] + Self.imageOptions(path)) }
                throw error
            }
            memory = false
            state = .shutoff
        }
        let info = SnapshotInfo(
            name: request.name, description: request.description, createdAt: Date(), state: state, memory: memory,
            disks: disks.map(\.path))
        do {
            try catalog.addSnapshot(name, SnapshotRecord(info: info, spec: record.spec))
        } catch {
            try? await removeFromImages(request.name, disks: disks)
            throw error
        }
        publish(.snapshotCreated, detail: request.name)
        return info
    }

    private func performRevertSnapshot(_ snapshot: String) async throws {
        let saved = try catalog.snapshot(name, snapshot)
        if saved.info.external { return try await performRevertExternalSnapshot(saved) }
        let record = try catalog.domain(named: name)
        let disks = try snapshotDisks(record.spec)
        try checkStillOn(saved, disks: disks)
        if saved.info.memory {
            let changed = SaveImage.differences(saved: saved.spec, current: record.spec)
            guard changed.isEmpty else {
                throw BerthError(
                    .wrongState,
                    "Snapshot '\(snapshot)' was taken with another definition of '\(name)' (changed since: \(changed.joined(separator: ", "))); its memory state only loads into the same machine.",
                    remedy: "Put that definition back with 'berth define --update', then revert.")
            }
            var guest = instance
            var startedHere = false
            if guest == nil {
                // Start with the vCPUs stopped, then load: nothing of a fresh boot runs.
                try catalog.setDesiredState(name, .running)
                try observe(.starting)
                do {
                    let started = try await launch(record.spec, paused: true)
                    guest = started
                    startedHere = true
                    attach(started, spec: record.spec, state: .paused)
                } catch {
                    report { try self.observe(.shutoff, lastError: "Revert to '\(snapshot)' failed: \(error)") }
                    report { try self.catalog.setDesiredState(self.name, .shutoff) }
                    throw error
                }
            }
            guard let guest else { return }
            do {
                try await guest.snapshot("snapshot-load", tag: snapshot, vmstate: disks[0].node, devices: disks.map(\.node))
            } catch {
                if startedHere {
                    guestState = .stopping(guest, publishing: .stopped, detail: "revert to '\(snapshot)' failed")
                    report { try self.catalog.setDesiredState(self.name, .shutoff) }
                    await guest.terminate()
                }
                throw error
            }
            // The snapshot's own run state: QEMU resumes after a load only if it was running.
            let running = (try? catalog.domain(named: name).state) == .running
            if saved.info.state == .running, !running || startedHere {
                try await guest.resume()
                try observe(.running, pid: guest.pid, accel: guest.accel)
            } else if saved.info.state == .paused, running {
                try await guest.pause()
                try observe(.paused, pid: guest.pid, accel: guest.accel)
            }
        } else {
            guard instance == nil else {
                throw BerthError(
                    .wrongState,
                    "Snapshot '\(snapshot)' holds disks only (it was taken while '\(name)' was shut off), and the guest is running on them.",
                    remedy: "Stop it first ('berth destroy \(name)'), then revert.")
            }
            for disk in disks { try await QEMUImg.run(["snapshot", "-a", snapshot] + Self.imageOptions(disk.path)) }
        }
        publish(.snapshotReverted, detail: snapshot)
    }

    private func performDeleteSnapshot(_ snapshot: String) async throws {
        let saved = try catalog.snapshot(name, snapshot)
        if saved.info.external { return try await performDeleteExternalSnapshot(saved) }
        var disks = try snapshotDisks(try catalog.domain(named: name).spec)
        if instance == nil {
            // Shut off, qemu-img reaches the images it was taken in, even under an overlay now.
            disks = saved.info.disks.enumerated().map { (path: $0.element, node: "disk\($0.offset)") }
        } else {
            try checkStillOn(saved, disks: disks)
        }
        try await removeFromImages(snapshot, disks: disks)
        try catalog.removeSnapshot(name, snapshot)
        publish(.snapshotDeleted, detail: snapshot)
    }

    /// An internal snapshot lives in the images it was taken in; once an external snapshot put
    /// overlays over them, the guest's disks are other files.
    private func checkStillOn(_ saved: SnapshotRecord, disks: [(path: String, node: String)]) throws {
        guard saved.info.disks == disks.map(\.path) else {
            throw BerthError(
                .wrongState,
                "Snapshot '\(saved.info.name)' is inside \(saved.info.disks.joined(separator: ", ")), but '\(name)' now uses \(disks.map(\.path).joined(separator: ", ")) (an external snapshot was taken since, or the disks changed).",
                remedy: "Shut it off and delete the later external snapshot first (that merges its overlays), then revert.")
        }
    }

    /// `qemu-img snapshot` has no `-f`: name the recorded format with `--image-opts`, so the
    /// image is never probed (a guest-written header must not choose the driver).
    static func imageOptions(_ path: String) -> [String] {
        ["--image-opts", "driver=qcow2,file.driver=file,file.filename=" + path.replacing(",", with: ",,")]
    }

    private func removeFromImages(_ snapshot: String, disks: [(path: String, node: String)]) async throws {
        if let instance {
            try await instance.snapshot("snapshot-delete", tag: snapshot, vmstate: nil, devices: disks.map(\.node))
        } else {
            for disk in disks {
                let listing = try await QEMUImg.run(["snapshot", "-l"] + Self.imageOptions(disk.path))
                // An image that lacks it (removed by hand) is fine: the goal is that it is gone.
                guard
                    listing.output.split(separator: "\n").contains(where: { $0.split(separator: " ").dropFirst().first.map(String.init) == snapshot })
                else { continue }
                try await QEMUImg.run(["snapshot", "-d", snapshot] + Self.imageOptions(disk.path))
            }
        }
    }
}
