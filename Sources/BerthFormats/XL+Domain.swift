import FoundationEssentials
import Glibc

// Fuzz builds compile BerthModel's sources into this module (fuzz/targets/*.swift).
#if canImport(BerthModel)
    import BerthModel
#endif

/// A domain read from a foreign format, with everything Berth could not carry over exactly.
public struct DomainImport: Sendable, Equatable {
    public var spec: DomainSpec
    public var warnings: [FormatWarning]
    public init(spec: DomainSpec, warnings: [FormatWarning]) {
        self.spec = spec
        self.warnings = warnings
    }
}

/// xl/xm domain configs ⇄ `DomainSpec`.
///
/// Keys Berth acts on are mapped; every other key is kept in `spec.notes` and reported as a
/// warning, never dropped silently. The writer emits xl text this reader reads back to the
/// same `DomainSpec`; Berth-only fields travel in `berth_*` keys, which xl ignores.
public enum XLDomain {
    public struct Options: Sendable, Equatable {
        /// What a vif with neither `bridge=` nor `script=` becomes. Xen attached such a vif
        /// to the default bridge through vif-bridge; Berth's default is user-mode networking
        /// (outbound access with no root and no bridge). A daemon whose xend-config.sxp names
        /// `vif-bridge` can pass a bridged NIC here instead.
        public var defaultNIC: NICSpec
        public init(defaultNIC: NICSpec = NICSpec(mode: .user)) { self.defaultNIC = defaultNIC }
    }

    /// Reads xl or xm config text into a domain.
    /// - Parameter source: the file name used in messages (`xmexample1:12:1: …`).
    /// - Throws: `BerthError(.invalidArgument)` with line, column and what to do.
    public static func read(_ text: String, source: String = "config", options: Options = Options()) throws
        -> DomainImport
    {
        try domain(from: try XLConfig.parse(text, source: source), source: source, options: options)
    }

    public static func read(bytes: [UInt8], source: String = "config", options: Options = Options()) throws
        -> DomainImport
    {
        try domain(from: try XLConfig.parse(bytes: bytes, source: source), source: source, options: options)
    }

    /// Gives meaning to parsed settings.
    public static func domain(from config: XLConfig, source: String = "config", options: Options = Options())
        throws -> DomainImport
    {
        var reader = XLDomainReader(config: config, source: source, options: options)
        return try reader.read()
    }
}

/// Per-key explanations for Xen settings Berth keeps only as notes.
private let xenOnlyReasons: [String: String] = [
    "cpus": "vCPU pinning is not supported; QEMU threads float over host CPUs",
    "maxvcpus": "vCPU hotplug is not supported; the guest gets 'vcpus' CPUs",
    "pci": "PCI passthrough is not supported",
    "vscsi": "PV SCSI passthrough is Xen-only",
    "shadow_memory": "shadow page tables are Xen-only",
    "device_model": "Berth always runs its own QEMU",
    "device_model_version": "Berth always runs its own QEMU",
    "tsc_mode": "TSC modes are Xen-only",
    "pae": "QEMU always offers PAE",
    "apic": "QEMU always offers an APIC",
    "opengl": "SDL/OpenGL output is not available under the daemon",
    "stdvga": "Berth picks the VGA model",
    "boot": "a boot order applies to HVM guests (type = \"hvm\") only",
    "bios": "the firmware choice applies to HVM guests (type = \"hvm\") only",
    "bios_path_override": "the firmware choice applies to HVM guests (type = \"hvm\") only",
    "localtime": "the guest RTC is UTC",
    "rtc_timeoffset": "the guest RTC is UTC",
    "usb": "USB is not configured", "usbdevice": "USB is not configured",
    "soundhw": "sound is not configured",
    "keymap": "the VNC keymap is QEMU's default",
    "viridian": "Hyper-V enlightenments are not configured",
    "memory_sharing": "Xen memory sharing is Xen-only",
    "xen_platform_pci": "the Xen platform device is Xen-only",
    "dhcp": "used only for xm's ip= kernel argument",
    "hostname": "used only for xm's ip= kernel argument",
    "netmask": "used only for xm's ip= kernel argument",
    "gateway": "used only for xm's ip= kernel argument",
]

private struct XLDomainReader {
    let config: XLConfig
    let source: String
    let options: XLDomain.Options
    var warnings: [FormatWarning] = []
    var notes: [String] = []
    var used = Set<String>()

    init(config: XLConfig, source: String, options: XLDomain.Options) {
        self.config = config
        self.source = source
        self.options = options
    }

    func position(_ key: String) -> TextPosition {
        config.position(of: key) ?? TextPosition(line: 1, column: 1)
    }

    func typeError(_ key: String, _ expected: String, _ value: XLValue) -> BerthError {
        let found: String
        switch value {
        case .string(let text): found = "the string \(XLConfig.quote(text))"
        case .number(let number): found = "the number \(number)"
        case .bool(let flag): found = flag ? "True" : "False"
        case .none: found = "None"
        case .list: found = "a list"
        }
        return .syntax(
            source, position(key), "'\(key)' must be \(expected), found \(found).",
            remedy: "See xl.cfg(5) for the form of '\(key)'.")
    }

    mutating func string(_ key: String) throws -> String? {
        used.insert(key)
        guard let value = config[key] else { return nil }
        switch value {
        case .string(let text): return text
        case .number(let number): return String(number)
        case .none: return nil
        case .list(let items) where items.count == 1:
            if case .string(let text) = items[0] { return text }
            throw typeError(key, "a string", value)
        default: throw typeError(key, "a string", value)
        }
    }

