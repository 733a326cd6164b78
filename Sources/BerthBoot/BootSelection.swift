import BerthDisk

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// What the daemon asks for at each start of a guest that boots through its own menu.
public struct BootRequest: Sendable {
    /// Host path of the first disk's image.
    public var image: String
    /// `--entry=`: flat index, title, id or GRUB2 `>` path; nil for the menu's default.
    public var entry: String?
    /// Boot this guest path instead of reading the menu (PyGRUB `--kernel=`).
    public var kernel: String?
    /// With `kernel`: the guest path of the initrd (PyGRUB `--ramdisk=`).
    public var ramdisk: String?
    /// Appended to the entry's command line (PyGRUB `--args=`).
    public var extraArgs: String?
    /// Private host directory the kernel and initrd are copied into.
    public var outputDirectory: String
    /// Byte offset of the filesystem in the image (`--offset=`), nil to discover.
    public var offset: UInt64?
    public var limits: ExtractionLimits
    /// Check everything but copy nothing (`-n`): the result's paths are `<kernel:/guest/path>`.
    public var notReally: Bool
    /// UEFI firmware will start the kernel (`--uefi`): refuse one it cannot start
    /// (`KernelImage.uefiStart`), before anything is launched.
    public var uefi: Bool

    public init(
        image: String, entry: String? = nil, kernel: String? = nil, ramdisk: String? = nil, extraArgs: String? = nil,
        outputDirectory: String, offset: UInt64? = nil, limits: ExtractionLimits = ExtractionLimits(), notReally: Bool = false,
        uefi: Bool = false
    ) {
        self.image = image
        self.entry = entry
        self.kernel = kernel
        self.ramdisk = ramdisk
        self.extraArgs = extraArgs
        self.outputDirectory = outputDirectory
        self.offset = offset
        self.limits = limits
        self.notReally = notReally
        self.uefi = uefi
    }
}

/// The kernel, initrd and command line a guest boots with, copied out of its disk.
public struct BootSelection: Sendable, Equatable {
    /// Host path of the extracted kernel.
    public var kernelPath: String
    /// Host path of the extracted (concatenated) initrd, if the entry has any.
    public var initrdPath: String?
    public var cmdline: String
    /// The menu entry chosen; nil with an explicit kernel.
    public var entry: BootEntry?
    /// The menu read; nil with an explicit kernel.
    public var menu: BootMenu?

    public init(kernelPath: String, initrdPath: String?, cmdline: String, entry: BootEntry? = nil, menu: BootMenu? = nil) {
        self.kernelPath = kernelPath
        self.initrdPath = initrdPath
        self.cmdline = cmdline
        self.entry = entry
        self.menu = menu
    }

    /// Opens the image, reads its menu, picks the entry and extracts kernel and initrd.
    /// - Parameter open: finds the image's filesystems (`BootDisk.open` by default).
    /// - Throws: `BootError` (each says what to do next) or the disk readers' errors.
    public static func pick(_ request: BootRequest, open: FileSystemOpener = BootDisk.open) throws -> BootSelection {
        let image = try FileSource(path: request.image)
        let filesystems: [any FileSystem]
        do { filesystems = try open(image, request.offset) } catch BootError.noFileSystem(_, let reason) {
            throw BootError.noFileSystem(image: request.image, reason: reason)
        }
        let plan = try plan(request, filesystems: filesystems)
        return try plan.run(request)
    }

