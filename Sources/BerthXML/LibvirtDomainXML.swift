import Foundation

// Fuzz builds compile the Berth modules named in fuzz/targets/*.swift into this module (fuzz/targets/*.swift).
#if canImport(BerthModel)
    import BerthFormats
    import BerthModel
#endif

/// libvirt domain XML (`virsh dumpxml`, `virsh define`) ⇄ `DomainSpec`.
///
/// Everything the model holds is written; on import, elements Berth covers with its own
/// fixed devices (the emulator, pty serial/console, PS/2 input, video, controllers,
/// memballoon) are accepted quietly, and anything else is kept in `spec.notes` and reported.
/// Berth-only fields (accelerator choice, autostart, notes) travel in `<metadata>`.
public enum LibvirtXML {
    /// Namespace of Berth's `<metadata>` element.
    public static let metadataNamespace = "https://berth.dev/xmlns/domain/1"

    /// Reads a `<domain>` document.
    /// - Throws: `BerthError(.invalidArgument)` with line and column for malformed XML or bad values.
    public static func read(_ text: String, source: String = "domain.xml") throws -> DomainImport {
        try read(bytes: Array(text.utf8), source: source)
    }

    public static func read(bytes: [UInt8], source: String = "domain.xml") throws -> DomainImport {
        let root = try XMLTree.parse(bytes, source: source)
        var reader = LibvirtReader(source: source)
        return try reader.read(root)
    }
}

private struct LibvirtReader {
    let source: String
    var warnings: [FormatWarning] = []
    var notes: [String] = []

    init(source: String) { self.source = source }

    func bad(_ node: XMLNode, _ message: String, remedy: String) -> BerthError {
        .syntax(source, node.position, message, remedy: remedy)
    }

    mutating func keep(_ node: XMLNode, _ what: String, reason: String) {
        notes.append("\(what) (\(reason))")
        warnings.append(FormatWarning("\(what) is kept as a note only: \(reason).", at: node.position))
    }

    mutating func unknown(_ node: XMLNode, in parent: String) {
        keep(node, "<\(node.name)> in <\(parent)>", reason: "not an element Berth knows")
    }

    /// libvirt's scaled integers: `<memory unit='KiB'>1048576</memory>` (KiB by default).
    func mebibytes(_ node: XMLNode) throws -> Int {
        let unit = (node.attributes["unit"] ?? "KiB")
        let scale: Double
        switch unit {
        case "b", "bytes": scale = 1
        case "KB": scale = 1000
        case "k", "K", "KiB": scale = 1024
        case "MB": scale = 1_000_000
        case "M", "MiB": scale = 1_048_576
        case "GB": scale = 1_000_000_000
        case "G", "GiB": scale = 1_073_741_824
        case "TB": scale = 1_000_000_000_000
        case "T", "TiB": scale = 1_099_511_627_776
        default:
            throw bad(node, "<\(node.name)> has unknown unit '\(unit)'.", remedy: "Use KiB, MiB, GiB (or KB, MB, GB, bytes).")
        }
        guard let value = UInt64(node.trimmedText), Double(value) * scale / 1_048_576 < Double(Int32.max) else {
            throw bad(
                node, "<\(node.name)> '\(node.trimmedText)' is not a memory size.",
                remedy: "Give a whole number with a unit, like <\(node.name) unit='MiB'>1024</\(node.name)>.")
        }
        return Int((Double(value) * scale / 1_048_576).rounded(.up))
    }