    mutating func int(_ key: String) throws -> Int? {
        used.insert(key)
        guard let value = config[key] else { return nil }
        switch value {
        case .number(let number):
            guard let int = Int(exactly: number) else { throw typeError(key, "a number", value) }
            return int
        case .string(let text):
            if let number = Int(text.trimmed()) { return number }
            throw typeError(key, "a number", value)
        case .none: return nil
        default: throw typeError(key, "a number", value)
        }
    }

    mutating func bool(_ key: String) throws -> Bool? {
        used.insert(key)
        guard let value = config[key] else { return nil }
        switch value {
        case .bool(let flag): return flag
        case .number(let number): return number != 0
        case .string(let text):
            switch text.lowercased() {
            case "1", "yes", "true", "on", "y": return true
            case "0", "no", "false", "off", "n", "": return false
            default: throw typeError(key, "0 or 1", value)
            }
        case .none: return false
        case .list: throw typeError(key, "0 or 1", value)
        }
    }

    mutating func strings(_ key: String) throws -> [String]? {
        used.insert(key)
        guard let value = config[key] else { return nil }
        switch value {
        case .string(let text): return [text]
        case .none: return []
        case .list(let items):
            return try items.map { item in
                switch item {
                case .string(let text): return text
                case .number(let number): return String(number)
                default: throw typeError(key, "a list of strings", value)
                }
            }
        default: throw typeError(key, "a list of strings", value)
        }
    }

    mutating func warn(_ key: String?, _ message: String) {
        warnings.append(FormatWarning(message, at: key.flatMap { config.position(of: $0) }))
    }

    /// Keeps a setting Berth does not act on, and says so.
    mutating func keep(_ key: String, _ text: String, reason: String) {
        notes.append("\(text) (\(reason))")
        warn(key, "'\(text)' is kept as a note only: \(reason).")
    }

    mutating func read() throws -> DomainImport {
        guard let name = try string("name"), !name.isEmpty else {
            let what = config.settings.isEmpty ? "has no settings" : "has no 'name' setting"
            throw BerthError(
                .invalidArgument, "\(source): the domain config \(what); every domain needs a name.",
                remedy: config.settings.isEmpty
                    ? "Give a domain config (xl.conf is xl's global settings, not a domain); a domain config has at least name = \"guest\" and a disk or kernel."
                    : "Add a line like name = \"guest1\".")
        }
        var spec = DomainSpec(name: name)
        if let text = try string("uuid") {
            guard let uuid = UUID(uuidString: text) else {
                throw BerthError.syntax(
                    source, position("uuid"), "'\(text)' is not a UUID.",
                    remedy: "Write it as 8-4-4-4-12 hex digits (uuidgen prints one), or remove 'uuid' to get a new one.")
            }
            spec.uuid = uuid
        } else {
            // Xen made a fresh UUID at each start; Berth keeps one per definition.
            warn(nil, "no 'uuid': Berth generated \(spec.uuid.uuidString.lowercased()) and keeps it for this domain.")
        }
        if let memory = try int("memory") { spec.memory = memory }
        if let maxMemory = try int("maxmem") { spec.maxMemory = maxMemory == spec.memory ? nil : maxMemory }
        if let vcpus = try int("vcpus") { spec.vcpus = vcpus }
        if let description = try string("description") { spec.description = description }

        // Guest type: xl's `type`, xm's `builder` ('linux' was PV).
        var type = "pv"
        if let text = try string("type") ?? string("builder") {
            switch text.lowercased() {
            case "pv", "linux": type = "pv"
            case "pvh": type = "pvh"
            case "hvm": type = "hvm"
            default:
                throw BerthError.syntax(
                    source, position(config["type"] != nil ? "type" : "builder"),
                    "unknown guest type '\(text)'.", remedy: "Use type = \"pv\", \"pvh\" or \"hvm\".")
            }
        }
        used.insert("type")
        used.insert("builder")

        try readBoot(into: &spec, type: type)
        if type == "hvm" { try readFirmware(into: &spec) }
        try readDisks(into: &spec)
        try readNICs(into: &spec)
        try readGraphics(into: &spec)
        try readSerial()
        try readLifecycle(into: &spec)
        if let acpi = try bool("acpi") { spec.acpi = acpi }
        try readBerthKeys(into: &spec)

        // Everything else is kept, with the reason where Xen's meaning is known.
        for setting in config.settings where !used.contains(setting.key) {
            used.insert(setting.key)
            guard let value = config[setting.key] else { continue }
            let reason = xenOnlyReasons[setting.key] ?? "not a setting Berth knows"
            keep(setting.key, "\(setting.key) = \(value.xlText)", reason: reason)
        }
        spec.notes = notes + spec.notes
        return DomainImport(spec: spec, warnings: warnings)
    }

    // MARK: Boot

