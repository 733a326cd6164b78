import BerthDisk

/// The menu formats Berth reads, in the order it looks for them.
public enum MenuFormat: String, Sendable, Equatable {
    case grub2
    case extlinux
    case grubLegacy = "grub-legacy"
    case bls
}

/// One bootable (or listed but unbootable) entry of a guest's boot menu.
public struct BootEntry: Sendable, Equatable {
    /// The title a user sees (GRUB `menuentry`/`title`, syslinux `LABEL`, BLS `title`).
    public var title: String
    /// GRUB2 `--id`, BLS file name without `.conf`.
    public var id: String?
    /// Titles of the submenus that hold this entry, outermost first.
    public var submenus: [String]
    /// The device the menu names for this entry (`(hd0,0)`, `hd0,msdos1`, `fs-uuid:…`), for display.
    public var root: String?
    /// Kernel path inside the guest filesystem, device prefix removed; nil when the entry
    /// boots something that is not a Linux kernel (chainloader, memtest as an ELF, ...).
    public var kernel: String?
    /// Initial ramdisks in load order; QEMU takes one, so they are concatenated on extraction.
    public var initrds: [String]
    /// Kernel command line, words joined by single spaces as GRUB's loader builds it.
    public var args: String

    public init(
        title: String, id: String? = nil, submenus: [String] = [], root: String? = nil,
        kernel: String? = nil, initrds: [String] = [], args: String = ""
    ) {
        self.title = title
        self.id = id
        self.submenus = submenus
        self.root = root
        self.kernel = kernel
        self.initrds = initrds
        self.args = args
    }
}

/// A parsed boot menu: entries in the order a user sees them (submenus flattened, as
/// PyGRUB lists them) and the one the bootloader would start on its own.
public struct BootMenu: Sendable, Equatable {
    public var format: MenuFormat
    /// Where the menu was read from (`/boot/grub/grub.cfg`), or the host path with `--isconfig`.
    public var path: String
    public var entries: [BootEntry]
    /// Index into `entries` of the entry started without user input.
    public var defaultIndex: Int
    public var fallbackIndex: Int?
    /// Seconds; nil when the menu sets none, -1 to wait forever.
    public var timeout: Int?
    public var hidden: Bool
    /// The menu is password-protected (`password`, `password_pbkdf2`, `superusers`).
    public var hasPassword: Bool

    public init(
        format: MenuFormat, path: String, entries: [BootEntry], defaultIndex: Int = 0,
        fallbackIndex: Int? = nil, timeout: Int? = nil, hidden: Bool = false, hasPassword: Bool = false
    ) {
        self.format = format
        self.path = path
        self.entries = entries
        self.defaultIndex = entries.indices.contains(defaultIndex) ? defaultIndex : 0
        self.fallbackIndex = fallbackIndex
        self.timeout = timeout
        self.hidden = hidden
        self.hasPassword = hasPassword
    }

    /// The default entry, or nil for a menu without entries.
    public var defaultEntry: BootEntry? { entries.indices.contains(defaultIndex) ? entries[defaultIndex] : nil }

    /// Resolves a user's `--entry=`: a flat index as PyGRUB counts (`2`), a title, a GRUB2
    /// id, or a GRUB2 path of titles/ids/indices (`Advanced options for Ubuntu>1`).
    public func index(of selector: String) -> Int? {
        if let number = Int(selector) { return entries.indices.contains(number) ? number : nil }
        if let exact = entries.firstIndex(where: { $0.title == selector || ($0.id != nil && $0.id == selector) }) {
            return exact
        }
        let parts = selector.split(separator: ">", omittingEmptySubsequences: false).map(String.init)
        guard parts.count > 1 else { return nil }
        return entries.firstIndex { entry in
            let chain = entry.submenus + [entry.title]
            guard chain.count == parts.count else { return false }
            return zip(chain, parts).allSatisfy { $0 == $1 }
        }
    }
}

