import FoundationEssentials
import Glibc

/// A virtual network guests attach to (libvirt's networks): a bridge, and for Berth-made
/// bridges an IPv4 subnet with DHCP and DNS (dnsmasq) and the host's forwarding policy.
///
/// JSON (only `name` and, except for `bridge` mode, `address` are required):
/// `{"name": "default", "mode": "nat", "address": "192.168.122.1/24",
///   "dhcpStart": "192.168.122.2", "dhcpEnd": "192.168.122.254",
///   "hosts": [{"mac": "52:54:00:00:00:01", "ip": "192.168.122.50", "name": "web"}]}`
public struct NetworkSpec: Codable, Sendable, Equatable {
    public enum Mode: String, Codable, Sendable, CaseIterable {
        /// A Berth-made bridge, DHCP and DNS on it, masquerade to the host's uplinks.
        case nat
        /// The same bridge and DHCP without NAT: the subnet is routed to this host.
        case routed
        /// Guests reach each other and the host (DHCP, DNS), nothing else.
        case isolated
        /// An existing host bridge (`br0`, `xenbr0`); the LAN's own DHCP server serves it.
        case bridge
    }

    public var name: String
    public var uuid: UUID
    public var mode: Mode
    /// The bridge's interface name: made by Berth (chosen at define time when left out) or,
    /// in `bridge` mode, the existing bridge.
    public var bridge: String?
    /// The host's address on the bridge with the prefix length (`192.168.122.1/24`).
    public var address: String?
    /// The dynamic DHCP pool; left out, everything in the subnet after the host's address.
    public var dhcpStart: String?
    public var dhcpEnd: String?
    /// The host's IPv6 address on the bridge with its prefix (`fd00:50::1/64`), if the network
    /// has IPv6 (libvirt's `<ip family='ipv6'>`). Guests get router advertisements; with a
    /// DHCPv6 range they get addresses by DHCPv6 (stateful), without one by SLAAC (a /64). IPv6
    /// is routed, never masqueraded, also on `nat` networks (as libvirt does).
    public var address6: String?
    /// The DHCPv6 pool; left out, guests configure themselves (SLAAC).
    public var dhcp6Start: String?
    public var dhcp6End: String?
    /// Reservations MAC → IP (and host name); on read they include those made by domain NICs.
    public var hosts: [DHCPHost]
    public var autostart: Bool
    /// A directory on berthd's host that dnsmasq serves over TFTP on this network (libvirt's
    /// `<tftp root=…>`), for guests that boot from the network (`--pxe`).
    public var tftpRoot: String?
    /// The boot file DHCP names (libvirt's `<bootp file=…>`): a path under `tftpRoot`, such as
    /// an iPXE script (`boot.ipxe`) or `pxelinux.0`.
    public var bootFile: String?

    public init(
        name: String, uuid: UUID = UUID(), mode: Mode = .nat, bridge: String? = nil, address: String? = nil,
        dhcpStart: String? = nil, dhcpEnd: String? = nil, address6: String? = nil, dhcp6Start: String? = nil,
        dhcp6End: String? = nil, hosts: [DHCPHost] = [], autostart: Bool = false
    ) {
        self.name = name
        self.uuid = uuid
        self.mode = mode
        self.bridge = bridge
        self.address = address
        self.dhcpStart = dhcpStart
        self.dhcpEnd = dhcpEnd
        self.address6 = address6
        self.dhcp6Start = dhcp6Start
        self.dhcp6End = dhcp6End
        self.hosts = hosts
        self.autostart = autostart
    }

    enum CodingKeys: String, CodingKey {
        case name, uuid, mode, bridge, address, dhcpStart, dhcpEnd, address6, dhcp6Start, dhcp6End, hosts, autostart, tftpRoot, bootFile
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(name: try c.decode(String.self, forKey: .name))
        uuid = try c.decodeIfPresent(UUID.self, forKey: .uuid) ?? uuid
        mode = try c.decodeIfPresent(Mode.self, forKey: .mode) ?? .nat
        bridge = try c.decodeIfPresent(String.self, forKey: .bridge)
        address = try c.decodeIfPresent(String.self, forKey: .address)
        dhcpStart = try c.decodeIfPresent(String.self, forKey: .dhcpStart)
        dhcpEnd = try c.decodeIfPresent(String.self, forKey: .dhcpEnd)
        address6 = try c.decodeIfPresent(String.self, forKey: .address6)
        dhcp6Start = try c.decodeIfPresent(String.self, forKey: .dhcp6Start)
        dhcp6End = try c.decodeIfPresent(String.self, forKey: .dhcp6End)
        hosts = try c.decodeIfPresent([DHCPHost].self, forKey: .hosts) ?? []
        autostart = try c.decodeIfPresent(Bool.self, forKey: .autostart) ?? false
        tftpRoot = try c.decodeIfPresent(String.self, forKey: .tftpRoot)
        bootFile = try c.decodeIfPresent(String.self, forKey: .bootFile)
    }

