import BerthModel
import Foundation
import Testing

@testable import BerthFormats

@Suite struct VirtInstallDomainTests {
    @Test func locationNeedsTheFetchedInstaller() throws {
        let request = try VirtInstallRequest.parse(commandText: Seed.pasted)
        #expect(throws: VirtInstallError.self) { try request.domains() }
    }

    @Test func newDiskNeedsItsCreatedPath() throws {
        let request = try VirtInstallRequest.parse(arguments: [
            "--name", "f30", "--location", "http://m/fedora/30/", "--os-variant", "fedora30", "--graphics", "vnc,port=5901",
        ])
        // No --disk: one qcow2 volume of the variant's default size.
        #expect(request.effectiveDisks == [.init(sizeGiB: 20, format: .qcow2)])
        #expect(request.volumesToCreate.map(\.index) == [0])
        let boot = VirtInstallInstallerBoot(kernel: "/b/vmlinuz", initrd: "/b/initrd.img")
        #expect(throws: VirtInstallError.self) { try request.domains(installerBoot: boot) }

        let domains = try request.domains(installerBoot: boot, createdDiskPaths: [0: "/var/lib/berth/pool/f30.qcow2"])
        let installer = try #require(domains.installer)
        #expect(installer.disks == [DiskSpec(path: "/var/lib/berth/pool/f30.qcow2", format: .qcow2)])
        #expect(installer.memory == 2048)
        // With a display there is no serial console argument; the tree argument comes from the table.
        #expect(installer.cmdline == "inst.repo=http://m/fedora/30/")
        #expect(installer.graphics == GraphicsSpec(kind: .vnc, port: 5901))
        #expect(domains.installed.graphics == installer.graphics)
    }

    @Test func recognisedArgumentWinsOverTheTable() throws {
        // --os-variant says rhel7 but the tree is CentOS 6: the tree's own argument is used.
        let request = try VirtInstallRequest.parse(arguments: [
            "-n", "c6", "-l", "http://m/6/", "--os-variant", "rhel7", "--disk", "/d.img", "--nographics",
        ])
        let domains = try request.domains(
            installerBoot: .init(kernel: "/k", initrd: "/i", sourceArgument: "method"))
        #expect(domains.installer?.cmdline == "method=http://m/6/ console=ttyS0")
        // A repo given with -x is not given twice.
        let given = try VirtInstallRequest.parse(arguments: [
            "-n", "c6", "-l", "http://m/6/", "--disk", "/d.img", "-x", "method=http://other/6/ console=ttyS1",
        ])
        #expect(given.installerCommandLine(sourceArgument: "method") == "method=http://other/6/ console=ttyS1")
        // A local tree is not reachable from the guest: no tree argument, as virt-install.
        let local = try VirtInstallRequest.parse(arguments: ["-n", "c6", "-l", "/srv/c6", "--disk", "/d.img"])
        #expect(local.installerCommandLine(sourceArgument: "method") == "console=ttyS0")
    }

    @Test func detectedVariantFillsInWhenNoneWasGiven() throws {
        var request = try VirtInstallRequest.parse(arguments: ["-n", "c6", "-l", "http://m/6/", "--disk", "/d.img"])
        #expect(request.effectiveOSInfo.id == "generic")
        request.adoptDetectedOSVariant("centos6.10")
        #expect(request.osVariant == "centos6.10")
        #expect(request.installerCommandLine() == "method=http://m/6/ console=ttyS0")
        #expect(try request.domains(installerBoot: .init(kernel: "/k", initrd: "/i")).installed.memory == 1024)
        // A known --os-variant is the user's choice and stays.
        var given = try VirtInstallRequest.parse(arguments: ["-n", "c6", "-l", "http://m/", "--os-variant", "rhel7", "--disk", "/d"])
        given.adoptDetectedOSVariant("centos6.10")
        #expect(given.osVariant == "rhel7")
    }

    @Test func cdromInstallAttachesTheISOOnlyWhileInstalling() throws {
        let request = try VirtInstallRequest.parse(arguments: [
            "-n", "deb", "--cdrom", "/isos/debian-12.iso", "--disk", "/var/lib/berth/deb.img,size=10", "--autostart",
        ])
        let domains = try request.domains()
        let installer = try #require(domains.installer)
        #expect(installer.disks.map(\.path) == ["/var/lib/berth/deb.img", "/isos/debian-12.iso"])
        #expect(installer.disks.last?.device == .cdrom && installer.disks.last?.readOnly == true)
        #expect(installer.kernel == nil)
        #expect(installer.autostart == false)
        #expect(domains.installed.disks.map(\.path) == ["/var/lib/berth/deb.img"])
        #expect(domains.installed.bootloader == BootloaderSpec())
        #expect(domains.installed.autostart)
    }

    @Test func importAndHostKernelHaveNoInstallerPhase() throws {
        let imported = try VirtInstallRequest.parse(arguments: ["-n", "old", "--import", "--disk", "/dev/xenspace/devel1"])
        let importDomains = try imported.domains()
        #expect(importDomains.installer == nil)
        #expect(importDomains.installed.bootloader == BootloaderSpec())
        #expect(importDomains.installed.memory == 1024)

        let kernel = try VirtInstallRequest.parse(arguments: [
            "-n", "k", "--import", "--disk", "/d.img", "--boot", "kernel=/boot/vmlinuz,initrd=/boot/initrd.img,kernel_args=root=/dev/vda1",
            "--uuid", "12345678-1234-1234-1234-123456789abc",
        ])
        let kernelDomains = try kernel.domains()
        #expect(kernelDomains.installer == nil)
        #expect(kernelDomains.installed.kernel == "/boot/vmlinuz")
        #expect(kernelDomains.installed.cmdline == "root=/dev/vda1")
        #expect(kernelDomains.installed.bootloader == nil)
        #expect(kernelDomains.installed.uuid == UUID(uuidString: "12345678-1234-1234-1234-123456789abc"))
    }

    @Test func planForACDROMInstallWithNewVolume() throws {
        let request = try VirtInstallRequest.parse(arguments: [
            "-n", "deb", "--cdrom", "/isos/debian-12.iso", "--disk", "size=10,pool=fast", "--os-variant", "debian12",
            "--noautoconsole", "--wait", "-1", "--network", "bridge=br0",
        ])
        let plan = request.plan()
        #expect(plan.contains("  Disk 1:      new volume in pool 'fast', 10 GiB, disk, bus virtio"))
        #expect(plan.contains("  CD-ROM:      /isos/debian-12.iso (installer only, read-only)"))
        #expect(plan.contains("  NIC 1:       bridge br0, MAC generated"))
        #expect(plan.contains("1. Create disk 1: a 10 GiB qcow2 volume in pool 'fast'."))
        #expect(plan.contains("2. Boot deb from /isos/debian-12.iso; the installer's reboot ends this phase."))
        #expect(plan.contains("Start deb without attaching (--noautoconsole)."))
        #expect(plan.contains("Wait until the install finishes."))
    }
}