    mutating func read(_ root: XMLNode) throws -> DomainImport {
        guard root.name == "domain" else {
            throw bad(
                root, "the document's root is <\(root.name)>, not <domain>.",
                remedy: "Give a libvirt domain document ('virsh dumpxml NAME' prints one).")
        }
        guard let nameNode = root.child("name"), !nameNode.trimmedText.isEmpty else {
            throw bad(root, "<domain> has no <name>.", remedy: "Add <name>guest1</name>.")
        }
        var spec = DomainSpec(name: nameNode.trimmedText)
        switch root.attributes["type"] {
        case "kvm": spec.accel = .kvm
        case "qemu": spec.accel = .tcg
        case nil: break
        case let other?:
            warnings.append(
                FormatWarning("domain type '\(other)' becomes Berth's automatic choice of KVM or TCG.", at: root.position))
        }
        var memory: Int?
        var current: Int?
        var bootloaderPath: String?
        var bootloaderArgs: String?
        var cmdline: String?
        var hasFeatures = false
        for node in root.children {
            switch node.name {
            case "name": break
            case "uuid":
                guard let uuid = UUID(uuidString: node.trimmedText) else {
                    throw bad(node, "'\(node.trimmedText)' is not a UUID.", remedy: "Write 8-4-4-4-12 hex digits or remove <uuid>.")
                }
                spec.uuid = uuid
            case "description": spec.description = node.text
            case "memory": memory = try mebibytes(node)
            case "currentMemory": current = try mebibytes(node)
            case "vcpu":
                guard let count = Int(node.trimmedText) else {
                    throw bad(node, "<vcpu> '\(node.trimmedText)' is not a number.", remedy: "Write <vcpu>2</vcpu>.")
                }
                spec.vcpus = count
                if let currentCount = node.attributes["current"], Int(currentCount) != count {
                    keep(node, "<vcpu current='\(currentCount)'>", reason: "vCPU hotplug is not supported; the guest gets \(count) CPUs")
                }
            case "os": try readOS(node, into: &spec, cmdline: &cmdline)
            case "bootloader": bootloaderPath = node.trimmedText
            case "bootloader_args": bootloaderArgs = node.trimmedText
            case "features":
                hasFeatures = true
                spec.acpi = node.child("acpi") != nil
                for feature in node.children where !["acpi", "apic", "pae"].contains(feature.name) {
                    keep(feature, "feature <\(feature.name)>", reason: "not a feature Berth sets")
                }
            case "on_poweroff", "on_reboot", "on_crash":
                let action = try lifecycle(node)
                switch node.name {
                case "on_poweroff": spec.onPoweroff = action
                case "on_reboot": spec.onReboot = action
                default: spec.onCrash = action
                }
            case "devices": try readDevices(node, into: &spec)
            case "metadata": readMetadata(node, into: &spec)
            case "clock":
                if let offset = node.attributes["offset"], offset != "utc" {
                    keep(node, "<clock offset='\(offset)'>", reason: "the guest RTC is UTC")
                }
            default: unknown(node, in: "domain")
            }
        }
        if !hasFeatures {
            // libvirt's meaning: no <acpi/> feature, no ACPI.
            spec.acpi = false
            warnings.append(
                FormatWarning(
                    "no <features><acpi/></features>: the guest gets no ACPI, so it cannot be asked to shut down gracefully.", at: root.position))
        }
        if let memory {
            if let current, current < memory {
                spec.memory = current
                spec.maxMemory = memory
            } else {
                spec.memory = memory
            }
        } else if let current {
            spec.memory = current
        }
        if let bootloaderPath {
            let base = bootloaderPath.split(separator: "/").last.map(String.init) ?? bootloaderPath
            if !["pygrub", "berth", "berth-bootloader"].contains(base) {
                warnings.append(FormatWarning("bootloader '\(bootloaderPath)' is replaced by Berth's built-in bootloader."))
            }
            var loader = BootloaderSpec()
            let words = splitShellWords(bootloaderArgs ?? "")
            var index = 0
            while index < words.count {
                let word = words[index]
                if word.hasPrefix("--entry=") {
                    loader.entry = String(word.dropFirst(8))
                } else if word == "--entry", index + 1 < words.count {
                    index += 1
                    loader.entry = words[index]
                } else if word.hasPrefix("--args=") {
                    loader.args = String(word.dropFirst(7))
                } else if word == "--args", index + 1 < words.count {
                    index += 1
                    loader.args = words[index]
                } else {
                    notes.append("bootloader_args \(word) (not an option Berth's bootloader takes)")
                    warnings.append(FormatWarning("bootloader argument '\(word)' is not used by Berth's bootloader."))
                }
                index += 1
            }
            loader.extraArgs = cmdline
            spec.bootloader = loader
            if let kernel = spec.kernel {
                notes.append("kernel \(kernel) (the bootloader picks the kernel from the guest's disk)")
                warnings.append(FormatWarning("<kernel> is ignored: the bootloader picks the kernel from the guest's disk."))
                spec.kernel = nil
                spec.initrd = nil
            }
        } else {
            spec.cmdline = cmdline
        }
        spec.notes = notes + spec.notes
        return DomainImport(spec: spec, warnings: warnings)
    }

