import BerthDisk
import BerthPOSIX

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// `berth-bootloader` / `berth bootloader`: PyGRUB's command line, so an xl/xm config's
/// `bootloader = "berth-bootloader"` works unchanged.
public enum BootloaderCommand {
    public static let usage = """
        Usage: berth-bootloader [-q|--quiet] [-i|--interactive] [-l|--list-entries] [-n|--not-really]
               [--output=FILE] [--kernel=PATH] [--ramdisk=PATH] [--args=ARGS] [--entry=N|TITLE|ID]
               [--output-directory=DIR] [--output-format=sxp|simple|simple0] [--offset=BYTES]
               [--isconfig] [--max-bytes=N] [--time-limit=SECONDS] [--sandbox=UID:GID] [--uefi]
               IMAGE | --image-fd=N
               berth-bootloader --unpack-kernel [--output-directory=DIR] [--sandbox=UID:GID] KERNEL | --image-fd=N
        Reads the boot menu of a guest disk IMAGE (or, with --isconfig, the menu file IMAGE),
        copies the chosen kernel and initrd into the output directory and prints where they are.
        --image-fd=N reads the image from the open, read-only descriptor N instead of a path.
        --sandbox=UID:GID (as root) drops to UID:GID with tight resource limits before reading anything.
        --uefi: UEFI firmware will start the kernel; refuse (exit status 2) one it cannot start:
        neither an EFI stub (CONFIG_EFI_STUB) nor a relocatable bzImage (boot protocol 2.05+).
        --unpack-kernel: writes the uncompressed kernel (an ELF with a PVH entry) inside the bzImage
        KERNEL to DIR/vmlinux, for QEMU's PVH boot; exit status 3 when it has none Berth can unpack
        (only LZ4 payloads are decoded) or no PVH entry.
        """

    public enum OutputFormat: String, Sendable { case sxp, simple, simple0 }

    public struct Options: Sendable, Equatable {
        public var image = ""
        public var listEntries = false
        public var notReally = false
        public var isConfig = false
        public var help = false
        public var output: String?
        public var outputFormat = OutputFormat.sxp
        public var outputDirectory = "/run/berth/boot"
        public var entry: String?
        public var kernel: String?
        public var ramdisk: String?
        public var args: String?
        public var offset: UInt64?
        public var limits = ExtractionLimits()
        /// `--image-fd=N`: the image (or, with --isconfig, the menu) is this open descriptor;
        /// `image` is then only its name in messages, `fd:N`.
        public var imageFD: Int32?
        /// `--sandbox=UID:GID`: applied by `run` before anything is opened or read.
        public var sandbox: Sandbox?
        /// `--uefi`: refuse a kernel UEFI firmware cannot start.
        public var uefi = false
        /// `--unpack-kernel`: the image is a bzImage; write its ELF (`KernelUnpack`).
        public var unpackKernel = false

        public init() {}

