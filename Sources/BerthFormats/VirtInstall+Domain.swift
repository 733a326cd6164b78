import FoundationEssentials
import Glibc

#if canImport(BerthModel)
    import BerthModel
#endif

/// The two definitions an install goes through, as virt-install wrote them for Xen.
public struct VirtInstallDomains: Sendable, Equatable {
    /// The first boot: the installer's kernel and initrd from the tree, or the ISO. It ends
    /// when the installer reboots (`onReboot: .destroy`). Nil for `--import` and `--boot kernel=`.
    public var installer: DomainSpec?
    /// The guest as defined afterwards: it boots the kernel installed on its own disk through
    /// Berth's bootloader, as virt-install replaced `kernel`/`ramdisk` with `bootloader = pygrub`.
    public var installed: DomainSpec

    public init(installer: DomainSpec?, installed: DomainSpec) {
        self.installer = installer
        self.installed = installed
    }
}

/// The installer the daemon fetched from the tree, on the host.
public struct VirtInstallInstallerBoot: Sendable, Equatable {
    /// Host path of the fetched installer kernel.
    public var kernel: String
    /// Host path of the fetched installer initrd (after `--initrd-inject` files were added).
    public var initrd: String
    /// Kernel argument that points the installer at the tree (`method`, `inst.repo`, `install`), as
    /// install-tree recognition found it; nil falls back to the `--os-variant` table entry.
    public var sourceArgument: String?

    public init(kernel: String, initrd: String, sourceArgument: String? = nil) {
        self.kernel = kernel
        self.initrd = initrd
        self.sourceArgument = sourceArgument
    }
}

extension VirtInstallRequest {
    /// Takes the variant that install-tree recognition found when `--os-variant` was not given
    /// (or was unknown), so that its defaults and kernel arguments apply; a known `--os-variant` wins.
    public mutating func adoptDetectedOSVariant(_ id: String?) {
        guard let id, VirtInstallOSInfo.lookup(id) != nil, osInfo == nil else { return }
        osVariant = id
    }

    /// The OS entry used for defaults: the `--os-variant` one, else generic Linux.
    public var effectiveOSInfo: VirtInstallOSInfo { osInfo ?? .generic }

    /// The disks the guest gets, in order: the `--disk`s, or one new volume of the OS's default
    /// size when an installation was asked for without any disk.
    public var effectiveDisks: [Disk] {
        if !disks.isEmpty { return disks }
        switch method {
        case .location, .cdrom, .pxe:
            return [Disk(sizeGiB: Double(effectiveOSInfo.defaultDiskGiB), format: .qcow2)]
        default:
            return []
        }
    }

    /// Disks Berth must create before the install, by index into `effectiveDisks`: those given
    /// only a size, and those with a path and a size (created if the file does not exist yet).
    public var volumesToCreate: [(index: Int, disk: Disk)] {
        effectiveDisks.enumerated().filter { $0.element.sizeGiB != nil && $0.element.device == .disk }
            .map { (index: $0.offset, disk: $0.element) }
    }

    /// The installer's kernel command line: the `-x` arguments, then the argument naming a network
    /// tree (`method=URL` for RHEL 6), then `console=ttyS0` when the guest has no display, so that
    /// the installer's text mode reaches Berth's serial console log.
    /// - Parameter sourceArgument: from tree recognition; nil uses the `--os-variant` table.
    public func installerCommandLine(sourceArgument: String? = nil) -> String {
        Self.installerCommandLine(
            extraArgs: extraArgs, networkLocation: isNetworkLocation ? location : nil,
            sourceArgument: sourceArgument ?? effectiveOSInfo.sourceArgument, serialConsole: isHeadless)
    }

    /// The installer's kernel command line from its parts (berthd builds it from an `InstallPlan`):
    /// the `-x` arguments, `ARGUMENT=URL` for a network tree unless the arguments name one, then
    /// `console=ttyS0` for a guest without a display unless they name a console.
    public static func installerCommandLine(
        extraArgs: [String], networkLocation: String?, sourceArgument: String?, serialConsole: Bool
    ) -> String {
        var parts: [String] = []
        let extra = extraArgs.map { $0.trimmed() }.filter { !$0.isEmpty }.joined(separator: " ")
        if !extra.isEmpty { parts.append(extra) }
        let existingKeys = Set(
            parts.joined(separator: " ").split(separator: " ").compactMap { $0.split(separator: "=").first.map(String.init) })
        if let location = networkLocation, let argument = sourceArgument,
            !existingKeys.contains(argument), !existingKeys.contains("repo"), !existingKeys.contains("inst.repo"),
            !existingKeys.contains("method")
        {
            parts.append("\(argument)=\(location)")
        }
        if serialConsole, !existingKeys.contains("console") {
            parts.append("console=ttyS0")
        }
        return parts.joined(separator: " ")
    }

    /// True when the guest gets no display (`--nographics`, `--graphics none`, or no display option).
    public var isHeadless: Bool {
        switch graphics {
        case .unspecified, .none: true
        case .vnc, .spice: false
        }
    }

    var graphicsSpec: GraphicsSpec? {
        switch graphics {
        case .unspecified, .none: nil
        case .vnc(let listen, let port, let password): GraphicsSpec(kind: .vnc, listen: listen, port: port, password: password)
        case .spice(let listen, let port, let password):
            GraphicsSpec(kind: .spice, listen: listen, port: port, password: password)
        }
    }