    func lifecycle(_ node: XMLNode) throws -> LifecycleAction {
        switch node.trimmedText {
        case "destroy", "coredump-destroy": return .destroy
        case "restart", "rename-restart", "coredump-restart": return .restart
        case "preserve": return .preserve
        default:
            throw bad(
                node, "<\(node.name)> '\(node.trimmedText)' is not an action.",
                remedy: "Use destroy, restart or preserve.")
        }
    }

    mutating func readOS(_ os: XMLNode, into spec: inout DomainSpec, cmdline: inout String?) throws {
        var boots: [String] = []
        for node in os.children {
            switch node.name {
            case "type":
                if let arch = node.attributes["arch"] { spec.arch = arch }
                spec.machine = node.attributes["machine"]
                if node.trimmedText == "linux" || node.trimmedText == "xen" {
                    warnings.append(
                        FormatWarning(
                            "os type '\(node.trimmedText)' was a Xen PV guest; under QEMU its kernel must boot on a standard PC.", at: node.position))
                }
            case "kernel": spec.kernel = node.trimmedText
            case "initrd": spec.initrd = node.trimmedText
            case "cmdline": cmdline = node.text
            case "boot": boots.append(node.attributes["dev"] ?? "")
            case "loader": readLoader(node, into: &spec)
            case "firmware": readFirmwareFeatures(node)
            case "nvram":
                var firmware = spec.firmware ?? FirmwareSpec(kind: .uefi)
                firmware.kind = .uefi
                firmware.nvram = node.trimmedText.isEmpty ? nil : node.trimmedText
                firmware.varsTemplate = node.attributes["template"]
                spec.firmware = firmware
            case "bootmenu", "smbios", "bios": break  // firmware details QEMU's defaults cover
            default: unknown(node, in: "os")
            }
        }
        if let kind = os.attributes["firmware"] {
            guard kind == "efi" || kind == "bios" else {
                throw bad(os, "<os firmware='\(kind)'> is not efi or bios.", remedy: "Use firmware='efi' (OVMF) or leave it out (SeaBIOS).")
            }
            var firmware = spec.firmware ?? FirmwareSpec()
            firmware.kind = kind == "efi" ? .uefi : .bios
            spec.firmware = firmware
        }
        var order: [FirmwareSpec.BootDevice] = []
        for dev in boots {
            guard let device = FirmwareSpec.BootDevice(rawValue: dev) else {
                warnings.append(FormatWarning("<boot dev='\(dev)'> is not used: Berth boots hd, cdrom and network.", at: os.position))
                continue
            }
            if !order.contains(device) { order.append(device) }
        }
        if spec.kernel != nil, !(order.isEmpty || order == [.hd]) {
            // QEMU boots the given kernel first whatever the order says; a firmware section
            // keeps it (as xl's `boot=` does), otherwise it becomes a note.
            let text = order.map(\.rawValue).joined(separator: ",")
            warnings.append(FormatWarning("boot order \(text) is not used: Berth boots the kernel given.", at: os.position))
            if var firmware = spec.firmware {
                firmware.bootOrder = order
                spec.firmware = firmware
            } else {
                notes.append("boot order \(text) (not used: Berth boots the kernel given)")
            }
        } else if !order.isEmpty, order != [.hd] || spec.firmware != nil {
            var firmware = spec.firmware ?? FirmwareSpec()
            firmware.bootOrder = order
            spec.firmware = firmware
        }
    }

