import BerthModel
import BerthQEMU
import BerthStore
import FoundationEssentials
import Glibc

/// External (disk-only) snapshots: each writable disk's file is kept as it is and a new qcow2
/// overlay next to it, backed by that file with its recorded format, takes the guest's writes.
/// berthd makes the overlay with `qemu-img`; a running QEMU gets it as a descriptor and switches
/// to it with one QMP `transaction`. The definition names the overlay and its one backing file,
/// so nothing is ever read from a header. One level: a disk already on an overlay is refused.
extension DomainSupervisor {
    /// The disks an external snapshot covers: every writable disk, each a plain file with no
    /// backing file of its own (the overlay's backing is the only level Berth records).
    func externalSnapshotDisks(_ spec: DomainSpec) throws -> [(index: Int, disk: DiskSpec, format: DiskSpec.Format)] {
        let disks = spec.disks.enumerated().filter { !$0.element.readOnly && $0.element.device == .disk }
        guard !disks.isEmpty else {
            throw BerthError(
                .invalidArgument, "Domain '\(name)' has no writable disk to snapshot.",
                remedy: "Use 'berth save' to keep its memory in a file.")
        }
        return try disks.map { index, disk in
            if disk.backing != nil {
                let owner = (try? catalog.snapshots(name).last(where: { $0.info.overlays?.contains(disk.path) == true }))??.info.name
                throw BerthError(
                    .wrongState,
                    "Disk \(disk.path) is already a qcow2 overlay on \(disk.backing?.path ?? "a backing file"); Berth keeps one level of overlays.",
                    remedy: owner.map {
                        "Merge it first with 'berth snapshot-delete \(name) \($0)' (running or shut off), then take the new snapshot."
                    } ?? "Flatten it with 'qemu-img convert' and define the new file, then take the snapshot.")
            }
            guard disk.extent == nil, !DiskFormat.isBlockDevice(disk.path), let format = disk.format else {
                throw BerthError(
                    .invalidArgument, "Disk \(disk.path) is a block device; an external snapshot's overlay is a file next to the disk.",
                    remedy: "Snapshot it with your volume manager (lvcreate --snapshot), or use a file-backed disk.")
            }
            return (index, disk, format)
        }
    }

    /// `DIR/STEM.SNAP.qcow2` next to the disk (`guest.qcow2` → `guest.before-upgrade.qcow2`).
    static func overlayPath(for disk: String, snapshot: String) -> String {
        let url = URL(fileURLWithPath: disk)
        let stem = ["qcow2", "img", "raw"].contains(url.pathExtension) ? url.deletingPathExtension() : url
        return stem.path + "." + snapshot + ".qcow2"
    }

    /// `qemu-img create` of a qcow2 overlay whose header names exactly `backing` (the path the
    /// definition records) with its recorded format: never probed.
    static func createOverlay(_ path: String, on backing: String, format: DiskSpec.Format) async throws {
        try await QEMUImg.run(["create", "-q", "-f", "qcow2", "-F", format.rawValue, "-b", backing, path])
    }

