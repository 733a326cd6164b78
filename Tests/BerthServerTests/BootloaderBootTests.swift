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

    /// UEFI with Berth's bootloader, as a libvirt document gives them (`<bootloader>` beside
    /// `<os firmware='efi'>`): berth-bootloader reads the kernel from the guest's disk, berthd
    /// hands it to QEMU (`-kernel` on a descriptor) beside OVMF's two pflash chips, and OVMF
    /// starts it through its EFI stub. `dumpxml` names the loader and the store berthd made,
    /// and defining that document again gives the same firmware.
    @Test func uefiGuestBootsTheKernelFromItsOwnDisk() async throws {
        try FirmwareTests.requireUEFI()
        let daemon = try await TestDaemon()
        defer { daemon.tearDown() }
        let state = daemon.stateDirectory
        let fixture = GuestFixture.directory + "/bootdisk.img"
        guard FileManager.default.fileExists(atPath: fixture) else {
            Issue.record("missing \(fixture): run fixtures/guest/build-bootdisk.sh")
            return
        }
        let disk = state + "/efidisk.img"
        try FileManager.default.copyItem(atPath: fixture, toPath: disk)
        let file = state + "/efidisk.xml"
        try """
        <domain type='qemu'><name>efidisk</name><memory unit='MiB'>256</memory>
          <bootloader>/usr/bin/pygrub</bootloader>
          <os firmware='efi'><type arch='x86_64'>hvm</type></os>
          <features><acpi/></features>
          <devices>
            <disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='\(disk)'/><target dev='vda' bus='virtio'/></disk>
          </devices>
        </domain>
        """.write(toFile: file, atomically: true, encoding: .utf8)
        let define = try await BerthRun.run(["define", file], state: state)
        #expect(define.status == 0, "\(define.stderr)")
        let defined = try await daemon.client.info("efidisk").spec
        let firmware = try #require(defined.firmware)
        #expect(firmware.kind == .uefi && firmware.loader == FirmwareSpec.defaultLoader && firmware.nvram != nil)
        #expect(defined.bootloader == BootloaderSpec() && defined.kernel == nil)

        let started = try await daemon.client.perform(.start, on: "efidisk")
        #expect(started.state == .running)
        if let pid = started.pid, let text = try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8) {
            let cmdline = text.replacingOccurrences(of: "\0", with: " ")
            #expect(cmdline.contains("pflash0=pflash0,pflash1=pflash1") && cmdline.contains("-kernel /proc/self/fd/"), "\(cmdline)")
        }
        let log = try await daemon.waitForLog("efidisk", "BERTH-GUEST-MARKER FROM-DISK")
        #expect(log.contains("EFI stub"), "OVMF started the disk's kernel through its EFI stub")
        #expect(log.contains("efi: EFI v"), "the kernel runs on UEFI")
        #expect(log.contains("BERTH-GUEST-READY"))
        _ = try await daemon.client.perform(.destroy, on: "efidisk")

        let dumped = try await BerthRun.run(["dumpxml", "efidisk"], state: state)
        #expect(dumped.status == 0, "\(dumped.stderr)")
        #expect(dumped.stdout.contains("<bootloader>/usr/bin/pygrub</bootloader>"), "\(dumped.stdout)")
        #expect(dumped.stdout.contains("<loader readonly='yes' type='pflash'>\(FirmwareSpec.defaultLoader)</loader>"))
        #expect(dumped.stdout.contains("<nvram template='\(FirmwareSpec.defaultVarsTemplate)'>\(firmware.nvram ?? "")</nvram>"))
        try dumped.stdout.write(toFile: file, atomically: true, encoding: .utf8)
        let redefine = try await BerthRun.run(["define", "--update", file], state: state)
        #expect(redefine.status == 0, "\(redefine.stderr)")
        #expect(try await daemon.client.info("efidisk").spec.firmware == firmware)
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
