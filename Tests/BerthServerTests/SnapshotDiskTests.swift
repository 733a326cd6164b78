import BerthClient
import BerthModel
import Foundation
import Testing

/// The disk half of snapshots, seen from inside the guest: a file on a mounted ext4 file system
/// comes back with a revert, and one written after the snapshot goes.
@Suite(.bootsGuests) struct SnapshotDiskTests {
    @Test func revertBringsBackTheGuestsFilesAsTheyWere() async throws {
        let daemon = try await TestDaemon()
        defer { daemon.tearDown() }
        let client = daemon.client
        let raw = daemon.stateDirectory + "/fs.raw"
        let disk = daemon.stateDirectory + "/fs.qcow2"
        try await run("/usr/bin/qemu-img", ["create", "-q", "-f", "raw", raw, "16M"])
        try await run("/usr/sbin/mkfs.ext4", ["-q", "-F", "-L", "snapfs", raw])
        try await run("/usr/bin/qemu-img", ["convert", "-f", "raw", "-O", "qcow2", raw, disk])

        var boots = 0
        let uuid = UUID()
        /// Boots the guest with `script` run on the mounted file system; returns what it printed.
        func boot(_ script: String) async throws -> String {
            var spec = try GuestFixture.spec("files", mode: "poweroff")
            spec.uuid = uuid
            spec.disks = [DiskSpec(path: disk, format: .qcow2)]
            spec.cmdline =
                (spec.cmdline ?? "")
                + #" berth.run="mkdir -p /mnt && mount -t ext4 /dev/vda /mnt && cd /mnt && "# + script + #" ; s=$?; cd /; umount /mnt; exit $s""#
            if boots == 0 { _ = try await client.define(spec) } else { _ = try await client.update(spec) }
            boots += 1
            _ = try await client.perform(.start, on: "files")
            let log = try await daemon.waitForLog("files", "BERTH-GUEST-POWEROFF", count: boots, timeout: 120)
            _ = try await daemon.waitForState("files", .shutoff)
            let output = log.components(separatedBy: "BERTH-GUEST-RUN-BEGIN").last ?? ""
            return output.components(separatedBy: "BERTH-GUEST-RUN-END").first ?? ""
        }

        let first = try await boot("echo one > before && sync && ls")
        #expect(first.contains("before"), "first boot: \(first)")
        // Shut off: the snapshot is of the disk only.
        let taken = try await client.createSnapshot("files", SnapshotRequest(name: "clean"))
        #expect(!taken.memory)

        let second = try await boot("rm before && echo two > after && sync && ls")
        #expect(second.contains("after") && !second.contains("before"), "second boot: \(second)")

        let reverted = try await client.revertSnapshot("files", "clean")
        #expect(reverted.state == .shutoff)
        let third = try await boot("ls && cat before")
        #expect(third.contains("before") && third.contains("one"), "after revert: \(third)")
        #expect(!third.contains("after"), "after revert: \(third)")
    }

    /// A 16 MiB ext4 file system (label NAMEfs) in a qcow2 disk, the overlay path a `base`
    /// snapshot of it gets, and a 512-byte raw flag disk the test writes to tell the guest on.
    static func qcow2WithFlag(in state: String, name: String) async throws -> (disk: String, overlay: String, flag: String) {
        let raw = state + "/\(name).raw"
        let disk = state + "/\(name).qcow2"
        let flag = state + "/flag.raw"
        try Data(count: 512).write(to: URL(fileURLWithPath: flag))
        try await run("/usr/bin/qemu-img", ["create", "-q", "-f", "raw", raw, "16M"])
        try await run("/usr/sbin/mkfs.ext4", ["-q", "-F", "-L", "\(name)fs", raw])
        try await run("/usr/bin/qemu-img", ["convert", "-f", "raw", "-O", "qcow2", raw, disk])
        return (disk, state + "/\(name).base.qcow2", flag)
    }

