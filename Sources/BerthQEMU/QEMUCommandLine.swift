import BerthModel
import FoundationEssentials
import Glibc

/// A kernel to boot directly instead of the spec's: what the bootloader extracted from the
/// guest's disk (PyGRUB's job), or any other override.
public struct BootFiles: Sendable, Equatable {
    public var kernel: String
    public var initrd: String?
    public var cmdline: String?

    public init(kernel: String, initrd: String? = nil, cmdline: String? = nil) {
        self.kernel = kernel
        self.initrd = initrd
        self.cmdline = cmdline
    }
}

/// A host file or socket that berthd opens and QEMU inherits as descriptor `number`.
public struct PassedDescriptor: Sendable, Equatable {
    public enum Access: Sendable, Equatable {
        case readOnly, readWrite
        /// Write-only, appending, created 0600 if missing (the console log).
        case append
    }

    public enum Source: Sendable, Equatable {
        /// A unix socket berthd binds and listens on; QEMU accepts on it.
        case listeningSocket(path: String)
        case file(path: String, access: Access)
        /// A descriptor berthd already holds (a tap it made and attached to a bridge); it is
        /// duplicated for QEMU, and the holder keeps and closes its own.
        case open(fd: Int32, what: String)
    }

    public var source: Source
    public var number: Int32
}

/// QEMU's argument array for one domain (argv without argv[0]; never a shell string).
public struct QEMUCommandLine: Sendable, Equatable {
    public var arguments: [String]
    /// The domain's name and UUID (the UUID is in `arguments` too, for re-attaching).
    public var name: String
    public var uuid: UUID
    /// The machine type chosen (`pc`, `microvm`, or the spec's).
    public var machine: String
    public var accel: Accelerator
    /// The display's password, set over QMP (`set_password`) once QEMU runs: a password on the
    /// command line would be readable by every user in /proc/PID/cmdline. `QEMUProcess.launch`
    /// does this.
    public var displayPassword: String?
    /// The display's protocol (`vnc` or `spice`), nil without graphics.
    public var displayKind: GraphicsSpec.Kind?
    /// What berthd opens and hands to QEMU as descriptors 3, 4, …: QEMU itself opens no host
    /// path (it runs as an unprivileged user that could not), and a guest cannot make it open
    /// another file by rewriting anything (CVE-2008-2004).
    public var descriptors: [PassedDescriptor]

