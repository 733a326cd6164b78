import FoundationEssentials
import Glibc

#if canImport(BerthModel)
    import BerthModel
#endif

extension VirtInstallRequest {
    /// How an option takes its value.
    enum Arity { case flag, value, optionalValue }

    /// One option virt-install had. `names[0]` is the canonical long name.
    struct Option {
        var names: [String]
        var arity: Arity
    }

    /// Every option Berth accepts, with virt-install's short forms and old aliases.
    static let options: [Option] = [
        Option(names: ["--name", "-n"], arity: .value),
        Option(names: ["--arch"], arity: .value),
        Option(names: ["--vcpus"], arity: .value),
        Option(names: ["--check-cpu"], arity: .flag),
        Option(names: ["--ram", "-r"], arity: .value),
        Option(names: ["--memory"], arity: .value),
        Option(names: ["--disk"], arity: .value),
        Option(names: ["--file", "-f"], arity: .value),
        Option(names: ["--file-size", "-s"], arity: .value),
        Option(names: ["--nonsparse"], arity: .flag),
        Option(names: ["--mac", "-m"], arity: .value),
        Option(names: ["--network", "-w"], arity: .value),
        Option(names: ["--bridge", "-b"], arity: .value),
        Option(names: ["--nonetworks"], arity: .flag),
        Option(names: ["--os-type"], arity: .value),
        Option(names: ["--os-variant", "--osinfo"], arity: .value),
        Option(names: ["--location", "-l"], arity: .value),
        Option(names: ["--cdrom", "-c"], arity: .value),
        Option(names: ["--import"], arity: .flag),
        Option(names: ["--pxe"], arity: .flag),
        Option(names: ["--boot"], arity: .value),
        Option(names: ["--extra-args", "-x"], arity: .value),
        Option(names: ["--initrd-inject"], arity: .value),
        Option(names: ["--graphics"], arity: .value),
        Option(names: ["--nographics"], arity: .flag),
        Option(names: ["--vnc"], arity: .flag),
        Option(names: ["--vncport"], arity: .value),
        Option(names: ["--vnclisten"], arity: .value),
        Option(names: ["--console"], arity: .value),
        Option(names: ["--serial"], arity: .value),
        Option(names: ["--noautoconsole"], arity: .flag),
        Option(names: ["--autoconsole"], arity: .value),
        Option(names: ["--wait"], arity: .optionalValue),
        Option(names: ["--noreboot"], arity: .flag),
        Option(names: ["--dry-run"], arity: .flag),
        Option(names: ["--print-xml"], arity: .optionalValue),
        Option(names: ["--debug", "-d"], arity: .flag),
        Option(names: ["--autostart"], arity: .flag),
        Option(names: ["--force"], arity: .flag),
        Option(names: ["--uuid", "-u"], arity: .value),
        Option(names: ["--description"], arity: .value),
        Option(names: ["--paravirt", "-p"], arity: .flag),
        Option(names: ["--hvm", "-v"], arity: .flag),
        Option(names: ["--accelerate"], arity: .flag),
        Option(names: ["--noacpi"], arity: .flag),
        Option(names: ["--noapic"], arity: .flag),
        Option(names: ["--virt-type"], arity: .value),
        Option(names: ["--connect"], arity: .value),
        Option(names: ["--quiet", "-q"], arity: .flag),
        Option(names: ["--prompt"], arity: .flag),
    ]

    /// The command words that may lead the argument list and are skipped.
    static let commandWords: Set<String> = ["virt-install", "berth-install"]

    /// Parses arguments as virt-install did: `--opt=value` and `--opt value`, `-x value` and `-xvalue`,
    /// unique prefixes of long options (Python's argparse allowed `--os-var`).
    ///
    /// A leading `virt-install` (or `berth install`) is skipped, and arguments holding only
    /// whitespace are ignored: a command pasted with `\␠␠` line ends reaches us with `" "` words.
    /// - Throws: `VirtInstallError` naming the option at fault.
    public static func parse(arguments: [String]) throws -> VirtInstallRequest {
        var words = arguments.filter { !$0.allSatisfy(\.isWhitespace) }
        if let first = words.first {
            let base = first.split(separator: "/").last.map(String.init) ?? first
            if commandWords.contains(base) {
                words.removeFirst()
            } else if base == "berth", words.count > 1, words[1] == "install" {
                words.removeFirst(2)
            }
        }
        var parser = ArgumentReader(words: words)
        var state = ParseState()
        while let (option, value) = try parser.next() {
            try state.apply(option: option, value: value)
        }
        return try state.finish()
    }