    /// Builds the installer-phase and installed-phase domains.
    ///
    /// - Parameters:
    ///   - installerBoot: the installer kernel and initrd fetched from the `--location` tree; required
    ///     for `--location`, ignored otherwise.
    ///   - createdDiskPaths: host paths of the volumes made for `volumesToCreate` entries without a path,
    ///     keyed by their index in `effectiveDisks`.
    ///   - uuid: the domain's UUID when `--uuid` was not given (both phases share it).
    ///   - hostArch: the architecture when `--arch` was not given.
    /// - Throws: `VirtInstallError.needs` when an input is missing; `BerthError` when the resulting
    ///   domain does not validate.
    public func domains(
        installerBoot: VirtInstallInstallerBoot? = nil, createdDiskPaths: [Int: String] = [:], uuid: UUID = UUID(),
        hostArch: String = "x86_64"
    ) throws -> VirtInstallDomains {
        guard let name, let method else {
            throw VirtInstallError.needs(
                "A parsed request", remedy: "Build requests with VirtInstallRequest.parse(arguments:).")
        }
        let os = effectiveOSInfo
        var diskSpecs: [DiskSpec] = []
        for (index, disk) in effectiveDisks.enumerated() {
            guard let path = disk.path ?? createdDiskPaths[index] else {
                throw VirtInstallError.needs(
                    "The path of new disk \(index + 1) (\(disk.sizeGiB.map { Self.gib($0) } ?? "?") GiB)",
                    remedy: "Create the volume first and pass its path in createdDiskPaths[\(index)].")
            }
            diskSpecs.append(
                DiskSpec(
                    path: path, format: disk.format, device: disk.device,
                    bus: disk.bus ?? (disk.device == .cdrom ? .ide : .virtio), readOnly: disk.readOnly || disk.device == .cdrom))
        }
        let nicSpecs = networks.map {
            NICSpec(mode: $0.mode, mac: $0.mac, bridge: $0.bridge, network: $0.network, model: $0.model)
        }
        var notes: [String] = []
        if let osVariant { notes.append("os-variant: \(osVariant)") }
        switch method {
        case .location(let url, _, _): notes.append("installed from \(url)")
        case .cdrom(let iso): notes.append("installed from \(iso)")
        default: break
        }
        let domainUUID = self.uuid.flatMap(UUID.init(uuidString:)) ?? uuid

        var installed = DomainSpec(
            name: name, uuid: domainUUID, memory: memory ?? os.defaultMemoryMiB, maxMemory: maxMemory,
            vcpus: vcpus ?? 1, arch: arch ?? hostArch, bootloader: BootloaderSpec(), disks: diskSpecs, nics: nicSpecs, graphics: graphicsSpec,
            onPoweroff: .destroy, onReboot: .restart, onCrash: .destroy,
            autostart: autostart, description: description, notes: notes)

        let order = bootOrder.compactMap(FirmwareSpec.BootDevice.init(rawValue:))
        if uefi || !order.isEmpty {
            installed.firmware = FirmwareSpec(kind: uefi ? .uefi : .bios, bootOrder: order, loader: loader, nvram: nvram)
        }

        var installer = installed
        installer.autostart = false
        // The installer's final reboot must end the install phase, not restart the installer.
        installer.onReboot = .destroy

        switch method {
        case .location:
            guard let installerBoot else {
                throw VirtInstallError.needs(
                    "The installer kernel and initrd",
                    remedy: "Recognise the --location tree and fetch its kernel and initrd first.")
            }
            installer.bootloader = nil
            installer.kernel = installerBoot.kernel
            installer.initrd = installerBoot.initrd
            installer.cmdline = installerCommandLine(sourceArgument: installerBoot.sourceArgument)
        case .cdrom(let iso):
            installer = Self.cdromInstaller(installed, iso: iso)
        case .pxe:
            installer = Self.networkInstaller(installed)
        case .importDisk:
            // A disk imported for UEFI holds its own EFI loader: OVMF boots it, not Berth's bootloader.
            if uefi { installed.bootloader = nil }
            try installed.validate()
            return VirtInstallDomains(installer: nil, installed: installed)
        case .kernel(let kernel, let initrd, let args):
            installed.bootloader = nil
            installed.kernel = kernel
            installed.initrd = initrd
            installed.cmdline = args
            try installed.validate()
            return VirtInstallDomains(installer: nil, installed: installed)
        }
        if !installed.disks.contains(where: { $0.device == .disk }) {
            throw VirtInstallError.needs(
                "A disk to install onto", remedy: "Add --disk PATH or --disk size=GiB.")
        }
        try installer.validate()
        try installed.validate()
        return VirtInstallDomains(installer: installer, installed: installed)
    }

    /// The installer of a `--cdrom` install: the installed definition with the ISO as a CD-ROM
    /// that the firmware boots first (then the disk), no bootloader, and a reboot that ends it.
    public static func cdromInstaller(_ installed: DomainSpec, iso: String) -> DomainSpec {
        var installer = firmwareInstaller(installed, order: [.cdrom, .hd])
        installer.disks.append(DiskSpec(path: iso, format: .raw, device: .cdrom, bus: .ide, readOnly: true))
        return installer
    }

    /// The installer of a `--pxe` install: the installed definition booted by the firmware from
    /// its NICs (iPXE asks the network's DHCP for the boot file), then the disk.
    public static func networkInstaller(_ installed: DomainSpec) -> DomainSpec {
        firmwareInstaller(installed, order: [.network, .hd])
    }

    static func firmwareInstaller(_ installed: DomainSpec, order: [FirmwareSpec.BootDevice]) -> DomainSpec {
        var installer = installed
        installer.autostart = false
        installer.onReboot = .destroy
        installer.bootloader = nil
        installer.kernel = nil
        installer.initrd = nil
        installer.cmdline = nil
        var firmware = installed.firmware ?? FirmwareSpec()
        firmware.bootOrder = order
        installer.firmware = firmware
        return installer
    }

    static func gib(_ value: Double) -> String {
        value == value.rounded() ? String(Int(value)) : String(value)
    }
}