    mutating func readBoot(into spec: inout DomainSpec, type: String) throws {
        var kernel = try string("kernel")
        let ramdisk = try string("ramdisk")
        let explicitCmdline = try string("cmdline")
        var extra = try string("extra")
        let root = try string("root")
        var bootloader = try string("bootloader")
        var pvGrubMenu: String?

        if let path = kernel {
            let base = path.split(separator: "/").last.map(String.init) ?? path
            if type == "hvm" && base.hasPrefix("hvmloader") {
                warn("kernel", "kernel = \"\(path)\" is Xen's HVM firmware; QEMU's own firmware boots the disk instead.")
                kernel = nil
            } else if base.hasPrefix("pv-grub") || base.hasPrefix("pvgrub") || base.hasPrefix("grub-") {
                warn("kernel", "kernel = \"\(path)\" is PV-GRUB; Berth's bootloader reads the guest's menu instead.")
                kernel = nil
                bootloader = bootloader ?? "berth"
                pvGrubMenu = extra
                extra = nil
            }
        }
        if let menu = pvGrubMenu {
            keep("extra", "extra = \(XLConfig.quote(menu))", reason: "PV-GRUB's menu path; Berth's bootloader finds the menu itself")
        }

        // xm turned ip/dhcp/netmask/gateway/hostname into the kernel's ip= argument.
        var parts: [String] = []
        let ip = try string("ip")
        let dhcp = try string("dhcp")
        if (ip?.isEmpty == false) || (dhcp != nil && dhcp != "off") {
            let fields = [
                ip ?? "", try string("nfs_server") ?? "127.0.255.255", try string("gateway") ?? "",
                try string("netmask") ?? "", try string("hostname") ?? "", try string("interface") ?? "eth0",
                dhcp ?? "off",
            ]
            parts.append("ip=" + fields.joined(separator: ":"))
            warn("ip", "xm's ip/dhcp/netmask/gateway/hostname settings became the kernel argument \(parts[0]).")
        }
        if let root, !root.isEmpty {
            parts.append(root.hasPrefix("root=") ? root : "root=" + root)
        }
        if let nfsRoot = try string("nfs_root") {
            parts.append("nfsroot=\(try string("nfs_server") ?? ""):\(nfsRoot)")
        }
        if let extra, !extra.isEmpty { parts.append(extra) }
        var cmdline = parts.isEmpty ? nil : parts.joined(separator: " ")
        if let explicitCmdline {
            if cmdline != nil {
                warn("cmdline", "'cmdline' replaces 'root' and 'extra', as in xl.")
            }
            cmdline = explicitCmdline.isEmpty ? nil : explicitCmdline
        }

        if let bootloader {
            let base = bootloader.split(separator: "/").last.map(String.init) ?? bootloader
            if !["pygrub", "berth", "berth-bootloader"].contains(base) {
                warn("bootloader", "bootloader \"\(bootloader)\" is replaced by Berth's built-in bootloader (PyGRUB's successor).")
            }
            var loader = BootloaderSpec()
            let args = try strings("bootloader_args") ?? (try string("bootargs")).map { splitShellWords($0) } ?? []
            var index = 0
            while index < args.count {
                let arg = args[index]
                func value(_ option: String) -> String? {
                    if arg.hasPrefix(option + "=") { return String(arg.dropFirst(option.count + 1)) }
                    if arg == option, index + 1 < args.count {
                        index += 1
                        return args[index]
                    }
                    return nil
                }
                if let entry = value("--entry") {
                    loader.entry = entry
                } else if let replaced = value("--args") {
                    loader.args = replaced
                } else if ["-q", "--quiet", "-n", "--not-really", "-i", "--interactive"].contains(arg) {
                    warn("bootloader_args", "pygrub option '\(arg)' has no meaning for Berth's bootloader and is ignored.")
                } else {
                    keep("bootloader_args", "bootloader_args \(arg)", reason: "not an option Berth's bootloader takes")
                }
                index += 1
            }
            // With a bootloader, xl passed root/extra to it as extra kernel arguments.
            loader.extraArgs = cmdline
            spec.bootloader = loader
            if let kernel {
                keep("kernel", "kernel = \(XLConfig.quote(kernel))", reason: "the bootloader picks the kernel from the guest's disk")
            }
            if let ramdisk {
                keep("ramdisk", "ramdisk = \(XLConfig.quote(ramdisk))", reason: "the bootloader picks the initrd from the guest's disk")
            }
            return
        }
        spec.kernel = kernel
        if kernel == nil {
            if let ramdisk {
                keep("ramdisk", "ramdisk = \(XLConfig.quote(ramdisk))", reason: "there is no kernel to go with it")
            }
            if let cmdline {
                keep("extra", "kernel arguments \(XLConfig.quote(cmdline))", reason: "there is no kernel to pass them to")
            }
            return
        }
        spec.initrd = ramdisk
        spec.cmdline = cmdline
        if type == "pv" {
            warn(
                "kernel",
                "this was a Xen PV guest: its kernel must also boot on a standard PC under QEMU (a Xen-only domU kernel such as '-xenU' will not).")
        }
        if let cmdline, cmdline.contains("/dev/xvd") {
            warn(
                config["cmdline"] != nil ? "cmdline" : "root",
                "the kernel arguments name /dev/xvd* disks; under QEMU virtio disks appear as /dev/vd* — use root=UUID= or root=LABEL= to be safe.")
        }
    }

    // MARK: Disks

    mutating func readDisks(into spec: inout DomainSpec) throws {
        guard let entries = try strings("disk") else { return }
        var disks: [(index: Int, disk: DiskSpec)] = []
        for (number, entry) in entries.enumerated() {
            if let disk = try parseDisk(entry, number: number) {
                disks.append((xenDiskIndex(disk.target ?? ""), disk))
            }
        }
        // Xen device names decide the order the guest sees: xvda before xvdb.
        spec.disks = disks.enumerated().sorted { ($0.element.index, $0.offset) < ($1.element.index, $1.offset) }
            .map(\.element.disk)
    }

