import BerthModel
import Foundation
import Testing

@testable import BerthFormats
@testable import BerthXML

@Suite struct XLDomainTests {
    static func read(_ body: String) throws -> DomainImport {
        try XLDomain.read("name = 'g'\n" + body, source: "g.cfg")
    }

    static let disks: [(String, DiskSpec)] = [
        ("phy:/dev/vg/lv,xvda,w", DiskSpec(path: "/dev/vg/lv", format: .raw, target: "xvda")),
        ("phy:sda6,sda6,r", DiskSpec(path: "/dev/sda6", format: .raw, bus: .scsi, readOnly: true, target: "sda6")),
        ("file:/srv/g.img,hda,w", DiskSpec(path: "/srv/g.img", format: .raw, bus: .ide, target: "hda")),
        ("tap:aio:/srv/g.img,xvdb,rw", DiskSpec(path: "/srv/g.img", format: .raw, target: "xvdb")),
        ("tap:qcow2:/srv/g.qcow2,xvda,w", DiskSpec(path: "/srv/g.qcow2", format: .qcow2, target: "xvda")),
        ("qcow2:/srv/g.qcow2,xvda,w", DiskSpec(path: "/srv/g.qcow2", format: .qcow2, target: "xvda")),
        ("raw:/srv/g.img,xvda,ro", DiskSpec(path: "/srv/g.img", format: .raw, readOnly: true, target: "xvda")),
        ("file:/iso/c6.iso,hdc:cdrom,r", DiskSpec(path: "/iso/c6.iso", format: .raw, device: .cdrom, bus: .ide, readOnly: true, target: "hdc")),
        ("/srv/g.img,raw,xvda,rw", DiskSpec(path: "/srv/g.img", format: .raw, target: "xvda")),
        ("/srv/g.qcow2,qcow2,xvdc", DiskSpec(path: "/srv/g.qcow2", format: .qcow2, target: "xvdc")),
        ("format=raw, vdev=xvda, access=rw, target=/dev/vg/g,with,commas", DiskSpec(path: "/dev/vg/g,with,commas", format: .raw, target: "xvda")),
        (
            "vdev=hdc, devtype=cdrom, access=ro, target=/iso/x.iso",
            DiskSpec(path: "/iso/x.iso", device: .cdrom, bus: .ide, readOnly: true, target: "hdc")
        ),
        ("/iso/x.iso,,hdc,ro,cdrom", DiskSpec(path: "/iso/x.iso", device: .cdrom, bus: .ide, readOnly: true, target: "hdc")),
    ]

    @Test(arguments: disks)
    func diskForms(entry: String, disk: DiskSpec) throws {
        let result = try Self.read("disk = [ '\(entry)' ]")
        #expect(result.spec.disks == [disk])
        #expect(result.spec.notes.isEmpty)
    }

    @Test(arguments: [
        ("vhd:/x.vhd,xvda,w", "not supported"), ("/x.img,xvda,maybe", "access mode 'maybe'"),
        ("phy:/dev/x,,w", "no guest device name"), ("phy:/dev/x,xvda:tape,w", "':cdrom' or ':disk'"),
        ("format=vmdk,vdev=xvda,target=/x", "format 'vmdk'"), ("a,b,c,d,e", "too many positional"),
    ])
    func badDisksAreExplained(entry: String, phrase: String) throws {
        let error = try #require(throws: BerthError.self) { try Self.read("disk = [ '\(entry)' ]") }
        #expect(error.message.hasPrefix("g.cfg:2:1: disk[0]"), "\(error.message)")
        #expect(error.message.contains(phrase), "\(error.message)")
    }

    @Test func oddDeviceNamesKeepTheirNameThroughTheWriter() throws {
        // Found by fuzz/targets/XL.swift: a vdev with no Xen prefix was renamed on writing.
        let result = try Self.read("disk = [ '/dev/zvol/tank/g,raw,Stringxvda,rw' ]")
        #expect(result.spec.disks == [DiskSpec(path: "/dev/zvol/tank/g", format: .raw, target: "Stringxvda")])
        #expect(result.warnings.contains { $0.message.contains("not a Xen device name") })
        #expect(try XLDomain.read(XLDomain.write(result.spec)).spec == result.spec)
        #expect(throws: BerthError.self) { try Self.read("disk = [ 'format=raw,vdev=xvd=a,target=/x' ]") }
    }

    @Test func aRamdiskWithoutAKernelIsOnlyANote() throws {
        // Found by fuzz/targets/XL.swift: the initrd stayed in the spec and was written back.
        let result = try Self.read("ramdisk = '/boot/initrd'\nextra = '3'\ndisk = ['phy:/dev/vg/g,xvda,w']")
        #expect(result.spec.initrd == nil && result.spec.cmdline == nil)
        #expect(result.spec.notes.count == 2)
        #expect(try XLDomain.read(XLDomain.write(result.spec)).spec == result.spec)
    }