    /// Whether guests on this network can boot from it (DHCP names a boot file).
    public var servesNetworkBoot: Bool { ownsBridge && bootFile != nil }

    /// Whether Berth makes (and removes) the bridge, runs dnsmasq and loads nft rules.
    public var ownsBridge: Bool { mode != .bridge }

    /// The host address and subnet, parsed; nil in `bridge` mode.
    public var subnet: IPv4Subnet? { address.flatMap(IPv4Subnet.init) }

    /// The host's IPv6 address and prefix, parsed; nil without IPv6.
    public var subnet6: IPv6Subnet? { address6.flatMap(IPv6Subnet.init) }

    /// The DHCPv6 pool, when one is given (both ends); nil means SLAAC.
    public var dhcp6Pool: ClosedRange<IPv6Address>? {
        guard let start = dhcp6Start.flatMap(IPv6Address.init), let end = dhcp6End.flatMap(IPv6Address.init), start <= end
        else { return nil }
        return start...end
    }

    /// The DHCP pool, defaults applied: left out, the larger side of the subnet around the
    /// host's address (after it for `.1`, before it for `.254`).
    public var dhcpPool: ClosedRange<IPv4Address>? {
        guard let subnet else { return nil }
        let below = subnet.host.value &- subnet.network.value &- 1
        let above = subnet.lastHost.value &- subnet.host.value
        let (defaultStart, defaultEnd) =
            above >= below
            ? (IPv4Address(subnet.host.value &+ 1), subnet.lastHost)
            : (IPv4Address(subnet.network.value &+ 1), IPv4Address(subnet.host.value &- 1))
        let start = dhcpStart.flatMap(IPv4Address.init) ?? defaultStart
        let end = dhcpEnd.flatMap(IPv4Address.init) ?? defaultEnd
        return start <= end ? start...end : nil
    }

    public static let maxInterfaceName = 15

    /// Interface names reach `ip` and nft: keep them to what the kernel accepts and no quote.
    public static func validateInterfaceName(_ name: String) throws {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
        guard !name.isEmpty, name.utf8.count <= maxInterfaceName, name.allSatisfy(allowed.contains), name != ".",
            name != ".."
        else {
            throw BerthError(
                .invalidArgument, "'\(name)' is not a valid interface name.",
                remedy: "Use 1–\(maxInterfaceName) letters, digits, '.', '_' or '-' (such as virbr1 or br0).")
        }
    }

