import FoundationEssentials
import Glibc

/// What a guest is: Berth's own domain document, stored in the catalog and sent over the API.
///
/// Only `name` is required in JSON; every other field has the default a user would expect
/// (256 MiB, one vCPU, user-mode networking added by the caller when asked).
public struct DomainSpec: Codable, Sendable, Equatable {
    public var name: String
    public var uuid: UUID
    /// Guest RAM in MiB (JSON `memory`).
    public var memory: Int
    /// Upper bound for ballooning, in MiB; nil means `memory`.
    public var maxMemory: Int?
    /// A virtio-balloon device with free page reporting: the guest hands the pages it frees
    /// back to the host. Off (nil) by default; it pays off from about 256 MiB of guest RAM
    /// (`bench/density/balloon.sh`), and needs the `pc` or `q35` machine.
    public var balloon: Bool?
    public var vcpus: Int
    public var arch: String
    /// QEMU machine type (`pc`, `q35`, `microvm`); nil lets Berth choose.
    public var machine: String?
    public var accel: Accelerator
    /// Direct kernel boot: a kernel, an initrd and a command line on the host.
    public var kernel: String?
    public var initrd: String?
    public var cmdline: String?
    /// Boot the kernel found on the guest's own disk (PyGRUB's job).
    public var bootloader: BootloaderSpec?
    /// The firmware (SeaBIOS or OVMF) and the order it tries devices in; nil means SeaBIOS,
    /// disks first. It boots the guest when there is no kernel and no bootloader.
    public var firmware: FirmwareSpec?
    public var disks: [DiskSpec]
    public var nics: [NICSpec]
    public var graphics: GraphicsSpec?
    /// Whether the guest gets ACPI (needed for graceful shutdown).
    public var acpi: Bool
    public var onPoweroff: LifecycleAction
    public var onReboot: LifecycleAction
    public var onCrash: LifecycleAction
    public var autostart: Bool
    public var description: String?
    /// Settings from an imported file that Berth keeps but does not act on.
    public var notes: [String]

    public init(
        name: String, uuid: UUID = UUID(), memory: Int = 256, maxMemory: Int? = nil, balloon: Bool? = nil,
        vcpus: Int = 1,
        arch: String = "x86_64", machine: String? = nil, accel: Accelerator = .auto,
        kernel: String? = nil, initrd: String? = nil, cmdline: String? = nil,
        bootloader: BootloaderSpec? = nil, firmware: FirmwareSpec? = nil, disks: [DiskSpec] = [], nics: [NICSpec] = [],
        graphics: GraphicsSpec? = nil, acpi: Bool = true,
        onPoweroff: LifecycleAction = .destroy, onReboot: LifecycleAction = .restart,
        onCrash: LifecycleAction = .destroy, autostart: Bool = false, description: String? = nil,
        notes: [String] = []
    ) {
        self.name = name
        self.uuid = uuid
        self.memory = memory
        self.maxMemory = maxMemory
        self.balloon = balloon
        self.vcpus = vcpus
        self.arch = arch
        self.machine = machine
        self.accel = accel
        self.kernel = kernel
        self.initrd = initrd
        self.cmdline = cmdline
        self.bootloader = bootloader
        self.firmware = firmware
        self.disks = disks
        self.nics = nics
        self.graphics = graphics
        self.acpi = acpi
        self.onPoweroff = onPoweroff
        self.onReboot = onReboot
        self.onCrash = onCrash
        self.autostart = autostart
        self.description = description
        self.notes = notes
    }

