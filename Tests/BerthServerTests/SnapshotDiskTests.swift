import BerthClient
import BerthModel
import Foundation
import Testing

/// The disk half of snapshots, seen from inside the guest: a file on a mounted ext4 file system
/// comes back with a revert, and one written after the snapshot goes.
@Suite struct SnapshotDiskTests {
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

}