    /// `--disk-only` on a running guest: the overlay takes the writes made after
    /// it; after a shutdown, revert discards them and keeps what was there before; delete merges
    /// the overlay back into the disk's file, which the definition names again.
    @Test func diskOnlySnapshotOfARunningGuestThenRevertAndMerge() async throws {
        let daemon = try await TestDaemon()
        defer { daemon.tearDown() }
        let client = daemon.client
        let state = daemon.stateDirectory
        let (disk, overlay, flag) = try await Self.qcow2WithFlag(in: state, name: "ext")

        let guest = ScriptedDiskGuest(daemon, "ext", disk: disk, flag: flag)

        // A first boot writes `before`. A second one waits for its flag disk to say "go" while
        // the snapshot is taken, then writes `after`.
        try await guest.boot("echo one > before")
        #expect(try await guest.ran().contains("EXT4-fs (vda): mounted"))
        let wait = "until dd if=/dev/vdb bs=2 count=1 2>/dev/null | grep -q go; do echo 3 > /proc/sys/vm/drop_caches; sleep 1; done"
        try await guest.boot(
            "m=MARK && echo SNAPSHOT-$m && " + wait + " && echo two > after && sync && echo FILES: $(ls)", until: "SNAPSHOT-MARK")
        let taken = try await client.createSnapshot("ext", SnapshotRequest(name: "base", diskOnly: true))
        #expect(taken.external && !taken.memory && taken.state == .running)
        #expect(taken.disks == [disk] && taken.overlays == [overlay])
        let switched = try await client.info("ext").spec.disks[0]
        #expect(switched.path == overlay && switched.format == .qcow2)
        #expect(switched.backing == DiskBacking(path: disk, format: .qcow2))
        let listed = try await BerthRun.run(["snapshot-list", "ext"], state: state).stdout
        #expect(listed.contains("base") && listed.contains("(disk only, external)"), "\(listed)")
        let shown = try await BerthRun.run(["snapshot-info", "ext", "base"], state: state).stdout
        #expect(shown.contains("external") && shown.contains(overlay), "\(shown)")
        // Live, the guest stays on its overlay: reverting under it is refused (merging it live
        // is `diskOnlySnapshotMergedWhileTheGuestRuns`).
        let revertLive = try await BerthRun.run(["snapshot-revert", "ext", "base"], state: state)
        #expect(revertLive.status != 0 && revertLive.stderr.contains("Shut it off first"), "\(revertLive.stderr)")

        // The guest goes on when its read-only second disk says so.
        try Data("go".utf8).write(to: URL(fileURLWithPath: flag))
        let first = try await guest.ran()
        #expect(first.contains("FILES: after before lost+found"), "first boot: \(first)")

        let revert = try await BerthRun.run(["snapshot-revert", "ext", "base"], state: state)
        #expect(revert.status == 0 && revert.stdout.contains("discarded"), "\(revert.stdout) \(revert.stderr)")
        try await guest.boot("echo FILES: $(ls) && echo CONTENT: $(cat before) && echo three > later && sync")
        let second = try await guest.ran()
        #expect(second.contains("FILES: before lost+found") && second.contains("CONTENT: one"), "after revert: \(second)")

        // Delete merges the overlay (holding `later`) into the raw file and drops the overlay.
        let merged = try await BerthRun.run(["snapshot-delete", "ext", "base"], state: state)
        #expect(merged.status == 0 && merged.stdout.contains("merged into"), "\(merged.stdout) \(merged.stderr)")
        let back = try await client.info("ext").spec.disks[0]
        #expect(back.path == disk && back.format == .qcow2 && back.backing == nil)
        #expect(!FileManager.default.fileExists(atPath: overlay))
        #expect(try await client.snapshots("ext").isEmpty)
        try await guest.boot("echo FILES: $(ls)")
        let third = try await guest.ran()
        #expect(third.contains("FILES: before later lost+found"), "after merge: \(third)")
    }