    enum CodingKeys: String, CodingKey {
        case name, uuid, memory, maxMemory, balloon, vcpus, arch, machine, accel, kernel, initrd, cmdline
        case bootloader, firmware, disks, nics, graphics, acpi, onPoweroff, onReboot, onCrash, autostart
        case description, notes
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let defaults = DomainSpec(name: try c.decode(String.self, forKey: .name))
        self = defaults
        uuid = try c.decodeIfPresent(UUID.self, forKey: .uuid) ?? defaults.uuid
        memory = try c.decodeIfPresent(Int.self, forKey: .memory) ?? defaults.memory
        maxMemory = try c.decodeIfPresent(Int.self, forKey: .maxMemory)
        balloon = try c.decodeIfPresent(Bool.self, forKey: .balloon)
        vcpus = try c.decodeIfPresent(Int.self, forKey: .vcpus) ?? defaults.vcpus
        arch = try c.decodeIfPresent(String.self, forKey: .arch) ?? defaults.arch
        machine = try c.decodeIfPresent(String.self, forKey: .machine)
        accel = try c.decodeIfPresent(Accelerator.self, forKey: .accel) ?? defaults.accel
        kernel = try c.decodeIfPresent(String.self, forKey: .kernel)
        initrd = try c.decodeIfPresent(String.self, forKey: .initrd)
        cmdline = try c.decodeIfPresent(String.self, forKey: .cmdline)
        bootloader = try c.decodeIfPresent(BootloaderSpec.self, forKey: .bootloader)
        firmware = try c.decodeIfPresent(FirmwareSpec.self, forKey: .firmware)
        disks = try c.decodeIfPresent([DiskSpec].self, forKey: .disks) ?? []
        nics = try c.decodeIfPresent([NICSpec].self, forKey: .nics) ?? []
        graphics = try c.decodeIfPresent(GraphicsSpec.self, forKey: .graphics)
        acpi = try c.decodeIfPresent(Bool.self, forKey: .acpi) ?? defaults.acpi
        onPoweroff = try c.decodeIfPresent(LifecycleAction.self, forKey: .onPoweroff) ?? defaults.onPoweroff
        onReboot = try c.decodeIfPresent(LifecycleAction.self, forKey: .onReboot) ?? defaults.onReboot
        onCrash = try c.decodeIfPresent(LifecycleAction.self, forKey: .onCrash) ?? defaults.onCrash
        autostart = try c.decodeIfPresent(Bool.self, forKey: .autostart) ?? false
        description = try c.decodeIfPresent(String.self, forKey: .description)
        notes = try c.decodeIfPresent([String].self, forKey: .notes) ?? []
    }
}

/// Which hypervisor engine runs the guest.
public enum Accelerator: String, Codable, Sendable, CaseIterable {
    /// Probe the host: KVM when it can really run a stock guest, TCG otherwise.
    case auto
    case kvm
    case tcg
}

/// What happens when the guest powers off, reboots or crashes (xm's `on_*` keys).
public enum LifecycleAction: String, Codable, Sendable, CaseIterable {
    /// Stop the QEMU process; the domain is shut off (crashed, for `onCrash`).
    case destroy
    /// Start the guest again.
    case restart
    /// Keep the QEMU process paused so the guest can be inspected.
    case preserve
}

/// Boot through the guest's own menu and kernel (what PyGRUB did).
public struct BootloaderSpec: Codable, Sendable, Equatable {
    /// Menu entry to boot: an index or a title; nil means the menu's default.
    public var entry: String?
    /// Replaces the chosen entry's kernel arguments.
    public var args: String?
    /// Appended to the entry's kernel arguments.
    public var extraArgs: String?

    public init(entry: String? = nil, args: String? = nil, extraArgs: String? = nil) {
        self.entry = entry
        self.args = args
        self.extraArgs = extraArgs
    }
}

/// The guest's firmware and boot order (libvirt's `<os firmware=…>`, `<loader>`, `<nvram>` and
/// `<boot dev=…>`; virt-install's `--boot uefi`, `--boot cdrom,hd`).
public struct FirmwareSpec: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable, CaseIterable {
        /// SeaBIOS, QEMU's default for `pc`.
        case bios
        /// OVMF (Debian's `ovmf`): code read-only, variables in a per-domain copy.
        case uefi
    }

    /// What the firmware boots from.
    public enum BootDevice: String, Codable, Sendable, CaseIterable {
        /// The domain's disks, in order.
        case hd
        /// Its CD-ROMs.
        case cdrom
        /// Its NICs (the iPXE option ROM QEMU gives each NIC).
        case network
    }

    public var kind: Kind
    /// Tried in this order, and nothing else; empty means disks, then CD-ROMs.
    public var bootOrder: [BootDevice]
    /// The UEFI code image (OVMF_CODE); nil means Debian's `/usr/share/OVMF/OVMF_CODE_4M.fd`.
    public var loader: String?
    /// The domain's own UEFI variable store, made by berthd from `varsTemplate` when the
    /// domain is defined (`<state>/nvram/UUID_VARS.fd`) and removed with it.
    public var nvram: String?
    /// The variable store a new `nvram` is copied from; nil means the one matching `loader`.
    public var varsTemplate: String?

    public init(
        kind: Kind = .bios, bootOrder: [BootDevice] = [], loader: String? = nil, nvram: String? = nil, varsTemplate: String? = nil
    ) {
        self.kind = kind
        self.bootOrder = bootOrder
        self.loader = loader
        self.nvram = nvram
        self.varsTemplate = varsTemplate
    }

    enum CodingKeys: String, CodingKey { case kind, bootOrder, loader, nvram, varsTemplate }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            kind: try c.decodeIfPresent(Kind.self, forKey: .kind) ?? .bios,
            bootOrder: try c.decodeIfPresent([BootDevice].self, forKey: .bootOrder) ?? [],
            loader: try c.decodeIfPresent(String.self, forKey: .loader),
            nvram: try c.decodeIfPresent(String.self, forKey: .nvram),
            varsTemplate: try c.decodeIfPresent(String.self, forKey: .varsTemplate))
    }

    /// Debian's OVMF for 4 MiB flash (`ovmf`), without Secure Boot (which needs q35 and SMM).
    public static let defaultLoader = "/usr/share/OVMF/OVMF_CODE_4M.fd"
    public static let defaultVarsTemplate = "/usr/share/OVMF/OVMF_VARS_4M.fd"

    /// The variable store template for a loader: `…CODE….fd` → `…VARS….fd` beside it.
    public static func varsTemplate(for loader: String) -> String {
        loader == defaultLoader ? defaultVarsTemplate : loader.replacing("CODE", with: "VARS")
    }
}