    /// Builds the command line.
    ///
    /// - Parameters:
    ///   - spec: the domain.
    ///   - accel: `.kvm` or `.tcg`, already resolved with `AcceleratorProbe.resolve`.
    ///   - paths: where the sockets, pidfile and console log go.
    ///   - boot: a kernel overriding the spec's (the bootloader case).
    ///   - taps: open tap descriptors by NIC index, made and attached to their bridge by the
    ///     host networking code, for NICs that are not user-mode. QEMU gets them as `fd=N`:
    ///     it needs no network privilege and opens nothing itself.
    ///   - tscKHz: the host TSC rate, given to a microvm guest under TCG (`HostTSC`).
    ///   - pvhKernel: the spec kernel's uncompressed ELF with a PVH entry (`KernelUnpack`, cached
    ///     by berthd), booted instead of it when the machine is microvm (see `bootsPVH`).
    ///   - isBlockDevice: whether a disk path is a block device (QEMU's `host_device` driver).
    ///   - freePort: a free TCP port on a listen address, for a SPICE display on TCP without a
    ///     port (QEMU's SPICE, unlike its VNC, cannot pick one itself).
    /// - Throws: `BerthError` for settings QEMU cannot take, and for a disk whose format was
    ///   never recorded (formats are decided at define time, never guessed at start).
    public init(
        spec: DomainSpec, accel: Accelerator, paths: RuntimePaths, boot: BootFiles? = nil,
        taps: [Int: Int32] = [:], tscKHz: Int? = HostTSC.kHz, pvhKernel: String? = nil,
        isBlockDevice: (String) -> Bool = DiskFormat.isBlockDevice, freePort: (String) -> Int? = DisplayPort.free
    ) throws {
        guard accel != .auto else {
            throw BerthError(
                .internal, "The accelerator must be resolved before building the QEMU command line.",
                remedy: "Call AcceleratorProbe.resolve first.")
        }
        guard spec.arch == "x86_64" else {
            throw BerthError(
                .invalidArgument, "Architecture '\(spec.arch)' is not supported.",
                remedy: "Berth runs x86_64 guests; set \"arch\": \"x86_64\".")
        }
        let machine = spec.machine ?? Self.defaultMachine(spec: spec, boot: boot, accel: accel, tscKHz: tscKHz)
        let family = MachineFamily(machine)
        self.machine = machine
        self.accel = accel
        self.name = spec.name
        self.uuid = spec.uuid

        var table = DescriptorTable()
        // The control and console sockets first: berthd binds them, QEMU only accepts.
        let qmpFD = table.add(.listeningSocket(path: paths.qmpSocket))
        let consoleFD = table.add(.listeningSocket(path: paths.consoleSocket))
        let logFD = table.add(.file(path: paths.consoleLog, access: .append))

        var args: [String] = []
        // seccomp: no exec, no privilege change, no obsolete or host-resource syscalls.
        args += ["-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"]
        args += ["-name", "guest=\(Self.escape(spec.name))"]
        args += ["-uuid", spec.uuid.uuidString.lowercased()]
        var machineOptions = [machine]
        if family == .microvm {
            // ACPI gives microvm its power button (the GED), S5 power-off, and the DSDT that
            // lists the virtio-mmio devices and pvpanic.
            machineOptions.append("acpi=\(spec.acpi ? "on" : "off")")
        } else if !spec.acpi {
            machineOptions.append("acpi=off")
        }
        let firmwareArguments = try Self.firmwareArguments(spec, family: family, machineOptions: &machineOptions, table: &table)
        args += ["-machine", machineOptions.joined(separator: ",")]
        // TCG's translation buffer is QEMU's largest allocation after guest RAM (1 GiB by
        // default, filled as code is translated): sized to the guest, a small guest keeps a
        // small one (see `translationBufferMiB`).
        args += ["-accel", accel == .tcg ? "tcg,tb-size=\(Self.translationBufferMiB(memoryMiB: spec.memory))" : accel.rawValue]
        // `max` gives a TCG guest every feature QEMU can emulate (x86-64-v2 and up, which
        // current distribution kernels need); `host` is never used (it aborts under kvm_pvm).
        args += ["-cpu", Self.cpuModel(accel: accel)]
        args += ["-m", "\(spec.memory)M"]
        args += ["-smp", "\(spec.vcpus)"]
        args += ["-nodefaults", "-no-user-config"]

        // Direct kernel boot; on microvm the kernel's own ELF when berthd unpacked one (PVH boot:
        // no decompression inside the guest).
        let kernel = boot?.kernel ?? (family == .microvm ? pvhKernel : nil) ?? spec.kernel
        if let kernel {
            // QEMU reads the kernel with plain open(): /proc/self/fd/N reopens the passed file.
            args += ["-kernel", "/proc/self/fd/\(table.add(.file(path: kernel, access: .readOnly)))"]
            if let initrd = boot == nil ? spec.initrd : boot?.initrd {
                args += ["-initrd", "/proc/self/fd/\(table.add(.file(path: initrd, access: .readOnly)))"]
            }
            var cmdline = (boot == nil ? spec.cmdline : boot?.cmdline) ?? ""
            // The serial console is the only console Berth records.
            if !cmdline.contains("console=") { cmdline = Self.join(cmdline, "console=ttyS0") }
            // microvm has no reset controller: a triple fault makes QEMU see the reboot.
            if family == .microvm, !cmdline.contains("reboot=") { cmdline = Self.join(cmdline, "reboot=t") }
            // microvm has no HPET or PM timer to calibrate the TSC against (see HostTSC).
            if family == .microvm, accel == .tcg, let tscKHz, !cmdline.contains("tsc_early_khz=") {
                cmdline = Self.join(cmdline, "tsc_early_khz=\(tscKHz)")
            }
            args += ["-append", cmdline]
        }

        args += firmwareArguments
        // The firmware's boot order, when it boots (no kernel given to QEMU): `bootindex` on the
        // devices, and nothing else tried.
        let order = kernel == nil ? BootOrder(spec) : BootOrder()
        if !order.isEmpty { args += ["-boot", "strict=on"] }
        args += try Self.diskArguments(spec.disks, family: family, table: &table, isBlockDevice: isBlockDevice, order: order)
        args += try Self.nicArguments(spec.nics, family: family, taps: taps, table: &table, order: order)
        args += try Self.balloonArguments(spec, family: family)

        // Display.
        if let graphics = spec.graphics {
            guard family != .microvm else {
                throw BerthError(
                    .invalidArgument, "The microvm machine has no display for graphics.",
                    remedy: "Remove \"graphics\", or set \"machine\": \"pc\".")
            }
            args += try Self.displayArguments(graphics, freePort: freePort)
            args += ["-device", "VGA", "-usb", "-device", "usb-tablet"]
            displayPassword = graphics.password
            displayKind = graphics.kind
        } else {
            args += ["-display", "none"]
        }

        // Lifecycle: QEMU exits on guest reboot so that Berth restarts it (and the bootloader
        // reads the disk again); pvpanic reports guest crashes as GUEST_PANICKED.
        args.append("-no-reboot")
        if spec.onPoweroff == .preserve { args.append("-no-shutdown") }
        args += ["-action", "panic=\(spec.onCrash == .preserve ? "pause" : "shutdown")"]
        if family.hasISA { args += ["-device", "pvpanic"] }

        // Control and console sockets; the console chardev writes its own log, so output is kept
        // while no one is attached and while the daemon is down.
        args += [
            "-add-fd", "fd=\(logFD),set=\(logFD)",
            "-chardev", "socket,id=qmp,fd=\(qmpFD),server=on,wait=off",
            "-mon", "chardev=qmp,mode=control",
            "-chardev",
            "socket,id=console0,fd=\(consoleFD),server=on,wait=off,logfile=/dev/fdset/\(logFD),logappend=on",
            "-serial", "chardev:console0",
        ]
        arguments = args
        descriptors = table.descriptors
    }