    func performCreateExternalSnapshot(_ request: SnapshotRequest) async throws -> SnapshotInfo {
        let record = try catalog.domain(named: name)
        let disks = try externalSnapshotDisks(record.spec)
        if instance != nil {
            guard [.running, .paused].contains(record.state), !guestState.isPanicked else {
                throw BerthError(
                    .wrongState, "Domain '\(name)' is \(record.state.rawValue).",
                    remedy: "Snapshot it while it runs, or once it is shut off.")
            }
            try checkLiveDisksMatch(record.spec, what: "snapshotted")
        }
        if try catalog.snapshots(name).contains(where: { $0.info.name == request.name }) {
            throw BerthError(
                .alreadyExists, "Domain '\(name)' already has a snapshot '\(request.name)'.",
                remedy: "Choose another name, or delete it first with 'berth snapshot-delete \(name) \(request.name)'.")
        }
        let overlays = disks.map { Self.overlayPath(for: $0.disk.path, snapshot: request.name) }
        if let taken = overlays.first(where: { FileManager.default.fileExists(atPath: $0) }) {
            throw BerthError(
                .alreadyExists, "The overlay file \(taken) already exists.",
                remedy: "Choose another snapshot name, or move that file away.")
        }
        var spec = record.spec
        for (disk, overlay) in zip(disks, overlays) {
            var on = disk.disk
            on.path = overlay
            on.format = .qcow2
            on.volume = nil
            on.backing = DiskBacking(path: disk.disk.path, format: disk.format, volume: disk.disk.volume)
            spec.disks[disk.index] = on
        }
        let info = SnapshotInfo(
            name: request.name, description: request.description, createdAt: Date(),
            state: instance == nil ? .shutoff : record.state, memory: false, disks: disks.map(\.disk.path), overlays: overlays)
        var made: [String] = []
        do {
            for (disk, overlay) in zip(disks, overlays) {
                try await Self.createOverlay(overlay, on: disk.disk.path, format: disk.format)
                made.append(overlay)
            }
            try catalog.addSnapshot(name, SnapshotRecord(info: info, spec: record.spec), switchingTo: spec)
            if let instance { try await switchLive(instance, to: spec, disks: disks.map(\.index), record: record, snapshot: info.name) }
        } catch {
            for path in made { try? FileManager.default.removeItem(atPath: path) }
            throw error
        }
        publish(.snapshotCreated, detail: request.name)
        return info
    }

    /// Puts the overlays under the running guest; if QEMU refuses, the definition goes back.
    private func switchLive(
        _ instance: any GuestInstance, to spec: DomainSpec, disks: [Int], record: DomainRecord, snapshot: String
    ) async throws {
        let overlays = disks.map { DiskOverlay(node: "disk\($0)", path: spec.disks[$0].path, overlayNode: "disk\($0)-overlay") }
        do {
            try await instance.addOverlays(overlays)
        } catch {
            report { try self.catalog.removeSnapshot(self.name, snapshot, switchingTo: record.spec) }
            throw error
        }
        // The guest's active nodes are now the overlays: recorded, so operations that need a
        // fresh QEMU's node names (save, memory snapshots, migration) say so until a restart.
        var live = try catalog.liveDisks(name)
        for (index, overlay) in zip(disks, overlays) where index < live.count {
            live[index] = LiveDisk(node: overlay.overlayNode, disk: spec.disks[index])
        }
        report { try self.catalog.setLiveDisks(self.name, live) }
    }

    /// The overlays of external snapshot `saved` in the current definition, with the files
    /// they stand on; refused when snapshots taken after it would be lost, or the definition
    /// no longer names them. `merging` skips the disks a partial live merge already put back
    /// on their own file (the definition names the file again and the overlay is gone).
    private func overlaysInDefinition(_ saved: SnapshotRecord, merging: Bool) throws -> [(index: Int, disk: DiskSpec)] {
        let what = merging ? "merging" : "reverting"
        let later = try catalog.snapshots(name).drop { $0.info.name != saved.info.name }.dropFirst().map(\.info.name)
        guard later.isEmpty else {
            throw BerthError(
                .wrongState,
                "Snapshots taken after '\(saved.info.name)' (\(later.joined(separator: ", "))) live in its overlays; \(what) would lose them.",
                remedy: "Delete them first with 'berth snapshot-delete \(name) SNAP'.")
        }
        let spec = try catalog.domain(named: name).spec
        return try zip(saved.info.disks, saved.info.overlays ?? []).compactMap { file, overlay in
            if let index = spec.disks.firstIndex(where: { $0.path == overlay && $0.backing?.path == file }) {
                return (index, spec.disks[index])
            }
            let merged = spec.disks.contains { $0.path == file && $0.backing == nil } && !FileManager.default.fileExists(atPath: overlay)
            if merged && merging { return nil }
            throw merged
                ? BerthError(
                    .wrongState, "Snapshot '\(saved.info.name)' was partly merged into \(file) already; it can no longer be reverted.",
                    remedy: "Finish merging it with 'berth snapshot-delete \(name) \(saved.info.name)'.")
                : BerthError(
                    .wrongState,
                    "The definition of '\(name)' no longer names the overlay \(overlay) on \(file) that snapshot '\(saved.info.name)' made.",
                    remedy: "Put that disk back with 'berth define --update', or forget the snapshot from the catalog by undefining the domain.")
        }
    }