public struct DiskSpec: Codable, Sendable, Equatable {
    public enum Format: String, Codable, Sendable, CaseIterable { case raw, qcow2 }
    public enum Device: String, Codable, Sendable, CaseIterable { case disk, cdrom }
    public enum Bus: String, Codable, Sendable, CaseIterable { case virtio, ide, scsi, sata }

    /// A file or block device on the host (a logical volume such as `/dev/vg/lv`). For a disk
    /// that names a `volume`, berthd fills it in at define time from the volume's record.
    public var path: String
    /// A storage volume, `POOL/NAME` (`default/devel1`), resolved to `path` by berthd when the
    /// domain is defined.
    public var volume: String?
    /// The backing file of a qcow2 overlay, recorded from the catalog's volume record at define
    /// time: the only backing file QEMU is ever given for this disk (never the image's header).
    public var backing: DiskBacking?
    /// nil: let QEMU's probing be avoided by guessing from the file (qcow2 magic, else raw).
    public var format: Format?
    public var device: Device
    public var bus: Bus
    public var readOnly: Bool
    /// The guest-visible name from an imported config (`xvda`, `hda`, `vda`); informational.
    public var target: String?
    /// A logical volume without device-mapper: the byte range of its physical volume that QEMU
    /// is given (raw `offset`/`size` over the PV), filled in by berthd from the volume's record.
    public var extent: VolumeExtent?

    public init(
        path: String, format: Format? = nil, device: Device = .disk, bus: Bus = .virtio,
        readOnly: Bool = false, target: String? = nil, volume: String? = nil, backing: DiskBacking? = nil
    ) {
        self.path = path
        self.volume = volume
        self.backing = backing
        self.format = format
        self.device = device
        self.bus = bus
        self.readOnly = readOnly
        self.target = target
    }

    enum CodingKeys: String, CodingKey { case path, format, device, bus, readOnly, target, volume, backing, extent }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let volume = try c.decodeIfPresent(String.self, forKey: .volume)
        // A disk naming a volume needs no path: berthd resolves it.
        let path = volume == nil ? try c.decode(String.self, forKey: .path) : try c.decodeIfPresent(String.self, forKey: .path) ?? ""
        self.init(path: path, volume: volume)
        backing = try c.decodeIfPresent(DiskBacking.self, forKey: .backing)
        format = try c.decodeIfPresent(Format.self, forKey: .format)
        device = try c.decodeIfPresent(Device.self, forKey: .device) ?? .disk
        bus = try c.decodeIfPresent(Bus.self, forKey: .bus) ?? (device == .cdrom ? .ide : .virtio)
        readOnly = try c.decodeIfPresent(Bool.self, forKey: .readOnly) ?? (device == .cdrom)
        target = try c.decodeIfPresent(String.self, forKey: .target)
        extent = try c.decodeIfPresent(VolumeExtent.self, forKey: .extent)
    }
}

/// The one backing file a qcow2 overlay disk may have: a volume berthd created it on.
public struct DiskBacking: Codable, Sendable, Equatable {
    public var path: String
    public var format: DiskSpec.Format
    /// The backing volume, `POOL/NAME`.
    public var volume: String?

    public init(path: String, format: DiskSpec.Format, volume: String? = nil) {
        self.path = path
        self.format = format
        self.volume = volume
    }
}

public struct NICSpec: Codable, Sendable, Equatable {
    public enum Mode: String, Codable, Sendable, CaseIterable {
        /// QEMU user-mode networking: no root, no bridge; the host is 10.0.2.2.
        case user
        /// A tap device on a host bridge (Xen's `vif-bridge`).
        case bridge
        /// A Berth-managed network (NAT or routed) by name.
        case network
        /// Routed through the host (Xen's `vif-route`).
        case route
        /// Masqueraded through the host (Xen's `vif-nat`).
        case nat
    }