    /// `snapshot-delete` of a `--disk-only` snapshot while the guest runs: QEMU merges the
    /// overlay (holding a file the guest wrote after the snapshot) into the disk under it and
    /// switches the guest back; the next boot, from the disk alone, has the file.
    @Test func diskOnlySnapshotMergedWhileTheGuestRuns() async throws {
        let daemon = try await TestDaemon()
        defer { daemon.tearDown() }
        let client = daemon.client
        let state = daemon.stateDirectory
        let (disk, overlay, flag) = try await Self.qcow2WithFlag(in: state, name: "live")

        let guest = ScriptedDiskGuest(daemon, "live", disk: disk, flag: flag, followDefinition: false)
        /// Puts `word` at the start of the flag disk, in place (the file keeps its size).
        func signal(_ word: String) throws {
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: flag))
            defer { try? handle.close() }
            try handle.write(contentsOf: Data(word.utf8))
            try handle.synchronize()
        }
        /// Shell that waits until the flag disk starts with `word`.
        func waitFor(_ word: String) -> String {
            "until dd if=/dev/vdb bs=2 count=1 2>/dev/null | grep -q \(word); do echo 3 > /proc/sys/vm/drop_caches; sleep 1; done"
        }

        try await guest.boot("echo one > before")
        #expect(try await guest.ran().contains("EXT4-fs (vda): mounted"))
        // The second boot writes `after` into the overlay once told, then waits while the
        // overlay is merged under it, then lists its files on the disk it writes to now. (Its
        // marks are made by the shell: the console also shows the kernel's command line.)
        try await guest.boot(
            "m=MARK && echo SNAPSHOT-$m && " + waitFor("go") + " && echo two > after && sync && echo AFTER-$m && "
                + waitFor("ok") + " && echo FILES: $(ls)",
            until: "SNAPSHOT-MARK")
        let taken = try await BerthRun.run(["snapshot-create-as", "live", "base", "--disk-only"], state: state)
        #expect(taken.status == 0, "\(taken.stderr)")
        let pid = try await client.info("live").pid
        try signal("go")
        _ = try await daemon.waitForLog("live", "AFTER-MARK", count: 1)

        let merged = try await BerthRun.run(["snapshot-delete", "live", "base"], state: state)
        #expect(merged.status == 0 && merged.stdout.contains("merged into"), "\(merged.stdout) \(merged.stderr)")
        let info = try await client.info("live")
        #expect(info.state == .running && info.pid == pid)
        #expect(info.spec.disks[0] == DiskSpec(path: disk, format: .qcow2))
        #expect(!FileManager.default.fileExists(atPath: overlay))
        #expect(try await client.snapshots("live").isEmpty)

        try signal("ok")
        let second = try await guest.ran()
        #expect(second.contains("FILES: after before lost+found"), "merged boot: \(second)")
        try await guest.boot("echo FILES: $(ls) && echo CONTENT: $(cat after)")
        let third = try await guest.ran()
        #expect(third.contains("FILES: after before lost+found") && third.contains("CONTENT: two"), "next boot: \(third)")
    }

    /// A guest *started* on the overlay of a `--disk-only` snapshot taken while it was off:
    /// QEMU holds the file under the overlay read-only (`diskN-backing`), so the merge opens it
    /// for writing first. Paused, the merge is refused; running, it merges, the guest goes on
    /// writing to the disk's own file, and the next boot from that file alone has everything.
    @Test func overlayTheGuestWasStartedOnMergedWhileItRuns() async throws {
        let daemon = try await TestDaemon()
        defer { daemon.tearDown() }
        let client = daemon.client
        let state = daemon.stateDirectory
        let (disk, overlay, flag) = try await Self.qcow2WithFlag(in: state, name: "started")

        let guest = ScriptedDiskGuest(daemon, "started", disk: disk, flag: flag)

        try await guest.boot("echo one > before")
        #expect(try await guest.ran().contains("EXT4-fs (vda): mounted"))
        // Shut off: the definition switches to the overlay, and the next start is on it.
        let taken = try await BerthRun.run(["snapshot-create-as", "started", "base", "--disk-only"], state: state)
        #expect(taken.status == 0, "\(taken.stderr)")
        #expect(try await client.info("started").spec.disks[0].backing == DiskBacking(path: disk, format: .qcow2))
        // The guest writes `after` into the overlay, then waits for the flag disk to say "ok"
        // and writes `later` to whatever its disk is then.
        let waitOK = "until dd if=/dev/vdb bs=2 count=1 2>/dev/null | grep -q ok; do echo 3 > /proc/sys/vm/drop_caches; sleep 1; done"
        try await guest.boot(
            "m=MARK && echo two > after && sync && echo AFTER-$m && " + waitOK + " && echo three > later && sync && echo FILES: $(ls)",
            until: "AFTER-MARK")
        let pid = try await client.info("started").pid

        _ = try await client.perform(.suspend, on: "started")
        let paused = try await BerthRun.run(["snapshot-delete", "started", "base"], state: state)
        #expect(paused.status != 0 && paused.stderr.contains("berth resume started"), "\(paused.stdout) \(paused.stderr)")
        #expect(try await client.info("started").spec.disks[0].path == overlay)
        _ = try await client.perform(.resume, on: "started")

        let merged = try await BerthRun.run(["snapshot-delete", "started", "base"], state: state)
        #expect(merged.status == 0 && merged.stdout.contains("merged into"), "\(merged.stdout) \(merged.stderr)")
        let info = try await client.info("started")
        #expect(info.state == .running && info.pid == pid)
        #expect(info.spec.disks[0] == DiskSpec(path: disk, format: .qcow2))
        #expect(!FileManager.default.fileExists(atPath: overlay))
        #expect(try await client.snapshots("started").isEmpty)

        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: flag))
        try handle.write(contentsOf: Data("ok".utf8))
        try handle.synchronize()
        try handle.close()
        let second = try await guest.ran()
        #expect(second.contains("FILES: after before later lost+found"), "merged boot: \(second)")
        try await guest.boot("echo FILES: $(ls) && echo CONTENT: $(cat after) $(cat later)")
        let third = try await guest.ran()
        #expect(third.contains("FILES: after before later lost+found") && third.contains("CONTENT: two three"), "next boot: \(third)")
    }
}