    mutating func parseDisk(_ entry: String, number: Int) throws -> DiskSpec? {
        let label = "disk[\(number)] '\(entry)'"
        func bad(_ why: String) -> BerthError {
            .syntax(
                source, position("disk"), "\(label): \(why).",
                remedy: "Write disks as 'phy:/dev/vg/lv,xvda,w', 'file:/path/disk.img,xvda,w' or 'format=raw, vdev=xvda, access=rw, target=/path'.")
        }
        var target: String?
        var keyed: [String: String] = [:]
        var positional: [String] = []
        var rest = Substring(entry)
        while !rest.isEmpty {
            let trimmed = rest.drop(while: { $0 == " " || $0 == "\t" })
            // target= takes the rest of the spec: paths may contain commas.
            if trimmed.hasPrefix("target=") {
                target = String(trimmed.dropFirst("target=".count))
                break
            }
            let piece: Substring
            if let comma = rest.firstIndex(of: ",") {
                piece = rest[..<comma]
                rest = rest[rest.index(after: comma)...]
            } else {
                piece = rest
                rest = ""
            }
            let token = piece.trimmed()
            if let equals = token.firstIndex(of: "="), !token.hasPrefix("/") {
                keyed[String(token[..<equals]).lowercased()] = String(token[token.index(after: equals)...])
            } else {
                positional.append(token)
            }
        }
        var format: DiskSpec.Format?
        var vdev: String?
        var access: String?
        var cdrom = false
        var path: String?
        var kind = ""  // phy, file, or a tap driver; "" when not given
        // Three positional fields are xm's target,vdev,mode unless the second is a format (xl).
        let formats: Set<String> = ["raw", "qcow2", "qcow", "vhd", "qed", "vmdk", "empty"]
        let legacy = positional.count == 3 && keyed.isEmpty && target == nil && !formats.contains(positional[1].lowercased())
        if legacy {
            // xm: [prefix:]target,vdev[:cdrom|:disk],mode
            path = positional[0]
            vdev = positional[1]
            access = positional[2]
        } else {
            // xl: target,format,vdev,access in order, any of them as key=value.
            var slots = ["target", "format", "vdev", "access"].filter { keyed[$0] == nil && !($0 == "target" && target != nil) }
            for token in positional {
                if token.isEmpty, !slots.isEmpty {
                    slots.removeFirst()
                    continue
                }
                if token == "cdrom" {
                    cdrom = true
                    continue
                }
                guard !slots.isEmpty else { throw bad("too many positional parameters") }
                keyed[slots.removeFirst()] = token
            }
            path = target ?? keyed["target"]
            vdev = keyed["vdev"]
            access = keyed["access"] ?? keyed["mode"]
            if let type = keyed["devtype"] {
                guard type == "cdrom" || type == "disk" else { throw bad("devtype must be 'disk' or 'cdrom'") }
                cdrom = type == "cdrom"
            }
            if let text = keyed["format"] {
                switch text.lowercased() {
                case "raw": format = .raw
                case "qcow2": format = .qcow2
                case "empty": path = ""
                default:
                    throw bad("format '\(text)' is not supported (Berth reads raw and qcow2)")
                        .withRemedy("Convert the image with 'qemu-img convert -O qcow2 IN OUT' and give format=qcow2.")
                }
            }
            for key in keyed.keys.sorted() where !["target", "vdev", "access", "mode", "devtype", "format"].contains(key) {
                keep("disk", "disk[\(number)] \(key)=\(keyed[key] ?? "")", reason: "a Xen disk option Berth does not use")
            }
        }
        // Prefixes on the target: phy:, file:, tap:aio:, tap:qcow2:, raw:, qcow2:, …
        if var text = path {
            let prefixes = [
                "phy", "file", "tap", "tap2", "tapdisk", "aio", "sync", "ioemu", "raw", "qcow2", "qcow", "vhd", "qed", "vmdk", "nbd", "iscsi", "drbd",
            ]
            while let colon = text.firstIndex(of: ":"), prefixes.contains(text[..<colon].lowercased()) {
                let prefix = text[..<colon].lowercased()
                text = String(text[text.index(after: colon)...])
                switch prefix {
                case "phy": kind = "phy"; format = format ?? .raw
                case "file", "aio", "sync": kind = kind.isEmpty ? "file" : kind; format = format ?? .raw
                case "raw": format = .raw
                case "qcow2": format = .qcow2
                case "qcow", "vhd", "qed", "vmdk":
                    throw bad("'\(prefix):' images are not supported (Berth reads raw and qcow2)")
                        .withRemedy("Convert the image with 'qemu-img convert -O qcow2 IN OUT' and use 'qcow2:'.")
                case "nbd", "iscsi", "drbd":
                    keep(
                        "disk", "disk[\(number)] '\(entry)'",
                        reason:
                            "\(prefix) network disks are not supported; attach the device on the host (e.g. nbd-client, iscsiadm) and give its /dev path with phy:"
                    )
                    return nil
                default: kind = "tap"
                }
            }
            path = text
        }
        guard var vdevText = vdev, !vdevText.isEmpty else { throw bad("no guest device name (vdev) such as xvda") }
        if let colon = vdevText.firstIndex(of: ":") {
            let suffix = vdevText[vdevText.index(after: colon)...]
            guard suffix == "cdrom" || suffix == "disk" else { throw bad("':\(suffix)' after the device name must be ':cdrom' or ':disk'") }
            cdrom = cdrom || suffix == "cdrom"
            vdevText = String(vdevText[..<colon])
        }
        var readOnly = cdrom
        if let access {
            switch access.lowercased() {
            case "r", "ro": readOnly = true
            case "w", "rw", "w!", "": readOnly = false
            default: throw bad("access mode '\(access)' must be r, ro, w or rw")
            }
        }
        guard var hostPath = path, !hostPath.isEmpty else {
            if cdrom {
                keep("disk", "disk[\(number)] '\(entry)'", reason: "an empty CD-ROM drive; attach media with a cdrom disk that names an ISO file")
                return nil
            }
            throw bad("no host path (target)")
        }
        if kind == "phy", !hostPath.hasPrefix("/") {
            hostPath = "/dev/" + hostPath  // xm: phy:hda1 meant /dev/hda1
        }
        guard vdevText.unicodeScalars.allSatisfy({ ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) }) else {
            throw bad("'\(vdevText)' is not a device name like xvda, hda or sda")
        }
        let bus = xenDiskBus(vdevText)
        if !["xvd", "hd", "sd", "vd"].contains(where: vdevText.hasPrefix) {
            warn("disk", "\(label): '\(vdevText)' is not a Xen device name (xvd*, hd*, sd*); it becomes a virtio disk.")
        }
        if vdevText.last?.isNumber == true, !vdevText.hasPrefix("d") {
            warn("disk", "\(label): \(vdevText) is a partition name; under QEMU the guest sees the device as a whole disk.")
        }
        return DiskSpec(
            path: hostPath, format: format, device: cdrom ? .cdrom : .disk, bus: bus, readOnly: readOnly, target: vdevText)
    }

    // MARK: Network

    mutating func readNICs(into spec: inout DomainSpec) throws {
        guard let entries = try strings("vif") else { return }
        for (number, entry) in entries.enumerated() {
            var nic = NICSpec(mode: options.defaultNIC.mode, bridge: options.defaultNIC.bridge, network: options.defaultNIC.network)
            var fields: [(String, String)] = []
            for piece in entry.split(separator: ",") {
                let token = piece.trimmed()
                if token.isEmpty { continue }
                guard let equals = token.firstIndex(of: "=") else {
                    throw BerthError.syntax(
                        source, position("vif"), "vif[\(number)] '\(entry)': '\(token)' is not key=value.",
                        remedy: "Write vifs as 'mac=00:16:3e:00:00:01,bridge=xenbr0'.")
                }
                fields.append((String(token[..<equals]).lowercased(), String(token[token.index(after: equals)...])))
            }
            var script: String?
            var bridge: String?
            var network: String?
            for (key, value) in fields {
                switch key {
                case "mac":
                    guard let mac = MACAddress(value) else {
                        throw BerthError.syntax(
                            source, position("vif"), "vif[\(number)]: '\(value)' is not a MAC address.",
                            remedy: "Write it as six hex pairs, like 00:16:3e:12:34:56.")
                    }
                    nic.mac = mac
                case "bridge": bridge = value
                case "network": network = value
                case "script": script = value
                case "ip": nic.ip = value
                case "model": nic.model = value
                case "type":
                    if !["ioemu", "vif", "netfront"].contains(value.lowercased()) {
                        keep("vif", "vif[\(number)] type=\(value)", reason: "not a vif type Berth knows")
                    }
                default:
                    keep("vif", "vif[\(number)] \(key)=\(value)", reason: "a Xen vif option Berth does not use")
                }
            }
            let scriptName = script.map { $0.split(separator: "/").last.map(String.init) ?? $0 }
            switch scriptName {
            case "vif-bridge"?:
                nic.mode = .bridge
                nic.bridge = bridge ?? "xenbr0"
                if bridge == nil {
                    warn("vif", "vif[\(number)] uses vif-bridge without bridge=: Berth uses xenbr0, Xen's default bridge.")
                }
            case "vif-route"?:
                nic.mode = .route
                nic.bridge = nil
                if bridge != nil { warn("vif", "vif[\(number)]: bridge= is ignored with vif-route.") }
            case "vif-nat"?:
                nic.mode = .nat
                nic.bridge = nil
                if bridge != nil { warn("vif", "vif[\(number)]: bridge= is ignored with vif-nat.") }
            case "vif-openvswitch"?:
                nic.mode = .bridge
                nic.bridge = bridge ?? "xenbr0"
                warn("vif", "vif[\(number)]: vif-openvswitch is treated as a plain bridge; Berth attaches the tap to '\(nic.bridge ?? "")'.")
            case let other?:
                keep("vif", "vif[\(number)] script=\(other)", reason: "Berth does not run Xen hotplug scripts")
                if let bridge {
                    nic.mode = .bridge
                    nic.bridge = bridge
                }
            case nil:
                if let network {
                    nic.mode = .network
                    nic.network = network
                    nic.bridge = nil
                } else if let bridge {
                    nic.mode = .bridge
                    nic.bridge = bridge
                } else if nic.mode == .user {
                    warn(
                        "vif",
                        "vif[\(number)] names no bridge: Xen would have used its default bridge; Berth gives user-mode networking (outbound only, no root). Add bridge=xenbr0 to bridge it."
                    )
                }
            }
            if nic.mode != .network { nic.network = nil }
            spec.nics.append(nic)
        }
    }

    // MARK: Display, serial, lifecycle

    mutating func readGraphics(into spec: inout DomainSpec) throws {
        var settings: [String: String] = [:]
        for key in [
            "vnc", "vnclisten", "vncdisplay", "vncpasswd", "vncunused", "sdl", "nographic", "spice", "spicehost", "spiceport", "spicepasswd",
            "vncconsole", "display", "xauthority", "spicedisable_ticketing",
        ] {
            if let value = try string(key) { settings[key] = value }
        }
        if let vfbs = try strings("vfb") {
            if vfbs.count > 1 { keep("vfb", "vfb[1...] \(vfbs.dropFirst().joined(separator: " "))", reason: "Berth gives a guest one display") }
            for piece in (vfbs.first ?? "").split(separator: ",") {
                let token = piece.trimmed()
                guard let equals = token.firstIndex(of: "=") else { continue }
                let key = String(token[..<equals]).lowercased()
                let value = String(token[token.index(after: equals)...])
                if key == "type" {
                    settings[value.lowercased()] = "1"  // xm's vfb = ['type=vnc']
                } else {
                    settings[key] = value
                }
            }
        }
        func on(_ key: String) -> Bool { settings[key].map { !["0", "", "no", "false"].contains($0.lowercased()) } ?? false }
        if on("nographic") { return }
        if on("spice") {
            let port = settings["spiceport"].flatMap { Int($0) }
            spec.graphics = GraphicsSpec(
                kind: .spice, listen: settings["spicehost"].flatMap { $0.isEmpty ? nil : $0 }, port: port,
                password: settings["spicepasswd"].flatMap { $0.isEmpty ? nil : $0 })
            return
        }
        if on("vnc") || on("sdl") {
            if on("sdl") && !on("vnc") {
                warn(
                    config["sdl"] != nil ? "sdl" : "vfb",
                    "sdl=1: Berth's guests run under a daemon with no X display, so a VNC display on 127.0.0.1 is set up instead.")
            }
            var graphics = GraphicsSpec(kind: .vnc)
            if let listen = settings["vnclisten"], !listen.isEmpty { graphics.listen = listen }
            if let display = settings["vncdisplay"] {
                guard let number = Int(display), number >= 0, number < 60000 else {
                    throw BerthError.syntax(
                        source, position(config["vncdisplay"] != nil ? "vncdisplay" : "vfb"),
                        "vncdisplay '\(display)' is not a display number.", remedy: "Give a display number N (port 5900+N).")
                }
                if !on("vncunused") || settings["vncunused"] == nil { graphics.port = 5900 + number }
            }
            if let port = try int("berth_vnc_port") { graphics.port = port }
            if let password = settings["vncpasswd"], !password.isEmpty { graphics.password = password }
            spec.graphics = graphics
        }
    }

    mutating func readSerial() throws {
        guard let values = try strings("serial") else { return }
        for value in values where value != "pty" {
            keep(
                "serial", "serial = \(XLConfig.quote(value))",
                reason: "Berth's serial console is always logged to a file and attachable with 'berth console'")
        }
    }

    mutating func action(_ key: String) throws -> LifecycleAction? {
        guard let text = try string(key) else { return nil }
        switch text.lowercased() {
        case "destroy": return .destroy
        case "restart": return .restart
        case "preserve": return .preserve
        case "rename-restart":
            warn(key, "\(key) = 'rename-restart' becomes 'restart': Berth does not keep the old domain under a new name.")
            return .restart
        case "coredump-destroy":
            warn(key, "\(key) = 'coredump-destroy' becomes 'destroy': Berth writes no core dump.")
            return .destroy
        case "coredump-restart":
            warn(key, "\(key) = 'coredump-restart' becomes 'restart': Berth writes no core dump.")
            return .restart
        case "soft-reset":
            warn(key, "\(key) = 'soft-reset' becomes 'restart': soft reset is Xen-only.")
            return .restart
        default:
            throw BerthError.syntax(
                source, position(key), "\(key) = '\(text)' is not an action.",
                remedy: "Use destroy, restart, preserve, rename-restart, coredump-destroy, coredump-restart or soft-reset.")
        }
    }

    mutating func readLifecycle(into spec: inout DomainSpec) throws {
        if let restart = try string("restart") {
            // xm's deprecated shorthand.
            switch restart {
            case "onreboot": (spec.onPoweroff, spec.onReboot, spec.onCrash) = (.destroy, .restart, .destroy)
            case "always": (spec.onPoweroff, spec.onReboot, spec.onCrash) = (.restart, .restart, .restart)
            case "never": (spec.onPoweroff, spec.onReboot, spec.onCrash) = (.destroy, .destroy, .destroy)
            default:
                throw BerthError.syntax(
                    source, position("restart"), "restart = '\(restart)' is not one of onreboot, always, never.",
                    remedy: "Use on_poweroff/on_reboot/on_crash instead.")
            }
        }
        if let value = try action("on_shutdown") { spec.onPoweroff = value }
        if let value = try action("on_poweroff") { spec.onPoweroff = value }
        if let value = try action("on_reboot") { spec.onReboot = value }
        if let value = try action("on_crash") { spec.onCrash = value }
    }

    // MARK: Firmware

    /// An HVM guest's firmware: `bios = "ovmf"` is UEFI (OVMF), `"seabios"` (or none) the PC
    /// BIOS; `boot = "dc"` the order (c disk, d CD-ROM, n network); `bios_path_override` the
    /// UEFI code image; `berth_nvram`/`berth_vars_template` Berth's variable store. No firmware
    /// key leaves `firmware` unset (SeaBIOS, disks then CD-ROMs).
    mutating func readFirmware(into spec: inout DomainSpec) throws {
        let bios = try string("bios")
        let order = try string("boot")
        let loader = try string("bios_path_override")
        let nvram = try string("berth_nvram")
        let template = try string("berth_vars_template")
        guard bios != nil || order != nil || loader != nil || nvram != nil || template != nil else { return }
        var firmware = FirmwareSpec()
        switch bios?.lowercased() {
        case nil, "seabios": firmware.kind = .bios
        case "ovmf": firmware.kind = .uefi
        case "rombios":
            warn("bios", "bios = \"rombios\" is Xen's old BIOS; SeaBIOS boots this guest instead.")
            firmware.kind = .bios
        default:
            throw BerthError.syntax(
                source, position("bios"), "bios = \(XLConfig.quote(bios ?? "")) is not a firmware Berth has.",
                remedy: "Use bios = \"ovmf\" for UEFI or bios = \"seabios\" for the PC BIOS.")
        }
        if let order { firmware.bootOrder = try bootOrder(order) }
        if loader != nil, firmware.kind != .uefi {
            warn("bios_path_override", "bios_path_override is used for UEFI (bios = \"ovmf\") only; SeaBIOS is QEMU's own.")
        }
        firmware.loader = firmware.kind == .uefi ? loader : nil
        firmware.nvram = nvram
        firmware.varsTemplate = template
        spec.firmware = firmware
    }

    /// xl's `boot`: one letter per device, tried in order; floppies (`a`) are dropped.
    mutating func bootOrder(_ text: String) throws -> [FirmwareSpec.BootDevice] {
        var devices: [FirmwareSpec.BootDevice] = []
        for letter in text.lowercased() {
            let device: FirmwareSpec.BootDevice
            switch letter {
            case "c": device = .hd
            case "d": device = .cdrom
            case "n": device = .network
            case "a":
                warn("boot", "boot device 'a' (floppy) is not supported and is left out of the boot order.")
                continue
            default:
                throw BerthError.syntax(
                    source, position("boot"), "boot = \(XLConfig.quote(text)): '\(letter)' is not a boot device.",
                    remedy: "Use the letters c (disk), d (CD-ROM) and n (network), e.g. boot = \"dc\".")
            }
            if !devices.contains(device) { devices.append(device) }
        }
        return devices
    }

    mutating func readBerthKeys(into spec: inout DomainSpec) throws {
        if let arch = try string("berth_arch") { spec.arch = arch }
        if let machine = try string("berth_machine") { spec.machine = machine }
        if let text = try string("berth_accel") {
            guard let accel = Accelerator(rawValue: text) else {
                throw BerthError.syntax(
                    source, position("berth_accel"), "berth_accel '\(text)' is not an accelerator.",
                    remedy: "Use auto, kvm or tcg.")
            }
            spec.accel = accel
        }
        if let autostart = try bool("berth_autostart") { spec.autostart = autostart }
        spec.balloon = try bool("berth_balloon")
        if let kept = try strings("berth_notes") { spec.notes = kept }
        for entry in try strings("berth_volumes") ?? [] {
            let parts = entry.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, let index = Int(parts[0]), spec.disks.indices.contains(index) else {
                throw BerthError.syntax(
                    source, position("berth_volumes"), "berth_volumes entry '\(entry)' is not INDEX=POOL/NAME for a disk.",
                    remedy: "Write \"0=default/devel1\" for the first disk, or remove the line.")
            }
            spec.disks[index].volume = parts[1]
        }
        used.insert("berth_vnc_port")
    }
}