    /// The TCG translation buffer for a guest of `memoryMiB`: a quarter of its RAM, from 32 MiB
    /// up to QEMU's own default of 1 GiB. A guest's translated code grows with what it runs,
    /// not with its RAM, but a small guest runs little; 32 MiB holds a booted Linux kernel and
    /// userland without flushes (measured in `bench/density`).
    public static func translationBufferMiB(memoryMiB: Int) -> Int {
        min(max(memoryMiB / 4, 32), 1024)
    }

    /// The `-cpu` model: `max`, and under TCG without ERMS ("fast `rep movsb`"). A guest kernel
    /// that sees ERMS clears and copies memory with `rep stosb`/`rep movsb`, which TCG runs one
    /// byte per loop; without it the kernel uses its 8-byte loops. The flag only tells the guest
    /// which instructions are fast: a guest saved or migrated from a QEMU that showed it runs on
    /// unchanged. Under KVM the host's ERMS is real and stays. Measured with
    /// `bench/density/boot.py` (docs/ARCHITECTURE.md, "Decisions").
    public static func cpuModel(accel: Accelerator) -> String {
        accel == .tcg ? "max,erms=off" : "max"
    }

    /// Whether the guest boots its spec kernel on microvm, where an unpacked ELF kernel (PVH
    /// entry) may replace the bzImage. Only microvm: QEMU's PVH boot on `pc` loads another option
    /// ROM (pvh.bin for linuxboot_dma.bin), which would break restoring a save made with the
    /// other; microvm's firmware (qboot) loads either kind itself, so its machine is the same.
    public static func bootsPVH(spec: DomainSpec, boot: BootFiles?, accel: Accelerator, tscKHz: Int? = HostTSC.kHz) -> Bool {
        guard boot == nil, spec.kernel != nil, accel != .auto else { return false }
        return MachineFamily(spec.machine ?? defaultMachine(spec: spec, boot: boot, accel: accel, tscKHz: tscKHz)) == .microvm
    }

    /// `microvm` boots faster (no firmware, no PCI scan); Berth picks it for guests that boot
    /// a host kernel (`spec.kernel`) with only virtio disks and NICs, no cdrom and no display.
    /// Everything else gets `pc`: a kernel from the guest's own disk (the bootloader case) may
    /// be an old distribution kernel without microvm's ACPI GED power button or virtio-mmio
    /// discovery. Under TCG microvm also needs the host TSC rate (see `HostTSC`); without one,
    /// `pc`.
    public static func defaultMachine(spec: DomainSpec, boot: BootFiles?, accel: Accelerator, tscKHz: Int?) -> String {
        let hostKernel = boot == nil && spec.kernel != nil
        let virtioOnly =
            spec.disks.allSatisfy { $0.device == .disk && $0.bus == .virtio }
            && spec.nics.allSatisfy { $0.model == nil || $0.model?.hasPrefix("virtio") == true }
        let timer = accel == .kvm || tscKHz != nil
        let bios = spec.firmware?.kind != .uefi
        let noBalloon = spec.balloon != true
        return hostKernel && virtioOnly && spec.graphics == nil && spec.acpi && timer && bios && noBalloon ? "microvm" : "pc"
    }