    /// `<loader>`: a pflash code image is UEFI (libvirt's manual firmware selection); a ROM
    /// is a BIOS image of its own, which Berth does not load (QEMU's SeaBIOS boots instead).
    mutating func readLoader(_ node: XMLNode, into spec: inout DomainSpec) {
        let path = node.trimmedText.isEmpty ? nil : node.trimmedText
        if node.attributes["type"] == "rom" {
            if let path { keep(node, "<loader type='rom'>\(path)</loader>", reason: "Berth boots BIOS guests with QEMU's own SeaBIOS") }
            return
        }
        if node.attributes["secure"] == "yes" { secureBootWarning(node) }
        var firmware = spec.firmware ?? FirmwareSpec(kind: .uefi)
        firmware.kind = .uefi
        firmware.loader = path
        spec.firmware = firmware
    }

    /// `<os firmware='efi'><firmware><feature name='secure-boot' enabled='yes'/>…`: the
    /// features libvirt's automatic selection asks for. Asking for none is Berth's OVMF.
    mutating func readFirmwareFeatures(_ node: XMLNode) {
        for feature in node.all("feature") where feature.attributes["enabled"] == "yes" {
            secureBootWarning(feature)
        }
    }

    mutating func secureBootWarning(_ node: XMLNode) {
        let what = node.name == "loader" ? "<loader secure='yes'>" : "firmware feature '\(node.attributes["name"] ?? "")'"
        keep(node, what, reason: "Berth's OVMF (\(FirmwareSpec.defaultLoader)) boots without Secure Boot, which needs q35 and SMM")
    }

    mutating func readDevices(_ devices: XMLNode, into spec: inout DomainSpec) throws {
        for node in devices.children {
            switch node.name {
            case "disk": if let disk = try readDisk(node) { spec.disks.append(disk) }
            case "interface": if let nic = try readInterface(node) { spec.nics.append(nic) }
            case "graphics": try readGraphics(node, into: &spec)
            case "serial", "console":
                let type = node.attributes["type"] ?? "pty"
                if type != "pty" {
                    keep(
                        node, "<\(node.name) type='\(type)'>",
                        reason: "Berth's serial console is always logged to a file and attachable with 'berth console'")
                }
            case "memballoon":
                // libvirt writes a plain virtio balloon into every domain it dumps; only one
                // with free page reporting asks for what Berth's `balloon` is.
                if node.attributes["model"] == "virtio", node.attributes["freePageReporting"] == "on" {
                    spec.balloon = true
                } else if node.attributes["model"] == "none" {
                    spec.balloon = false
                }
            case "emulator", "input", "video", "controller":
                break  // Berth supplies its own: these are honoured by its fixed choices
            default: unknown(node, in: "devices")
            }
        }
    }

