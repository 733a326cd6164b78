import BerthClient
import BerthModel
import Foundation
import Testing

/// A guest whose disk holds its kernel boots through Berth's bootloader, with no kernel
/// given to Berth (what PyGRUB did for the seed's installed guests).
@Suite(.serialized, .bootsGuests) struct BootloaderBootTests {
    @Test func guestBootsTheKernelFromItsOwnDisk() async throws {
        let daemon = try await TestDaemon()
        defer { daemon.tearDown() }
        let fixture = GuestFixture.directory + "/bootdisk.img"
        guard FileManager.default.fileExists(atPath: fixture) else {
            Issue.record("missing \(fixture): run fixtures/guest/build-bootdisk.sh")
            return
        }
        let disk = daemon.stateDirectory + "/bootdisk.img"
        try FileManager.default.copyItem(atPath: fixture, toPath: disk)
        let spec = DomainSpec(
            name: "fromdisk", memory: 256, bootloader: BootloaderSpec(), disks: [DiskSpec(path: disk, format: .raw)])
        _ = try await daemon.client.define(spec)
        let started = try await daemon.client.perform(.start, on: "fromdisk")
        #expect(started.state == .running)
        // The init prints its marker line right after READY: wait for the marker itself.
        let log = try await daemon.waitForLog("fromdisk", "BERTH-GUEST-MARKER FROM-DISK")
        #expect(log.contains("BERTH-GUEST-READY"))
        _ = try await daemon.client.perform(.destroy, on: "fromdisk")

        // Choosing the menu's second entry (it powers off after its marker).
        var second = try await daemon.client.info("fromdisk").spec
        second.bootloader = BootloaderSpec(entry: "1")
        _ = try await daemon.client.update(second)
        _ = try await daemon.client.perform(.start, on: "fromdisk")
        _ = try await daemon.waitForState("fromdisk", .shutoff)
        #expect(try await daemon.log("fromdisk").contains("BERTH-GUEST-MARKER FROM-DISK-SECOND"))
    }

    @Test func aDiskWithoutKernelIsAClearStartError() async throws {
        let daemon = try await TestDaemon()
        defer { daemon.tearDown() }
        let disk = daemon.stateDirectory + "/empty.img"
        #expect(FileManager.default.createFile(atPath: disk, contents: Data(count: 1 << 20)))
        _ = try await daemon.client.define(
            DomainSpec(name: "blank", bootloader: BootloaderSpec(), disks: [DiskSpec(path: disk, format: .raw)]))
        do {
            _ = try await daemon.client.perform(.start, on: "blank")
            Issue.record("a blank disk started")
        } catch let error as BerthError {
            #expect(error.message.contains("found nothing to boot"))
            #expect(error.remedy?.contains("berth bootloader --list-entries") == true)
        }
        let info = try await daemon.client.info("blank")
        #expect(info.state == .shutoff)
        #expect(info.lastError?.contains("nothing to boot") == true)
    }
}