    /// virtio-balloon with free page reporting when the spec asks (`DomainSpec.balloon`). On
    /// microvm the Debian 6.1 guest did not find the device, so a balloon needs PCI.
    static func balloonArguments(_ spec: DomainSpec, family: MachineFamily) throws -> [String] {
        guard spec.balloon == true else { return [] }
        guard family != .microvm else {
            throw BerthError(
                .invalidArgument, "The balloon needs a PCI machine; microvm guests did not find it.",
                remedy: "Remove \"machine\": \"microvm\" (Berth then picks pc), or remove \"balloon\".")
        }
        return ["-device", "virtio-balloon-pci,free-page-reporting=on"]
    }

    // MARK: Firmware

    /// UEFI: OVMF's code (read-only) and the domain's own variable store (read-write) as the
    /// two pflash chips, each a `-blockdev` node on a passed descriptor (QEMU opens neither
    /// path). SeaBIOS needs nothing: it is QEMU's own default for `pc`.
    static func firmwareArguments(
        _ spec: DomainSpec, family: MachineFamily, machineOptions: inout [String], table: inout DescriptorTable
    ) throws -> [String] {
        guard let firmware = spec.firmware, firmware.kind == .uefi else { return [] }
        guard family == .pc || family == .q35 else {
            throw BerthError(
                .invalidArgument, "UEFI firmware needs the pc or q35 machine, not \(spec.machine ?? "microvm").",
                remedy: "Set \"machine\": \"pc\" (or \"q35\"), or leave \"machine\" out.")
        }
        guard let nvram = firmware.nvram else {
            throw BerthError(
                .internal, "Domain '\(spec.name)' has UEFI firmware but no variable store recorded.",
                remedy: "Define it again ('berth define --update'): berthd makes the store at define time.")
        }
        var args: [String] = []
        for (index, (path, readOnly)) in [(firmware.loader ?? FirmwareSpec.defaultLoader, true), (nvram, false)].enumerated() {
            let fd = table.add(.file(path: path, access: readOnly ? .readOnly : .readWrite))
            let id = "pflash\(index)"
            args += ["-add-fd", "fd=\(fd),set=\(fd)"]
            args += [
                "-blockdev",
                #"{"driver":"file","filename":"/dev/fdset/\#(fd)","node-name":"\#(id)-file","read-only":\#(readOnly),"auto-read-only":false}"#,
                "-blockdev", #"{"driver":"raw","file":"\#(id)-file","node-name":"\#(id)","read-only":\#(readOnly)}"#,
            ]
            machineOptions.append("\(id)=\(id)")
        }
        return args
    }

    /// `bootindex` per device from the firmware's boot order: every device of the first class
    /// named, then the next class's. Empty when no order is given (the firmware's own: disks,
    /// then CD-ROMs).
    struct BootOrder: Equatable {
        private(set) var disks: [Int: Int] = [:]
        private(set) var nics: [Int: Int] = [:]

        init() {}

        init(_ spec: DomainSpec) {
            var next = 1
            for device in spec.firmware?.bootOrder ?? [] {
                switch device {
                case .hd, .cdrom:
                    let wanted: DiskSpec.Device = device == .hd ? .disk : .cdrom
                    for (index, disk) in spec.disks.enumerated() where disk.device == wanted && disks[index] == nil {
                        disks[index] = next
                        next += 1
                    }
                case .network:
                    for index in spec.nics.indices where nics[index] == nil {
                        nics[index] = next
                        next += 1
                    }
                }
            }
        }

        var isEmpty: Bool { disks.isEmpty && nics.isEmpty }
        /// Whether the NICs boot from the network (they keep QEMU's iPXE option ROM).
        var networkBoot: Bool { !nics.isEmpty }

        static func suffix(_ index: Int?) -> String { index.map { ",bootindex=\($0)" } ?? "" }
    }

    // MARK: Devices

    enum MachineFamily: Equatable {
        case pc, q35, microvm, other

        init(_ machine: String) {
            let base = machine.split(separator: ",").first.map(String.init) ?? machine
            self =
                if base == "microvm" { .microvm } else if base == "q35" || base.hasPrefix("pc-q35") {
                    .q35
                } else if base == "pc" || base.hasPrefix("pc-i440fx") || base == "isapc" { .pc } else { .other }
        }

        var hasISA: Bool { self != .other }
        /// virtio devices on microvm sit on virtio-mmio, elsewhere on PCI.
        var virtioSuffix: String { self == .microvm ? "device" : "pci" }
    }

