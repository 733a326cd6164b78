extension DomainSpec {
    /// Limits a single guest may ask for; the daemon also checks against the host.
    public static let memoryRange = 16...(4 * 1024 * 1024)
    public static let vcpuRange = 1...255
    public static let maxNameLength = 64

    /// Names become file names and QEMU arguments: keep them to a safe alphabet.
    public static func validateName(_ name: String) throws {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
        guard !name.isEmpty, name.count <= maxNameLength, name.allSatisfy(allowed.contains),
            let first = name.first, first.isLetter || first.isNumber
        else {
            throw BerthError(
                .invalidArgument, "'\(name)' is not a valid domain name.",
                remedy: "Use 1–\(maxNameLength) letters, digits, '.', '_' or '-', starting with a letter or digit.")
        }
    }

    /// Checks what can be checked without touching the host.
    public func validate() throws {
        try Self.validateName(name)
        guard Self.memoryRange.contains(memory) else {
            throw BerthError(
                .invalidArgument, "Memory \(memory) MiB is out of range.",
                remedy: "Give between \(Self.memoryRange.lowerBound) MiB and \(Self.memoryRange.upperBound / 1024) GiB.")
        }
        if let maxMemory, maxMemory < memory {
            throw BerthError(
                .invalidArgument, "maxMemory \(maxMemory) MiB is below memory \(memory) MiB.",
                remedy: "Raise maxMemory or lower memory.")
        }
        guard Self.vcpuRange.contains(vcpus) else {
            throw BerthError(
                .invalidArgument, "\(vcpus) vCPUs is out of range.",
                remedy: "Give between \(Self.vcpuRange.lowerBound) and \(Self.vcpuRange.upperBound) vCPUs.")
        }
        if kernel == nil, initrd != nil || cmdline != nil, bootloader == nil {
            throw BerthError(
                .invalidArgument, "An initrd or kernel command line was given without a kernel.",
                remedy: "Add \"kernel\": \"/path/to/vmlinuz\" or remove initrd and cmdline.")
        }
        if kernel != nil, bootloader != nil {
            throw BerthError(
                .invalidArgument, "Both a kernel and a bootloader were given.",
                remedy: "Keep 'kernel' to boot a host file, or 'bootloader' to boot the kernel on the guest's disk.")
        }
        if let firmware {
            if Set(firmware.bootOrder).count != firmware.bootOrder.count {
                throw BerthError(
                    .invalidArgument, "The boot order \(firmware.bootOrder.map(\.rawValue).joined(separator: ",")) names a device twice.",
                    remedy: "Name each of hd, cdrom and network at most once.")
            }
            for path in [firmware.loader, firmware.nvram, firmware.varsTemplate].compactMap({ $0 }) where !path.hasPrefix("/") {
                throw BerthError(
                    .invalidArgument, "Firmware file '\(path)' is not an absolute path.", remedy: "Give host paths starting with '/'.")
            }
            if firmware.kind == .bios, firmware.loader != nil || firmware.nvram != nil {
                throw BerthError(
                    .invalidArgument, "A firmware loader or variable store was given for SeaBIOS.",
                    remedy: "Set \"kind\": \"uefi\" for OVMF, or leave loader and nvram out.")
            }
        }
        if bootloader != nil, !disks.contains(where: { $0.device == .disk }) {
            throw BerthError(
                .invalidArgument, "The bootloader needs a disk to read the kernel from.",
                remedy: "Add a disk that holds /boot, or give \"kernel\" instead.")
        }
        for path in [kernel, initrd].compactMap({ $0 }) + disks.filter({ $0.volume == nil || !$0.path.isEmpty }).map(\.path)
        where !path.hasPrefix("/") {
            throw BerthError(
                .invalidArgument, "'\(path)' is not an absolute path.",
                remedy: "Give host paths starting with '/'; the daemon does not share the CLI's working directory.")
        }
        var macs = Set<MACAddress>()
        for nic in nics {
            if let mac = nic.mac {
                if mac.isMulticast {
                    throw BerthError(
                        .invalidArgument, "MAC \(mac) is a multicast address.",
                        remedy: "The first byte must be even; 52:54:00:xx:xx:xx is QEMU's range.")
                }
                if !macs.insert(mac).inserted {
                    throw BerthError(
                        .alreadyExists, "MAC \(mac) is given to two NICs of '\(name)'.",
                        remedy: "Give each NIC its own MAC, or leave 'mac' out to have one generated.")
                }
            }
            if nic.mode == .bridge, nic.bridge == nil {
                throw BerthError(
                    .invalidArgument, "A bridged NIC needs a bridge name.", remedy: "Add \"bridge\": \"br0\" to the NIC.")
            }
            if let ip = nic.ip, nic.mode == .network, IPv4Address(ip) == nil {
                throw BerthError(
                    .invalidArgument, "NIC address '\(ip)' is not an IPv4 address.",
                    remedy: "Write it as 192.168.122.50 (inside the network's subnet).")
            }
            if let bridge = nic.bridge, nic.mode == .bridge { try NetworkSpec.validateInterfaceName(bridge) }
            if nic.mode == .network, nic.network == nil {
                throw BerthError(
                    .invalidArgument, "A network NIC needs a network name.",
                    remedy: "Add \"network\": \"default\" to the NIC.")
            }
        }
    }
}

extension DomainSpec {
    /// Why this domain cannot boot as defined, or nil: libvirt defines such domains (a diskless
    /// guest whose disks come later), so `define` warns and `start` refuses with this.
    public var bootProblem: String? {
        guard kernel == nil, bootloader == nil else { return nil }
        let order = firmware?.bootOrder ?? []
        let hasDisk = disks.contains { $0.device == .disk }
        let hasCD = disks.contains { $0.device == .cdrom }
        let bootable =
            order.isEmpty
            ? !disks.isEmpty
            : order.contains { device in
                switch device {
                case .hd: hasDisk
                case .cdrom: hasCD
                case .network: !nics.isEmpty
                }
            }
        if bootable { return nil }
        if order.isEmpty { return "Domain '\(name)' has nothing to boot: no kernel, no bootloader and no disk." }
        return "Domain '\(name)' has nothing to boot: its boot order (\(order.map(\.rawValue).joined(separator: ","))) names no device it has."
    }
}

/// Sizes as users write them: `1200` (MiB), `512M`, `1.5G`, `2GiB`, `1024k`.
public enum SizeParser {
    /// Parses a size into MiB; a bare number means `defaultUnit`.
    public static func mebibytes(_ text: String, defaultUnit: Character = "M") -> Int? {
        bytes(text, defaultUnit: defaultUnit).map { Int($0 / 1_048_576) }
    }

    /// Parses a size into bytes.
    public static func bytes(_ text: String, defaultUnit: Character = "B") -> UInt64? {
        var number = text.trimmed().lowercased()
        for suffix in ["ib", "b"] where number.hasSuffix(suffix) && number.count > suffix.count {
            let candidate = String(number.dropLast(suffix.count))
            if candidate.last.map({ "kmgt".contains($0) }) == true || suffix == "b" {
                number = candidate
                break
            }
        }
        var unit = Character(defaultUnit.lowercased())
        if let last = number.last, "kmgt".contains(last) {
            unit = last
            number.removeLast()
        }
        guard let value = Double(number), value >= 0, value.isFinite else { return nil }
        let scale: Double =
            switch unit {
            case "k": 1024
            case "m": 1_048_576
            case "g": 1_073_741_824
            case "t": 1_099_511_627_776
            default: 1
            }
        let result = value * scale
        guard result < Double(UInt64.max / 2) else { return nil }
        return UInt64(result)
    }
}