    /// Checks what can be checked without the host or the catalog.
    public func validate() throws {
        do {
            try DomainSpec.validateName(name)
        } catch {
            throw BerthError(
                .invalidArgument, "'\(name)' is not a valid network name.",
                remedy: "Use 1–\(DomainSpec.maxNameLength) letters, digits, '.', '_' or '-', starting with a letter or digit.")
        }
        if let bridge { try Self.validateInterfaceName(bridge) }
        if mode == .bridge {
            guard bridge != nil else {
                throw BerthError(
                    .invalidArgument, "A bridge-mode network needs the host bridge to attach guests to.",
                    remedy: "Add \"bridge\": \"br0\" (an existing bridge; 'ip link show type bridge' lists them).")
            }
            if tftpRoot != nil || bootFile != nil {
                throw BerthError(
                    .invalidArgument, "Network '\(name)' is in bridge mode: the LAN's DHCP server names boot files there, not Berth.",
                    remedy: "Remove \"tftpRoot\" and \"bootFile\", or use a nat, routed or isolated network.")
            }
            if address != nil || address6 != nil || !hosts.isEmpty {
                throw BerthError(
                    .invalidArgument, "Network '\(name)' is in bridge mode, where the LAN's router hands out addresses.",
                    remedy: "Remove \"address\", \"address6\" and \"hosts\", and make the reservations on the LAN's DHCP server.")
            }
            return
        }
        guard let address else {
            throw BerthError(
                .invalidArgument, "Network '\(name)' (\(mode.rawValue)) needs the host's address on it.",
                remedy: "Add \"address\": \"192.168.100.1/24\".")
        }
        guard let subnet = IPv4Subnet(address) else {
            throw BerthError(
                .invalidArgument, "'\(address)' is not an IPv4 address with a prefix length.",
                remedy: "Write it as 192.168.100.1/24 (prefix 8 to 30).")
        }
        guard (8...30).contains(subnet.prefix), subnet.host != subnet.network, subnet.host != subnet.broadcast else {
            throw BerthError(
                .invalidArgument, "'\(address)' cannot be the host's address on a network.",
                remedy: "Use a host address (not the network or broadcast address) with a prefix from 8 to 30.")
        }
        for (field, value) in [("dhcpStart", dhcpStart), ("dhcpEnd", dhcpEnd)] {
            guard let value else { continue }
            guard let ip = IPv4Address(value), subnet.containsHost(ip) else {
                throw BerthError(
                    .invalidArgument, "\(field) '\(value)' is not an address inside \(subnet.cidr).",
                    remedy: "Give host addresses of \(subnet.cidr) for the DHCP pool.")
            }
        }
        try validateNetworkBoot()
        guard dhcpPool != nil else {
            throw BerthError(
                .invalidArgument, "The DHCP pool of '\(name)' is empty (dhcpStart is after dhcpEnd).",
                remedy: "Swap dhcpStart and dhcpEnd.")
        }
        try validateIPv6()
        var macs = Set<MACAddress>()
        var ips = Set<IPv4Address>()
        for host in hosts {
            try host.validate(in: subnet)
            guard macs.insert(host.mac).inserted else {
                throw BerthError(
                    .alreadyExists, "MAC \(host.mac) has two reservations on '\(name)'.",
                    remedy: "Keep one dhcp-host per MAC.")
            }
            guard let ip = IPv4Address(host.ip), ips.insert(ip).inserted else {
                throw BerthError(
                    .alreadyExists, "\(host.ip) is reserved twice on '\(name)'.", remedy: "Give each MAC its own address.")
            }
        }
    }
}

extension NetworkSpec {
    /// The IPv6 part: a global or unique-local host address; SLAAC needs a /64, a DHCPv6 pool
    /// both ends inside the prefix.
    func validateIPv6() throws {
        guard let address6 else {
            if dhcp6Start != nil || dhcp6End != nil {
                throw BerthError(
                    .invalidArgument, "Network '\(name)' has a DHCPv6 range but no IPv6 address.",
                    remedy: "Add \"address6\": \"fd00:100::1/64\", or remove dhcp6Start and dhcp6End.")
            }
            return
        }
        guard let subnet6 = IPv6Subnet(address6), (8...126).contains(subnet6.prefix), subnet6.host != subnet6.network,
            subnet6.host.high >> 61 == 1 || subnet6.host.high >> 57 == 0x7e
        else {
            throw BerthError(
                .invalidArgument, "'\(address6)' cannot be the host's IPv6 address on a network.",
                remedy: "Give a global or unique-local host address with its prefix, such as fd00:100::1/64.")
        }
        guard dhcp6Start != nil || dhcp6End != nil else {
            guard subnet6.prefix == 64 else {
                throw BerthError(
                    .invalidArgument, "IPv6 guests configure themselves (SLAAC) only on a /64, and \(address6) is not one.",
                    remedy: "Use a /64, or give a DHCPv6 range (dhcp6Start and dhcp6End).")
            }
            return
        }
        for (field, value) in [("dhcp6Start", dhcp6Start), ("dhcp6End", dhcp6End)] {
            guard let value, let ip = IPv6Address(value), subnet6.contains(ip), ip != subnet6.host else {
                throw BerthError(
                    .invalidArgument, "\(field) '\(value ?? "")' is not an address inside \(subnet6.cidr).",
                    remedy: "Give both dhcp6Start and dhcp6End inside \(subnet6.cidr), other than the host's \(subnet6.host).")
            }
        }
        guard dhcp6Pool != nil else {
            throw BerthError(
                .invalidArgument, "The DHCPv6 pool of '\(name)' is empty (dhcp6Start is after dhcp6End).",
                remedy: "Swap dhcp6Start and dhcp6End.")
        }
    }