    /// Looks an option up by exact name, then by unique prefix of a long name.
    static func lookup(_ name: String) throws -> Option {
        if let exact = options.first(where: { $0.names.contains(name) }) { return exact }
        if name.hasPrefix("--"), name.count > 3 {
            let candidates = options.filter { $0.names.contains { $0.hasPrefix("--") && $0.hasPrefix(name) } }
            let distinct = Set(candidates.map { $0.names[0] })
            if distinct.count == 1, let only = candidates.first { return only }
        }
        throw VirtInstallError.unknownOption(name, suggestion: suggestion(for: name))
    }

    /// The closest known long option, for typos such as `--os-varient`.
    static func suggestion(for name: String) -> String? {
        let longNames = options.flatMap(\.names).filter { $0.hasPrefix("--") }
        let scored = longNames.map { ($0, editDistance($0, name)) }.sorted { $0.1 < $1.1 }
        guard let best = scored.first, best.1 <= max(2, name.count / 4) else { return nil }
        return best.0
    }

    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a)
        let b = Array(b)
        var previous = Array(0...b.count)
        for i in 1...max(a.count, 1) where !a.isEmpty {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...max(b.count, 1) where !b.isEmpty {
                current[j] = min(
                    previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }
}

/// Walks the words, pairing each option with its value.
struct ArgumentReader {
    var words: [String]
    var index = 0

    mutating func next() throws -> (VirtInstallRequest.Option, String?)? {
        guard index < words.count else { return nil }
        let word = words[index]
        index += 1
        guard word.hasPrefix("-"), word.count > 1, word != "--" else {
            throw VirtInstallError.strayArgument(word)
        }
        var name = word
        var attached: String?
        if word.hasPrefix("--") {
            if let equals = word.firstIndex(of: "=") {
                name = String(word[..<equals])
                attached = String(word[word.index(after: equals)...])
            }
        } else if word.count > 2 {
            // `-xks=…`: a short option with its value attached, as argparse allowed.
            name = String(word.prefix(2))
            attached = String(word.dropFirst(2))
            if attached?.hasPrefix("=") == true { attached?.removeFirst() }
        }
        let option = try VirtInstallRequest.lookup(name)
        let display = option.names[0]
        switch option.arity {
        case .flag:
            if let attached { throw VirtInstallError.unexpectedValue(option: display, value: attached) }
            return (option, nil)
        case .value:
            if let attached { return (option, attached) }
            guard index < words.count, !looksLikeOption(words[index]) else {
                throw VirtInstallError.missingValue(option: display)
            }
            index += 1
            return (option, words[index - 1])
        case .optionalValue:
            if let attached { return (option, attached) }
            // `--wait -1` and `--wait 10` take the number; `--wait --noreboot` takes nothing.
            if index < words.count, Int(words[index]) != nil || !words[index].hasPrefix("-") {
                index += 1
                return (option, words[index - 1])
            }
            return (option, nil)
        }
    }

    func looksLikeOption(_ word: String) -> Bool {
        word.hasPrefix("-") && word.count > 1 && Int(word) == nil
    }
}

/// The request being built, plus what is needed to spot conflicts.
struct ParseState {
    var request = VirtInstallRequest()
    var seen: [String: String] = [:]
    var location: (String, String?, String?)?
    var cdrom: String?
    var importDisk = false
    var pxe = false
    var bootKernel: (kernel: String, initrd: String?, args: String?)?
    var legacyFileSize: Double?
    var legacyBridges: [String] = []
    var noNetworks = false
    var ram: Int?

    mutating func apply(option: VirtInstallRequest.Option, value: String?) throws {
        let name = option.names[0]
        let value = value ?? ""
        switch name {
        case "--name":
            try single(name, value)
            guard !value.isEmpty else { throw VirtInstallError.missingValue(option: name) }
            request.name = value
        case "--arch":
            try single(name, value)
            request.arch = try Self.normalizedArch(value)
        case "--vcpus":
            try single(name, value)
            try parseVCPUs(value)
        case "--check-cpu": request.checkCPU = true
        case "--ram":
            try single(name, value)
            ram = try Self.positiveInt(name, value)
        case "--memory":
            try single(name, value)
            try parseMemory(value)
        case "--disk":
            if value == "none" { return }
            request.disks.append(try Self.parseDisk(value))
        case "--file":
            request.disks.append(VirtInstallRequest.Disk(path: value))
        case "--file-size":
            guard let size = Double(value), size > 0 else {
                throw VirtInstallError.invalidValue(option: name, value: value, reason: "give a size in GiB such as 8")
            }
            legacyFileSize = size
        case "--nonsparse":
            request.warnings.append("--nonsparse: Berth creates sparse raw or qcow2 volumes.")
        case "--mac":
            guard let mac = MACAddress(value) else {
                throw VirtInstallError.invalidValue(
                    option: name, value: value, reason: "a MAC address looks like 52:54:00:12:34:56")
            }
            request.macs.append(mac)
        case "--network":
            if value == "none" {
                noNetworks = true
                return
            }
            request.networks.append(try Self.parseNetwork(value))
        case "--bridge":
            request.networks.append(VirtInstallRequest.Network(mode: .bridge, bridge: value))
        case "--nonetworks": noNetworks = true
        case "--os-type":
            try single(name, value)
            request.osType = value.lowercased()
        case "--os-variant":
            try single(name, value)
            try parseOSVariant(value)
        case "--location":
            try single(name, value)
            location = try Self.parseLocation(value)
        case "--cdrom":
            try single(name, value)
            guard !value.isEmpty else { throw VirtInstallError.missingValue(option: name) }
            cdrom = value
        case "--import": importDisk = true
        case "--pxe": pxe = true
        case "--boot": try parseBoot(value)
        case "--extra-args": request.extraArgs.append(value)
        case "--initrd-inject":
            guard !value.isEmpty else { throw VirtInstallError.missingValue(option: name) }
            request.initrdInjections.append(value)
        case "--graphics":
            try setGraphics(try Self.parseGraphics(value), from: "--graphics")
        case "--nographics": try setGraphics(.none, from: "--nographics")
        case "--vnc": try setGraphics(.vnc(listen: nil, port: nil, password: nil), from: "--vnc")
        case "--vncport":
            guard let port = Int(value), port == -1 || (5900...65535).contains(port) else {
                throw VirtInstallError.invalidValue(option: name, value: value, reason: "give a port from 5900 to 65535")
            }
            try updateVNC { $0.port = port == -1 ? nil : port }
        case "--vnclisten":
            try updateVNC { $0.listen = value }
        case "--console", "--serial":
            request.consoles.append(value)
        case "--noautoconsole": request.autoconsole = false
        case "--autoconsole":
            request.autoconsole = value != "none"
        case "--wait":
            if value.isEmpty {
                request.waitMinutes = -1
            } else {
                guard let minutes = Int(value), minutes >= -1 else {
                    throw VirtInstallError.invalidValue(
                        option: name, value: value, reason: "give minutes, or -1 to wait until the install ends")
                }
                request.waitMinutes = minutes
            }
        case "--noreboot": request.noReboot = true
        case "--dry-run": request.dryRun = true
        case "--print-xml": request.printXML = true
        case "--debug": request.debug = true
        case "--autostart": request.autostart = true
        case "--force": request.force = true
        case "--uuid":
            guard UUID(uuidString: value) != nil else {
                throw VirtInstallError.invalidValue(
                    option: name, value: value, reason: "a UUID looks like 8-4-4-4-12 hexadecimal digits")
            }
            request.uuid = value
        case "--description": request.description = value
        case "--paravirt":
            request.warnings.append(
                "--paravirt: Berth runs every guest under QEMU; the guest's own kernel boots through Berth's bootloader as PyGRUB did.")
        case "--hvm", "--accelerate":
            request.warnings.append("\(name): Berth always uses full virtualization (KVM where usable, TCG otherwise).")
        case "--noacpi", "--noapic":
            request.warnings.append("\(name) is ignored: Berth guests get ACPI so that 'berth shutdown' works.")
        case "--virt-type":
            guard ["kvm", "qemu", "xen"].contains(value) else {
                throw VirtInstallError.invalidValue(option: name, value: value, reason: "give kvm or qemu")
            }
            if value == "xen" { request.warnings.append("--virt-type xen: Berth runs the guest under QEMU.") }
        case "--connect":
            request.warnings.append("--connect is ignored: use 'berth --connect URL install …' to reach another host.")
        case "--quiet": break
        case "--prompt":
            request.warnings.append("--prompt is ignored: Berth never asks questions; give every value as an option.")
        default:
            throw VirtInstallError.unknownOption(name, suggestion: nil)
        }
    }

    /// Options that may appear once: a repeat with another value is a mistake, not an override.
    mutating func single(_ name: String, _ value: String) throws {
        if let previous = seen[name], previous != value {
            throw VirtInstallError.conflict("\(name)=\(previous)", "\(name)=\(value)")
        }
        seen[name] = value
    }

    static func positiveInt(_ option: String, _ value: String) throws -> Int {
        guard let number = Int(value.trimmed()), number > 0 else {
            throw VirtInstallError.invalidValue(option: option, value: value, reason: "give a whole number above 0")
        }
        return number
    }

    static func normalizedArch(_ value: String) throws -> String {
        switch value.lowercased() {
        case "x86_64", "amd64", "x64": return "x86_64"
        case "i386", "i486", "i586", "i686", "x86": return "i686"
        case "aarch64", "arm64": return "aarch64"
        case "ppc64le", "ppc64el": return "ppc64le"
        case "ppc64": return "ppc64"
        case "s390x": return "s390x"
        case "riscv64": return "riscv64"
        default:
            throw VirtInstallError.invalidValue(
                option: "--arch", value: value, reason: "known architectures are x86_64, i686, aarch64, ppc64le, s390x")
        }
    }

    /// `N`, `N,maxvcpus=M`, `vcpus=N,…`; topology keys are accepted and left to QEMU's defaults.
    mutating func parseVCPUs(_ value: String) throws {
        let pairs = try SubOptions.parse(value, option: "--vcpus", positionalKey: "vcpus")
        for (key, text) in pairs {
            switch key {
            case "vcpus", "current": request.vcpus = try Self.positiveInt("--vcpus", text)
            case "maxvcpus", "maximum":
                request.maxVCPUs = try Self.positiveInt("--vcpus maxvcpus", text)
                request.warnings.append("--vcpus maxvcpus=\(text) is kept but not applied: Berth domains have no vCPU hot-plug yet.")
            case "sockets", "cores", "threads", "dies", "cpuset", "placement":
                request.warnings.append("--vcpus \(key)=\(text) is ignored: Berth lets QEMU choose the topology.")
            default:
                throw VirtInstallError.unknownSubOption(
                    option: "--vcpus", key: key, known: ["vcpus", "maxvcpus", "sockets", "cores", "threads"])
            }
        }
        if let max = request.maxVCPUs, let vcpus = request.vcpus, max < vcpus {
            throw VirtInstallError.invalidValue(
                option: "--vcpus", value: value, reason: "maxvcpus \(max) is below vcpus \(vcpus)")
        }
    }

    mutating func parseMemory(_ value: String) throws {
        let pairs = try SubOptions.parse(value, option: "--memory", positionalKey: "memory")
        for (key, text) in pairs {
            switch key {
            case "memory", "currentMemory": request.memory = try Self.positiveInt("--memory", text)
            case "maxmemory", "maxMemory": request.maxMemory = try Self.positiveInt("--memory maxmemory", text)
            default:
                throw VirtInstallError.unknownSubOption(option: "--memory", key: key, known: ["memory", "maxmemory"])
            }
        }
    }

    static let diskKeys = [
        "path", "size", "format", "bus", "device", "readonly", "ro", "perms", "sparse", "cache", "pool", "vol",
        "target", "driver.type", "io", "discard", "shareable",
    ]

    static func parseDisk(_ value: String) throws -> VirtInstallRequest.Disk {
        var disk = VirtInstallRequest.Disk()
        for (key, text) in try SubOptions.parse(value, option: "--disk", positionalKey: "path") {
            switch key {
            case "path":
                guard !text.isEmpty else { throw VirtInstallError.missingValue(option: "--disk path") }
                disk.path = text
            case "size":
                guard let size = Double(text), size > 0, size.isFinite, size <= 1_048_576 else {
                    throw VirtInstallError.invalidValue(
                        option: "--disk size", value: text, reason: "give a size in GiB such as 8 or 0.5")
                }
                disk.sizeGiB = size
            case "format", "driver.type":
                guard let format = DiskSpec.Format(rawValue: text.lowercased()) else {
                    throw VirtInstallError.invalidValue(
                        option: "--disk format", value: text, reason: "Berth uses raw or qcow2 images")
                }
                disk.format = format
            case "bus":
                switch text.lowercased() {
                case "xen":
                    // Xen's paravirtual disk becomes virtio: the same role, a different driver in the guest.
                    disk.bus = .virtio
                case "usb", "sd", "fdc":
                    throw VirtInstallError.invalidValue(
                        option: "--disk bus", value: text, reason: "Berth offers virtio, ide, scsi and sata")
                default:
                    guard let bus = DiskSpec.Bus(rawValue: text.lowercased()) else {
                        throw VirtInstallError.invalidValue(
                            option: "--disk bus", value: text, reason: "Berth offers virtio, ide, scsi and sata")
                    }
                    disk.bus = bus
                }
            case "device":
                guard let device = DiskSpec.Device(rawValue: text.lowercased()) else {
                    throw VirtInstallError.invalidValue(
                        option: "--disk device", value: text, reason: "Berth offers disk and cdrom")
                }
                disk.device = device
                if device == .cdrom { disk.readOnly = true }
            case "readonly", "ro":
                disk.readOnly = try SubOptions.bool(text, option: "--disk \(key)")
            case "perms":
                switch text {
                case "ro": disk.readOnly = true
                case "rw", "sh": disk.readOnly = false
                default:
                    throw VirtInstallError.invalidValue(option: "--disk perms", value: text, reason: "give ro, rw or sh")
                }
            case "pool": disk.pool = text
            case "vol":
                let parts = text.split(separator: "/", omittingEmptySubsequences: false)
                guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                    throw VirtInstallError.invalidValue(option: "--disk vol", value: text, reason: "give POOL/NAME such as default/devel1")
                }
                disk.volume = text
            case "sparse", "cache", "target", "io", "discard", "shareable":
                break  // QEMU's defaults serve; the target name is the guest's business.
            default:
                throw VirtInstallError.unknownSubOption(option: "--disk", key: key, known: diskKeys)
            }
        }
        if disk.volume != nil, disk.path != nil || disk.sizeGiB != nil || disk.pool != nil {
            throw VirtInstallError.invalidValue(
                option: "--disk", value: value, reason: "vol= names an existing volume: give it without path=, size= or pool=")
        }
        if disk.path == nil, disk.sizeGiB == nil, disk.volume == nil {
            throw VirtInstallError.invalidValue(
                option: "--disk", value: value, reason: "give path=/host/file, vol=POOL/NAME, or size=GiB for a new volume")
        }
        if let path = disk.path, path.lowercased().hasSuffix(".iso"), disk.device == .disk,
            !value.contains("device=")
        {
            disk.device = .cdrom
            disk.readOnly = true
        }
        return disk
    }

    static func parseNetwork(_ value: String) throws -> VirtInstallRequest.Network {
        var nic = VirtInstallRequest.Network()
        var pairs = try SubOptions.parse(value, option: "--network", positionalKey: "type")
        // Old virtinst wrote `bridge:br0` and `network:default`.
        if let first = pairs.first, first.key == "type", let colon = first.value.firstIndex(of: ":") {
            let kind = String(first.value[..<colon])
            let name = String(first.value[first.value.index(after: colon)...])
            pairs[0] = (key: kind, value: name)
        }
        for (key, text) in pairs {
            switch key {
            case "type":
                switch text {
                case "user": nic.mode = .user
                case "default":
                    // libvirt's NAT network "default"; Berth's no-setup equivalent is user-mode networking.
                    nic.mode = .user
                case "bridge": nic.mode = .bridge
                case "network": nic.mode = .network
                default:
                    throw VirtInstallError.invalidValue(
                        option: "--network", value: value, reason: "give user, bridge=NAME or network=NAME")
                }
            case "bridge":
                nic.mode = .bridge
                nic.bridge = text
            case "source" where nic.mode == .bridge:
                nic.bridge = text
            case "network", "source":
                nic.mode = .network
                nic.network = text
            case "mac", "mac.address":
                guard let mac = MACAddress(text) else {
                    throw VirtInstallError.invalidValue(
                        option: "--network mac", value: text, reason: "a MAC address looks like 52:54:00:12:34:56")
                }
                nic.mac = mac
            case "model", "model.type":
                nic.model = text == "virtio" ? nil : text
            default:
                throw VirtInstallError.unknownSubOption(
                    option: "--network", key: key, known: ["user", "bridge", "network", "mac", "model"])
            }
        }
        if nic.mode == .bridge, nic.bridge?.isEmpty ?? true {
            throw VirtInstallError.invalidValue(option: "--network", value: value, reason: "bridge= needs a name")
        }
        if nic.mode == .network, nic.network?.isEmpty ?? true {
            throw VirtInstallError.invalidValue(option: "--network", value: value, reason: "network= needs a name")
        }
        return nic
    }

    mutating func parseOSVariant(_ value: String) throws {
        let pairs = try SubOptions.parse(value, option: "--os-variant", positionalKey: "name")
        for (key, text) in pairs {
            switch key {
            case "name", "short-id", "id":
                // `id=` is a libosinfo URL such as http://redhat.com/rhel/6.0: keep its short form.
                request.osVariant = key == "id" ? VirtInstallOSInfo.shortID(fromOSInfoURL: text) : text
            case "detect", "require":
                if key == "detect", (try? SubOptions.bool(text, option: "--os-variant detect")) == true {
                    request.warnings.append("--os-variant detect=on: Berth detects the distribution from the install tree.")
                }
            default:
                throw VirtInstallError.unknownSubOption(
                    option: "--os-variant", key: key, known: ["name", "short-id", "id", "detect", "require"])
            }
        }
        if let variant = request.osVariant, VirtInstallOSInfo.lookup(variant) == nil {
            request.warnings.append(
                "Unknown --os-variant '\(variant)': Berth uses generic Linux defaults. Known ids look like rhel6, centos6.10, fedora40, debian12, ubuntu22.04, opensuse15.5, sles15sp5."
            )
        }
    }

    static func parseLocation(_ value: String) throws -> (String, String?, String?) {
        guard !value.isEmpty else { throw VirtInstallError.missingValue(option: "--location") }
        if value.lowercased().hasPrefix("nfs:") {
            throw VirtInstallError.unsupportedOption(
                "--location nfs:", remedy: "Mount the NFS export on the host and give the directory, or serve it over HTTP.")
        }
        // `URL,kernel=…,initrd=…`: split only when what follows a comma is one of these keys,
        // so that a URL holding commas stays whole.
        var url = value
        var kernel: String?
        var initrd: String?
        while let comma = url.lastIndex(of: ","), case let tail = url[url.index(after: comma)...],
            let equals = tail.firstIndex(of: "="), ["kernel", "initrd"].contains(String(tail[..<equals]))
        {
            let text = String(tail[tail.index(after: equals)...])
            if tail.hasPrefix("kernel") { kernel = text } else { initrd = text }
            url = String(url[..<comma])
        }
        if (kernel == nil) != (initrd == nil) {
            throw VirtInstallError.invalidValue(
                option: "--location", value: value, reason: "kernel= and initrd= must be given together")
        }
        return (url, kernel, initrd)
    }

    mutating func parseBoot(_ value: String) throws {
        var kernel: String?
        var initrd: String?
        var args: String?
        for (key, text) in try SubOptions.parse(value, option: "--boot", positionalKey: "order") {
            switch key {
            case "kernel": kernel = text
            case "initrd": initrd = text
            case "kernel_args", "cmdline", "extra_args": args = text
            case "order":
                for device in text.split(separator: ",").map(String.init) where !device.isEmpty {
                    if device == "uefi" {
                        request.uefi = true
                        continue
                    }
                    guard ["hd", "cdrom", "network", "fd", "menu=on", "menu=off"].contains(device) else {
                        throw VirtInstallError.invalidValue(
                            option: "--boot", value: device, reason: "boot devices are hd, cdrom and network")
                    }
                    request.bootOrder.append(device)
                }
            case "hd", "cdrom", "network", "fd": request.bootOrder.append(key)
            case "uefi": request.uefi = true
            case "firmware", "os.firmware":
                guard ["efi", "uefi", "bios"].contains(text) else {
                    throw VirtInstallError.invalidValue(option: "--boot firmware", value: text, reason: "give efi or bios")
                }
                request.uefi = text != "bios"
            case "loader":
                request.uefi = true
                request.loader = text
            case "nvram", "nvram.template":
                request.uefi = true
                if key == "nvram" { request.nvram = text }
            case "loader_ro", "loader_type", "loader.readonly", "loader.type", "loader_secure":
                break  // OVMF's code is always read-only pflash in Berth
            case "menu", "useserial", "bootmenu.enable":
                request.warnings.append("--boot \(key) is ignored: Berth's firmware shows no boot menu.")
            default:
                throw VirtInstallError.unknownSubOption(
                    option: "--boot", key: key,
                    known: ["kernel", "initrd", "kernel_args", "hd", "cdrom", "network", "uefi", "loader", "nvram", "firmware"])
            }
        }
        if let kernel {
            bootKernel = (kernel, initrd, args)
        } else if initrd != nil || args != nil {
            throw VirtInstallError.invalidValue(
                option: "--boot", value: value, reason: "initrd= and kernel_args= need kernel=")
        }
    }

    static func parseGraphics(_ value: String) throws -> VirtInstallRequest.Graphics {
        var kind = "vnc"
        var listen: String?
        var port: Int?
        var password: String?
        for (key, text) in try SubOptions.parse(value, option: "--graphics", positionalKey: "type") {
            switch key {
            case "type": kind = text
            case "listen", "address": listen = text
            case "port":
                guard let number = Int(text), number == -1 || (1...65535).contains(number) else {
                    throw VirtInstallError.invalidValue(option: "--graphics port", value: text, reason: "give a TCP port")
                }
                port = number == -1 ? nil : number
            case "password", "passwd": password = text
            case "keymap", "tlsport", "passwordvalidto", "gl", "rendernode", "image.compression":
                break  // display details QEMU's defaults handle
            default:
                throw VirtInstallError.unknownSubOption(
                    option: "--graphics", key: key, known: ["vnc", "spice", "none", "listen", "port", "password"])
            }
        }
        switch kind {
        case "none": return .none
        case "vnc": return .vnc(listen: listen, port: port, password: password)
        case "spice": return .spice(listen: listen, port: port, password: password)
        default:
            throw VirtInstallError.invalidValue(
                option: "--graphics", value: value, reason: "Berth offers vnc, spice or none")
        }
    }

    mutating func setGraphics(_ graphics: VirtInstallRequest.Graphics, from option: String) throws {
        if request.graphics != .unspecified, request.graphics != graphics {
            throw VirtInstallError.conflict(option, "another display option (--graphics, --nographics, --vnc)")
        }
        request.graphics = graphics
    }

    mutating func updateVNC(_ change: (inout (listen: String?, port: Int?, password: String?)) -> Void) throws {
        var fields: (listen: String?, port: Int?, password: String?) = (nil, nil, nil)
        switch request.graphics {
        case .unspecified, .vnc: break
        default: throw VirtInstallError.conflict("--vncport/--vnclisten", "--graphics or --nographics")
        }
        if case .vnc(let listen, let port, let password) = request.graphics { fields = (listen, port, password) }
        change(&fields)
        request.graphics = .vnc(listen: fields.listen, port: fields.port, password: fields.password)
    }

    /// Combines what was seen into one request, checking what virt-install checked.
    mutating func finish() throws -> VirtInstallRequest {
        if let ram {
            if let memory = request.memory, memory != ram {
                throw VirtInstallError.conflict("--ram=\(ram)", "--memory=\(memory)")
            }
            request.memory = ram
        }
        if let max = request.maxMemory, let memory = request.memory, max < memory {
            throw VirtInstallError.invalidValue(
                option: "--memory", value: "maxmemory=\(max)", reason: "maxmemory is below memory \(memory)")
        }
        if let legacyFileSize {
            guard let index = request.disks.lastIndex(where: { $0.device == .disk }) else {
                throw VirtInstallError.missing("--file", remedy: "--file-size needs --file PATH (or use --disk PATH,size=GiB).")
            }
            request.disks[index].sizeGiB = legacyFileSize
        }

        var methods: [(String, VirtInstallRequest.InstallMethod)] = []
        if let location { methods.append(("--location", .location(location.0, kernel: location.1, initrd: location.2))) }
        if let cdrom { methods.append(("--cdrom", .cdrom(cdrom))) }
        if importDisk { methods.append(("--import", .importDisk)) }
        if pxe { methods.append(("--pxe", .pxe)) }
        if methods.count > 1 {
            throw VirtInstallError.conflict(methods[0].0, methods.dropFirst().map(\.0).joined(separator: " and "))
        }
        if let bootKernel {
            if let other = methods.first, other.0 != "--import" {
                throw VirtInstallError.conflict("--boot kernel=", other.0)
            }
            request.method = .kernel(kernel: bootKernel.kernel, initrd: bootKernel.initrd, args: bootKernel.args)
        } else {
            request.method = methods.first?.1
        }
        if request.method == nil {
            throw VirtInstallError.missing(
                "An install method",
                remedy: "Give --location URL (an install tree), --cdrom ISO, --import (an installed disk) or --boot kernel=PATH.")
        }
        if request.location == nil, !request.extraArgs.isEmpty || !request.initrdInjections.isEmpty {
            throw VirtInstallError.missing(
                "--location",
                remedy: "--extra-args and --initrd-inject go to an installer fetched with --location; for a host kernel use --boot kernel_args=.")
        }
        guard let name = request.name else {
            throw VirtInstallError.missing("--name", remedy: "Name the guest, e.g. --name devel1.")
        }
        do {
            try DomainSpec.validateName(name)
        } catch let error as BerthError {
            throw VirtInstallError.invalidValue(option: "--name", value: name, reason: error.remedy ?? error.message)
        }

        if noNetworks {
            if !request.networks.isEmpty || !request.macs.isEmpty {
                throw VirtInstallError.conflict("--network none", "--network or --mac")
            }
        } else {
            // `--mac` names the addresses of the NICs in order; with no --network a user-mode NIC gets it.
            for (index, mac) in request.macs.enumerated() {
                if index < request.networks.count {
                    if let given = request.networks[index].mac, given != mac {
                        throw VirtInstallError.conflict("--mac \(mac)", "--network mac=\(given)")
                    }
                    request.networks[index].mac = mac
                } else {
                    request.networks.append(VirtInstallRequest.Network(mac: mac))
                }
            }
            if request.networks.isEmpty { request.networks = [VirtInstallRequest.Network()] }
        }
        if let vcpus = request.vcpus, !DomainSpec.vcpuRange.contains(vcpus) {
            throw VirtInstallError.invalidValue(
                option: "--vcpus", value: String(vcpus),
                reason: "give \(DomainSpec.vcpuRange.lowerBound)–\(DomainSpec.vcpuRange.upperBound)")
        }
        if let memory = request.memory, !DomainSpec.memoryRange.contains(memory) {
            throw VirtInstallError.invalidValue(
                option: "--ram", value: String(memory),
                reason: "give \(DomainSpec.memoryRange.lowerBound) MiB to \(DomainSpec.memoryRange.upperBound) MiB")
        }
        for disk in request.disks {
            if let path = disk.path, !path.hasPrefix("/") {
                throw VirtInstallError.invalidValue(
                    option: "--disk", value: path,
                    reason: "give an absolute host path; the daemon does not share the shell's working directory")
            }
        }
        if let osType = request.osType, !["linux", "unix", "other", "generic"].contains(osType) {
            if osType == "windows" {
                request.warnings.append("--os-type windows: Berth's defaults are chosen for Linux guests.")
            } else {
                throw VirtInstallError.invalidValue(option: "--os-type", value: osType, reason: "give linux")
            }
        }
        if request.bootOrder.contains("fd") {
            request.warnings.append("--boot fd is ignored: Berth guests have no floppy drive.")
        }
        for path in [request.loader, request.nvram].compactMap({ $0 }) where !path.hasPrefix("/") {
            throw VirtInstallError.invalidValue(option: "--boot", value: path, reason: "give an absolute path on berthd's host")
        }
        return request
    }
}