    @Test func namesWithNewlinesStayInsideTheirString() throws {
        // Found by fuzz/targets/XL.swift: the writer's header comment repeated the name.
        let spec = DomainSpec(name: "a\nmemory = 5\n'", disks: [DiskSpec(path: "/d", target: "xvda")])
        #expect(try XLDomain.read(XLDomain.write(spec)).spec == spec)
    }

    @Test func disksAreOrderedByXenDeviceName() throws {
        let spec = try Self.read("disk = [ 'phy:/dev/b,xvdb,w', 'phy:/dev/aa,xvdaa,w', 'phy:/dev/a,xvda,w' ]").spec
        #expect(spec.disks.map(\.target) == ["xvda", "xvdb", "xvdaa"])
    }

    static let vifs: [(String, NICSpec)] = [
        ("mac=00:16:3e:00:00:11, bridge=xenbr1", NICSpec(mode: .bridge, mac: MACAddress("00:16:3e:00:00:11"), bridge: "xenbr1")),
        ("script=vif-bridge", NICSpec(mode: .bridge, bridge: "xenbr0")),
        ("script=/etc/xen/scripts/vif-route,ip=10.0.0.5", NICSpec(mode: .route, ip: "10.0.0.5")),
        ("script=vif-nat", NICSpec(mode: .nat)),
        ("network=default,model=e1000", NICSpec(mode: .network, network: "default", model: "e1000")),
        ("type=ioemu, bridge=xenbr0, model=ne2k_pci", NICSpec(mode: .bridge, bridge: "xenbr0", model: "ne2k_pci")),
        ("", NICSpec(mode: .user)),
    ]

    @Test(arguments: vifs)
    func vifForms(entry: String, nic: NICSpec) throws {
        let result = try Self.read("vif = [ '\(entry)' ]")
        #expect(result.spec.nics == [nic])
        #expect(result.spec.notes.isEmpty)
    }

