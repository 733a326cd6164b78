// modules: BerthDisk BerthBoot
// corpus: Tests/BerthBootTests/Fixtures fuzz/seeds/Menus
//
// Boot menus are hostile guest data (CVE-2007-4993): every parser must return or throw on
// any input, within its limits, and every answer must render without letting menu text
// add fields (XSA-198). Built as one module with BerthDisk and BerthBoot's sources.

/// The input as every menu file a guest might have, so `source`, `load_env`, BLS and
/// GRUB legacy's saved default read hostile bytes too.
struct FuzzFileSystem: FileSystem {
    var kind: String { "fuzz" }
    let data: [UInt8]
    let paths: Set<String> = [
        "/boot/grub/grub.cfg", "/boot/grub/grubenv", "/boot/grub/extra.cfg", "/boot/grub/default",
        "/boot/loader/entries/a.conf", "/boot/loader/entries/b.conf", "/loader/entries/c.conf",
        "/boot/extlinux.conf", "/boot/grub/menu.lst",
    ]

    func stat(_ path: String) throws -> FileInfo {
        if paths.contains(path) { return FileInfo(kind: .file, size: UInt64(data.count)) }
        if paths.contains(where: { $0.hasPrefix(path + "/") }) { return FileInfo(kind: .directory, size: 0) }
        throw FileSystemError.notFound(path: path)
    }

    func list(_ path: String) throws -> [String] {
        let prefix = path + "/"
        let names = paths.filter { $0.hasPrefix(prefix) }.map { String($0.dropFirst(prefix.count).split(separator: "/").first ?? "") }
        guard !names.isEmpty else { throw FileSystemError.notFound(path: path) }
        return Array(Set(names)).sorted()
    }

    func read(_ path: String, limit: Int) throws -> [UInt8] {
        guard paths.contains(path) else { throw FileSystemError.notFound(path: path) }
        guard data.count <= limit else { throw FileSystemError.tooLarge(path: path, size: UInt64(data.count), limit: limit) }
        return data
    }
}

func check(_ menu: BootMenu) {
    precondition(menu.entries.count <= BootLimits.maxEntries, "entry cap exceeded")
    precondition(menu.entries.isEmpty || menu.entries.indices.contains(menu.defaultIndex), "default index out of range")
    for entry in menu.entries.prefix(16) {
        let sxp = try? BootloaderCommand.render(.sxp, kernel: entry.kernel ?? "/k", ramdisk: entry.initrds.first, args: entry.args)
        if let sxp { precondition(!sxp.contains("\n") && !sxp.contains("\0"), "sxp output carries a raw separator") }
        if let simple = try? BootloaderCommand.render(.simple, kernel: "/k", ramdisk: nil, args: entry.args) {
            let fields = entry.args.isEmpty ? 3 : 4
            precondition(simple.split(separator: "\n", omittingEmptySubsequences: false).count == fields, "simple output gained a field")
        }
        _ = menu.index(of: entry.title)
        if let id = entry.id { _ = menu.index(of: id) }
        _ = menu.index(of: (entry.submenus + [entry.title]).joined(separator: ">"))
    }
    _ = BootloaderCommand.listing(menu)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzMenus(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let fs = FuzzFileSystem(data: bytes)
    if let menu = try? Grub2.parse(bytes, path: "/boot/grub/grub.cfg", fs: fs) { check(menu) }
    check(Extlinux.parse(bytes, path: "/boot/extlinux.conf"))
    check(GrubLegacy.parse(bytes, path: "/boot/grub/menu.lst", savedDefault: bytes.first.map(Int.init)))
    _ = BLS.parseEntry(bytes, fileName: "x.conf")
    _ = Grub2.parseEnvironmentBlock(bytes)
    _ = MenuSearch.detectFormat(bytes, path: "/boot/grub/grub.cfg")
    if let menu = try? MenuSearch.find(in: fs) { check(menu) }
    if size < 256 {
        let text = String(decoding: bytes, as: UTF8.self)
        _ = BLS.rpmVersionCompare(text, "5.14.0-70.el9")
        _ = try? BootloaderCommand.Options(parsing: text.split(separator: " ").map(String.init))
    }
    return 0
}