    /// `tftpRoot` and `bootFile` go into dnsmasq's configuration file: absolute, printable, no
    /// comma or line break (which would add options of the guest owner's choosing).
    func validateNetworkBoot() throws {
        func plain(_ text: String) -> Bool {
            !text.isEmpty && text.utf8.count <= 255 && text.unicodeScalars.allSatisfy { $0.value > 0x20 && $0.value < 0x7F && $0 != "," && $0 != "#" }
        }
        if let tftpRoot {
            guard tftpRoot.hasPrefix("/"), plain(tftpRoot) else {
                throw BerthError(
                    .invalidArgument, "tftpRoot '\(tftpRoot)' is not an absolute path without spaces, commas or '#'.",
                    remedy: "Give a directory on berthd's host such as /srv/tftp.")
            }
        }
        if let bootFile {
            guard plain(bootFile), !bootFile.split(separator: "/").contains("..") else {
                throw BerthError(
                    .invalidArgument, "bootFile '\(bootFile)' is not a file name without spaces, commas, '#' or '..'.",
                    remedy: "Give a file under tftpRoot such as boot.ipxe or pxelinux.0.")
            }
            guard tftpRoot != nil || bootFile.contains("://") else {
                throw BerthError(
                    .invalidArgument, "bootFile '\(bootFile)' needs a tftpRoot to be served from.",
                    remedy: "Add \"tftpRoot\": \"/srv/tftp\" (libvirt's <tftp root=…/>).")
            }
        }
    }
}

/// A DHCP reservation: the guest with this MAC always gets `ip` (libvirt's `<host>`).
public struct DHCPHost: Codable, Sendable, Equatable, Hashable {
    public var mac: MACAddress
    public var ip: String
    public var name: String?
    /// The domain whose NIC asked for this address (read-only; nil for reservations made on
    /// the network itself).
    public var domain: String?

    public init(mac: MACAddress, ip: String, name: String? = nil, domain: String? = nil) {
        self.mac = mac
        self.ip = ip
        self.name = name
        self.domain = domain
    }

    /// virsh's `net-update … dhcp-host` value as Berth spells it: `MAC,IP[,HOSTNAME]`; libvirt's
    /// `<host mac='…' ip='…' name='…'/>` is accepted too.
    public init(parsing text: String) throws {
        let trimmed = text.trimmed()
        var fields: [String]
        if trimmed.hasPrefix("<") {
            func attribute(_ key: String) -> String? {
                guard let pattern = try? Regex(#"\b\#(key)\s*=\s*['"]([^'"]*)['"]"#),
                    let match = trimmed.firstMatch(of: pattern)
                else { return nil }
                return match.output[1].substring.map(String.init)
            }
            fields = [attribute("mac") ?? "", attribute("ip") ?? ""] + (attribute("name").map { [$0] } ?? [])
        } else {
            fields = trimmed.split(separator: ",", omittingEmptySubsequences: false).map {
                $0.trimmed()
            }
        }
        guard (2...3).contains(fields.count), let mac = MACAddress(fields[0]), IPv4Address(fields[1]) != nil else {
            throw BerthError(
                .invalidArgument, "'\(text)' is not a dhcp-host.",
                remedy: "Write it as MAC,IP[,HOSTNAME]: 52:54:00:12:34:56,192.168.122.50,web.")
        }
        self.init(mac: mac, ip: fields[1], name: fields.count == 3 && !fields[2].isEmpty ? fields[2] : nil)
    }

    /// Host names reach dnsmasq's hosts file: a DNS label's alphabet, nothing else.
    public func validate(in subnet: IPv4Subnet) throws {
        if mac.isMulticast {
            throw BerthError(.invalidArgument, "MAC \(mac) is a multicast address.", remedy: "The first byte must be even.")
        }
        guard let address = IPv4Address(ip), subnet.containsHost(address), address != subnet.host else {
            throw BerthError(
                .invalidArgument, "\(ip) (for \(mac)) is outside \(subnet.cidr) or is the host's own address.",
                remedy: "Reserve an address inside \(subnet.cidr) other than \(subnet.host).")
        }
        if let name {
            let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")
            guard !name.isEmpty, name.count <= 63, name.allSatisfy(allowed.contains), name.first != "-" else {
                throw BerthError(
                    .invalidArgument, "'\(name)' is not a host name.",
                    remedy: "Use 1–63 letters, digits or '-' (a DNS label).")
            }
        }
    }
}

/// A network as the API shows it.
public struct NetworkInfo: Codable, Sendable, Equatable {
    public var spec: NetworkSpec
    public var active: Bool
    /// dnsmasq's PID while the network runs (not in bridge mode).
    public var dnsmasqPID: Int32?
    /// Running domains with a NIC on this network.
    public var domains: [String]