extension BerthError {
    func withRemedy(_ remedy: String) -> BerthError {
        BerthError(code, message, remedy: remedy)
    }
}

/// The bus a Xen device name implies: hd* → IDE, sd* → SCSI, anything else (xvd*, vd*) → virtio.
func xenDiskBus(_ vdev: String) -> DiskSpec.Bus {
    vdev.hasPrefix("hd") ? .ide : vdev.hasPrefix("sd") ? .scsi : .virtio
}

/// Xen's disk index for a device name: xvda/hda/sda → 0, xvdb → 1, xvdaa → 26.
func xenDiskIndex(_ vdev: String) -> Int {
    var name = Substring(vdev)
    for prefix in ["xvd", "hd", "sd", "vd"] where name.hasPrefix(prefix) {
        name = name.dropFirst(prefix.count)
        break
    }
    let letters = name.prefix(while: { $0 >= "a" && $0 <= "z" })
    guard !letters.isEmpty, letters.count <= 3 else { return Int.max }
    var index = 0
    for letter in letters.unicodeScalars { index = index * 26 + Int(letter.value - 96) }
    return index - 1
}

/// Splits `--entry=1 --args "a b"` as a shell would (quotes, no expansion).
public func splitShellWords(_ text: String) -> [String] {
    var words: [String] = []
    var current = ""
    var quote: Character?
    var inWord = false
    for character in text {
        if let open = quote {
            if character == open { quote = nil } else { current.append(character) }
        } else if character == "\"" || character == "'" {
            quote = character
            inWord = true
        } else if character == " " || character == "\t" || character == "\n" {
            if inWord { words.append(current) }
            current = ""
            inWord = false
        } else {
            current.append(character)
            inWord = true
        }
    }
    if inWord { words.append(current) }
    return words
}

