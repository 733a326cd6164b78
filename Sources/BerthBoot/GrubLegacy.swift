import BerthDisk

/// GRUB legacy (0.97) `menu.lst`/`grub.conf`. A command and its argument may be separated
/// by `=` (`default=0`), as GRUB legacy allows.
public enum GrubLegacy {
    /// - Parameter savedDefault: the entry `default saved` means (GRUB legacy keeps it in
    ///   `/boot/grub/default`); nil reads as 0.
    public static func parse(_ bytes: [UInt8], path: String = "/boot/grub/menu.lst", savedDefault: Int? = nil) -> BootMenu {
        var entries: [BootEntry] = []
        var defaultIndex = 0
        var fallback: Int?
        var timeout: Int?
        var hidden = false
        var hasPassword = false
        var current: BootEntry?
        var globalRoot: String?
        var modules: [[String]] = []

        func finish() {
            if let c = current, entries.count < BootLimits.maxEntries { entries.append(c) }
            current = nil
            modules = []
        }

        for raw in menuLines(bytes) {
            let line = raw.trimmedSpaces
            guard !line.isEmpty, !line.hasPrefix("#") else { continue }
            let command = String(line.prefix(while: { $0 != " " && $0 != "\t" && $0 != "=" }))
            var rest = line.dropFirst(command.count).trimmedSpaces
            if rest.hasPrefix("=") { rest = rest.dropFirst().trimmedSpaces }
            let value = String(rest)
            switch command {
            case "title":
                finish()
                current = BootEntry(title: value, root: globalRoot)
            case "default":
                if value == "saved" {
                    defaultIndex = savedDefault ?? 0
                } else {
                    defaultIndex = Int(value) ?? 0
                }
            case "fallback":
                fallback = words(value).first.flatMap { Int($0) }
            case "timeout":
                timeout = Int(value)
            case "hiddenmenu":
                hidden = true
            case "password":
                hasPassword = true
            case "root", "rootnoverify":
                if current != nil { current?.root = words(value).first } else { globalRoot = words(value).first }
            case "kernel":
                guard current != nil else { break }
                // `kernel --type=netbsd /x` and `--no-mem-option` precede the path.
                let w = words(value).drop(while: { $0.hasPrefix("--") })
                if let first = w.first {
                    let (device, path) = BootPath.stripDevice(first)
                    if let device { current?.root = device }
                    current?.kernel = path
                    current?.args = w.dropFirst().joined(separator: " ")
                }
                modules = []
            case "initrd":
                guard current != nil else { break }
                current?.initrds = words(value).prefix(1).map { BootPath.stripDevice($0).path }
            case "module", "modulenounzip":
                guard current != nil else { break }
                // Xen under GRUB legacy: `kernel /xen.gz`, then Linux and its initrd as modules.
                modules.append(words(value))
                if let first = modules.first, let kernel = first.first {
                    current?.kernel = BootPath.stripDevice(kernel).path
                    current?.args = first.dropFirst().joined(separator: " ")
                    current?.initrds = modules.dropFirst().compactMap { $0.first.map { BootPath.stripDevice($0).path } }
                }
            case "chainloader", "makeactive":
                if current != nil { current?.kernel = nil }
            default:
                break
            }
        }
        finish()
        return BootMenu(
            format: .grubLegacy, path: path, entries: entries, defaultIndex: defaultIndex, fallbackIndex: fallback,
            timeout: timeout, hidden: hidden, hasPassword: hasPassword)
    }
}
