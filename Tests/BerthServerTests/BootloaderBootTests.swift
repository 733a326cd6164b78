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

    /// Kernels without an EFI stub (built without CONFIG_EFI_STUB, or before Linux 3.3) on the
    /// guest's disk, made from the test kernel in the disk's copy (`MZ`, `PE\0\0`, the EFI
    /// handover offset and its xloadflags bits zeroed). A relocatable bzImage is started under
    /// UEFI by OVMF's own Linux loader (no "EFI stub" line, but the kernel runs on UEFI). With
    /// relocatable_kernel cleared that loader cannot take it: the UEFI start is refused before
    /// QEMU runs, saying what to do, and the same disk boots from BIOS (whose direct boot reads
    /// only the setup header at 0x1F1).
    @Test func uefiAndDiskKernelsWithoutAnEFIStub() async throws {
        try FirmwareTests.requireUEFI()
        let daemon = try await TestDaemon()
        defer { daemon.tearDown() }
        let state = daemon.stateDirectory
        func define(_ name: String, relocatable: Bool) async throws {
            let disk = state + "/\(name).img"
            try Self.copyBootDiskWithoutEFIStub(to: disk, relocatable: relocatable)
            let spec = DomainSpec(
                name: name, memory: 256, bootloader: BootloaderSpec(), firmware: FirmwareSpec(kind: .uefi),
                disks: [DiskSpec(path: disk, format: .raw)])
            _ = try await daemon.client.define(spec)
        }

        try await define("stubless", relocatable: true)
        _ = try await daemon.client.perform(.start, on: "stubless")
        let loaded = try await daemon.waitForLog("stubless", "BERTH-GUEST-MARKER FROM-DISK")
        #expect(!loaded.contains("EFI stub"), "no stub ran")
        #expect(loaded.contains("efi: EFI v") && loaded.contains("BERTH-GUEST-READY"), "OVMF's Linux loader started it on UEFI")
        _ = try await daemon.client.perform(.destroy, on: "stubless")

        try await define("nostub", relocatable: false)
        do {
            _ = try await daemon.client.perform(.start, on: "nostub")
            Issue.record("a kernel UEFI cannot start was started under UEFI")
        } catch let error as BerthError {
            #expect(error.message.contains("boots with UEFI") && error.message.contains("is one OVMF cannot start"), "\(error.message)")
            #expect(error.message.contains("/boot/vmlinuz-") && error.message.contains("has no EFI stub"), "\(error.message)")
            #expect(error.remedy?.contains("BIOS") == true && error.remedy?.contains("CONFIG_EFI_STUB") == true, "\(error.remedy ?? "")")
        }
        let refused = try await daemon.client.info("nostub")
        #expect(refused.state == .shutoff && refused.pid == nil)
        #expect(refused.lastError?.contains("OVMF cannot start") == true)
        let uefiInfo = try await BerthRun.run(["dominfo", "nostub"], state: state)
        #expect(uefiInfo.stdout.contains("UEFI (OVMF") && uefiInfo.stdout.contains("booting the kernel Berth gives it"), "\(uefiInfo.stdout)")

        var bios = refused.spec
        bios.firmware = FirmwareSpec(kind: .bios)
        _ = try await daemon.client.update(bios)
        let started = try await daemon.client.perform(.start, on: "nostub")
        #expect(started.state == .running)
        let log = try await daemon.waitForLog("nostub", "BERTH-GUEST-MARKER FROM-DISK")
        #expect(log.contains("BERTH-GUEST-READY"))
        #expect(!log.contains("efi: EFI v"))
        let biosInfo = try await BerthRun.run(["dominfo", "nostub"], state: state)
        #expect(biosInfo.stdout.contains("SeaBIOS, booting the kernel Berth gives it"), "\(biosInfo.stdout)")
        _ = try await daemon.client.perform(.destroy, on: "nostub")
    }

    /// bootdisk.img with the kernel's EFI stub made unreachable in place: its ext4 holds the
    /// kernel in one extent, so its first block is found by content at a 4 KiB boundary.
    static func copyBootDiskWithoutEFIStub(to disk: String, relocatable: Bool) throws {
        let fixture = GuestFixture.directory + "/bootdisk.img"
        let kernel = GuestFixture.directory + "/vmlinuz"
        guard FileManager.default.fileExists(atPath: fixture), FileManager.default.fileExists(atPath: kernel) else {
            Issue.record("missing \(fixture) or \(kernel): run fixtures/guest/build.sh and fixtures/guest/build-bootdisk.sh")
            throw BerthError(.notFound, "boot disk fixture missing")
        }
        var image = try Data(contentsOf: URL(fileURLWithPath: fixture))
        let head = try Data(contentsOf: URL(fileURLWithPath: kernel)).prefix(4096)
        let peOffset = Int(head[0x3C]) | Int(head[0x3D]) << 8
        #expect(head.prefix(2) == Data("MZ".utf8) && peOffset + 4 <= head.count, "the test kernel has an EFI stub")
        let start = try #require(
            stride(from: 0, to: image.count - head.count, by: 4096).first { image[$0..<$0 + head.count] == head },
            "the kernel's first block is in \(fixture)")
        stripEFIStub(&image, at: start, relocatable: relocatable)
        try image.write(to: URL(fileURLWithPath: disk))
    }

    /// Makes the test kernel starting at `start` in `bytes` one built without CONFIG_EFI_STUB:
    /// `MZ`, `PE\0\0` (at the offset in 0x3C), handover_offset (0x264) and xloadflags'
    /// XLF_EFI_HANDOVER_32/64 and XLF_EFI_KEXEC (0x236) zeroed; optionally relocatable_kernel.
    static func stripEFIStub(_ bytes: inout Data, at start: Int, relocatable: Bool) {
        let peOffset = Int(bytes[start + 0x3C]) | Int(bytes[start + 0x3D]) << 8
        bytes.replaceSubrange(start..<start + 2, with: [0, 0])
        bytes.replaceSubrange(start + peOffset..<start + peOffset + 4, with: [0, 0, 0, 0])
        bytes.replaceSubrange(start + 0x264..<start + 0x268, with: [0, 0, 0, 0])
        bytes[start + 0x236] &= ~0x1C
        if !relocatable { bytes[start + 0x234] = 0 }
    }

    /// The same check for a kernel on the host (the domain's own, or an installer's): one OVMF
    /// cannot start is refused at start, before QEMU runs.
    @Test func aHostKernelOVMFCannotStartIsRefusedUnderUEFI() async throws {
        try FirmwareTests.requireUEFI()
        let daemon = try await TestDaemon()
        defer { daemon.tearDown() }
        var kernel = try Data(contentsOf: URL(fileURLWithPath: GuestFixture.kernel))
        Self.stripEFIStub(&kernel, at: 0, relocatable: false)
        let path = daemon.stateDirectory + "/vmlinuz-nostub"
        try kernel.write(to: URL(fileURLWithPath: path))
        _ = try await daemon.client.define(
            DomainSpec(name: "hostk", memory: 256, kernel: path, firmware: FirmwareSpec(kind: .uefi)))
        do {
            _ = try await daemon.client.perform(.start, on: "hostk")
            Issue.record("a kernel UEFI cannot start was started under UEFI")
        } catch let error as BerthError {
            #expect(error.message.contains("its kernel \(path) is one OVMF cannot start"), "\(error.message)")
            #expect(error.remedy?.contains("CONFIG_EFI_STUB") == true, "\(error.remedy ?? "")")
        }
        let info = try await daemon.client.info("hostk")
        #expect(info.state == .shutoff && info.pid == nil)
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