        /// Parses arguments as GNU getopt does for PyGRUB: `--opt=value` or `--opt value`,
        /// bundled short flags (`-qn`), options after the image, `--` ends options.
        public init(parsing arguments: [String]) throws {
            var positional: [String] = []
            var k = 0
            let takesValue: Set<String> = [
                "output", "output-format", "output-directory", "offset", "runas", "entry", "kernel", "ramdisk", "args",
                "max-bytes", "time-limit", "image-fd", "sandbox",
            ]
            let flags: Set<String> = [
                "quiet", "interactive", "list-entries", "not-really", "help", "isconfig", "debug", "uefi", "unpack-kernel",
            ]
            while k < arguments.count {
                let arg = arguments[k]
                k += 1
                if arg == "--" {
                    positional += arguments[k...]
                    break
                }
                if arg.hasPrefix("--") {
                    let body = arg.dropFirst(2)
                    var name = String(body)
                    var value: String?
                    if let eq = body.firstIndex(of: "=") {
                        name = String(body[..<eq])
                        value = String(body[body.index(after: eq)...])
                    }
                    // getopt accepts any unambiguous prefix of a long option.
                    let all = takesValue.union(flags)
                    if !all.contains(name) {
                        let matches = all.filter { $0.hasPrefix(name) }
                        guard matches.count == 1, let only = matches.first else {
                            throw BootError.usage("unknown option --\(name)\n" + BootloaderCommand.usage)
                        }
                        name = only
                    }
                    if takesValue.contains(name) {
                        if value == nil {
                            guard k < arguments.count else { throw BootError.usage("--\(name) needs a value\n" + BootloaderCommand.usage) }
                            value = arguments[k]
                            k += 1
                        }
                        try set(name, value ?? "")
                    } else {
                        guard value == nil else { throw BootError.usage("--\(name) takes no value\n" + BootloaderCommand.usage) }
                        try set(name, nil)
                    }
                } else if arg.hasPrefix("-") && arg.count > 1 {
                    for c in arg.dropFirst() {
                        switch c {
                        case "q": try set("quiet", nil)
                        case "i": try set("interactive", nil)
                        case "l": try set("list-entries", nil)
                        case "n": try set("not-really", nil)
                        case "h": try set("help", nil)
                        default: throw BootError.usage("unknown option -\(c)\n" + BootloaderCommand.usage)
                        }
                    }
                } else {
                    positional.append(arg)
                }
            }
            if help { return }
            if let imageFD {
                // One source of bytes only: a path beside the descriptor would leave it unclear which was read.
                guard positional.isEmpty else {
                    throw BootError.usage("give either IMAGE or --image-fd, not both\n" + BootloaderCommand.usage)
                }
                image = "fd:\(imageFD)"
                return
            }
            guard let image = positional.first else { throw BootError.usage("no IMAGE given\n" + BootloaderCommand.usage) }
            self.image = image
        }

        mutating func set(_ name: String, _ value: String?) throws {
            let v = value ?? ""
            switch name {
            case "list-entries": listEntries = true
            case "not-really": notReally = true
            case "isconfig": isConfig = true
            case "uefi": uefi = true
            case "unpack-kernel": unpackKernel = true
            case "help": help = true
            case "quiet", "interactive", "debug", "runas":
                // There is no interactive menu: the default or --entry is booted. --runas is
                // PyGRUB's privilege drop for its Python readers; Berth's readers need none.
                break
            case "output": output = v == "-" ? nil : v
            case "output-format":
                guard let format = OutputFormat(rawValue: v) else {
                    throw BootError.badValue(option: "--output-format", value: v, reason: "use sxp, simple or simple0")
                }
                outputFormat = format
            case "output-directory": outputDirectory = v
            case "entry": entry = v
            case "kernel": kernel = v
            case "ramdisk": ramdisk = v
            case "args": args = v
            case "offset":
                guard let n = UInt64(v) else { throw BootError.badValue(option: "--offset", value: v, reason: "must be a byte count") }
                offset = n
            case "max-bytes":
                guard let n = UInt64(v), n > 0 else {
                    throw BootError.badValue(option: "--max-bytes", value: v, reason: "must be a positive byte count")
                }
                limits.maxTotalBytes = n
            case "time-limit":
                // A day at most: the value feeds alarm(), RLIMIT_CPU and a Double deadline.
                guard let n = Int(v), n > 0, n <= 86_400 else {
                    throw BootError.badValue(option: "--time-limit", value: v, reason: "must be 1…86400 seconds")
                }
                limits.seconds = n
            case "image-fd":
                guard v.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let n = Int32(v) else {
                    throw BootError.badValue(option: "--image-fd", value: v, reason: "must be an open descriptor number")
                }
                imageFD = n
            case "sandbox":
                sandbox = try Sandbox(parsing: v)
            default:
                throw BootError.usage("unknown option --\(name)")
            }
        }
    }

    /// What a run prints: `stdout` goes to standard output, `result` to `--output` (or stdout).
    public struct Output: Sendable, Equatable {
        public var stdout: [UInt8] = []
        public var result: [UInt8] = []
    }

    /// Exit status of a kernel refused by `--uefi`, so a caller can tell it from a disk with
    /// nothing to boot.
    public static let notForUEFIStatus: Int32 = 2
    /// Exit status of `--unpack-kernel` for a kernel to boot as it is (`KernelUnpack.NotUnpackable`).
    public static let notUnpackableStatus: Int32 = 3

