#if canImport(BerthModel)
    import BerthModel
#endif

/// A `virt-install` command line, read into what Berth needs to install a guest.
///
/// `berth install` takes the same arguments virt-install did, so a command line from old notes
/// (such as the seed's CentOS 6 install on Xen) runs unchanged:
///
///     let request = try VirtInstallRequest.parse(commandText: pastedText)
///     print(request.plan())
///
/// Parsing does no I/O: whether a path exists or a URL answers is the daemon's business.
public struct VirtInstallRequest: Sendable, Equatable {
    /// `--name`.
    public var name: String?
    /// `--arch`; nil means the host's architecture.
    public var arch: String?
    /// `--vcpus`.
    public var vcpus: Int?
    /// `--vcpus N,maxvcpus=M`.
    public var maxVCPUs: Int?
    /// `--check-cpu`: warn when more vCPUs are asked for than the host has.
    public var checkCPU: Bool = false
    /// `--ram` / `--memory`, in MiB.
    public var memory: Int?
    /// `--memory N,maxmemory=M`, in MiB.
    public var maxMemory: Int?
    /// `--disk`, in command-line order.
    public var disks: [Disk] = []
    /// `--network` (and the older `--bridge`), in command-line order.
    public var networks: [Network] = []
    /// `--mac`: the old way to give the NICs their addresses, first `--mac` to the first NIC.
    public var macs: [MACAddress] = []
    /// `--os-type` (`linux`, `windows`): kept for old command lines, the variant says more.
    public var osType: String?
    /// `--os-variant` / `--osinfo` as written (`rhel6`); see `osInfo`.
    public var osVariant: String?
    /// How the guest is installed (`--location`, `--cdrom`, `--import`, `--boot kernel=`).
    public var method: InstallMethod?
    /// `-x` / `--extra-args`: kernel arguments for the installer, in order.
    public var extraArgs: [String] = []
    /// `--initrd-inject`: host files copied into the root of the installer's initrd.
    public var initrdInjections: [String] = []
    public var graphics: Graphics = .unspecified
    /// `--console` values; Berth always gives the guest a logged serial console.
    public var consoles: [String] = []
    /// false after `--noautoconsole`: do not attach to the console after starting.
    public var autoconsole: Bool = true
    /// `--wait`: minutes to wait for the install to finish; -1 waits forever.
    public var waitMinutes: Int?
    /// `--noreboot`: leave the guest shut off after the install.
    public var noReboot: Bool = false
    /// `--dry-run`: print what would be done, change nothing.
    public var dryRun: Bool = false
    /// `--print-xml`: print the domain definition instead of installing.
    public var printXML: Bool = false
    public var debug: Bool = false
    /// `--autostart`: start the guest when the host boots.
    public var autostart: Bool = false
    /// `--force`: answer yes to every question (e.g. reuse a disk another guest uses).
    public var force: Bool = false
    /// `--uuid`.
    public var uuid: String?
    /// `--description`.
    public var description: String?
    /// `--boot` device order (`hd`, `cdrom`, `network`): the installed guest's firmware boot order.
    public var bootOrder: [String] = []
    /// `--boot uefi`, `--boot loader=…[,nvram=…]`, `--boot firmware=efi`: OVMF instead of SeaBIOS.
    public var uefi: Bool = false
    public var loader: String?
    public var nvram: String?
    /// Things that were accepted but do not act as they did under virt-install.
    public var warnings: [String] = []

    public init() {}

    /// One `--disk`.
    public struct Disk: Sendable, Equatable {
        /// A file, block device or ISO on the host; nil when Berth must create a volume (`size=` only).
        public var path: String?
        /// `size=`, in GiB (virt-install's unit), for a disk Berth creates.
        public var sizeGiB: Double?
        public var format: DiskSpec.Format?
        public var bus: DiskSpec.Bus?
        public var device: DiskSpec.Device = .disk
        public var readOnly: Bool = false
        /// `pool=`: storage pool to create the volume in.
        public var pool: String?
        /// `vol=POOL/NAME`: an existing storage volume (berthd fills in its path and format).
        public var volume: String?

        public init(
            path: String? = nil, sizeGiB: Double? = nil, format: DiskSpec.Format? = nil, bus: DiskSpec.Bus? = nil,
            device: DiskSpec.Device = .disk, readOnly: Bool = false, pool: String? = nil
        ) {
            self.path = path
            self.sizeGiB = sizeGiB
            self.format = format
            self.bus = bus
            self.device = device
            self.readOnly = readOnly
            self.pool = pool
        }
    }

    /// One `--network`.
    public struct Network: Sendable, Equatable {
        public var mode: NICSpec.Mode
        public var bridge: String?
        public var network: String?
        public var mac: MACAddress?
        public var model: String?

        public init(
            mode: NICSpec.Mode = .user, bridge: String? = nil, network: String? = nil, mac: MACAddress? = nil,
            model: String? = nil
        ) {
            self.mode = mode
            self.bridge = bridge
            self.network = network
            self.mac = mac
            self.model = model
        }
    }

    /// Where the installer comes from.
    public enum InstallMethod: Sendable, Equatable {
        /// `--location`: an install tree (URL, directory or ISO); its installer kernel boots first.
        /// `kernel`/`initrd` are `--location URL,kernel=…,initrd=…`: paths inside the tree.
        case location(String, kernel: String? = nil, initrd: String? = nil)
        /// `--cdrom`: boot an ISO.
        case cdrom(String)
        /// `--import`: the disk already holds an installed system.
        case importDisk
        /// `--pxe`: the firmware boots from the network (a Berth network that serves a boot file).
        case pxe
        /// `--boot kernel=…,initrd=…,kernel_args=…`: boot a host kernel, now and later.
        case kernel(kernel: String, initrd: String?, args: String?)
    }

