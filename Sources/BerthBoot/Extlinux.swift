import BerthDisk

/// SYSLINUX/EXTLINUX/ISOLINUX configuration. Paths without a leading `/` are relative to the
/// configuration file's directory, as SYSLINUX's working directory is.
public enum Extlinux {
    /// - Parameter fs: serves `INCLUDE`d files (relative to the configuration's directory).
    public static func parse(_ bytes: [UInt8], path: String = "/boot/extlinux.conf", fs: (any FileSystem)? = nil) -> BootMenu {
        let directory = BootPath.directory(of: path)
        var budget = BootLimits.maxMenuBytes
        let lines = expandIncludes(bytes, directory: directory, fs: fs, depth: 0, budget: &budget)
        var entries: [BootEntry] = []
        var defaultLabel: String?
        var defaultAppend: [String] = []
        var menuDefault: Int?
        var onTimeout: String?
        var timeout: Int?
        var hidden = false
        var hasPassword = false
        var current: (label: String, kernel: String?, append: String?, initrds: [String], comModule: Bool)?

        func finish() {
            guard let c = current, entries.count < BootLimits.maxEntries else { return }
            var args: [String] = []
            var initrds = c.initrds
            for word in words(c.append ?? defaultAppend.joined(separator: " ")) {
                if word.lowercased().hasPrefix("initrd=") {
                    initrds += word.dropFirst(7).split(separator: ",").map(String.init)
                } else {
                    args.append(word)
                }
            }
            if c.append == "-" { args = [] }
            let kernel = c.comModule ? nil : c.kernel.map { BootPath.resolve($0, relativeTo: directory) }
            entries.append(
                BootEntry(
                    title: c.label, kernel: kernel, initrds: initrds.map { BootPath.resolve($0, relativeTo: directory) },
                    args: args.joined(separator: " ")))
            current = nil
        }

        for raw in lines {
            let line = raw.trimmedSpaces
            guard !line.isEmpty, !line.hasPrefix("#") else { continue }
            let keyword = String(line.prefix(while: { $0 != " " && $0 != "\t" })).lowercased()
            let value = String(line.dropFirst(keyword.count).trimmedSpaces)
            switch keyword {
            case "label":
                finish()
                current = (value, nil, nil, [], false)
            case "kernel", "linux", "com32", "boot", "bss", "pxe", "fdimage", "comboot", "config":
                if current == nil { break }
                let target = words(value).first
                current?.kernel = target
                // A .c32 module or a non-Linux loader is not a kernel QEMU can start.
                let lower = (target ?? "").lowercased()
                current?.comModule =
                    keyword != "kernel" && keyword != "linux" || lower.hasSuffix(".c32") || lower.hasSuffix(".com") || lower.hasSuffix(".cbt")
                    || lower.hasSuffix(".0") || lower.hasSuffix(".bin")
                // `KERNEL vmlinuz args` is allowed; SYSLINUX treats trailing words as arguments.
                let rest = words(value).dropFirst()
                if !rest.isEmpty, current?.append == nil { current?.append = rest.joined(separator: " ") }
            case "append":
                if current != nil {
                    current?.append = value
                } else {
                    defaultAppend = [value]
                }
            case "initrd":
                if current != nil { current?.initrds += value.split(separator: ",").map { String($0.trimmedSpaces) } }
            case "default":
                let w = words(value)
                defaultLabel = w.first
            case "ontimeout":
                onTimeout = words(value).first
            case "timeout":
                timeout = Int(words(value).first ?? "").flatMap(timeoutSeconds)
            case "menu":
                let sub = words(value)
                switch sub.first?.lowercased() {
                case "default":
                    if current != nil { menuDefault = entries.count }
                case "hidden", "hiddenrow":
                    hidden = true
                case "passwd", "master":
                    hasPassword = true
                default:
                    break
                }
            case "ui":
                break
            default:
                break
            }
        }
        finish()

        var defaultIndex = 0
        if let onTimeout, let i = entries.firstIndex(where: { $0.title == onTimeout }) {
            defaultIndex = i
        } else if let menuDefault {
            defaultIndex = menuDefault
        } else if let defaultLabel, let i = entries.firstIndex(where: { $0.title == defaultLabel }) {
            defaultIndex = i
        }
        return BootMenu(
            format: .extlinux, path: path, entries: entries, defaultIndex: defaultIndex, timeout: timeout,
            hidden: hidden, hasPassword: hasPassword)
    }

    /// SYSLINUX's `TIMEOUT` is in tenths of a second, 0 meaning wait forever; rounded up to
    /// whole seconds without `n + 9`, which traps at `TIMEOUT 9223372036854775807`. A negative
    /// value is no timeout at all.
    static func timeoutSeconds(_ tenths: Int) -> Int? {
        if tenths == 0 { return -1 }
        guard tenths > 0 else { return nil }
        return tenths / 10 + (tenths % 10 == 0 ? 0 : 1)
    }

    /// Lines with `INCLUDE file` and `MENU INCLUDE file` replaced by the file's lines, with
    /// the nesting and the total size capped like one menu (a guest may include itself).
    static func expandIncludes(_ bytes: [UInt8], directory: String, fs: (any FileSystem)?, depth: Int, budget: inout Int) -> [Substring] {
        var out: [Substring] = []
        for raw in menuLines(bytes) {
            let w = words(raw.trimmedSpaces)
            var target: String?
            if w.count >= 2, w[0].lowercased() == "include" { target = w[1] }
            if w.count >= 3, w[0].lowercased() == "menu", w[1].lowercased() == "include" { target = w[2] }
            guard let target else {
                out.append(raw)
                continue
            }
            guard let fs, depth < 8, budget > 0,
                let included = try? fs.read(BootPath.resolve(target, relativeTo: directory), limit: budget)
            else { continue }
            budget -= included.count
            out += expandIncludes(included, directory: directory, fs: fs, depth: depth + 1, budget: &budget)
        }
        return out
    }
}
