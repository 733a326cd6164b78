import FoundationEssentials
import Glibc

/// What `berth install` asks berthd to do: virt-install's options as the CLI parsed them
/// (`VirtInstallRequest.installPlan`), sent in one `POST /v1/domains/{name}/install` and run by
/// berthd as an operation. Everything in it is the daemon's view: a `--location` directory or
/// ISO and a `--disk path=` are paths on berthd's host; a kickstart or `--initrd-inject` file on
/// the client's host travels inline.
public struct InstallPlan: Codable, Sendable, Equatable {
    /// Where the installer comes from.
    public enum Source: Codable, Sendable, Equatable {
        /// `--location`: an install tree (http(s) URL, directory or ISO on berthd's host);
        /// `kernel`/`initrd` are paths inside it (`--location URL,kernel=…,initrd=…`).
        case location(url: String, kernel: String?, initrd: String?)
        /// `--cdrom`: an ISO on berthd's host that the firmware boots.
        case cdrom(path: String)
        /// `--import`: the disk already holds an installed system.
        case importDisk
        /// `--pxe`: the firmware boots from the domain's NIC on a Berth network that serves a
        /// boot file (TFTP from dnsmasq).
        case network
    }

    /// A disk berthd creates before the installer runs.
    public struct NewDisk: Codable, Sendable, Equatable {
        /// Index into `domain.disks`.
        public var index: Int
        public var sizeBytes: UInt64
        public var format: DiskSpec.Format

        public init(index: Int, sizeBytes: UInt64, format: DiskSpec.Format) {
            self.index = index
            self.sizeBytes = sizeBytes
            self.format = format
        }
    }

    /// The kickstart named by `ks=` in the installer's arguments.
    public struct KickstartInput: Codable, Sendable, Equatable {
        /// As given: an http(s) URL berthd fetches, or the client's file name (for messages).
        public var origin: String
        /// The text, read by the client from its own file; nil for a URL (berthd fetches it).
        public var text: String?

        public init(origin: String, text: String? = nil) {
            self.origin = origin
            self.text = text
        }
    }

    /// A file `--initrd-inject` copies into the root of the installer's initrd.
    public struct InjectedFile: Codable, Sendable, Equatable {
        public var name: String
        public var contents: Data

        public init(name: String, contents: Data) {
            self.name = name
            self.contents = contents
        }
    }

    public var source: Source
    /// The installed definition: it boots from its own disk through Berth's bootloader. A disk
    /// with `volume` set and an empty `path` is a volume berthd creates (`NewDisk`).
    public var domain: DomainSpec
    public var newDisks: [NewDisk]
    /// `-x` arguments, as typed (berthd rewrites URLs naming its host for the guest).
    public var extraArgs: [String]
    /// The kernel argument naming a network tree for this OS (`method`, `inst.repo`) from the
    /// `--os-variant` table; what tree recognition finds wins.
    public var sourceArgument: String?
    /// Add `console=ttyS0` (the guest has no display).
    public var serialConsole: Bool
    public var kickstart: KickstartInput?
    public var initrdInjections: [InjectedFile]
    /// `--noreboot`: leave the installed guest shut off.
    public var noReboot: Bool
    /// `--force`: go on despite kickstart errors or too little space.
    public var force: Bool

    public init(
        source: Source, domain: DomainSpec, newDisks: [NewDisk] = [], extraArgs: [String] = [],
        sourceArgument: String? = nil, serialConsole: Bool = true, kickstart: KickstartInput? = nil,
        initrdInjections: [InjectedFile] = [], noReboot: Bool = false, force: Bool = false
    ) {
        self.source = source
        self.domain = domain
        self.newDisks = newDisks
        self.extraArgs = extraArgs
        self.sourceArgument = sourceArgument
        self.serialConsole = serialConsole
        self.kickstart = kickstart
        self.initrdInjections = initrdInjections
        self.noReboot = noReboot
        self.force = force
    }
}

/// `POST /v1/domains/{name}/reinstall`: the installer the domain was installed with, again, on
/// the same disks, MAC and UUID.
public struct ReinstallRequest: Codable, Sendable, Equatable {
    /// Another kickstart; nil reuses the one stored with the domain.
    public var kickstart: InstallPlan.KickstartInput?
    public var noReboot: Bool
    /// Destroy a running guest first; go on despite kickstart errors.
    public var force: Bool

    public init(kickstart: InstallPlan.KickstartInput? = nil, noReboot: Bool = false, force: Bool = false) {
        self.kickstart = kickstart
        self.noReboot = noReboot
        self.force = force
    }
}

/// One line of an operation's progress, as `berth install` prints it.
public struct OperationMessage: Codable, Sendable, Equatable {
    public enum Level: String, Codable, Sendable { case info, warning, debug }
    /// The install's phases; a line without one is commentary.
    public enum Phase: String, Codable, Sendable {
        case fetch, disk, kickstart, defined
        case installerRunning = "installer-running"
        case installerFinished = "installer-finished"
        case firstBoot = "first-boot"
    }

    public var level: Level
    public var phase: Phase?
    public var text: String
    public var time: Date

    public init(_ text: String, level: Level = .info, phase: Phase? = nil, time: Date = Date()) {
        self.level = level
        self.phase = phase
        self.text = text
        self.time = time
    }
}