    /// Throws away what the guest wrote since the snapshot: each overlay is replaced by a fresh,
    /// empty one on the same file. Shut-off guests only.
    func performRevertExternalSnapshot(_ saved: SnapshotRecord) async throws {
        guard instance == nil else {
            throw BerthError(
                .wrongState,
                "Domain '\(name)' is running on the overlays of snapshot '\(saved.info.name)'; reverting would pull its disks from under it.",
                remedy:
                    "Shut it off first ('berth shutdown \(name)' or 'berth destroy \(name)'), then revert: what it wrote since the snapshot is discarded."
            )
        }
        let disks = try overlaysInDefinition(saved, merging: false)
        let fresh = disks.map { $0.disk.path + ".berth-new" }
        do {
            for (disk, path) in zip(disks, fresh) {
                guard let backing = disk.disk.backing else { continue }
                try? FileManager.default.removeItem(atPath: path)
                try await Self.createOverlay(path, on: backing.path, format: backing.format)
            }
        } catch {
            for path in fresh { try? FileManager.default.removeItem(atPath: path) }
            throw error
        }
        for (disk, path) in zip(disks, fresh) where rename(path, disk.disk.path) != 0 {
            let why = String(cString: strerror(errno))
            throw BerthError(.unavailable, "Cannot replace \(disk.disk.path): \(why).", remedy: "Check the disk's directory.")
        }
        publish(.snapshotReverted, detail: saved.info.name)
    }

    /// Merges the overlays into the files under them and points the definition back at those
    /// files: `qemu-img commit` while the guest is off, QEMU's active commit while it runs.
    func performDeleteExternalSnapshot(_ saved: SnapshotRecord) async throws {
        let disks = try overlaysInDefinition(saved, merging: true)
        if let instance, !disks.isEmpty { return try await mergeLive(saved, disks: disks, into: instance) }
        var spec = try catalog.domain(named: name).spec
        for disk in disks {
            guard let backing = disk.disk.backing else { continue }
            // -d: the overlay keeps its data, so until the definition changes both read alike.
            try await QEMUImg.run(["commit", "-q", "-d"] + Self.chainOptions(overlay: disk.disk.path, backing: backing))
            spec.disks[disk.index] = Self.diskUnder(disk.disk, in: saved)
        }
        try catalog.removeSnapshot(name, saved.info.name, switchingTo: spec)
        for disk in disks { try? FileManager.default.removeItem(atPath: disk.disk.path) }
        publish(.snapshotDeleted, detail: saved.info.name)
    }

    /// The disk an overlay stands on, as the definition named it when the snapshot was taken.
    private static func diskUnder(_ overlay: DiskSpec, in saved: SnapshotRecord) -> DiskSpec {
        guard let backing = overlay.backing else { return overlay }
        return saved.spec.disks.first { $0.path == backing.path }
            ?? DiskSpec(path: backing.path, format: backing.format, volume: backing.volume)
    }