/// Caps on everything read from a guest, each with the advisory it answers.
public enum BootLimits {
    /// Largest menu file read (PyGRUB's FS_READ_MAX). A guest controls the file; a larger one
    /// is an attack on the host's memory, not a menu (XSA-443: pygrub resource exhaustion).
    public static let maxMenuBytes = 1 << 20
    /// Default cap on kernel plus initrds copied to the host (XSA-25: a guest-supplied kernel
    /// or ramdisk must not exhaust the host's memory or disk).
    public static let defaultMaxExtractBytes: UInt64 = 1 << 30
    /// Default wall-clock limit for one extraction (XSA-443: a crafted image must not keep
    /// the host's bootloader busy forever).
    public static let defaultExtractSeconds: Int = 60
    /// Entries kept from one menu: no real menu has thousands.
    public static let maxEntries = 4096
    /// GRUB2 script: commands executed while reading one menu (hostile menus may loop via
    /// functions or `source`); menus are data, never code (CVE-2007-4993).
    public static let maxScriptSteps = 200_000
    /// GRUB2 script: nesting of blocks, function calls and `source`.
    public static let maxNesting = 64
    /// Length of one variable value after expansion (`a=$a$a` doubles each time).
    public static let maxValueBytes = 64 << 10
    /// Number of BLS entry files read.
    public static let maxBLSEntries = 512
}

/// Errors from reading menus and extracting kernels; each says what to do next.
public enum BootError: Error, CustomStringConvertible, Sendable, Equatable {
    case noMenu(searched: [String])
    case emptyMenu(path: String)
    case menuTooLarge(path: String, size: UInt64)
    case noSuchEntry(selector: String, count: Int)
    case notLinux(title: String)
    case fileMissing(path: String)
    case tooLarge(total: UInt64, limit: UInt64)
    case timedOut(seconds: Int)
    case outputDirectory(path: String, reason: String)
    case write(path: String, errno: Int32)
    case noFileSystem(image: String, reason: String)
    case menuTooComplex(path: String, reason: String)
    case usage(String)
    case badValue(option: String, value: String, reason: String)
    case sandbox(step: String, errno: Int32)
    /// `--uefi`: the chosen kernel is neither an EFI application nor a bzImage OVMF's Linux
    /// loader takes, so UEFI firmware cannot start it.
    case notForUEFI(path: String)

    public var description: String {
        switch self {
        case .noMenu(let searched):
            "no boot menu found in the image (looked for \(searched.joined(separator: ", "))) — give --kernel= (and --ramdisk=, --args=) or install a bootloader configuration in the guest"
        case .emptyMenu(let path):
            "\(path) has no boot entries — fix the guest's boot menu or give --kernel="
        case .menuTooLarge(let path, let size):
            "\(path) is \(size) bytes, over the \(BootLimits.maxMenuBytes)-byte limit for a boot menu — this is not a real menu; check the guest image"
        case .noSuchEntry(let selector, let count):
            "no boot entry '\(selector)' (the menu has \(count)) — list them with --list-entries"
        case .notLinux(let title):
            "entry '\(title)' does not boot a Linux kernel — choose another with --entry="
        case .fileMissing(let path):
            "\(path) is not in the guest image — check the menu entry, or give --kernel=/--ramdisk="
        case .tooLarge(let total, let limit):
            "kernel and initrd total \(total) bytes, over the \(limit)-byte limit — raise the limit if the guest is trusted"
        case .timedOut(let seconds):
            "extraction took longer than \(seconds) s and was stopped — the image may be corrupt or hostile"
        case .outputDirectory(let path, let reason):
            "output directory \(path): \(reason) — use a private directory (mode 0700, owned by you)"
        case .write(let path, let errno):
            "cannot write \(path): \(errnoText(errno)) — check free space in the output directory"
        case .noFileSystem(let image, let reason):
            "\(image): \(reason) — check that it is a guest disk image, or use --offset= / --kernel="
        case .menuTooComplex(let path, let reason):
            "\(path): \(reason) — this is not a real boot menu; check the guest image"
        case .usage(let text): text
        case .badValue(let option, let value, let reason): "\(option)=\(value): \(reason)"
        case .notForUEFI(let path):
            "\(path) has no EFI stub and is not a relocatable bzImage (boot protocol 2.05 or later), so UEFI firmware cannot start it — boot this guest with BIOS firmware, or install a kernel built with CONFIG_EFI_STUB (Linux 3.3 and later)"
        case .sandbox(let step, let errno):
            "cannot enter the sandbox: \(step) failed: \(errnoText(errno)) — --sandbox needs root (CAP_SETUID, CAP_SETGID); nothing was read"
        }
    }
}
