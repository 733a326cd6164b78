import BerthModel
import BerthQEMU
import BerthStore
import FoundationEssentials

#if canImport(Glibc)
    import Glibc
#endif

/// Bytes done and the total expected, reported as an operation's progress.
typealias ProgressSink = @Sendable (UInt64, UInt64) -> Void

/// Save, restore and managed save: the guest's state to a file and back (QMP migration over a
/// descriptor berthd opened; see `QEMUProcess+Migration.swift`).
extension DomainSupervisor {
    /// Saves the running or paused guest to `path` (which must not exist); its QEMU ends.
    func save(to path: String, state: SavedRunState?, progress: @escaping ProgressSink) async throws {
        try await serialized {
            try await self.performSave(to: path, state: state, replace: false, progress: progress) { _ in }
        }
    }

    /// Saves the guest under the state directory, to be resumed by the next `start` (or by the
    /// next berthd, with `resumeAtDaemonStart`).
    func managedSave(resumeAtDaemonStart: Bool, progress: @escaping ProgressSink) async throws {
        try await serialized { try await self.performManagedSave(resumeAtDaemonStart, progress: progress) }
    }

    /// Restores a saved file onto this (shut-off) domain; the caller's descriptor is closed.
    func restore(_ opened: SaveImage.Opened, path: String, state: SavedRunState?, progress: @escaping ProgressSink)
        async throws
    {
        defer { close(opened.descriptor) }
        try await serialized {
            try await self.performRestore(opened, path: path, state: state, managed: false, progress: progress)
        }
    }

    /// Discards the managed save (`managedsave-remove`): the next start boots afresh.
    func removeManagedSave() async throws {
        try await serialized {
            guard let managed = try self.catalog.managedSave(self.name) else {
                throw BerthError(
                    .notFound, "Domain '\(self.name)' has no managed save.",
                    remedy: "Nothing to remove; 'berth start \(self.name)' boots it.")
            }
            try self.catalog.removeManagedSave(self.name)
            unlink(managed.path)
        }
    }

    // MARK: - Implementation

    func managedSavePath(_ spec: DomainSpec) -> String {
        saveDirectory + "/" + spec.uuid.uuidString.lowercased() + ".save"
    }

    private func performManagedSave(_ resumeAtDaemonStart: Bool, progress: @escaping ProgressSink) async throws {
        let spec = try catalog.domain(named: name).spec
        if mkdir(saveDirectory, 0o700) != 0, errno != EEXIST {
            throw BerthError(
                .unavailable, "Cannot create \(saveDirectory): \(String(cString: strerror(errno))).",
                remedy: "Check that berthd's state directory is writable.")
        }
        let path = managedSavePath(spec)
        try await performSave(to: path, state: nil, replace: true, progress: progress) { state in
            try self.catalog.setManagedSave(
                self.name,
                ManagedSaveInfo(path: path, savedAt: Date(), state: state, resumeAtDaemonStart: resumeAtDaemonStart))
        }
    }

    /// Pauses the guest, streams its state into a new file and ends its QEMU. `commit` runs
    /// once the file is whole and named, before QEMU ends; if it or anything before it fails,
    /// the file goes and the guest runs on as it was.
    private func performSave(
        to path: String, state: SavedRunState?, replace: Bool, progress: @escaping ProgressSink,
        commit: (SavedRunState) throws -> Void
    ) async throws {
        guard let instance else { throw notRunning() }
        let record = try catalog.domain(named: name)
        guard [.running, .paused].contains(record.state), !guestState.isPanicked else {
            throw BerthError(
                .wrongState, "Domain '\(name)' is \(record.state.rawValue); only a running or paused guest can be saved.",
                remedy: "Wait for it to run, or stop it with 'berth destroy \(name)'.")
        }
        try checkLiveDisksMatch(record.spec, what: "saved")
        let wasRunning = record.state == .running
        let runState = state ?? (wasRunning ? .running : .paused)
        let header = SaveImage.Header(
            domain: name, uuid: record.spec.uuid, spec: record.spec, state: runState, savedAt: Date(),
            qemuVersion: driver.qemuVersion())
        let writer = try SaveImage.create(at: path, header: header, replace: replace)
        var named = false
        do {
            // A stopped guest dirties no pages: one pass, the smallest file, a consistent state.
            if wasRunning { try await instance.pause() }
            try await SaveStream.into(writer.descriptor, path: path) { pipe in
                try await instance.save(to: pipe, progress: progress)
            }
            _ = try writer.finish(replace: replace)
            named = true
            try commit(runState)
        } catch {
            if named { unlink(path) } else { writer.abandon() }
            // QEMU is paused (or in `postmigrate`, which `cont` leaves too): carry on as before.
            if wasRunning { try? await instance.resume() }
            throw error
        }
        guestState = .stopping(instance, publishing: .saved, detail: path)
        report { try self.catalog.setDesiredState(self.name, .shutoff) }
        await instance.terminate()
        _ = await waitForExit(of: instance, timeout: .seconds(10))
        if self.instance?.pid == instance.pid { finishExit(of: instance) }
    }