    /// The running guest's overlays merged by QEMU (`block-commit` of the active layer, then
    /// the switch back); the catalog changes only for disks that switched, the snapshot goes
    /// once all did, and a failure leaves the guest running on its overlays.
    private func mergeLive(
        _ saved: SnapshotRecord, disks: [(index: Int, disk: DiskSpec)], into instance: any GuestInstance
    ) async throws {
        let record = try catalog.domain(named: name)
        guard [.running, .paused].contains(record.state), !guestState.isPanicked else {
            throw BerthError(
                .wrongState, "Domain '\(name)' is \(record.state.rawValue).",
                remedy: "Merge the snapshot while it runs, or once it is shut off.")
        }
        var live = try catalog.liveDisks(name)
        let overlays = try disks.map { try liveOverlay($0, live: live, paused: record.state == .paused, snapshot: saved.info.name) }
        let switched = try await instance.commitOverlays(overlays)
        var spec = record.spec
        for (disk, overlay) in zip(disks, overlays) where switched.contains(overlay) {
            spec.disks[disk.index] = Self.diskUnder(disk.disk, in: saved)
            live[disk.index] = LiveDisk(node: overlay.node, disk: spec.disks[disk.index])
        }
        report { try self.catalog.setLiveDisks(self.name, live) }
        guard switched.count == overlays.count else {
            // The snapshot stays for the disks still on their overlays; the merged ones'
            // overlays go, so deleting it again merges just the rest.
            report { _ = try self.catalog.update(spec) }
            for overlay in switched { try? FileManager.default.removeItem(atPath: overlay.path) }
            throw BerthError(
                .unavailable,
                "Only some disks of '\(name)' were merged (\(switched.map(\.path).joined(separator: ", "))); the others still write to their overlays.",
                remedy: "Run 'berth snapshot-delete \(name) \(saved.info.name)' again to merge the rest, or see the guest's QEMU log.")
        }
        try catalog.removeSnapshot(name, saved.info.name, switchingTo: spec)
        for overlay in overlays { try? FileManager.default.removeItem(atPath: overlay.path) }
        publish(.snapshotDeleted, detail: saved.info.name)
    }

    /// Where the running guest has the overlay `disk` in QEMU's block graph, as Berth named
    /// the nodes: on top of `diskN` as `diskN-overlay` when the snapshot was taken while it
    /// ran, or as `diskN` itself over `diskN-backing` (which QEMU holds read-only) when the
    /// guest was started on it.
    private func liveOverlay(
        _ disk: (index: Int, disk: DiskSpec), live: [LiveDisk], paused: Bool, snapshot: String
    ) throws -> DiskOverlay {
        let id = "disk\(disk.index)"
        let now = disk.index < live.count ? live[disk.index] : nil
        if now?.node == id + "-overlay", now?.disk.path == disk.disk.path {
            return DiskOverlay(node: id, path: disk.disk.path, overlayNode: id + "-overlay")
        }
        guard now?.node == id, now?.disk.path == disk.disk.path, let base = disk.disk.backing, now?.disk.backing == base else {
            throw BerthError(
                .wrongState,
                "Domain '\(name)' does not run on the overlay \(disk.disk.path) as its definition names it (its disks were changed live).",
                remedy: "Shut it off ('berth shutdown \(name)'), then 'berth snapshot-delete \(name) \(snapshot)' again.")
        }
        // QEMU lets go of the read-only descriptors of the file under the overlay only while
        // the guest runs; until then their lock keeps the merge out.
        guard !paused else {
            throw BerthError(
                .wrongState,
                "Domain '\(name)' is paused and was started on the overlay \(disk.disk.path): QEMU can open the file under it for writing only while the guest runs.",
                remedy: "Resume it ('berth resume \(name)'), then 'berth snapshot-delete \(name) \(snapshot)' again.")
        }
        return DiskOverlay(node: id + "-backing", path: disk.disk.path, overlayNode: id, basePath: base.path)
    }

    /// `--image-opts` naming the overlay and its recorded backing file and format: qemu-img
    /// follows no name from a header.
    static func chainOptions(overlay: String, backing: DiskBacking) -> [String] {
        let escape = { (path: String) in path.replacing(",", with: ",,") }
        return [
            "--image-opts",
            "driver=qcow2,file.driver=file,file.filename=\(escape(overlay)),backing.driver=\(backing.format.rawValue),backing.file.driver=file,backing.file.filename=\(escape(backing.path))",
        ]
    }
}