    mutating func readDisk(_ node: XMLNode) throws -> DiskSpec? {
        let type = node.attributes["type"] ?? "file"
        let deviceText = node.attributes["device"] ?? "disk"
        guard let device = DiskSpec.Device(rawValue: deviceText) else {
            keep(node, "<disk device='\(deviceText)'>", reason: "only disk and cdrom devices are supported")
            return nil
        }
        let source = node.child("source")
        if type == "volume", let pool = source?.attributes["pool"], let volume = source?.attributes["volume"] {
            // A storage volume: berthd resolves it to its path when the domain is defined.
            var disk = DiskSpec(path: "", device: device, bus: device == .cdrom ? .ide : .virtio, volume: "\(pool)/\(volume)")
            disk.readOnly = node.child("readonly") != nil || device == .cdrom
            if let driverType = node.child("driver")?.attributes["type"] { disk.format = DiskSpec.Format(rawValue: driverType) }
            disk.target = node.child("target")?.attributes["dev"]
            if let dev = disk.target { disk.bus = dev.hasPrefix("hd") ? .ide : dev.hasPrefix("sd") ? .scsi : .virtio }
            return disk
        }
        guard type == "file" || type == "block" else {
            keep(node, "<disk type='\(type)'>", reason: "only file and block disks are supported; attach the storage on the host and give its path")
            return nil
        }
        guard let path = source?.attributes["file"] ?? source?.attributes["dev"], !path.isEmpty else {
            if device == .cdrom {
                keep(
                    node, "empty CD-ROM drive \(node.child("target")?.attributes["dev"] ?? "")",
                    reason: "attach media with a cdrom disk that names an ISO file")
                return nil
            }
            throw bad(node, "<disk> has no <source file=…> or <source dev=…>.", remedy: "Add <source file='/path/disk.img'/>.")
        }
        var disk = DiskSpec(path: path, device: device, bus: device == .cdrom ? .ide : .virtio, readOnly: device == .cdrom)
        disk.readOnly = node.child("readonly") != nil
        if let driverType = node.child("driver")?.attributes["type"] {
            guard let format = DiskSpec.Format(rawValue: driverType) else {
                throw bad(
                    node, "disk '\(path)' has format '\(driverType)'; Berth reads raw and qcow2.",
                    remedy: "Convert it with 'qemu-img convert -O qcow2 IN OUT'.")
            }
            disk.format = format
        }
        if let target = node.child("target") {
            disk.target = target.attributes["dev"]
            if let busText = target.attributes["bus"] {
                if let bus = DiskSpec.Bus(rawValue: busText) {
                    disk.bus = bus
                } else {
                    warnings.append(FormatWarning("disk '\(path)' on bus '\(busText)' becomes a virtio disk.", at: target.position))
                    disk.bus = .virtio
                }
            } else if let dev = disk.target {
                disk.bus = dev.hasPrefix("hd") ? .ide : dev.hasPrefix("sd") ? .scsi : .virtio
            }
        }
        for child in node.children where !["source", "driver", "target", "readonly", "address", "alias", "shareable"].contains(child.name) {
            keep(child, "disk '\(path)' <\(child.name)>", reason: "not a disk setting Berth knows")
        }
        return disk
    }