    /// `--graphics` / `--nographics`.
    public enum Graphics: Sendable, Equatable {
        /// Not given: Berth runs headless with a serial console (virt-install would have opened VNC).
        case unspecified
        /// `--graphics none` or `--nographics`.
        case none
        case vnc(listen: String?, port: Int?, password: String?)
        case spice(listen: String?, port: Int?, password: String?)
    }

    /// The `--location` URL or path, if any.
    public var location: String? {
        if case .location(let url, _, _) = method { return url }
        return nil
    }

    /// True for `--location http://…`, `https://…`, `ftp://…`: only then is the tree handed to the
    /// installer on its kernel command line (a local tree is not reachable from inside the guest).
    public var isNetworkLocation: Bool {
        guard let location else { return false }
        return VirtInstallRequest.isNetworkURL(location)
    }

    static func isNetworkURL(_ text: String) -> Bool {
        let lower = text.lowercased()
        return lower.hasPrefix("http://") || lower.hasPrefix("https://") || lower.hasPrefix("ftp://")
    }

    /// The OS table entry for `--os-variant`, or nil when none was given or it is unknown.
    public var osInfo: VirtInstallOSInfo? {
        osVariant.flatMap(VirtInstallOSInfo.lookup)
    }

    /// All `-x` arguments joined, as virt-install passed them to the installer.
    public var extraArgsText: String? {
        let joined = extraArgs.map { $0.trimmed() }.filter { !$0.isEmpty }
            .joined(separator: " ")
        return joined.isEmpty ? nil : joined
    }
}

/// A `virt-install` command line Berth cannot accept.
public enum VirtInstallError: Error, CustomStringConvertible, Sendable, Equatable {
    /// An option virt-install never had, or that Berth does not know.
    case unknownOption(String, suggestion: String?)
    /// An option virt-install had that Berth cannot honour.
    case unsupportedOption(String, remedy: String)
    case missingValue(option: String)
    /// A flag given `=value` (`--debug=yes`).
    case unexpectedValue(option: String, value: String)
    case invalidValue(option: String, value: String, reason: String)
    /// A sub-option (`--disk path=…,foo=1`) that is not known.
    case unknownSubOption(option: String, key: String, known: [String])
    case conflict(String, String)
    /// A required option is missing (`--name`, an install method).
    case missing(String, remedy: String)
    /// A positional argument that belongs to no option.
    case strayArgument(String)
    /// Pasted text: a quote that never closes.
    case unterminatedQuote(Character, line: Int)
    /// Pasted text that holds more than one command.
    case multipleCommands(line: Int)
    case emptyCommand
    /// Pasted text whose command is not virt-install (or berth install).
    case notVirtInstall(String)
    /// Building the domain needs something the caller did not give (installer kernel, disk path).
    case needs(String, remedy: String)

    public var message: String {
        switch self {
        case .unknownOption(let option, _): "Unknown option '\(option)'."
        case .unsupportedOption(let option, _): "Option '\(option)' is not supported by Berth."
        case .missingValue(let option): "Option '\(option)' needs a value."
        case .unexpectedValue(let option, let value): "Option '\(option)' takes no value, but was given '\(value)'."
        case .invalidValue(let option, let value, let reason): "Invalid value '\(value)' for \(option): \(reason)."
        case .unknownSubOption(let option, let key, _): "\(option) has no sub-option '\(key)'."
        case .conflict(let a, let b): "\(a) cannot be combined with \(b)."
        case .missing(let what, _): "\(what) is required."
        case .strayArgument(let argument): "Unexpected argument '\(argument)'."
        case .unterminatedQuote(let quote, let line): "The \(quote) quote opened on line \(line) is never closed."
        case .multipleCommands(let line): "Line \(line) starts a second command."
        case .emptyCommand: "The command is empty."
        case .notVirtInstall(let word): "'\(word)' is not a virt-install command."
        case .needs(let what, _): "\(what) is missing."
        }
    }

    public var remedy: String {
        switch self {
        case .unknownOption(_, let suggestion?):
            "Did you mean '\(suggestion)'? See 'berth install --help' for the options virt-install had."
        case .unknownOption:
            "Remove it; see 'berth install --help' for the options virt-install had."
        case .unsupportedOption(_, let remedy): remedy
        case .missingValue(let option): "Write '\(option)=VALUE' or '\(option) VALUE'."
        case .unexpectedValue(let option, _): "Write just '\(option)'."
        case .invalidValue(let option, _, _): "Check the value given to \(option)."
        case .unknownSubOption(let option, _, let known):
            "\(option) knows: \(known.joined(separator: ", "))."
        case .conflict: "Keep only one of them."
        case .missing(_, let remedy): remedy
        case .strayArgument: "Values need an option before them, e.g. '--disk PATH'; quote values that hold spaces."
        case .unterminatedQuote(let quote, _): "Add the closing \(quote)."
        case .multipleCommands:
            "End every line but the last of one command with a backslash, or give one command at a time."
        case .emptyCommand: "Give the virt-install options, e.g. '--name devel1 --ram 1024 --location URL'."
        case .notVirtInstall: "Start with 'virt-install' or give only its options."
        case .needs(_, let remedy): remedy
        }
    }

    public var description: String { "\(message) — \(remedy)" }

    /// The error as it reaches a user through the API or CLI.
    public var berthError: BerthError { BerthError(.invalidArgument, message, remedy: remedy) }
}