    public var mode: Mode
    /// nil until the catalog assigns one; always set on a defined domain.
    public var mac: MACAddress?
    public var bridge: String?
    public var network: String?
    /// Guest NIC model (`virtio-net-pci`, `e1000`, `rtl8139`); nil means virtio.
    public var model: String?
    /// Fixed IP address from an imported config (Xen's `ip=`).
    public var ip: String?

    public init(
        mode: Mode = .user, mac: MACAddress? = nil, bridge: String? = nil, network: String? = nil,
        model: String? = nil, ip: String? = nil
    ) {
        self.mode = mode
        self.mac = mac
        self.bridge = bridge
        self.network = network
        self.model = model
        self.ip = ip
    }

    enum CodingKeys: String, CodingKey { case mode, mac, bridge, network, model, ip }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init()
        bridge = try c.decodeIfPresent(String.self, forKey: .bridge)
        network = try c.decodeIfPresent(String.self, forKey: .network)
        mode =
            try c.decodeIfPresent(Mode.self, forKey: .mode)
            ?? (bridge != nil ? .bridge : network != nil ? .network : .user)
        mac = try c.decodeIfPresent(MACAddress.self, forKey: .mac)
        model = try c.decodeIfPresent(String.self, forKey: .model)
        ip = try c.decodeIfPresent(String.self, forKey: .ip)
    }
}

/// A remote display (the seed's VNC; SPICE where QEMU has it).
public struct GraphicsSpec: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable, CaseIterable { case vnc, spice }
    public var kind: Kind
    /// Address to listen on; nil means 127.0.0.1.
    public var listen: String?
    /// TCP port; nil means chosen automatically.
    public var port: Int?
    public var password: String?

    public init(kind: Kind = .vnc, listen: String? = nil, port: Int? = nil, password: String? = nil) {
        self.kind = kind
        self.listen = listen
        self.port = port
        self.password = password
    }
}

extension DiskSpec {
    /// The guest's names for `disks`, in the order QEMU adds them: vda, vdb … on virtio, hda …
    /// on IDE, sda … on SCSI and SATA. A disk's own `target` (attach-disk's TARGET, an imported
    /// one) is kept when it fits its bus and is free; the others take the next free letter.
    public static func targets(_ disks: [DiskSpec]) -> [String] {
        var names = disks.map { disk -> String? in
            guard let target = disk.target, target.hasPrefix(disk.targetPrefix), target.count > 2 else { return nil }
            return target
        }
        var taken = Set<String>()
        for index in names.indices {
            guard let name = names[index] else { continue }
            if !taken.insert(name).inserted { names[index] = nil }
        }
        return disks.indices.map { index in
            if let name = names[index] { return name }
            var number = 0
            while taken.contains(Self.target(disks[index].targetPrefix, number)) { number += 1 }
            let name = Self.target(disks[index].targetPrefix, number)
            taken.insert(name)
            return name
        }
    }

    /// `vd`, `hd` or `sd`: the target prefix of the disk's bus (a virtio cdrom sits on SCSI).
    public var targetPrefix: String {
        switch device == .cdrom && bus == .virtio ? .scsi : bus {
        case .virtio: "vd"
        case .ide: "hd"
        case .scsi, .sata: "sd"
        }
    }

    /// The bus a target names (`vdb` → virtio, `sdb` → scsi, `hdb` → ide).
    /// - Throws: `.invalidArgument` for anything but `vd`, `sd` or `hd` and one or two letters.
    public static func bus(forTarget target: String) throws -> Bus {
        let letters = target.dropFirst(2)
        guard (1...2).contains(letters.count), letters.allSatisfy({ ("a"..."z").contains($0) }) else {
            throw badTarget(target)
        }
        switch target.prefix(2) {
        case "vd": return .virtio
        case "sd": return .scsi
        case "hd": return .ide
        default: throw badTarget(target)
        }
    }

    private static func badTarget(_ target: String) -> BerthError {
        BerthError(
            .invalidArgument, "'\(target)' is not a disk target.",
            remedy: "Give vdX for a virtio disk (vdb), sdX for SCSI or hdX for IDE.")
    }

    /// vda … vdz, vdaa … (as Linux names them).
    private static func target(_ prefix: String, _ number: Int) -> String {
        let letter = { (n: Int) in String(Character(Unicode.Scalar(UInt8(97 + n)))) }
        return number < 26 ? prefix + letter(number) : prefix + letter(min(number / 26 - 1, 25)) + letter(number % 26)
    }
}