/// The test guest on an ext4 qcow2 disk (`vda`) and a read-only flag disk (`vdb`), booted again
/// and again, each boot running a shell script on the mounted file system and powering off.
final class ScriptedDiskGuest: @unchecked Sendable {
    let daemon: TestDaemon
    let name: String
    let disks: [DiskSpec]
    /// Each boot after the first uses the disks the definition names then (a snapshot may have
    /// switched them); otherwise always `disks`.
    let followDefinition: Bool
    let uuid = UUID()
    private(set) var boots = 0

    init(_ daemon: TestDaemon, _ name: String, disk: String, flag: String, followDefinition: Bool = true) {
        self.daemon = daemon
        self.name = name
        self.disks = [DiskSpec(path: disk, format: .qcow2), DiskSpec(path: flag, format: .raw, readOnly: true)]
        self.followDefinition = followDefinition
    }

    /// Starts the guest with `script`; waits for `until`: the power-off, or a mark the shell
    /// makes (`m=MARK && echo X-$m`: the console also shows the kernel's command line, where
    /// the mark is not yet whole), which each boot makes once.
    func boot(_ script: String, until: String = "BERTH-GUEST-POWEROFF") async throws {
        let client = daemon.client
        var spec = try GuestFixture.spec(name, mode: "poweroff")
        spec.uuid = uuid
        spec.disks = boots > 0 && followDefinition ? try await client.info(name).spec.disks : disks
        spec.cmdline =
            (spec.cmdline ?? "")
            + #" berth.run="mkdir -p /mnt && mount -t ext4 /dev/vda /mnt && cd /mnt && "# + script + #" ; s=$?; cd /; umount /mnt; exit $s""#
        if boots == 0 { _ = try await client.define(spec) } else { _ = try await client.update(spec) }
        boots += 1
        _ = try await client.perform(.start, on: name)
        _ = try await daemon.waitForLog(name, until, count: until == "BERTH-GUEST-POWEROFF" ? boots : 1)
    }

    /// What the last boot's script printed, once the guest is off again.
    func ran() async throws -> String {
        _ = try await daemon.waitForLog(name, "BERTH-GUEST-POWEROFF", count: boots)
        _ = try await daemon.waitForState(name, .shutoff)
        let after = try await daemon.log(name).components(separatedBy: "BERTH-GUEST-RUN-BEGIN").last ?? ""
        return after.components(separatedBy: "BERTH-GUEST-RUN-END").first ?? ""
    }
}