    mutating func readInterface(_ node: XMLNode) throws -> NICSpec? {
        let type = node.attributes["type"] ?? "user"
        var nic = NICSpec()
        let source = node.child("source")
        let script = node.child("script")?.attributes["path"].map { $0.split(separator: "/").last.map(String.init) ?? $0 }
        switch type {
        case "user": nic.mode = .user
        case "bridge":
            nic.mode = .bridge
            nic.bridge = source?.attributes["bridge"]
            guard nic.bridge != nil else {
                throw bad(node, "a bridge <interface> needs <source bridge='…'/>.", remedy: "Add <source bridge='br0'/>.")
            }
        case "network":
            nic.mode = .network
            nic.network = source?.attributes["network"]
            guard nic.network != nil else {
                throw bad(node, "a network <interface> needs <source network='…'/>.", remedy: "Add <source network='default'/>.")
            }
        case "ethernet" where script == "vif-route": nic.mode = .route
        case "ethernet" where script == "vif-nat": nic.mode = .nat
        default:
            keep(node, "<interface type='\(type)'>", reason: "Berth offers user, bridge, network, route and nat NICs")
            return nil
        }
        if let text = node.child("mac")?.attributes["address"] {
            guard let mac = MACAddress(text) else {
                throw bad(node, "'\(text)' is not a MAC address.", remedy: "Write six hex pairs like 52:54:00:12:34:56.")
            }
            nic.mac = mac
        }
        nic.model = node.child("model")?.attributes["type"]
        // The NIC's IPv4 address (libvirt's `<ip address=…/>`): on a network NIC it becomes the
        // network's reservation for the MAC. IPv6 ones are kept as notes (SLAAC or DHCPv6 decide).
        for ip in node.all("ip") {
            let address = ip.attributes["address"] ?? ""
            if ip.attributes["family"] == "ipv6" || address.contains(":") {
                keep(ip, "interface <ip address='\(address)'>", reason: "a NIC's IPv6 address comes from its network's SLAAC or DHCPv6")
            } else if nic.ip == nil {
                nic.ip = address
            } else {
                keep(ip, "interface <ip address='\(address)'>", reason: "a NIC holds one reserved IPv4 address")
            }
        }
        if let script, type != "ethernet", script != "vif-bridge" {
            keep(node, "interface script '\(script)'", reason: "Berth does not run Xen hotplug scripts")
        }
        for child in node.children where !["source", "mac", "model", "ip", "script", "address", "alias", "target"].contains(child.name) {
            keep(child, "interface <\(child.name)>", reason: "not an interface setting Berth knows")
        }
        return nic
    }

    mutating func readGraphics(_ node: XMLNode, into spec: inout DomainSpec) throws {
        let type = node.attributes["type"] ?? ""
        guard let kind = GraphicsSpec.Kind(rawValue: type) else {
            keep(node, "<graphics type='\(type)'>", reason: "Berth offers vnc and spice displays")
            return
        }
        guard spec.graphics == nil else {
            keep(node, "a second <graphics>", reason: "Berth gives a guest one display")
            return
        }
        var graphics = GraphicsSpec(kind: kind)
        if node.attributes["autoport"] != "yes", let text = node.attributes["port"], let port = Int(text), port > 0 {
            guard port < 65536 else {
                throw bad(node, "graphics port \(port) is out of range.", remedy: "Give a port below 65536 or autoport='yes'.")
            }
            graphics.port = port
        }
        graphics.listen = node.attributes["listen"] ?? node.child("listen")?.attributes["address"]
        if let password = node.attributes["passwd"], !password.isEmpty { graphics.password = password }
        spec.graphics = graphics
    }

    mutating func readMetadata(_ node: XMLNode, into spec: inout DomainSpec) {
        for child in node.children {
            guard child.localName == "domain", child.attributes.contains(where: { $0.value == LibvirtXML.metadataNamespace }) else {
                keep(child, "metadata <\(child.name)>", reason: "another application's metadata")
                continue
            }
            for item in child.children {
                switch item.localName {
                case "accel": if let accel = Accelerator(rawValue: item.trimmedText) { spec.accel = accel }
                case "autostart": spec.autostart = item.trimmedText == "yes"
                case "note": spec.notes.append(item.text)
                default: break
                }
            }
        }
    }
}

// MARK: Writer