    static func diskArguments(
        _ disks: [DiskSpec], family: MachineFamily, table: inout DescriptorTable, isBlockDevice: (String) -> Bool,
        order: BootOrder = BootOrder()
    ) throws -> [String] {
        var args: [String] = []
        var ideSlot = 0
        var sataSlot = 0
        var scsiAdded = false
        var ahciAdded = false
        for (index, disk) in disks.enumerated() {
            let id = "disk\(index)"
            guard let format = disk.format else {
                throw BerthError(
                    .invalidArgument, "Disk '\(disk.path)' has no recorded format.",
                    remedy: "Redefine the domain ('berth define --update'); Berth records each disk's format when it is defined.")
            }
            let readOnly = disk.readOnly || disk.device == .cdrom
            let fd = table.add(.file(path: disk.extent?.device ?? disk.path, access: readOnly ? .readOnly : .readWrite))
            args += ["-add-fd", "fd=\(fd),set=\(fd)"]
            let backingFD = format == .qcow2 ? disk.backing.map { table.add(.file(path: $0.path, access: .readOnly)) } : nil
            if let backingFD { args += ["-add-fd", "fd=\(backingFD),set=\(backingFD)"] }
            for node in blockNodes(id: id, disk: disk, format: format, fdset: fd, backingFDSet: backingFD, isBlockDevice: isBlockDevice) {
                args += ["-blockdev", node]
            }

            // A virtio cdrom does not exist: put it on virtio-scsi.
            let bus = disk.device == .cdrom && disk.bus == .virtio ? .scsi : disk.bus
            let boot = BootOrder.suffix(order.disks[index])
            let before = args.count
            switch bus {
            case .virtio:
                args += ["-device", "virtio-blk-\(family.virtioSuffix),drive=\(id)"]
            case .scsi:
                if !scsiAdded {
                    args += ["-device", "virtio-scsi-\(family.virtioSuffix),id=scsi0"]
                    scsiAdded = true
                }
                args += ["-device", "\(disk.device == .cdrom ? "scsi-cd" : "scsi-hd"),bus=scsi0.0,drive=\(id)"]
            case .ide, .sata:
                let device = disk.device == .cdrom ? "ide-cd" : "ide-hd"
                switch family {
                case .pc where bus == .ide:
                    // PIIX: two IDE buses with a master and a slave each.
                    guard ideSlot < 4 else { throw tooMany("IDE", 4) }
                    args += ["-device", "\(device),bus=ide.\(ideSlot / 2),unit=\(ideSlot % 2),drive=\(id)"]
                    ideSlot += 1
                case .q35:
                    // ICH9 AHCI: six ports, one device each.
                    guard ideSlot < 6 else { throw tooMany("SATA", 6) }
                    args += ["-device", "\(device),bus=ide.\(ideSlot),drive=\(id)"]
                    ideSlot += 1
                case .pc, .other:
                    if !ahciAdded {
                        args += ["-device", "ich9-ahci,id=sata0"]
                        ahciAdded = true
                    }
                    guard sataSlot < 6 else { throw tooMany("SATA", 6) }
                    args += ["-device", "\(device),bus=sata0.\(sataSlot),drive=\(id)"]
                    sataSlot += 1
                case .microvm:
                    throw BerthError(
                        .invalidArgument, "Disk '\(disk.path)' uses the \(bus.rawValue) bus, which microvm lacks.",
                        remedy: "Use \"bus\": \"virtio\", or set \"machine\": \"pc\".")
                }
            }
            // The device is the last argument added for this disk.
            if args.count > before, !boot.isEmpty { args[args.count - 1] += boot }
        }
        return args
    }

