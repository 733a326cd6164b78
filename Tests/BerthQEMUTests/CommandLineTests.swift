import BerthModel
import Foundation
import Testing

@testable import BerthQEMU

@Suite struct CommandLineTests {
    let uuid = UUID(uuidString: "6F1C2B9E-3D4A-4E5F-8A7B-1C2D3E4F5A6B") ?? UUID()
    var paths: RuntimePaths {
        RuntimePaths(runtimeRoot: "/run/berth", logRoot: "/var/log/berth", name: "devel1", uuid: uuid)
    }

    func spec(_ configure: (inout DomainSpec) -> Void = { _ in }) -> DomainSpec {
        var spec = DomainSpec(
            name: "devel1", uuid: uuid, memory: 1200, vcpus: 2, kernel: "/boot/vmlinuz", initrd: "/boot/initrd.img",
            cmdline: "root=/dev/vda1")
        configure(&spec)
        return spec
    }

    /// The value after each occurrence of `flag`.
    func values(_ args: [String], _ flag: String) -> [String] {
        args.indices.dropLast().filter { args[$0] == flag }.map { args[$0 + 1] }
    }

    @Test func balloonIsOptInWithFreePageReportingOnPC() throws {
        let plain = try QEMUCommandLine(spec: spec(), accel: .kvm, paths: paths)
        #expect(plain.machine == "microvm")
        // Under KVM the host's fast string instructions are real: the CPU model is plain `max`.
        #expect(values(plain.arguments, "-cpu") == ["max"])
        #expect(!plain.arguments.contains { $0.hasPrefix("virtio-balloon") })
        // Asking for the balloon moves a guest Berth would put on microvm to pc.
        let ballooned = try QEMUCommandLine(spec: spec { $0.balloon = true }, accel: .kvm, paths: paths)
        #expect(ballooned.machine == "pc")
        #expect(values(ballooned.arguments, "-device").contains("virtio-balloon-pci,free-page-reporting=on"))
        let off = try QEMUCommandLine(spec: spec { $0.balloon = false }, accel: .kvm, paths: paths)
        #expect(!off.arguments.contains { $0.hasPrefix("virtio-balloon") })
        let error = try #require(throws: BerthError.self) {
            try QEMUCommandLine(
                spec: spec {
                    $0.balloon = true
                    $0.machine = "microvm"
                }, accel: .kvm, paths: paths)
        }
        #expect(error.message.contains("balloon"))
    }

    @Test func directKernelGuestOnTCG() throws {
        // Without a host TSC rate, a TCG guest gets pc (microvm would hang calibrating).
        let line = try QEMUCommandLine(spec: spec(), accel: .tcg, paths: paths, tscKHz: nil)
        let args = line.arguments
        #expect(line.machine == "pc")
        #expect(values(args, "-name") == ["guest=devel1"])
        #expect(values(args, "-uuid") == ["6f1c2b9e-3d4a-4e5f-8a7b-1c2d3e4f5a6b"])
        #expect(values(args, "-machine") == ["pc"])
        #expect(values(args, "-accel") == ["tcg,tb-size=300"])
        // TCG runs `rep movsb` a byte per loop: the guest is not told it is fast (no ERMS).
        #expect(values(args, "-cpu") == ["max,erms=off"])
        #expect(!args.contains("host"))
        #expect(values(args, "-m") == ["1200M"])
        #expect(values(args, "-smp") == ["2"])
        // QEMU opens nothing by path: berthd passes every file, QEMU reopens /proc/self/fd/N.
        #expect(values(args, "-kernel") == ["/proc/self/fd/6"])
        #expect(values(args, "-initrd") == ["/proc/self/fd/7"])
        #expect(
            line.descriptors == [
                .init(source: .listeningSocket(path: "/run/berth/6f1c2b9e-3d4a-4e5f-8a7b-1c2d3e4f5a6b/qmp.sock"), number: 3),
                .init(source: .listeningSocket(path: "/run/berth/6f1c2b9e-3d4a-4e5f-8a7b-1c2d3e4f5a6b/console.sock"), number: 4),
                .init(source: .file(path: "/var/log/berth/devel1.log", access: .append), number: 5),
                .init(source: .file(path: "/boot/vmlinuz", access: .readOnly), number: 6),
                .init(source: .file(path: "/boot/initrd.img", access: .readOnly), number: 7),
            ])
        #expect(values(args, "-sandbox") == ["on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"])
        #expect(values(args, "-append") == ["root=/dev/vda1 console=ttyS0"])
        #expect(values(args, "-display") == ["none"])
        #expect(args.contains("-no-reboot"))
        #expect(!args.contains("-no-shutdown"))
        #expect(values(args, "-action") == ["panic=shutdown"])
        #expect(values(args, "-device").contains("pvpanic"))
        // berthd is QEMU's parent and writes the pidfile itself.
        #expect(!args.contains("-daemonize"))
        #expect(values(args, "-pidfile").isEmpty)
        #expect(values(args, "-add-fd") == ["fd=5,set=5"])
        #expect(
            values(args, "-chardev") == [
                "socket,id=qmp,fd=3,server=on,wait=off",
                "socket,id=console0,fd=4,server=on,wait=off,logfile=/dev/fdset/5,logappend=on",
            ])
        #expect(values(args, "-mon") == ["chardev=qmp,mode=control"])
        #expect(values(args, "-serial") == ["chardev:console0"])
    }

    @Test func bootFilesOverrideTheSpecKernel() throws {
        var s = spec()
        s.kernel = nil
        s.initrd = nil
        s.cmdline = nil
        s.bootloader = BootloaderSpec()
        s.disks = [DiskSpec(path: "/dev/vg/devel1", format: .raw)]
        let boot = BootFiles(
            kernel: "/run/berth/k", initrd: "/run/berth/i", cmdline: "ro root=/dev/VolGroup00/LogVol00 console=hvc0")
        let args = try QEMUCommandLine(spec: s, accel: .tcg, paths: paths, boot: boot)
            .arguments
        #expect(values(args, "-kernel") == ["/proc/self/fd/6"])
        #expect(values(args, "-initrd") == ["/proc/self/fd/7"])
        // A console= the guest chose is kept as it is.
        #expect(values(args, "-append") == ["ro root=/dev/VolGroup00/LogVol00 console=hvc0"])
    }

    @Test func noKernelMeansNoKernelArguments() throws {
        let s = spec {
            $0.kernel = nil
            $0.initrd = nil
            $0.cmdline = nil
            $0.disks = [DiskSpec(path: "/var/lib/berth/a.qcow2", format: .qcow2)]
        }
        let args = try QEMUCommandLine(spec: s, accel: .tcg, paths: paths).arguments
        #expect(values(args, "-kernel").isEmpty)
        #expect(values(args, "-append").isEmpty)
        // The format is explicit and the backing chain is empty: never what the image header says.
        #expect(
            values(args, "-blockdev") == [
                #"{"driver":"file","filename":"/dev/fdset/6","node-name":"disk0-file","read-only":false,"auto-read-only":false}"#,
                #"{"driver":"qcow2","file":"disk0-file","node-name":"disk0","read-only":false,"backing":null}"#,
            ])
        // A disk whose format was never recorded is refused, not probed.
        let unrecorded = spec { $0.disks = [DiskSpec(path: "/var/lib/berth/a.img")] }
        #expect(throws: BerthError.self) { try QEMUCommandLine(spec: unrecorded, accel: .tcg, paths: paths) }
    }

    @Test func disksOnEveryBus() throws {
        let s = spec {
            $0.disks = [
                DiskSpec(path: "/dev/xenspace/devel1", format: .raw),
                DiskSpec(path: "/srv/iso/centos,6.iso", format: .raw, device: .cdrom, bus: .ide, readOnly: true),
                DiskSpec(path: "/srv/data.img", format: .raw, bus: .scsi, readOnly: true),
                DiskSpec(path: "/srv/old.img", format: .raw, bus: .ide),
                DiskSpec(path: "/srv/sata.img", format: .raw, bus: .sata),
                DiskSpec(path: "/srv/boot.iso", format: .raw, device: .cdrom, bus: .virtio),
            ]
        }
        let line = try QEMUCommandLine(
            spec: s, accel: .tcg, paths: paths, isBlockDevice: { $0.hasPrefix("/dev/") })
        let args = line.arguments
        #expect(
            line.descriptors.dropFirst(5).map(\.source) == [
                .file(path: "/dev/xenspace/devel1", access: .readWrite),
                .file(path: "/srv/iso/centos,6.iso", access: .readOnly),
                .file(path: "/srv/data.img", access: .readOnly),
                .file(path: "/srv/old.img", access: .readWrite),
                .file(path: "/srv/sata.img", access: .readWrite),
                .file(path: "/srv/boot.iso", access: .readOnly),
            ])
        let blockdevs = values(args, "-blockdev")
        #expect(blockdevs.count == 12)
        #expect(blockdevs[0].contains(#""driver":"host_device","filename":"/dev/fdset/8""#))
        #expect(blockdevs[2].contains(#""driver":"file","filename":"/dev/fdset/9""#))
        #expect(blockdevs[3] == #"{"driver":"raw","file":"disk1-file","node-name":"disk1","read-only":true}"#)
        #expect(
            values(args, "-device").filter { $0 != "pvpanic" } == [
                "virtio-blk-pci,drive=disk0",
                "ide-cd,bus=ide.0,unit=0,drive=disk1",
                "virtio-scsi-pci,id=scsi0",
                "scsi-hd,bus=scsi0.0,drive=disk2",
                "ide-hd,bus=ide.0,unit=1,drive=disk3",
                "ich9-ahci,id=sata0",
                "ide-hd,bus=sata0.0,drive=disk4",
                "scsi-cd,bus=scsi0.0,drive=disk5",
            ])
    }

    @Test func formatIsDetectedFromTheMagic() throws {
        let dir = NSTemporaryDirectory() + "berth-fmt-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let qcow2 = dir + "/a.qcow2"
        let raw = dir + "/b.img"
        // A real qcow2 from qemu-img, and a raw file that is all zeros.
        let made = try Process.run(
            URL(fileURLWithPath: "/usr/bin/qemu-img"), arguments: ["create", "-q", "-f", "qcow2", qcow2, "16M"])
        made.waitUntilExit()
        #expect(FileManager.default.createFile(atPath: raw, contents: Data(count: 4096)))
        #expect(try DiskFormat.detect(path: qcow2) == .qcow2)
        #expect(try DiskFormat.detect(path: raw) == .raw)
        #expect(try DiskFormat.recorded(DiskSpec(path: qcow2)).format == .qcow2)
        // An explicit format wins over the magic.
        #expect(try DiskFormat.recorded(DiskSpec(path: qcow2, format: .raw)).format == .raw)
        let missing = #expect(throws: BerthError.self) { try DiskFormat.detect(path: dir + "/missing.img") }
        #expect(missing?.code == .notFound)
        #expect(missing?.message.contains("missing.img") == true)

        // A qcow2 overlay naming a host file as its backing file (CVE-2008-2004's shape) is refused.
        let overlay = dir + "/overlay.qcow2"
        let made2 = try Process.run(
            URL(fileURLWithPath: "/usr/bin/qemu-img"),
            arguments: ["create", "-q", "-f", "qcow2", "-b", raw, "-F", "raw", overlay, "16M"])
        made2.waitUntilExit()
        #expect(try DiskFormat.probe(path: overlay).backingFile == raw)
        let refused = #expect(throws: BerthError.self) { try DiskFormat.recorded(DiskSpec(path: overlay)) }
        #expect(refused?.message.contains(raw) == true)
        #expect(refused?.remedy?.contains("qemu-img convert") == true)
        // Declared raw, the same bytes are just raw data: nothing is followed.
        #expect(try DiskFormat.recorded(DiskSpec(path: overlay, format: .raw)).format == .raw)
    }

    @Test func userNICWithTheSpecMAC() throws {
        let mac = try #require(MACAddress("00:0C:29:1A:98:D5"))
        let s = spec { $0.nics = [NICSpec(mac: mac), NICSpec(model: "e1000")] }
        let args = try QEMUCommandLine(spec: s, accel: .tcg, paths: paths).arguments
        #expect(values(args, "-netdev") == ["user,id=net0", "user,id=net1"])
        // No iPXE option ROM unless the guest boots from the network (QEMU would read it from its data directory).
        #expect(values(args, "-device").contains("virtio-net-pci,netdev=net0,mac=00:0c:29:1a:98:d5,romfile="))
        #expect(values(args, "-device").contains("e1000,netdev=net1,romfile="))
    }

    @Test func firmwareBootOrderBecomesBootindex() throws {
        let s = spec {
            $0.kernel = nil
            $0.initrd = nil
            $0.cmdline = nil
            $0.disks = [
                DiskSpec(path: "/d.img", format: .raw), DiskSpec(path: "/c.iso", format: .raw, device: .cdrom, bus: .ide, readOnly: true),
            ]
            $0.nics = [NICSpec()]
            $0.firmware = FirmwareSpec(bootOrder: [.cdrom, .network, .hd])
        }
        let args = try QEMUCommandLine(spec: s, accel: .tcg, paths: paths).arguments
        #expect(values(args, "-boot") == ["strict=on"])
        let devices = values(args, "-device")
        #expect(devices.contains("ide-cd,bus=ide.0,unit=0,drive=disk1,bootindex=1"), "\(devices)")
        #expect(devices.contains("virtio-net-pci,netdev=net0,bootindex=2"), "\(devices)")
        #expect(devices.contains("virtio-blk-pci,drive=disk0,bootindex=3"), "\(devices)")
        // A kernel given to QEMU boots first whatever the order says: no bootindex then.
        var direct = s
        direct.kernel = "/k"
        let directArgs = try QEMUCommandLine(spec: direct, accel: .tcg, paths: paths).arguments
        #expect(values(directArgs, "-boot").isEmpty && !directArgs.joined().contains("bootindex"))
    }

    @Test func uefiCodeAndVariablesArePflashNodesOnDescriptors() throws {
        let s = spec {
            $0.firmware = FirmwareSpec(kind: .uefi, loader: "/usr/share/OVMF/OVMF_CODE_4M.fd", nvram: "/state/nvram/x_VARS.fd")
        }
        let line = try QEMUCommandLine(spec: s, accel: .tcg, paths: paths)
        #expect(line.machine == "pc", "UEFI is never microvm")
        #expect(values(line.arguments, "-machine").first?.hasSuffix(",pflash0=pflash0,pflash1=pflash1") == true)
        let files = line.descriptors.compactMap { descriptor -> (String, PassedDescriptor.Access)? in
            if case .file(let path, let access) = descriptor.source { return (path, access) }
            return nil
        }
        #expect(files.contains { $0 == ("/usr/share/OVMF/OVMF_CODE_4M.fd", .readOnly) })
        #expect(files.contains { $0 == ("/state/nvram/x_VARS.fd", .readWrite) })
        #expect(!line.arguments.contains { $0.contains("OVMF") || $0.contains("_VARS") }, "QEMU is given no firmware path")
        var micro = s
        micro.machine = "microvm"
        #expect(throws: BerthError.self) { try QEMUCommandLine(spec: micro, accel: .tcg, paths: paths) }
    }

    @Test func aBridgedNICGetsItsTapAsAPassedDescriptor() throws {
        let s = spec { $0.nics = [NICSpec(mode: .bridge, bridge: "xenbr0")] }
        let error = #expect(throws: BerthError.self) {
            try QEMUCommandLine(spec: s, accel: .tcg, paths: paths)
        }
        #expect(error?.code == .internal)
        let line = try QEMUCommandLine(spec: s, accel: .tcg, paths: paths, taps: [0: 42])
        // QEMU opens no tap itself (no ifname=, no script): berthd's open tap arrives as a descriptor.
        let tap = try #require(line.descriptors.last)
        #expect(tap.source == .open(fd: 42, what: "the tap of NIC 0"))
        #expect(values(line.arguments, "-netdev") == ["tap,id=net0,fd=\(tap.number)"])
    }

    @Test func hostileNICModelIsRefused() {
        let s = spec { $0.nics = [NICSpec(model: "e1000,romfile=/etc/shadow")] }
        #expect(throws: BerthError.self) {
            try QEMUCommandLine(spec: s, accel: .tcg, paths: paths)
        }
    }

    @Test func vncWithPasswordKeepsThePasswordOffTheCommandLine() throws {
        let s = spec { $0.graphics = GraphicsSpec(kind: .vnc, listen: "0.0.0.0", port: 5901, password: "s3cret") }
        let line = try QEMUCommandLine(spec: s, accel: .tcg, paths: paths)
        #expect(values(line.arguments, "-vnc") == ["0.0.0.0:1,password=on"])
        #expect(values(line.arguments, "-display").isEmpty)
        #expect(!line.arguments.joined(separator: " ").contains("s3cret"))
        #expect(line.displayPassword == "s3cret" && line.displayKind == .vnc)
        // Without a listen address or port, VNC is a unix socket in QEMU's working directory.
        let auto = try QEMUCommandLine(spec: spec { $0.graphics = GraphicsSpec() }, accel: .tcg, paths: paths)
        #expect(values(auto.arguments, "-vnc") == ["unix:vnc.sock"])
        let onLoopback = try QEMUCommandLine(
            spec: spec { $0.graphics = GraphicsSpec(listen: "127.0.0.1", password: "pw") }, accel: .tcg, paths: paths)
        #expect(values(onLoopback.arguments, "-vnc") == ["127.0.0.1:0,to=99,password=on"])
    }

    @Test func spiceIsAUnixSocketUnlessAnAddressIsGiven() throws {
        // The default: a unix socket in QEMU's working directory, no ticket (berthd's proxy
        // carries the API's authentication).
        let unix = try QEMUCommandLine(spec: spec { $0.graphics = GraphicsSpec(kind: .spice) }, accel: .tcg, paths: paths)
        #expect(values(unix.arguments, "-spice") == ["unix=on,addr=spice.sock,disable-ticketing=on"])
        #expect(values(unix.arguments, "-vnc").isEmpty && values(unix.arguments, "-device").contains("VGA"))
        #expect(unix.displayKind == .spice && unix.displayPassword == nil)
        // TCP with a password: ticketing on, the password set over QMP, never in argv.
        let tcp = try QEMUCommandLine(
            spec: spec { $0.graphics = GraphicsSpec(kind: .spice, listen: "::1", port: 5930, password: "s3cret") }, accel: .tcg,
            paths: paths)
        #expect(values(tcp.arguments, "-spice") == ["addr=::1,port=5930"])
        #expect(!tcp.arguments.joined(separator: " ").contains("s3cret") && tcp.displayPassword == "s3cret")
        // No port: berthd picks a free one (QEMU's SPICE cannot).
        let auto = try QEMUCommandLine(
            spec: spec { $0.graphics = GraphicsSpec(kind: .spice, listen: "127.0.0.1") }, accel: .tcg, paths: paths,
            freePort: { _ in 5977 })
        #expect(values(auto.arguments, "-spice") == ["addr=127.0.0.1,port=5977,disable-ticketing=on"])
        let full = #expect(throws: BerthError.self) {
            try QEMUCommandLine(
                spec: spec { $0.graphics = GraphicsSpec(kind: .spice, listen: "127.0.0.1") }, accel: .tcg, paths: paths,
                freePort: { _ in nil })
        }
        #expect(full?.message.contains("No free TCP port") == true)
        #expect(throws: BerthError.self) {
            try QEMUCommandLine(spec: spec { $0.graphics = GraphicsSpec(kind: .spice, port: 80) }, accel: .tcg, paths: paths)
        }
    }

    @Test func aFreeDisplayPortIsOneNothingListensOn() throws {
        let port = try #require(DisplayPort.free("127.0.0.1"))
        #expect((5900...5999).contains(port))
        #expect(DisplayPort.bindable("127.0.0.1", port: port))
    }

    @Test func machineChoice() throws {
        // microvm for host-kernel virtio guests without display or cdrom; under TCG only with
        // the host TSC rate to give the guest.
        #expect(QEMUCommandLine.defaultMachine(spec: spec(), boot: nil, accel: .kvm, tscKHz: nil) == "microvm")
        #expect(QEMUCommandLine.defaultMachine(spec: spec(), boot: nil, accel: .tcg, tscKHz: 2_596_122) == "microvm")
        #expect(QEMUCommandLine.defaultMachine(spec: spec(), boot: nil, accel: .tcg, tscKHz: nil) == "pc")
        let cdrom = spec { $0.disks = [DiskSpec(path: "/x.iso", device: .cdrom)] }
        #expect(QEMUCommandLine.defaultMachine(spec: cdrom, boot: nil, accel: .kvm, tscKHz: nil) == "pc")
        let vnc = spec { $0.graphics = GraphicsSpec() }
        #expect(QEMUCommandLine.defaultMachine(spec: vnc, boot: nil, accel: .kvm, tscKHz: nil) == "pc")
        let noACPI = spec { $0.acpi = false }
        #expect(QEMUCommandLine.defaultMachine(spec: noACPI, boot: nil, accel: .kvm, tscKHz: nil) == "pc")
        let diskBoot = spec {
            $0.kernel = nil
            $0.initrd = nil
            $0.cmdline = nil
            $0.disks = [DiskSpec(path: "/x.img")]
        }
        #expect(QEMUCommandLine.defaultMachine(spec: diskBoot, boot: nil, accel: .kvm, tscKHz: nil) == "pc")
        // A kernel from the guest's disk may predate microvm support: pc.
        let fromDisk = BootFiles(kernel: "/run/berth/k")
        #expect(QEMUCommandLine.defaultMachine(spec: diskBoot, boot: fromDisk, accel: .kvm, tscKHz: nil) == "pc")
    }

    @Test func microvmArguments() throws {
        let s = spec {
            $0.disks = [DiskSpec(path: "/x.img", format: .raw)]
            $0.nics = [NICSpec()]
        }
        let line = try QEMUCommandLine(spec: s, accel: .kvm, paths: paths)
        #expect(line.machine == "microvm")
        #expect(values(line.arguments, "-machine") == ["microvm,acpi=on"])
        #expect(values(line.arguments, "-append") == ["root=/dev/vda1 console=ttyS0 reboot=t"])
        #expect(values(line.arguments, "-device").contains("virtio-blk-device,drive=disk0"))
        #expect(values(line.arguments, "-device").contains("virtio-net-device,netdev=net0"))
        #expect(values(line.arguments, "-device").contains("pvpanic"))

        let tcg = try QEMUCommandLine(spec: s, accel: .tcg, paths: paths, tscKHz: 2_596_122)
        #expect(tcg.machine == "microvm")
        #expect(values(tcg.arguments, "-machine") == ["microvm,acpi=on"])
        #expect(values(tcg.arguments, "-append") == ["root=/dev/vda1 console=ttyS0 reboot=t tsc_early_khz=2596122"])
        // The guest's own choices are kept.
        let own = spec {
            $0.cmdline = "console=ttyS0,115200 reboot=k tsc_early_khz=1000"
            $0.machine = "microvm"
        }
        let kept = try QEMUCommandLine(spec: own, accel: .tcg, paths: paths, tscKHz: 2_596_122)
        #expect(values(kept.arguments, "-append") == ["console=ttyS0,115200 reboot=k tsc_early_khz=1000"])

        let ide = spec {
            $0.machine = "microvm"
            $0.disks = [DiskSpec(path: "/x.img", format: .raw, bus: .ide)]
        }
        #expect(throws: BerthError.self) {
            try QEMUCommandLine(spec: ide, accel: .kvm, paths: paths)
        }
    }

    /// An unpacked kernel (PVH) replaces the spec's bzImage on microvm only: `pc` would load
    /// another option ROM for it, and a save made with the other would not restore.
    @Test func pvhKernelOnlyOnMicrovm() throws {
        func kernelPath(_ line: QEMUCommandLine) -> String? {
            guard let reference = values(line.arguments, "-kernel").first,
                let number = Int32(reference.split(separator: "/").last ?? "")
            else { return nil }
            return line.descriptors.first { $0.number == number }.flatMap {
                if case .file(let path, _) = $0.source { path } else { nil }
            }
        }
        let micro = try QEMUCommandLine(spec: spec(), accel: .tcg, paths: paths, tscKHz: 2_596_122, pvhKernel: "/c/k.elf")
        #expect(micro.machine == "microvm" && kernelPath(micro) == "/c/k.elf")
        #expect(QEMUCommandLine.bootsPVH(spec: spec(), boot: nil, accel: .tcg, tscKHz: 2_596_122))
        let pc = spec { $0.machine = "pc" }
        let onPC = try QEMUCommandLine(spec: pc, accel: .tcg, paths: paths, tscKHz: 2_596_122, pvhKernel: "/c/k.elf")
        #expect(kernelPath(onPC) == "/boot/vmlinuz")
        #expect(!QEMUCommandLine.bootsPVH(spec: pc, boot: nil, accel: .tcg, tscKHz: 2_596_122))
        #expect(!QEMUCommandLine.bootsPVH(spec: spec(), boot: nil, accel: .tcg, tscKHz: nil), "no TSC rate: pc")
        let fromDisk = BootFiles(kernel: "/run/berth/k")
        #expect(!QEMUCommandLine.bootsPVH(spec: spec(), boot: fromDisk, accel: .kvm))
        let withoutPVH = try QEMUCommandLine(spec: spec(), accel: .tcg, paths: paths, tscKHz: 2_596_122)
        #expect(kernelPath(withoutPVH) == "/boot/vmlinuz")
    }

    @Test(arguments: [
        ("model name\t: AMD EPYC\ncpu MHz\t\t: 2596.122\n", false, 2_596_122),
        ("model name\t: Intel(R) Xeon(R) CPU E5-2690 v4 @ 2.60GHz\ncpu MHz\t\t: 1199.932\n", true, 2_600_000),
        ("model name\t: Intel(R) Xeon(R) CPU E5-2690 v4 @ 2.60GHz\ncpu MHz\t\t: 2599.998\n", false, 2_599_998),
        ("model name\t: AMD EPYC\ncpu MHz\t\t: 3400.000\n", true, 3_400_000),
    ])
    func hostTSCRate(cpuinfo: String, cpufreq: Bool, khz: Int) {
        #expect(HostTSC.parse(cpuinfo: cpuinfo, cpufreqActive: cpufreq) == khz)
    }

    @Test func hostTSCRateRefusesNonsense() {
        #expect(HostTSC.parse(cpuinfo: "cpu MHz\t: 0.000\n", cpufreqActive: false) == nil)
        #expect(HostTSC.parse(cpuinfo: "cpu MHz\t: lots\n", cpufreqActive: false) == nil)
        #expect(HostTSC.parse(cpuinfo: "", cpufreqActive: false) == nil)
    }

    @Test func lifecycleActions() throws {
        let s = spec {
            $0.onPoweroff = .preserve
            $0.onCrash = .preserve
            $0.acpi = false
            $0.machine = "pc"
        }
        let args = try QEMUCommandLine(spec: s, accel: .kvm, paths: paths).arguments
        #expect(args.contains("-no-shutdown"))
        #expect(values(args, "-action") == ["panic=pause"])
        #expect(values(args, "-machine") == ["pc,acpi=off"])
        #expect(values(args, "-accel") == ["kvm"])
    }

    @Test func unresolvedAcceleratorIsRefused() {
        #expect(throws: BerthError.self) { try QEMUCommandLine(spec: spec(), accel: .auto, paths: paths) }
    }
}