    /// Runs the command with `arguments` (without the program name), printing to standard
    /// output/error. Returns the exit status: 0 on success, `notForUEFIStatus` for a kernel
    /// `--uefi` refused, 1 on any other error (as PyGRUB).
    public static func run(arguments: [String], open: FileSystemOpener = BootDisk.open) -> Int32 {
        do {
            let options = try Options(parsing: arguments)
            if options.help {
                writeAll(1, Array((usage + "\n").utf8))
                return 0
            }
            // Before any file is opened or byte of the guest read; a failure ends the run here.
            try options.sandbox?.apply(options.limits)
            // Like PyGRUB: the caller (libxl) made this file or FIFO; never create it. Opened
            // first so that a bad path fails before anything is extracted.
            var resultFD: Int32 = 1
            if let path = options.output {
                resultFD = Glibc.open(path, O_WRONLY | O_CLOEXEC)
                guard resultFD >= 0 else { throw BootError.write(path: path, errno: errno) }
            }
            defer { if resultFD != 1 { close(resultFD) } }
            if options.unpackKernel {
                try KernelUnpack.unpack(try openImage(options), to: options.outputDirectory + "/" + KernelUnpack.outputName)
                return 0
            }
            let out = try execute(options, open: open)
            writeAll(1, out.stdout)
            writeAll(resultFD, out.result)
            return 0
        } catch {
            writeAll(2, Array("berth-bootloader: \(error)\n".utf8))
            if case .notForUEFI = error as? BootError { return notForUEFIStatus }
            return error is KernelUnpack.NotUnpackable ? notUnpackableStatus : 1
        }
    }

    /// Does the work of `run` and returns what it would print.
    public static func execute(_ options: Options, open: FileSystemOpener = BootDisk.open) throws -> Output {
        var output = Output()
        if options.isConfig {
            let bytes = try readHostMenu(try openImage(options), name: options.image)
            let format = MenuSearch.detectFormat(bytes, path: options.image)
            // The host path means nothing inside the guest: read the menu as if it sat at its
            // format's usual place, so relative paths resolve as they would on the disk.
            let guestPath =
                ["grub2": "/boot/grub/grub.cfg", "extlinux": "/boot/extlinux.conf", "grub-legacy": "/boot/grub/menu.lst"][format.rawValue]
                ?? "/boot/loader/entries/entry.conf"
            var menu = try MenuSearch.parse(bytes, path: guestPath, format: format)
            menu.path = options.image
            if options.listEntries { output.stdout += listing(menu) }
            guard !menu.entries.isEmpty else { throw BootError.emptyMenu(path: options.image) }
            let index =
                try options.entry.map { selector in
                    guard let i = menu.index(of: selector) else { throw BootError.noSuchEntry(selector: selector, count: menu.entries.count) }
                    return i
                } ?? menu.defaultIndex
            let entry = menu.entries[index]
            var args = entry.args
            if let extra = options.args, !extra.isEmpty { args += " " + extra }
            var text = "  kernel: \(display(entry.kernel ?? "None"))\n"
            if !entry.initrds.isEmpty { text += "  initrd: \(display(entry.initrds.joined(separator: ",")))\n" }
            text += "  args: \(display(args))\n"
            output.stdout += Array(text.utf8)
            return output
        }

        let image = try openImage(options)
        let filesystems: [any FileSystem]
        do { filesystems = try open(image, options.offset) } catch BootError.noFileSystem(_, let reason) {
            throw BootError.noFileSystem(image: options.image, reason: reason)
        }
        return try execute(options, filesystems: filesystems)
    }

    /// `execute` on filesystems already opened (tests, callers with their own discovery).
    public static func execute(_ options: Options, filesystems: [any FileSystem]) throws -> Output {
        var output = Output()
        let request = BootRequest(
            image: options.image, entry: options.entry, kernel: options.kernel, ramdisk: options.ramdisk,
            extraArgs: options.args, outputDirectory: options.outputDirectory, offset: options.offset,
            limits: options.limits, notReally: options.notReally, uefi: options.uefi)
        if options.listEntries {
            for fs in filesystems {
                if let menu = try? MenuSearch.find(in: fs) {
                    output.stdout += listing(menu)
                    return output
                }
            }
            _ = try BootSelection.plan(request, filesystems: filesystems)
            return output
        }
        let plan = try BootSelection.plan(request, filesystems: filesystems)
        // Refuse an unrepresentable answer before copying anything (XSA-198).
        let format = options.outputFormat
        _ = try render(format, kernel: "k", ramdisk: nil, args: plan.cmdline)
        for file in [plan.kernel] + plan.initrds { _ = try render(format, kernel: file.path, ramdisk: nil, args: nil) }
        let selection = try plan.run(request)
        output.result = Array(try render(format, kernel: selection.kernelPath, ramdisk: selection.initrdPath, args: selection.cmdline).utf8)
        return output
    }