    /// The `-blockdev` (and QMP `blockdev-add`) nodes of one disk, as JSON objects, its format
    /// node named `id`: the protocol node on the passed descriptor's fdset, the format node on
    /// top with an explicit backing chain, so a guest that writes a qcow2 header naming a
    /// backing file gains nothing. A qcow2 overlay's one backing file (recorded by berthd from
    /// the volume catalog, never the name in the header) is its own read-only pair of nodes on
    /// `backingFDSet`.
    public static func blockNodes(
        id: String, disk: DiskSpec, format: DiskSpec.Format, fdset: Int32, backingFDSet: Int32?,
        isBlockDevice: (String) -> Bool = DiskFormat.isBlockDevice
    ) -> [String] {
        let readOnly = disk.readOnly || disk.device == .cdrom
        let protocolDriver = isBlockDevice(disk.extent?.device ?? disk.path) ? "host_device" : "file"
        let roFlag = readOnly ? "true" : "false"
        var nodes = [
            #"{"driver":"\#(protocolDriver)","filename":"/dev/fdset/\#(fdset)","node-name":"\#(id)-file","read-only":\#(roFlag),"auto-read-only":false}"#
        ]
        // An LV without device-mapper: the guest sees only its range of the physical volume.
        var backing = format == .qcow2 ? #","backing":null"# : disk.extent.map { #","offset":\#($0.offset),"size":\#($0.size)"# } ?? ""
        if format == .qcow2, let chain = disk.backing, let backingFDSet {
            let backingProtocol = isBlockDevice(chain.path) ? "host_device" : "file"
            let chainEnd = chain.format == .qcow2 ? #","backing":null"# : ""
            nodes += [
                #"{"driver":"\#(backingProtocol)","filename":"/dev/fdset/\#(backingFDSet)","node-name":"\#(id)-backing-file","read-only":true,"auto-read-only":false}"#,
                #"{"driver":"\#(chain.format.rawValue)","file":"\#(id)-backing-file","node-name":"\#(id)-backing","read-only":true\#(chainEnd)}"#,
            ]
            backing = #","backing":"\#(id)-backing""#
        }
        nodes.append(#"{"driver":"\#(format.rawValue)","file":"\#(id)-file","node-name":"\#(id)","read-only":\#(roFlag)\#(backing)}"#)
        return nodes
    }

    /// Hands out descriptor numbers 3, 4, … in the order things are added.
    struct DescriptorTable {
        private(set) var descriptors: [PassedDescriptor] = []

        mutating func add(_ source: PassedDescriptor.Source) -> Int32 {
            let number = Int32(3 + descriptors.count)
            descriptors.append(PassedDescriptor(source: source, number: number))
            return number
        }
    }

    private static func tooMany(_ bus: String, _ count: Int) -> BerthError {
        BerthError(
            .invalidArgument, "More than \(count) \(bus) disks.",
            remedy: "Put the other disks on \"bus\": \"virtio\" or \"scsi\".")
    }

    static func nicArguments(
        _ nics: [NICSpec], family: MachineFamily, taps: [Int: Int32], table: inout DescriptorTable,
        order: BootOrder = BootOrder()
    ) throws -> [String] {
        var args: [String] = []
        for (index, nic) in nics.enumerated() {
            let id = "net\(index)"
            if nic.mode == .user {
                args += ["-netdev", "user,id=\(id)"]
            } else if let tap = taps[index] {
                // No vhost: /dev/vhost-net would be one more host path QEMU opens.
                args += ["-netdev", "tap,id=\(id),fd=\(table.add(.open(fd: tap, what: "the tap of NIC \(index)")))"]
            } else {
                throw BerthError(
                    .internal, "NIC \(index) (\(nic.mode.rawValue)) reached QEMU without its tap.",
                    remedy: "This is a bug in berthd; start the domain again.")
            }
            var model = nic.model ?? "virtio-net-\(family.virtioSuffix)"
            if model == "virtio" || model == "virtio-net" { model = "virtio-net-\(family.virtioSuffix)" }
            guard !model.isEmpty, model.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) else {
                throw BerthError(
                    .invalidArgument, "NIC model '\(model)' is not a device name.",
                    remedy: "Use virtio-net-pci, e1000 or rtl8139.")
            }
            if family == .microvm, !model.hasPrefix("virtio-net-device") {
                throw BerthError(
                    .invalidArgument, "NIC model '\(model)' needs PCI, which microvm lacks.",
                    remedy: "Leave \"model\" out (virtio), or set \"machine\": \"pc\".")
            }
            var device = "\(model),netdev=\(id)"
            if let mac = nic.mac { device += ",mac=\(mac)" }
            // QEMU reads a PCI NIC's iPXE option ROM from its own data directory: only for a
            // guest that boots from the network (one host file fewer opened by every other).
            if family == .pc || family == .q35 { device += order.networkBoot ? BootOrder.suffix(order.nics[index]) : ",romfile=" }
            args += ["-device", device]
        }
        return args
    }

    // MARK: Helpers

    /// QEMU option values end at a comma; a literal comma is written twice.
    static func escape(_ value: String) -> String { value.replacing(",", with: ",,") }

    private static func join(_ a: String, _ b: String) -> String { a.isEmpty ? b : a + " " + b }
}