    public init(spec: NetworkSpec, active: Bool, dnsmasqPID: Int32? = nil, domains: [String] = []) {
        self.spec = spec
        self.active = active
        self.dnsmasqPID = dnsmasqPID
        self.domains = domains
    }
}

/// A live DHCP lease, from dnsmasq's leases file.
public struct DHCPLease: Codable, Sendable, Equatable {
    public var mac: MACAddress
    public var ip: String
    public var hostname: String?
    public var expires: Date?

    public init(mac: MACAddress, ip: String, hostname: String?, expires: Date?) {
        self.mac = mac
        self.ip = ip
        self.hostname = hostname
        self.expires = expires
    }
}

/// An IPv4 address as a 32-bit number.
public struct IPv4Address: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let value: UInt32

    public init(_ value: UInt32) { self.value = value }

    /// Parses dotted quads only (`192.168.122.1`): no shorthand, no leading zeros.
    public init?(_ text: String) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var value: UInt32 = 0
        for part in parts {
            guard (1...3).contains(part.count), part.allSatisfy(\.isASCII), part.allSatisfy(\.isNumber),
                part.count == 1 || part.first != "0", let byte = UInt8(part)
            else { return nil }
            value = value << 8 | UInt32(byte)
        }
        self.value = value
    }

    public var description: String {
        [24, 16, 8, 0].map { String((value >> UInt32($0)) & 0xff) }.joined(separator: ".")
    }

    public static func < (lhs: IPv4Address, rhs: IPv4Address) -> Bool { lhs.value < rhs.value }
}

/// A host address with its prefix: `192.168.122.1/24`.
public struct IPv4Subnet: Hashable, Sendable, CustomStringConvertible {
    public let host: IPv4Address
    public let prefix: Int

    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let host = IPv4Address(String(parts[0])), parts[1].allSatisfy(\.isNumber),
            let prefix = Int(parts[1]), (0...32).contains(prefix)
        else { return nil }
        self.init(host: host, prefix: prefix)
    }

    public init(host: IPv4Address, prefix: Int) {
        self.host = host
        self.prefix = min(max(prefix, 0), 32)
    }

    public var mask: UInt32 { prefix == 0 ? 0 : UInt32.max << UInt32(32 - prefix) }
    public var network: IPv4Address { IPv4Address(host.value & mask) }
    public var broadcast: IPv4Address { IPv4Address(host.value | ~mask) }
    public var lastHost: IPv4Address { IPv4Address(broadcast.value &- 1) }
    public var netmask: IPv4Address { IPv4Address(mask) }
    /// `192.168.122.0/24`.
    public var cidr: String { "\(network)/\(prefix)" }
    /// `192.168.122.1/24`.
    public var description: String { "\(host)/\(prefix)" }

    public func contains(_ address: IPv4Address) -> Bool { address.value & mask == network.value }
    /// Inside, and neither the network nor the broadcast address.
    public func containsHost(_ address: IPv4Address) -> Bool {
        contains(address) && address != network && address != broadcast
    }
    public func overlaps(_ other: IPv4Subnet) -> Bool {
        let shorter = min(prefix, other.prefix)
        let mask: UInt32 = shorter == 0 ? 0 : UInt32.max << UInt32(32 - shorter)
        return host.value & mask == other.host.value & mask
    }
}

extension BerthError {
    public static func unknownNetwork(_ name: String) -> BerthError {
        BerthError(.notFound, "No network named '\(name)'.", remedy: "List networks with 'berth net-list --all'.")
    }

    public static func networkInactive(_ name: String) -> BerthError {
        BerthError(.wrongState, "Network '\(name)' is not active.", remedy: "Start it with 'berth net-start \(name)'.")
    }
}
