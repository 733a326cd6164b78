import BerthModel
import BerthQEMU
import BerthStore
import Foundation
import Testing

@testable import BerthServer

/// External snapshots that fail half-way leave the disks and the definition as they were: the
/// overlays berthd made are removed again. Real qemu-img, a fake guest driver (whose QEMU
/// refuses the overlays) and a real catalog.
@Suite struct ExternalSnapshotTests {
    @Test func qemuRefusingTheOverlaysLeavesDiskAndDefinitionAsTheyWere() async throws {
        let host = try SupervisorPolicyTests.Host()
        defer { host.remove() }
        let disk = host.directory + "/d.raw"
        #expect(FileManager.default.createFile(atPath: disk, contents: Data(count: 1 << 20)))
        try host.define("x") { $0.disks = [DiskSpec(path: disk, format: .raw)] }
        let before = try host.hypervisor.catalog.domain(named: "x").spec
        let supervisor = try host.hypervisor.supervisor("x")
        try await supervisor.start()
        await #expect(throws: BerthError.self) {
            _ = try await supervisor.createSnapshot(SnapshotRequest(name: "s", diskOnly: true))
        }
        #expect(!FileManager.default.fileExists(atPath: host.directory + "/d.s.qcow2"))
        #expect(try host.hypervisor.catalog.domain(named: "x").spec == before)
        #expect(try host.hypervisor.catalog.snapshots("x").isEmpty)
    }

    @Test func aFailedOverlayRemovesTheOnesAlreadyMade() async throws {
        let host = try SupervisorPolicyTests.Host()
        defer { host.remove() }
        let (first, second) = (host.directory + "/a.raw", host.directory + "/b.qcow2")
        #expect(FileManager.default.createFile(atPath: first, contents: Data(count: 1 << 20)))
        try await run("/usr/bin/qemu-img", ["create", "-q", "-f", "qcow2", second, "1M"])
        // The second overlay's path leads nowhere: qemu-img cannot create it.
        try FileManager.default.createSymbolicLink(atPath: host.directory + "/b.s.qcow2", withDestinationPath: "/nonexistent/x")
        try host.define("y") { $0.disks = [DiskSpec(path: first, format: .raw), DiskSpec(path: second, format: .qcow2)] }
        let before = try host.hypervisor.catalog.domain(named: "y").spec
        let supervisor = try host.hypervisor.supervisor("y")
        await #expect(throws: BerthError.self) {
            _ = try await supervisor.createSnapshot(SnapshotRequest(name: "s", diskOnly: true))
        }
        #expect(!FileManager.default.fileExists(atPath: host.directory + "/a.s.qcow2"))
        #expect(try host.hypervisor.catalog.domain(named: "y").spec == before)
        #expect(try host.hypervisor.catalog.snapshots("y").isEmpty)
    }

    @Test func aFailedLiveMergeLeavesTheGuestRunningOnItsOverlay() async throws {
        let host = try SupervisorPolicyTests.Host()
        defer { host.remove() }
        host.driver.state.withLock { $0.acceptOverlays = true }
        let disk = host.directory + "/m.raw"
        #expect(FileManager.default.createFile(atPath: disk, contents: Data(count: 1 << 20)))
        try host.define("m") { $0.disks = [DiskSpec(path: disk, format: .raw)] }
        let supervisor = try host.hypervisor.supervisor("m")
        try await supervisor.start()
        _ = try await supervisor.createSnapshot(SnapshotRequest(name: "s", diskOnly: true))
        let overlay = host.directory + "/m.s.qcow2"
        let onOverlay = try host.hypervisor.catalog.domain(named: "m").spec
        let liveBefore = try host.hypervisor.catalog.liveDisks("m")
        #expect(onOverlay.disks[0].path == overlay && liveBefore.map(\.node) == ["disk0-overlay"])

        let error = await #expect(throws: BerthError.self) { try await supervisor.deleteSnapshot("s") }
        #expect(error?.message.contains("fake failure") == true)
        #expect(host.driver.lastGuest?.requests.contains("commitOverlays") == true)
        #expect(host.driver.lastGuest?.requests.contains("terminate") == false)
        #expect(try host.hypervisor.catalog.domain(named: "m").state == .running)
        #expect(try host.hypervisor.catalog.domain(named: "m").spec == onOverlay)
        #expect(try host.hypervisor.catalog.liveDisks("m") == liveBefore)
        #expect(try host.hypervisor.catalog.snapshots("m").map(\.info.name) == ["s"])
        #expect(FileManager.default.fileExists(atPath: overlay))
    }

    /// Two disks on live overlays; QEMU switches the first back and fails the second at the
    /// pivot. The guest runs on, the catalog says exactly that (first disk on its file, second
    /// on its overlay, the snapshot kept for it), and deleting the snapshot again merges the rest.
    @Test func aPartlyFailedLiveMergeKeepsTheGuestAndTheCatalogConsistent() async throws {
        let host = try SupervisorPolicyTests.Host()
        defer { host.remove() }
        host.driver.state.withLock { $0.acceptOverlays = true }
        let (first, second) = (host.directory + "/p.raw", host.directory + "/q.raw")
        for disk in [first, second] { #expect(FileManager.default.createFile(atPath: disk, contents: Data(count: 1 << 20))) }
        try host.define("two") { $0.disks = [DiskSpec(path: first, format: .raw), DiskSpec(path: second, format: .raw)] }
        let before = try host.hypervisor.catalog.domain(named: "two").spec
        let supervisor = try host.hypervisor.supervisor("two")
        try await supervisor.start()
        _ = try await supervisor.createSnapshot(SnapshotRequest(name: "s", diskOnly: true))
        let overlays = [host.directory + "/p.s.qcow2", host.directory + "/q.s.qcow2"]
        let onOverlays = try host.hypervisor.catalog.domain(named: "two").spec
        #expect(onOverlays.disks.map(\.path) == overlays)
        let guest = try #require(host.driver.lastGuest)
        guest.mergeSwitches.withLock { $0 = 1 }

        let error = await #expect(throws: BerthError.self) { try await supervisor.deleteSnapshot("s") }
        #expect(error?.message.contains("Only some disks") == true && error?.message.contains(overlays[0]) == true)
        #expect(error?.remedy?.contains("snapshot-delete two s") == true)
        #expect(!guest.requests.contains("terminate"))
        let record = try host.hypervisor.catalog.domain(named: "two")
        #expect(record.state == .running && record.pid == guest.pid)
        #expect(record.spec.disks[0] == before.disks[0] && record.spec.disks[1] == onOverlays.disks[1])
        #expect(try host.hypervisor.catalog.liveDisks("two").map(\.node) == ["disk0", "disk1-overlay"])
        #expect(try host.hypervisor.catalog.snapshots("two").map(\.info.name) == ["s"])
        #expect(!FileManager.default.fileExists(atPath: overlays[0]) && FileManager.default.fileExists(atPath: overlays[1]))

        // Deleting it again merges only the disk still on its overlay.
        guest.mergeSwitches.withLock { $0 = 2 }
        try await supervisor.deleteSnapshot("s")
        #expect(try host.hypervisor.catalog.domain(named: "two").spec == before)
        #expect(try host.hypervisor.catalog.liveDisks("two").map(\.node) == ["disk0", "disk1"])
        #expect(try host.hypervisor.catalog.snapshots("two").isEmpty)
        #expect(!overlays.contains { FileManager.default.fileExists(atPath: $0) })
        #expect(guest.requests.filter { $0 == "commitOverlays" }.count == 2)
    }

    @Test func shutOffSnapshotSwitchesToTheOverlayAndBack() async throws {
        let host = try SupervisorPolicyTests.Host()
        defer { host.remove() }
        let disk = host.directory + "/c.img"
        #expect(FileManager.default.createFile(atPath: disk, contents: Data(count: 1 << 20)))
        try host.define("z") { $0.disks = [DiskSpec(path: disk, format: .raw)] }
        let before = try host.hypervisor.catalog.domain(named: "z").spec
        let supervisor = try host.hypervisor.supervisor("z")
        let taken = try await supervisor.createSnapshot(SnapshotRequest(name: "s1", diskOnly: true))
        let overlay = host.directory + "/c.s1.qcow2"
        #expect(taken.overlays == [overlay] && taken.state == .shutoff)
        let disks = try host.hypervisor.catalog.domain(named: "z").spec.disks
        #expect(disks.map(\.path) == [overlay] && disks[0].backing == DiskBacking(path: disk, format: .raw))
        #expect(try DiskFormat.probe(path: overlay).backingFile == disk)

        // One level: a second external snapshot says to merge the first.
        await #expect(throws: BerthError.self) {
            _ = try await supervisor.createSnapshot(SnapshotRequest(name: "s2", diskOnly: true))
        }
        // An internal snapshot inside the overlay blocks revert and merge until it is deleted.
        _ = try await supervisor.createSnapshot(SnapshotRequest(name: "inside"))
        await #expect(throws: BerthError.self) { try await supervisor.revertSnapshot("s1") }
        try await supervisor.deleteSnapshot("inside")

        try await supervisor.revertSnapshot("s1")
        #expect(try DiskFormat.probe(path: overlay).backingFile == disk)
        try await supervisor.deleteSnapshot("s1")
        #expect(try host.hypervisor.catalog.domain(named: "z").spec == before)
        #expect(!FileManager.default.fileExists(atPath: overlay))
    }
}