/// virt-install's `key=value,key=value` sub-option syntax.
enum SubOptions {
    /// Splits `a,b=c,d=e`; a leading bare word is `positionalKey`. Values may be quoted to hold commas.
    static func parse(_ text: String, option: String, positionalKey: String) throws -> [(key: String, value: String)] {
        var result: [(key: String, value: String)] = []
        var fields: [String] = []
        var current = ""
        var quote: Character?
        for character in text {
            if let open = quote {
                if character == open { quote = nil } else { current.append(character) }
            } else if character == "\"" || character == "'" {
                quote = character
            } else if character == "," {
                fields.append(current)
                current = ""
            } else {
                current.append(character)
            }
        }
        if quote != nil {
            throw VirtInstallError.invalidValue(option: option, value: text, reason: "a quote is not closed")
        }
        fields.append(current)
        for (index, field) in fields.enumerated() {
            if let equals = field.firstIndex(of: "=") {
                result.append((key: String(field[..<equals]), value: String(field[field.index(after: equals)...])))
            } else if index == 0 {
                result.append((key: positionalKey, value: field))
            } else if field.isEmpty {
                continue
            } else if positionalKey == "order" {
                result.append((key: field, value: ""))
            } else {
                result.append((key: field, value: "on"))
            }
        }
        return result
    }

    static func bool(_ text: String, option: String) throws -> Bool {
        switch text.lowercased() {
        case "on", "yes", "true", "1": return true
        case "off", "no", "false", "0": return false
        default: throw VirtInstallError.invalidValue(option: option, value: text, reason: "give on or off")
        }
    }
}