    @Test func vifOptionsBerthDoesNotUseAreKept() throws {
        let result = try Self.read("vif = [ 'bridge=br0,rate=10Mb/s,vifname=web0,script=vif-custom' ]")
        #expect(result.spec.nics == [NICSpec(mode: .bridge, bridge: "br0")])
        #expect(result.spec.notes.count == 3)
        #expect(
            result.warnings.filter { $0.message.contains("rate=10Mb/s") || $0.message.contains("vifname=web0") || $0.message.contains("vif-custom") }
                .count == 3)
        let error = try #require(throws: BerthError.self) { try Self.read("vif = [ 'mac=00:16:3e:zz:00:11' ]") }
        #expect(error.message.contains("is not a MAC address"))
    }

    @Test func aDaemonCanBridgeBareVifsAsXendDid() throws {
        let xend = try XendConfig.parse("(vif-script vif-bridge)\n(network-script 'network-bridge bridge=br7')")
        let result = try XLDomain.read("name='g'\nvif=['']", options: .init(defaultNIC: xend.defaultNIC))
        #expect(result.spec.nics == [NICSpec(mode: .bridge, bridge: "br7")])
    }

    @Test func displays() throws {
        #expect(
            try Self.read("vfb = [ 'vnc=1,vnclisten=0.0.0.0,vncdisplay=3,vncpasswd=s3cret' ]").spec.graphics
                == GraphicsSpec(kind: .vnc, listen: "0.0.0.0", port: 5903, password: "s3cret"))
        #expect(try Self.read("vfb = [ 'type=vnc' ]").spec.graphics == GraphicsSpec(kind: .vnc))
        #expect(
            try Self.read("vnc = 1\nvnclisten = '127.0.0.1'\nvncdisplay = 1").spec.graphics
                == GraphicsSpec(kind: .vnc, listen: "127.0.0.1", port: 5901))
        #expect(
            try Self.read("spice = 1\nspiceport = 6000\nspicehost = '0.0.0.0'").spec.graphics
                == GraphicsSpec(kind: .spice, listen: "0.0.0.0", port: 6000))
        #expect(try Self.read("vnc = 0").spec.graphics == nil)
        let sdl = try Self.read("vfb = [ 'sdl=1' ]")
        #expect(sdl.spec.graphics == GraphicsSpec(kind: .vnc))
        #expect(sdl.warnings.contains { $0.message.contains("no X display") })
    }

    @Test func lifecycleActions() throws {
        let spec = try Self.read("on_poweroff = 'preserve'\non_reboot = 'rename-restart'\non_crash = 'coredump-restart'").spec
        #expect((spec.onPoweroff, spec.onReboot, spec.onCrash) == (.preserve, .restart, .restart))
        let result = try Self.read("on_crash = 'soft-reset'\non_shutdown = 'restart'")
        #expect(result.spec.onCrash == .restart && result.spec.onPoweroff == .restart)
        #expect(result.warnings.contains { $0.message.contains("soft-reset") })
        #expect(try Self.read("restart = 'never'").spec.onReboot == .destroy)
        let error = try #require(throws: BerthError.self) { try Self.read("\n\non_crash = 'explode'") }
        #expect(error.message.hasPrefix("g.cfg:4:1: on_crash = 'explode'"))
    }

    @Test func bootloaders() throws {
        let pygrub = try Self.read(
            "bootloader = '/usr/bin/pygrub'\nbootloader_args = ['--entry=1', '--args=console=ttyS0']\nextra = 'quiet'\ndisk=['phy:/dev/vg/g,xvda,w']")
        #expect(pygrub.spec.bootloader == BootloaderSpec(entry: "1", args: "console=ttyS0", extraArgs: "quiet"))
        #expect(try Self.read("bootloader = 'pygrub'\nbootargs = '--entry \"CentOS (2.6.32)\"'").spec.bootloader?.entry == "CentOS (2.6.32)")
        #expect(try Self.read("bootloader = 'berth'").spec.bootloader == BootloaderSpec())
        let kernelToo = try Self.read("bootloader = 'pygrub'\nkernel = '/boot/vmlinuz'")
        #expect(kernelToo.spec.kernel == nil)
        #expect(kernelToo.spec.notes.contains { $0.contains("the bootloader picks the kernel") })
    }

    @Test func hvmFirmware() throws {
        let ovmf = try Self.read("type = 'hvm'\nbios = 'ovmf'\ndisk = ['/srv/g.img,raw,xvda,rw']")
        #expect(ovmf.spec.firmware == FirmwareSpec(kind: .uefi))
        #expect(ovmf.spec.notes.isEmpty && !ovmf.warnings.contains { $0.message.contains("bios") }, "\(ovmf.warnings)")
        #expect(try Self.read("type = 'hvm'\nbios = 'seabios'").spec.firmware == FirmwareSpec(kind: .bios))
        #expect(try Self.read("type = 'hvm'").spec.firmware == nil, "no bios: SeaBIOS, as before")
        #expect(try Self.read("builder = 'hvm'\nboot = 'dc'").spec.firmware == FirmwareSpec(kind: .bios, bootOrder: [.cdrom, .hd]))
        let floppy = try Self.read("type = 'hvm'\nbios = 'OVMF'\nboot = 'acdn'")
        #expect(floppy.spec.firmware == FirmwareSpec(kind: .uefi, bootOrder: [.hd, .cdrom, .network]))
        #expect(floppy.warnings.contains { $0.message.contains("floppy") })
        let rombios = try Self.read("type = 'hvm'\nbios = 'rombios'")
        #expect(rombios.spec.firmware == FirmwareSpec(kind: .bios) && rombios.warnings.contains { $0.message.contains("SeaBIOS") })
        let override = try Self.read("type = 'hvm'\nbios = 'ovmf'\nbios_path_override = '/opt/OVMF_CODE.fd'")
        #expect(override.spec.firmware?.loader == "/opt/OVMF_CODE.fd")
        // Xen's meaning: firmware is an HVM guest's; a PV guest's bios is a note, not UEFI.
        let pv = try Self.read("type = 'pv'\nkernel = '/boot/vmlinuz'\nbios = 'ovmf'\nboot = 'd'")
        #expect(pv.spec.firmware == nil)
        #expect(pv.spec.notes.contains { $0.hasPrefix("bios = \"ovmf\"") && $0.contains("HVM") })
        #expect(pv.spec.notes.contains { $0.hasPrefix("boot = \"d\"") })
        let unknown = try #require(throws: BerthError.self) { try Self.read("type = 'hvm'\nbios = 'coreboot'") }
        #expect(unknown.message.contains("not a firmware Berth has") && unknown.remedy?.contains("ovmf") == true)
        let badOrder = try #require(throws: BerthError.self) { try Self.read("type = 'hvm'\nboot = 'cx'") }
        #expect(badOrder.message.contains("'x' is not a boot device"))
    }

    @Test(arguments: [
        FirmwareSpec(kind: .uefi),
        FirmwareSpec(kind: .bios),
        FirmwareSpec(kind: .bios, bootOrder: [.network, .hd]),
        FirmwareSpec(
            kind: .uefi, bootOrder: [.cdrom, .hd, .network], loader: "/opt/OVMF_CODE.fd", nvram: "/var/lib/berth/nvram/x_VARS.fd",
            varsTemplate: "/opt/OVMF_VARS.fd"),
    ])
    func firmwareRoundTrips(_ firmware: FirmwareSpec) throws {
        // xl only: the libvirt writer's handling of firmware is its own (and not symmetric for
        // SeaBIOS or a kernel with a boot order).
        func expectRoundTrips(_ spec: DomainSpec) throws {
            let xl = XLDomain.write(spec)
            let read = try XLDomain.read(xl, source: "written.cfg")
            #expect(read.spec == spec, "xl round trip changed the spec:\n\(xl)")
            #expect(read.warnings.isEmpty, "\(read.warnings)")
            #expect(try DomainDocument.parse(xl).spec == spec)
        }
        var disk = DomainSpec(name: "fw", disks: [DiskSpec(path: "/srv/fw.img", format: .raw, target: "xvda")])
        disk.firmware = firmware
        try expectRoundTrips(disk)
        let xl = XLDomain.write(disk)
        #expect(xl.contains("type = \"hvm\"") && xl.contains("bios = \"\(firmware.kind == .uefi ? "ovmf" : "seabios")\""), "\(xl)")
        // A kernel under the firmware (direct-kernel boot) and a bootloader under it stay so.
        var kernel = disk
        kernel.kernel = "/k/vmlinuz"
        kernel.initrd = "/k/initrd.img"
        kernel.cmdline = "console=ttyS0"
        try expectRoundTrips(kernel)
        var bootloader = disk
        bootloader.bootloader = BootloaderSpec(entry: "0")
        try expectRoundTrips(bootloader)
    }

    @Test func unsupportedKeysAreNotesAndWarningsNeverDropped() throws {
        let result = try Self.read("cpus = '0-3'\npci = [ '07:00.0' ]\nfrobnicate = 1\nmaxvcpus = 8\nserial = 'file:/tmp/s'")
        #expect(result.spec.notes.count == 5)
        #expect(result.spec.notes.contains("pci = [ \"07:00.0\" ] (PCI passthrough is not supported)"))
        #expect(result.spec.notes.contains("frobnicate = 1 (not a setting Berth knows)"))
        #expect(result.warnings.contains { $0.message.contains("frobnicate") && $0.position == TextPosition(line: 4, column: 1) })
    }

    @Test func typeErrorsNameTheKey() throws {
        let error = try #require(throws: BerthError.self) { try Self.read("memory = [ 1 ]") }
        #expect(error.message == "g.cfg:2:1: 'memory' must be a number, found a list.")
        let uuid = try #require(throws: BerthError.self) { try Self.read("uuid = 'XXXXXXXX-XXXX'") }
        #expect(uuid.message.contains("is not a UUID"))
        let noName = try #require(throws: BerthError.self) { try XLDomain.read("memory = 5") }
        #expect(noName.message.contains("no 'name' setting"))
    }

    @Test func everyModelFieldSurvivesXL() throws {
        let spec = DomainSpec(
            name: "full", memory: 1200, maxMemory: 2048, vcpus: 2, arch: "aarch64", machine: "virt", accel: .tcg,
            kernel: "/k/vmlinuz", initrd: "/k/initrd.img", cmdline: "console=ttyS0 quote=\"x\" back\\slash",
            disks: [
                DiskSpec(path: "/dev/xenspace/devel1", format: .raw, target: "xvda"),
                DiskSpec(path: "/iso/a,b.iso", device: .cdrom, bus: .ide, readOnly: true, target: "hdc"),
            ],
            nics: [
                NICSpec(mode: .bridge, mac: MACAddress("00:0c:29:1a:98:d5"), bridge: "xenbr0", model: "e1000"),
                NICSpec(mode: .route, ip: "192.0.2.5"), NICSpec(mode: .nat), NICSpec(mode: .network, network: "lan"),
                NICSpec(mode: .user, mac: MACAddress("52:54:00:00:00:01")),
            ],
            graphics: GraphicsSpec(kind: .vnc, listen: "0.0.0.0", port: 5901, password: "a,b"), acpi: false,
            onPoweroff: .preserve, onReboot: .destroy, onCrash: .restart, autostart: true, description: "line1\nline2",
            notes: ["kept (reason)"])
        try XenAcceptanceTests.expectRoundTrips(spec)
        var spice = spec
        spice.graphics = GraphicsSpec(kind: .spice, listen: "::1", port: 5930, password: "p")
        spice.kernel = nil
        spice.initrd = nil
        spice.cmdline = nil
        spice.bootloader = BootloaderSpec(entry: "Debian GNU/Linux", args: "root=/dev/vda1 ro", extraArgs: "quiet")
        try XenAcceptanceTests.expectRoundTrips(spice)
    }
}