    /// The image (or `--isconfig` menu): `--image-fd` if given, else the IMAGE path.
    static func openImage(_ options: Options) throws -> FileSource {
        if let fd = options.imageFD { return try FileSource(descriptor: fd, name: options.image) }
        return try FileSource(path: options.image)
    }

    static func readHostMenu(_ source: FileSource, name path: String) throws -> [UInt8] {
        guard source.size <= UInt64(BootLimits.maxMenuBytes) else { throw BootError.menuTooLarge(path: path, size: source.size) }
        return try source.read(at: 0, count: Int(source.size))
    }

    /// PyGRUB's `--list-entries` text, with control characters escaped so a menu cannot
    /// drive the terminal it is listed on.
    public static func listing(_ menu: BootMenu) -> [UInt8] {
        var text = ""
        for entry in menu.entries {
            let title = (entry.submenus + [entry.title]).joined(separator: ">")
            text += "title: \(display(title))\n"
            text += "  root: \(display(entry.root ?? "None"))\n"
            text += "  kernel: \(display(entry.kernel ?? "None"))\n"
            text += "  args: \(display(entry.args))\n"
            text += "  initrd: \(display(entry.initrds.isEmpty ? "None" : entry.initrds.joined(separator: ",")))\n"
        }
        return Array(text.utf8)
    }

    static func display(_ s: String) -> String {
        var out = ""
        for u in s.unicodeScalars {
            if u.value < 0x20 || u.value == 0x7F || (u.value >= 0x80 && u.value < 0xA0) {
                out += "\\x" + hex2(UInt8(truncatingIfNeeded: u.value))
            } else {
                out.unicodeScalars.append(u)
            }
        }
        return out
    }

    static func hex2(_ b: UInt8) -> String {
        let digits = Array("0123456789abcdef")
        return String([digits[Int(b >> 4)], digits[Int(b & 15)]])
    }

    /// PyGRUB's output formats. sxp quotes each value as Python's `repr` does; the simple
    /// formats refuse a value containing their separator. Either way no menu text can add
    /// or change a field (XSA-198).
    public static func render(_ format: OutputFormat, kernel: String, ramdisk: String?, args: String?) throws -> String {
        switch format {
        case .sxp:
            var s = "linux (kernel \(pythonRepr(kernel)))"
            if let ramdisk { s += "(ramdisk \(pythonRepr(ramdisk)))" }
            if let args, !args.isEmpty { s += "(args \(pythonRepr(args)))" }
            return s
        case .simple, .simple0:
            let sep = format == .simple ? "\n" : "\0"
            for value in [kernel, ramdisk, args].compactMap({ $0 }) where value.contains(sep) || value.unicodeScalars.contains("\0") {
                throw BootError.badValue(
                    option: "--output-format", value: format.rawValue,
                    reason: "a kernel, ramdisk or argument value contains the format's separator; use --output-format=sxp")
            }
            var s = "kernel \(kernel)" + sep
            if let ramdisk { s += "ramdisk \(ramdisk)" + sep }
            if let args, !args.isEmpty { s += "args \(args)" + sep }
            return s + sep
        }
    }

    /// Python 3 `repr(str)`.
    public static func pythonRepr(_ s: String) -> String {
        let quote: Character = s.contains("'") && !s.contains("\"") ? "\"" : "'"
        var out = String(quote)
        for u in s.unicodeScalars {
            switch u {
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if Character(u) == quote {
                    out += "\\" + String(quote)
                } else if u.value < 0x20 || u.value == 0x7F || (u.value >= 0x80 && u.value < 0xA0) {
                    out += "\\x" + hex2(UInt8(truncatingIfNeeded: u.value))
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        out.append(quote)
        return out
    }

    /// Standard output and the result descriptor: nobody is left to tell when they fail.
    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
        try? BerthPOSIX.writeAll(fd, bytes)
    }
}