    /// The next `start` after a managed save: restore it, then remove it.
    func resumeManagedSave(_ managed: ManagedSaveInfo) async throws {
        let opened: SaveImage.Opened
        do {
            opened = try SaveImage.open(managed.path)
        } catch let error as BerthError {
            throw BerthError(
                error.code, "Domain '\(name)' has a managed save that cannot be restored: \(error.message)",
                remedy: "Discard it with 'berth managedsave-remove \(name)', then start it again (it boots afresh).")
        }
        defer { close(opened.descriptor) }
        try await performRestore(opened, path: managed.path, state: managed.state, managed: true) { _, _ in }
        report { try self.catalog.removeManagedSave(self.name) }
        unlink(managed.path)
    }

    /// Starts QEMU waiting for incoming state, loads the file, and lets the guest run on (or
    /// stay paused). Any failure leaves the domain shut off and the file as it was.
    private func performRestore(
        _ opened: SaveImage.Opened, path: String, state: SavedRunState?, managed: Bool,
        progress: @escaping ProgressSink
    ) async throws {
        if instance != nil {
            throw BerthError(
                .wrongState, "Domain '\(name)' is running; a saved state can only be restored onto a shut-off domain.",
                remedy: "Stop it first ('berth destroy \(name)'), or save it first with 'berth save \(name) FILE'.")
        }
        let record = try catalog.domain(named: name)
        let changed = SaveImage.differences(saved: opened.header.spec, current: record.spec)
        guard changed.isEmpty else {
            throw BerthError(
                .wrongState,
                "\(path) was saved from another definition of '\(name)' (changed since: \(changed.joined(separator: ", "))); QEMU can only restore a guest into the same machine.",
                remedy: managed
                    ? "Put the old definition back ('berth define --update'), or discard the saved state with 'berth managedsave-remove \(name)' and start afresh."
                    : "Put the definition it was saved with back ('berth define --update'), or start the domain afresh with 'berth start \(name)'.")
        }
        let runState = state ?? opened.header.state
        try catalog.setDesiredState(name, .running)
        try observe(.starting)
        let spec = record.spec
        var started: (any GuestInstance)?
        do {
            let guest = try await launch(spec, paused: true, incoming: true)
            started = guest
            try await guest.restore(from: opened.descriptor, length: opened.streamLength, progress: progress)
            if runState == .running { try await guest.resume() }
        } catch {
            if let started { await started.terminate() }
            let message = (error as? BerthError)?.description ?? "\(error)"
            report { try self.observe(.shutoff, lastError: "Restore from \(path) failed: \(message)") }
            report { try self.catalog.setDesiredState(self.name, .shutoff) }
            throw error
        }
        guard let started else { return }
        attach(started, spec: spec, state: runState == .running ? .running : .paused)
        publish(.restored, detail: "\(path), pid \(started.pid)")
    }

    /// A guest's state only loads into a QEMU with the same devices: one whose disks were
    /// plugged in or out live differs from what its definition would start.
    func checkLiveDisksMatch(_ spec: DomainSpec, what: String) throws {
        let live = try catalog.liveDisks(name)
        guard live.map(\.disk.path) == spec.disks.map(\.path), live.map(\.node) == spec.disks.indices.map({ "disk\($0)" }) else {
            throw BerthError(
                .wrongState,
                "Domain '\(name)' had disks plugged in or out live, or an external snapshot put overlays under it or merged them while it ran, so its state cannot be \(what): its definition would start another machine.",
                remedy: "Detach the live-only disks (or attach them back), or shut it off and start it again first.")
        }
    }
}
