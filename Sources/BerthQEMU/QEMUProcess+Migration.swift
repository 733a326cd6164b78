import BerthModel
import FoundationEssentials

#if canImport(Glibc)
    import Glibc
#endif

/// Moving a guest's state: QMP migration to and from a descriptor berthd opened, and internal
/// qcow2 snapshots as QMP jobs.
///
/// QEMU runs under `-sandbox …,spawn=deny` and opens no host path, so `exec:` and `file:`
/// migration are out: berthd hands a descriptor over with SCM_RIGHTS (`getfd`), and QEMU
/// migrates to `fd:NAME`. A save gets a pipe that berthd drains into the file (`SaveStream`);
/// a restore reads the file itself, sequentially from its current offset (the open file
/// description is shared), so berthd puts its own header before the stream and reads QEMU's
/// position back for progress.
extension QEMUProcess {
    /// How often a save or restore asks QEMU whether it is done. A 256 MiB save takes about
    /// 0.2 s, so a 20 ms poll added 10 ms on average to every save and restore
    /// (`bench/migrate.py`); one `query-migrate` is a few microseconds of QEMU's time.
    static let migrationPoll = Duration.milliseconds(5)

    /// Bytes done and the total expected (0 when unknown).
    public typealias MigrationProgress = @Sendable (_ done: UInt64, _ total: UInt64) -> Void

    /// Writes the guest's memory and device state to `descriptor` (from its current offset),
    /// polling `query-migrate` until QEMU reports `completed`. The vCPUs should already be
    /// stopped (a stopped guest dirties no pages: one pass, the smallest file). On success QEMU
    /// stays in `postmigrate`; the caller quits it, or `cont`s it to go on running.
    ///
    /// - Throws: `BerthError(.unavailable)` with QEMU's reason when the migration fails (the
    ///   guest is left as it was: paused, its disks active again after `cont`).
    public func migrateOut(to descriptor: Int32, progress: MigrationProgress) async throws {
        do {
            // QEMU's default bandwidth limit (32 MiB/s) is for live migration over a network; a
            // file takes what the disk gives (libvirt lifts it for `virsh save` too).
            try await qmp.execute(
                "migrate-set-parameters", arguments: ["max-bandwidth": .int(1 << 40)], timeout: .seconds(10))
            try await qmp.execute("getfd", arguments: ["fdname": .string("berth-migration")], passing: descriptor)
            try await qmp.execute("migrate", arguments: ["uri": .string("fd:berth-migration")], timeout: .seconds(30))
        } catch let error as QMP.Error {
            throw BerthError(
                .unavailable, "QEMU could not begin saving the guest: \(error)",
                remedy: "See the guest's QEMU log ('berth log'); the guest was not changed.")
        }
        while true {
            let info: QMP.Value
            do {
                info = try await qmp.execute("query-migrate", timeout: .seconds(30))
            } catch let error as QMP.Error {
                throw error.berthError
            }
            let status = info["status"]?.string ?? "none"
            // QEMU's own count: the descriptor may be a pipe, which has no offset to read back.
            let written = info["ram"]?["transferred"]?.int.map { UInt64(max($0, 0)) } ?? 0
            let total = info["ram"]?["total"]?.int.map { UInt64(max($0, 0)) } ?? 0
            progress(written, max(total, written))
            switch status {
            case "completed":
                return
            case "failed", "cancelled":
                let reason = info["error-desc"]?.string ?? status
                throw BerthError(
                    .unavailable, "QEMU could not save the guest: \(reason)",
                    remedy: "Check the target's file system has room for the guest's memory, then try again.")
            default:
                try await Task.sleep(for: Self.migrationPoll)
            }
        }
    }

    /// Loads a guest's state saved by `migrateOut` into a QEMU started with `-S -incoming defer`,
    /// reading `descriptor` from its current offset; QEMU stays paused when done.
    ///
    /// - Parameter total: the stream's length, for progress.
    /// - Throws: `BerthError(.unavailable)`; QEMU exits by itself when an incoming migration fails.
    public func migrateIn(from descriptor: Int32, total: UInt64, progress: MigrationProgress) async throws {
        let start = lseek(descriptor, 0, SEEK_CUR)
        do {
            try await qmp.execute("getfd", arguments: ["fdname": .string("berth-migration")], passing: descriptor)
            try await qmp.execute(
                "migrate-incoming", arguments: ["uri": .string("fd:berth-migration")], timeout: .seconds(30))
        } catch let error as QMP.Error {
            throw BerthError(
                .unavailable, "QEMU could not begin restoring the guest: \(error)",
                remedy: "See the guest's QEMU log ('berth log'); the saved file was not changed.")
        }
        while true {
            let info: QMP.Value
            do {
                info = try await qmp.execute("query-migrate", timeout: .seconds(30))
            } catch let error as QMP.Error {
                throw BerthError(
                    .unavailable, "QEMU stopped while restoring the guest: \(error)",
                    remedy: "The saved file may be damaged or from another QEMU; see the guest's QEMU log.")
            }
            let position = lseek(descriptor, 0, SEEK_CUR)
            progress(position >= start && start >= 0 ? UInt64(position - start) : 0, total)
            switch info["status"]?.string ?? "none" {
            case "completed":
                progress(total, total)
                return
            case "failed", "cancelled":
                throw BerthError(
                    .unavailable, "QEMU could not restore the guest: \(info["error-desc"]?.string ?? "migration failed")",
                    remedy: "The saved file may be damaged or from another QEMU version.")
            default:
                try await Task.sleep(for: Self.migrationPoll)
            }
        }
    }

    /// Runs a snapshot job (`snapshot-save`, `snapshot-load`, `snapshot-delete`) and waits for
    /// it to conclude, then dismisses it.
    ///
    /// - Parameters:
    ///   - command: the job command.
    ///   - tag: the snapshot's name in every qcow2 image.
    ///   - vmstate: the format node that receives the memory state (`snapshot-save`/`-load`).
    ///   - devices: the format nodes (`diskN`) to snapshot.
    public func snapshotJob(_ command: String, tag: String, vmstate: String?, devices: [String]) async throws {
        let jobID = "berth-\(command)-\(UUID().uuidString.prefix(8).lowercased())"
        var arguments: [String: QMP.Value] = [
            "job-id": .string(jobID), "tag": .string(tag), "devices": .array(devices.map(QMP.Value.string)),
        ]
        if let vmstate { arguments["vmstate"] = .string(vmstate) }
        do {
            try await qmp.execute(command, arguments: arguments, timeout: .seconds(30))
        } catch let error as QMP.Error {
            throw BerthError(.unavailable, "QEMU refused \(command): \(error)", remedy: "See the guest's QEMU log.")
        }
        while true {
            let jobs: QMP.Value
            do {
                jobs = try await qmp.execute("query-jobs", timeout: .seconds(30))
            } catch let error as QMP.Error {
                throw error.berthError
            }
            guard let job = jobs.array?.first(where: { $0["id"]?.string == jobID }) else {
                throw BerthError(.internal, "QEMU's \(command) job disappeared.")
            }
            if job["status"]?.string == "concluded" {
                _ = try? await qmp.execute("job-dismiss", arguments: ["id": .string(jobID)], timeout: .seconds(10))
                if let error = job["error"]?.string {
                    throw BerthError(.unavailable, "QEMU's \(command) failed: \(error)", remedy: "See the guest's QEMU log.")
                }
                return
            }
            try await Task.sleep(for: .milliseconds(100))
        }
    }
}