// MARK: Writer

extension XLDomain {
    /// Writes `spec` as xl text that `read` turns back into the same `DomainSpec`.
    public static func write(_ spec: DomainSpec) -> String {
        // The name is not repeated in the comment: a name with a newline would end it early.
        var out = "# Written by Berth. Keys: xl.cfg(5); berth_* keys are Berth's own.\n"
        func line(_ key: String, _ value: XLValue) { out += "\(key) = \(value.xlText)\n" }
        line("name", .string(spec.name))
        line("uuid", .string(spec.uuid.uuidString.lowercased()))
        // Firmware is an HVM setting: a kernel (or bootloader) under a firmware is written as HVM.
        line("type", .string(spec.firmware != nil ? "hvm" : spec.bootloader != nil ? "pv" : spec.kernel != nil ? "pvh" : "hvm"))
        line("memory", .number(Int64(spec.memory)))
        if let maxMemory = spec.maxMemory, maxMemory != spec.memory { line("maxmem", .number(Int64(maxMemory))) }
        line("vcpus", .number(Int64(spec.vcpus)))
        if let kernel = spec.kernel { line("kernel", .string(kernel)) }
        if let initrd = spec.initrd { line("ramdisk", .string(initrd)) }
        if let cmdline = spec.cmdline { line("cmdline", .string(cmdline)) }
        if let firmware = spec.firmware { writeFirmware(firmware, line) }
        if let loader = spec.bootloader {
            line("bootloader", .string("pygrub"))
            var args: [XLValue] = []
            if let entry = loader.entry { args.append(.string("--entry=" + entry)) }
            if let replaced = loader.args { args.append(.string("--args=" + replaced)) }
            if !args.isEmpty { line("bootloader_args", .list(args)) }
            if let extra = loader.extraArgs { line("extra", .string(extra)) }
        }
        if !spec.disks.isEmpty {
            line("disk", .list(spec.disks.enumerated().map { .string(diskText($0.element, number: $0.offset)) }))
        }
        if !spec.nics.isEmpty { line("vif", .list(spec.nics.map { .string(vifText($0)) })) }
        if let graphics = spec.graphics {
            switch graphics.kind {
            case .spice:
                line("spice", .number(1))
                if let listen = graphics.listen { line("spicehost", .string(listen)) }
                if let port = graphics.port { line("spiceport", .number(Int64(port))) }
                if let password = graphics.password { line("spicepasswd", .string(password)) }
            case .vnc:
                var fields = ["vnc=1"]
                if let listen = graphics.listen { fields.append("vnclisten=" + listen) }
                if let port = graphics.port {
                    if port >= 5900 { fields.append("vncdisplay=\(port - 5900)") } else { line("berth_vnc_port", .number(Int64(port))) }
                }
                if let password = graphics.password { fields.append("vncpasswd=" + password) }
                if fields.allSatisfy({ !$0.dropFirst().contains(",") }) {
                    line("vfb", .list([.string(fields.joined(separator: ","))]))
                } else {
                    line("vnc", .number(1))
                    if let listen = graphics.listen { line("vnclisten", .string(listen)) }
                    if let port = graphics.port, port >= 5900 { line("vncdisplay", .number(Int64(port - 5900))) }
                    if let password = graphics.password { line("vncpasswd", .string(password)) }
                }
            }
        }
        if !spec.acpi { line("acpi", .number(0)) }
        line("on_poweroff", .string(spec.onPoweroff.rawValue))
        line("on_reboot", .string(spec.onReboot.rawValue))
        line("on_crash", .string(spec.onCrash.rawValue))
        if let description = spec.description { line("description", .string(description)) }
        if spec.arch != "x86_64" { line("berth_arch", .string(spec.arch)) }
        if let machine = spec.machine { line("berth_machine", .string(machine)) }
        if spec.accel != .auto { line("berth_accel", .string(spec.accel.rawValue)) }
        if spec.autostart { line("berth_autostart", .number(1)) }
        // xl has no balloon device of its own (Xen balloons every PV guest).
        if let balloon = spec.balloon { line("berth_balloon", .number(balloon ? 1 : 0)) }
        if !spec.notes.isEmpty { line("berth_notes", .list(spec.notes.map { .string($0) })) }
        // Disks that are storage volumes: xl has no pools, so the path stays in `disk` and the
        // volume each one is (by index) is kept here for Berth to read back.
        let volumes = spec.disks.enumerated().compactMap { index, disk in disk.volume.map { "\(index)=\($0)" } }
        if !volumes.isEmpty { line("berth_volumes", .list(volumes.map { .string($0) })) }
        return out
    }