    /// Chooses the filesystem, menu, entry and guest files without copying anything.
    public static func plan(_ request: BootRequest, filesystems: [any FileSystem]) throws -> BootPlan {
        guard !filesystems.isEmpty else { throw BootError.noFileSystem(image: request.image, reason: "no filesystem found") }
        if let kernel = request.kernel {
            let kernelFile = try locate(kernel, preferring: filesystems[0], among: filesystems)
            let initrds = try request.ramdisk.map { [try locate($0, preferring: kernelFile.fs, among: filesystems)] } ?? []
            return BootPlan(kernel: kernelFile, initrds: initrds, cmdline: request.extraArgs ?? "", entry: nil, menu: nil)
        }
        var firstError: Error?
        for fs in filesystems {
            let menu: BootMenu
            do { menu = try MenuSearch.find(in: fs) } catch {
                // Keep the most useful error: any other problem beats "no menu here".
                if firstError == nil || isNoMenu(firstError) { firstError = error }
                continue
            }
            var index = menu.defaultIndex
            if let selector = request.entry {
                guard let chosen = menu.index(of: selector) else {
                    throw BootError.noSuchEntry(selector: selector, count: menu.entries.count)
                }
                index = chosen
            }
            var entry = menu.entries[index]
            var files: (GuestFile, [GuestFile])
            do {
                files = try guestFiles(entry, menu: fs, all: filesystems)
            } catch {
                // Unattended, GRUB boots the `fallback` entry when the default cannot load.
                guard request.entry == nil, let fallback = menu.fallbackIndex, menu.entries.indices.contains(fallback),
                    fallback != index, let other = try? guestFiles(menu.entries[fallback], menu: fs, all: filesystems)
                else { throw error }
                entry = menu.entries[fallback]
                files = other
            }
            let (kernelFile, initrds) = files
            var cmdline = entry.args
            if let extra = request.extraArgs, !extra.isEmpty { cmdline += cmdline.isEmpty ? extra : " " + extra }
            return BootPlan(kernel: kernelFile, initrds: initrds, cmdline: cmdline, entry: entry, menu: menu)
        }
        throw firstError ?? BootError.noMenu(searched: [])
    }

    static func guestFiles(_ entry: BootEntry, menu fs: any FileSystem, all: [any FileSystem]) throws -> (GuestFile, [GuestFile]) {
        guard let kernel = entry.kernel else { throw BootError.notLinux(title: entry.title) }
        let kernelFile = try locate(kernel, preferring: fs, among: all)
        return (kernelFile, try entry.initrds.map { try locate($0, preferring: kernelFile.fs, among: all) })
    }

    static func isNoMenu(_ error: Error?) -> Bool {
        if case BootError.noMenu = error as? BootError ?? .usage("") { return true }
        return false
    }

    /// Finds a menu path in the filesystem that holds the menu, then in the others; a
    /// separate /boot partition sees `/boot/vmlinuz` as `/vmlinuz`, and the reverse.
    static func locate(_ path: String, preferring first: any FileSystem, among all: [any FileSystem]) throws -> GuestFile {
        let clean = BootPath.resolve(path, relativeTo: "/")
        var candidates = [clean]
        if clean.hasPrefix("/boot/") { candidates.append(String(clean.dropFirst(5))) } else { candidates.append("/boot" + clean) }
        for fs in [first] + all {
            for candidate in candidates {
                if let info = try? fs.stat(candidate), info.kind == .file { return GuestFile(fs: fs, path: candidate) }
            }
        }
        throw BootError.fileMissing(path: clean)
    }
}

/// The guest files and command line chosen for a boot, before anything is copied.
public struct BootPlan: Sendable {
    public var kernel: GuestFile
    public var initrds: [GuestFile]
    public var cmdline: String
    public var entry: BootEntry?
    public var menu: BootMenu?

    /// Copies the files (or, with `notReally`, only names them) and returns the selection.
    public func run(_ request: BootRequest) throws -> BootSelection {
        if request.notReally {
            let ramdisk = initrds.isEmpty ? nil : "<ramdisk:\(initrds.map(\.path).joined(separator: ","))>"
            return BootSelection(kernelPath: "<kernel:\(kernel.path)>", initrdPath: ramdisk, cmdline: cmdline, entry: entry, menu: menu)
        }
        let (kernelPath, ramdiskPath) = try Extraction.extract(kernel: kernel, initrds: initrds, to: request.outputDirectory, limits: request.limits)
        // Judged on the copy: its first bytes are the kernel's, read once, whatever the filesystem.
        if request.uefi, KernelImage.uefiStart(try KernelImage.header(ofFileAt: kernelPath)) == .impossible {
            for path in [kernelPath, ramdiskPath].compactMap({ $0 }) { unlink(path) }
            throw BootError.notForUEFI(path: kernel.path)
        }
        return BootSelection(kernelPath: kernelPath, initrdPath: ramdiskPath, cmdline: cmdline, entry: entry, menu: menu)
    }
}
