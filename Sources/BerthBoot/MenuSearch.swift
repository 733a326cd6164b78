import BerthDisk

/// Finds and reads a guest's boot menu, in PyGRUB's order: GRUB2, then SYSLINUX/EXTLINUX,
/// then GRUB legacy, then bare BLS entries (systemd-boot layouts).
public enum MenuSearch {
    public static let grub2Paths = [
        "/boot/grub2/grub.cfg", "/boot/grub/grub.cfg", "/grub2/grub.cfg", "/grub/grub.cfg",
    ]
    /// EFI system partitions hold `/EFI/<distribution>/grub.cfg`; mounted at /boot/efi on the root filesystem.
    public static let efiDirectories = ["/EFI", "/boot/efi/EFI", "/efi/EFI"]
    public static let extlinuxPaths = [
        "/boot/isolinux/isolinux.cfg", "/boot/extlinux/extlinux.conf", "/boot/extlinux.conf",
        "/extlinux/extlinux.conf", "/extlinux.conf", "/boot/syslinux/syslinux.cfg", "/syslinux/syslinux.cfg",
        "/syslinux.cfg", "/isolinux/isolinux.cfg",
    ]
    public static let legacyPaths = ["/boot/grub/menu.lst", "/boot/grub/grub.conf", "/grub/menu.lst", "/grub/grub.conf"]
    public static let blsDirectories = ["/boot/loader/entries", "/loader/entries"]

    /// The first menu in `fs` that has at least one entry.
    /// - Throws: `BootError.noMenu` naming every place looked at, `BootError.menuTooLarge`.
    public static func find(in fs: any FileSystem) throws -> BootMenu {
        var searched: [String] = []
        var candidates: [(String, MenuFormat)] = grub2Paths.map { ($0, .grub2) }
        for dir in efiDirectories {
            guard let vendors = try? fs.list(dir) else { continue }
            for vendor in vendors.prefix(64) where vendor != "." && vendor != ".." {
                candidates.append(("\(dir)/\(vendor)/grub.cfg", .grub2))
            }
        }
        candidates += extlinuxPaths.map { ($0, .extlinux) } + legacyPaths.map { ($0, .grubLegacy) }
        for (path, format) in candidates {
            searched.append(path)
            guard let info = try? fs.stat(path), info.kind == .file else { continue }
            guard info.size <= UInt64(BootLimits.maxMenuBytes) else { throw BootError.menuTooLarge(path: path, size: info.size) }
            let bytes = try fs.read(path, limit: BootLimits.maxMenuBytes)
            let menu = try parse(bytes, path: path, format: format, fs: fs)
            if !menu.entries.isEmpty { return menu }
        }
        for dir in blsDirectories {
            searched.append(dir + "/*.conf")
            let entries = BLS.entries(fs: fs, directories: [dir])
            if !entries.isEmpty { return BootMenu(format: .bls, path: dir, entries: entries) }
        }
        throw BootError.noMenu(searched: searched)
    }

    /// Parses a menu of a known format; `fs` serves `grubenv`, `source`, BLS entries and
    /// GRUB legacy's saved default.
    public static func parse(_ bytes: [UInt8], path: String, format: MenuFormat, fs: (any FileSystem)? = nil) throws -> BootMenu {
        guard bytes.count <= BootLimits.maxMenuBytes else { throw BootError.menuTooLarge(path: path, size: UInt64(bytes.count)) }
        switch format {
        case .grub2:
            return try Grub2.parse(bytes, path: path, fs: fs)
        case .extlinux:
            return Extlinux.parse(bytes, path: path, fs: fs)
        case .grubLegacy:
            var saved: Int?
            if let fs, let data = try? fs.read(BootPath.directory(of: path) + "/default", limit: 4096) {
                saved = menuLines(data).first.flatMap { Int($0.trimmedSpaces) }
            }
            return GrubLegacy.parse(bytes, path: path, savedDefault: saved)
        case .bls:
            let name = path.split(separator: "/").last.map(String.init) ?? path
            return BootMenu(format: .bls, path: path, entries: [BLS.parseEntry(bytes, fileName: name)])
        }
    }

    /// Guesses a menu file's format from its name and content (`--isconfig`).
    public static func detectFormat(_ bytes: [UInt8], path: String) -> MenuFormat {
        let name = path.split(separator: "/").last.map { $0.lowercased() } ?? ""
        if name.hasSuffix("menu.lst") || name == "grub.conf" { return .grubLegacy }
        if name.contains("linux") && (name.hasSuffix(".conf") || name.hasSuffix(".cfg")) { return .extlinux }
        var sawTitle = false
        var sawKernel = false
        var sawLinux = false
        for raw in menuLines(bytes).prefix(10_000) {
            let line = raw.trimmedSpaces
            let keyword = line.prefix(while: { $0 != " " && $0 != "\t" && $0 != "=" }).lowercased()
            switch keyword {
            case "menuentry", "submenu", "blscfg": return .grub2
            case "label": return .extlinux
            case "title": sawTitle = true
            case "kernel": sawKernel = true
            case "linux": sawLinux = true
            default: break
            }
        }
        if sawTitle && sawLinux && !sawKernel { return .bls }
        if sawTitle || sawKernel { return .grubLegacy }
        return .grub2
    }
}