    static func writeFirmware(_ firmware: FirmwareSpec, _ line: (String, XLValue) -> Void) {
        line("bios", .string(firmware.kind == .uefi ? "ovmf" : "seabios"))
        if !firmware.bootOrder.isEmpty {
            let letters: [FirmwareSpec.BootDevice: String] = [.hd: "c", .cdrom: "d", .network: "n"]
            line("boot", .string(firmware.bootOrder.compactMap { letters[$0] }.joined()))
        }
        if let loader = firmware.loader, firmware.kind == .uefi { line("bios_path_override", .string(loader)) }
        if let nvram = firmware.nvram { line("berth_nvram", .string(nvram)) }
        if let template = firmware.varsTemplate { line("berth_vars_template", .string(template)) }
    }

    static func diskText(_ disk: DiskSpec, number: Int) -> String {
        var fields: [String] = []
        if let format = disk.format { fields.append("format=" + format.rawValue) }
        let prefix: String =
            switch disk.bus {
            case .ide: "hd"
            case .scsi, .sata: "sd"
            case .virtio: "xvd"
            }
        var vdev = disk.target ?? ""
        // Keep the guest's name when it says the same bus; SATA has no Xen name and becomes sd*.
        let matches = !vdev.isEmpty && xenDiskBus(vdev) == (disk.bus == .sata ? .scsi : disk.bus)
        if !matches || !vdev.unicodeScalars.allSatisfy({ ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) }) {
            vdev = prefix + String(Character(Unicode.Scalar(UInt8(97 + min(number, 25)))))
        }
        fields.append("vdev=" + vdev)
        fields.append("access=" + (disk.readOnly ? "ro" : "rw"))
        if disk.device == .cdrom { fields.append("devtype=cdrom") }
        fields.append("target=" + disk.path)
        return fields.joined(separator: ", ")
    }

    static func vifText(_ nic: NICSpec) -> String {
        var fields: [String] = []
        if let mac = nic.mac { fields.append("mac=\(mac)") }
        switch nic.mode {
        case .bridge:
            fields.append("bridge=" + (nic.bridge ?? "xenbr0"))
            fields.append("script=vif-bridge")
        case .route: fields.append("script=vif-route")
        case .nat: fields.append("script=vif-nat")
        case .network: fields.append("network=" + (nic.network ?? "default"))
        case .user: break
        }
        if let ip = nic.ip { fields.append("ip=" + ip) }
        if let model = nic.model { fields.append("model=" + model) }
        return fields.joined(separator: ",")
    }
}