extension LibvirtXML {
    /// Writes `spec` as a libvirt `<domain type='kvm'>` document that `read` turns back into the same spec.
    public static func write(_ spec: DomainSpec) -> String {
        func e(_ text: String) -> String { XMLEscape.text(text) }
        var out = "<domain type='\(spec.accel == .tcg ? "qemu" : "kvm")'>\n"
        out += "  <name>\(e(spec.name))</name>\n"
        out += "  <uuid>\(spec.uuid.uuidString.lowercased())</uuid>\n"
        if let description = spec.description { out += "  <description>\(e(description))</description>\n" }
        out += "  <metadata>\n    <berth:domain xmlns:berth='\(metadataNamespace)'>\n"
        out += "      <berth:accel>\(spec.accel.rawValue)</berth:accel>\n"
        out += "      <berth:autostart>\(spec.autostart ? "yes" : "no")</berth:autostart>\n"
        for note in spec.notes { out += "      <berth:note>\(e(note))</berth:note>\n" }
        out += "    </berth:domain>\n  </metadata>\n"
        out += "  <memory unit='MiB'>\(max(spec.maxMemory ?? spec.memory, spec.memory))</memory>\n"
        out += "  <currentMemory unit='MiB'>\(spec.memory)</currentMemory>\n"
        out += "  <vcpu placement='static'>\(spec.vcpus)</vcpu>\n"
        if let loader = spec.bootloader {
            out += "  <bootloader>/usr/bin/pygrub</bootloader>\n"
            var args: [String] = []
            if let entry = loader.entry { args.append(shellQuote("--entry=" + entry)) }
            if let replaced = loader.args { args.append(shellQuote("--args=" + replaced)) }
            if !args.isEmpty { out += "  <bootloader_args>\(e(args.joined(separator: " ")))</bootloader_args>\n" }
        }
        out += "  <os\(osFirmwareAttribute(spec.firmware))>\n"
        out += "    <type arch='\(e(spec.arch))'\(spec.machine.map { " machine='\(e($0))'" } ?? "")>hvm</type>\n"
        if let firmware = spec.firmware { out += firmwareElements(firmware) }
        if let kernel = spec.kernel { out += "    <kernel>\(e(kernel))</kernel>\n" }
        if let initrd = spec.initrd { out += "    <initrd>\(e(initrd))</initrd>\n" }
        if let cmdline = spec.cmdline ?? spec.bootloader?.extraArgs { out += "    <cmdline>\(e(cmdline))</cmdline>\n" }
        if let order = spec.firmware?.bootOrder, !order.isEmpty {
            for device in order { out += "    <boot dev='\(device.rawValue)'/>\n" }
        } else if spec.firmware == nil && spec.kernel == nil && spec.bootloader == nil {
            out += "    <boot dev='hd'/>\n"
        }
        out += "  </os>\n"
        out += spec.acpi ? "  <features>\n    <acpi/>\n  </features>\n" : "  <features/>\n"
        out += "  <on_poweroff>\(spec.onPoweroff.rawValue)</on_poweroff>\n"
        out += "  <on_reboot>\(spec.onReboot.rawValue)</on_reboot>\n"
        out += "  <on_crash>\(spec.onCrash.rawValue)</on_crash>\n"
        out += "  <devices>\n"
        for disk in spec.disks {
            let block = disk.path.hasPrefix("/dev/")
            let volume = disk.volume.flatMap { key -> (String, String)? in
                let parts = key.split(separator: "/", maxSplits: 1).map(String.init)
                return parts.count == 2 ? (parts[0], parts[1]) : nil
            }
            out += "    <disk type='\(volume != nil ? "volume" : block ? "block" : "file")' device='\(disk.device.rawValue)'>\n"
            out += "      <driver name='qemu'\(disk.format.map { " type='\($0.rawValue)'" } ?? "")/>\n"
            if let (pool, name) = volume {
                // libvirt's volume disk; the path berthd resolved it to, for the reader.
                out += "      <source pool='\(e(pool))' volume='\(e(name))'/>\n"
                if !disk.path.isEmpty { out += "      <!-- \(e(disk.path).replacingOccurrences(of: "--", with: "&#45;&#45;")) -->\n" }
            } else {
                out += "      <source \(block ? "dev" : "file")='\(e(disk.path))'/>\n"
            }
            if let backing = disk.backing {
                out += "      <backingStore type='\(backing.path.hasPrefix("/dev/") ? "block" : "file")'>\n"
                out += "        <format type='\(backing.format.rawValue)'/>\n"
                out += "        <source \(backing.path.hasPrefix("/dev/") ? "dev" : "file")='\(e(backing.path))'/>\n"
                out += "      </backingStore>\n"
            }
            out += "      <target\(disk.target.map { " dev='\(e($0))'" } ?? "") bus='\(disk.bus.rawValue)'/>\n"
            if disk.readOnly { out += "      <readonly/>\n" }
            out += "    </disk>\n"
        }
        for nic in spec.nics {
            switch nic.mode {
            case .user: out += "    <interface type='user'>\n"
            case .bridge: out += "    <interface type='bridge'>\n      <source bridge='\(e(nic.bridge ?? "br0"))'/>\n"
            case .network: out += "    <interface type='network'>\n      <source network='\(e(nic.network ?? "default"))'/>\n"
            case .route: out += "    <interface type='ethernet'>\n      <script path='vif-route'/>\n"
            case .nat: out += "    <interface type='ethernet'>\n      <script path='vif-nat'/>\n"
            }
            if let mac = nic.mac { out += "      <mac address='\(mac)'/>\n" }
            if let ip = nic.ip { out += "      <ip address='\(e(ip))'/>\n" }
            if let model = nic.model { out += "      <model type='\(e(model))'/>\n" }
            out += "    </interface>\n"
        }
        out += "    <serial type='pty'>\n      <target port='0'/>\n    </serial>\n"
        out += "    <console type='pty'>\n      <target type='serial' port='0'/>\n    </console>\n"
        if let graphics = spec.graphics {
            out += "    <input type='mouse' bus='ps2'/>\n    <input type='keyboard' bus='ps2'/>\n"
            out += "    <graphics type='\(graphics.kind.rawValue)'"
            out += graphics.port.map { " port='\($0)' autoport='no'" } ?? " autoport='yes'"
            if let listen = graphics.listen { out += " listen='\(e(listen))'" }
            if let password = graphics.password { out += " passwd='\(e(password))'" }
            out += "/>\n"
        }
        if let balloon = spec.balloon {
            out += balloon ? "    <memballoon model='virtio' freePageReporting='on'/>\n" : "    <memballoon model='none'/>\n"
        }
        out += "  </devices>\n</domain>\n"
        return out
    }

    /// `<os firmware=…>`: libvirt's automatic selection, written when it says all there is.
    /// SeaBIOS is `bios`; UEFI is `efi` when no code image was named. A named UEFI code image
    /// is written as libvirt's manual selection instead (`<loader type='pflash'>`, which
    /// already means UEFI): libvirt before 9.2 refuses or ignores a loader path beside
    /// `firmware='efi'`.
    static func osFirmwareAttribute(_ firmware: FirmwareSpec?) -> String {
        switch firmware?.kind {
        case nil: ""
        case .bios?: " firmware='bios'"
        case .uefi?: firmware?.loader == nil ? " firmware='efi'" : ""
        }
    }

    /// `<loader>` and `<nvram>` of a UEFI domain: the code image read-only on a pflash chip,
    /// the domain's own variable store and the template it is made from. SeaBIOS has neither.
    static func firmwareElements(_ firmware: FirmwareSpec) -> String {
        guard firmware.kind == .uefi else { return "" }
        func e(_ text: String) -> String { XMLEscape.text(text) }
        var out = ""
        if let loader = firmware.loader { out += "    <loader readonly='yes' type='pflash'>\(e(loader))</loader>\n" }
        let template = firmware.varsTemplate.map { " template='\(e($0))'" } ?? ""
        if let nvram = firmware.nvram {
            out += "    <nvram\(template)>\(e(nvram))</nvram>\n"
        } else if !template.isEmpty {
            out += "    <nvram\(template)/>\n"
        }
        return out
    }

    /// Quotes a word for `<bootloader_args>`, which is split like a shell line.
    static func shellQuote(_ word: String) -> String {
        guard word.contains(where: { " \t\n'\"".contains($0) }) else { return word }
        if !word.contains("\"") { return "\"" + word + "\"" }
        return "'" + word + "'"
    }
}
