import Foundation

// Fuzz builds compile the Berth modules named in fuzz/targets/*.swift into this module (fuzz/targets/*.swift).
#if canImport(BerthModel)
    import BerthFormats
    import BerthModel
#endif

/// Network documents: Berth's JSON (`NetworkSpec`) or libvirt network XML as `virsh
/// net-dumpxml` prints it, recognised by content.
///
/// libvirt's `<forward mode='nat'/>` → `nat`, `'route'` → `routed`, `'bridge'` → `bridge`
/// (with `<bridge name='br0'/>`), no `<forward>` → `isolated`; `<ip address netmask|prefix>`
/// with `<dhcp><range/><host/></dhcp>`, `<ip family='ipv6'>` with an optional DHCPv6 `<range>`.
/// What Berth does not carry (`<dns>`, `<domain>`, DHCPv6 `<host>`s,
/// NAT port ranges) is reported as a warning.
public enum NetworkDocument {
    public static func parse(bytes: [UInt8], source: String = "network") throws -> (spec: NetworkSpec, warnings: [String]) {
        let text = try InputCheck.text(bytes, source: source, what: "a network document")
        if text.drop(while: { $0.isWhitespace || $0 == "\u{FEFF}" }).first == "{" {
            do {
                return (try JSONDecoder().decode(NetworkSpec.self, from: Data(text.utf8)), [])
            } catch let error as DecodingError {
                throw DomainJSON.describe(error, source: source)
            }
        }
        return try readXML(XMLTree.parse(bytes, source: source), source: source)
    }

    static func readXML(_ root: XMLNode, source: String) throws -> (spec: NetworkSpec, warnings: [String]) {
        func bad(_ node: XMLNode, _ message: String, _ remedy: String) -> BerthError {
            .syntax(source, node.position, message, remedy: remedy)
        }
        guard root.name == "network" else {
            throw bad(root, "<\(root.name)> is not a libvirt network.", "A network document starts with <network>.")
        }
        var warnings: [String] = []
        guard let name = root.child("name")?.trimmedText, !name.isEmpty else {
            throw bad(root, "the network has no <name>.", "Add <name>default</name>.")
        }
        var spec = NetworkSpec(name: name)
        if let text = root.child("uuid")?.trimmedText {
            guard let uuid = UUID(uuidString: text) else { throw bad(root, "'\(text)' is not a UUID.", "Remove <uuid> to have one generated.") }
            spec.uuid = uuid
        }
        let forward = root.child("forward")
        switch forward?.attributes["mode"] ?? (forward == nil ? nil : "nat") {
        case nil: spec.mode = .isolated
        case "nat": spec.mode = .nat
        case "route": spec.mode = .routed
        case "bridge": spec.mode = .bridge
        case let other?:
            throw bad(
                forward ?? root, "forward mode '\(other)' is not one Berth offers.",
                "Use nat, route or bridge, or leave <forward> out for an isolated network.")
        }
        if let dev = forward?.attributes["dev"] {
            warnings.append("<forward dev='\(dev)'>: Berth masquerades to every uplink, not only \(dev).")
        }
        if forward?.child("nat") != nil { warnings.append("<nat> port and address ranges are not used by Berth.") }
        spec.bridge = root.child("bridge")?.attributes["name"]
        for ip in root.all("ip") {
            if ip.attributes["family"] == "ipv6" || ip.attributes["address"]?.contains(":") == true {
                try readIPv6(ip, into: &spec, warnings: &warnings, bad: bad)
                continue
            }
            guard spec.address == nil else {
                warnings.append("a second IPv4 <ip> (\(ip.attributes["address"] ?? "")) is ignored.")
                continue
            }
            guard let address = ip.attributes["address"], let host = IPv4Address(address) else {
                throw bad(ip, "<ip> needs address='A.B.C.D'.", "Write <ip address='192.168.122.1' prefix='24'>.")
            }
            var prefix: Int?
            if let text = ip.attributes["prefix"] { prefix = Int(text) }
            if let text = ip.attributes["netmask"], let mask = IPv4Address(text) {
                let ones = mask.value.nonzeroBitCount
                if mask.value == (ones == 0 ? 0 : UInt32.max << UInt32(32 - ones)) { prefix = ones }
            }
            guard let prefix, (0...32).contains(prefix) else {
                throw bad(ip, "<ip address='\(address)'> has no valid netmask or prefix.", "Add prefix='24' or netmask='255.255.255.0'.")
            }
            spec.address = "\(host)/\(prefix)"
            spec.tftpRoot = ip.child("tftp")?.attributes["root"]
            if let dhcp = ip.child("dhcp") {
                if let bootp = dhcp.child("bootp") {
                    spec.bootFile = bootp.attributes["file"]
                    if let server = bootp.attributes["server"] {
                        warnings.append("<bootp server='\(server)'> is not used: dnsmasq on the network serves the boot file.")
                    }
                }
                if let range = dhcp.child("range") {
                    spec.dhcpStart = range.attributes["start"]
                    spec.dhcpEnd = range.attributes["end"]
                }
                for host in dhcp.all("host") {
                    guard let macText = host.attributes["mac"], let mac = MACAddress(macText), let ip = host.attributes["ip"]
                    else {
                        throw bad(host, "<host> needs mac= and ip=.", "Write <host mac='52:54:00:12:34:56' ip='192.168.122.50'/>.")
                    }
                    spec.hosts.append(DHCPHost(mac: mac, ip: ip, name: host.attributes["name"]))
                }
            }
        }
        for child in root.children where !["name", "uuid", "forward", "bridge", "ip", "mac"].contains(child.name) {
            warnings.append("<\(child.name)> is not used by Berth.")
        }
        return (spec, warnings)
    }

    /// `<ip family='ipv6' address='fd00::1' prefix='64'>` with an optional `<dhcp><range/>`
    /// (libvirt's DHCPv6; without it guests use SLAAC). DHCPv6 `<host>`s are not carried.
    static func readIPv6(
        _ ip: XMLNode, into spec: inout NetworkSpec, warnings: inout [String], bad: (XMLNode, String, String) -> BerthError
    ) throws {
        guard spec.address6 == nil else {
            warnings.append("a second IPv6 <ip> (\(ip.attributes["address"] ?? "")) is ignored.")
            return
        }
        guard let text = ip.attributes["address"], let address = IPv6Address(text) else {
            throw bad(ip, "<ip family='ipv6'> needs an IPv6 address=.", "Write <ip family='ipv6' address='fd00:100::1' prefix='64'>.")
        }
        let prefix = ip.attributes["prefix"].map { Int($0) } ?? 64
        guard let prefix, (0...128).contains(prefix) else {
            throw bad(ip, "<ip family='ipv6' address='\(text)'> has no valid prefix.", "Add prefix='64'.")
        }
        spec.address6 = "\(address)/\(prefix)"
        guard let dhcp = ip.child("dhcp") else { return }
        if let range = dhcp.child("range") {
            spec.dhcp6Start = range.attributes["start"]
            spec.dhcp6End = range.attributes["end"]
        }
        if !dhcp.all("host").isEmpty { warnings.append("DHCPv6 <host> reservations are not used by Berth.") }
    }

    /// The network as libvirt network XML (what `virsh net-dumpxml` prints).
    public static func writeXML(_ spec: NetworkSpec) -> String {
        func e(_ text: String) -> String {
            text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
                .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "'", with: "&apos;")
        }
        var out = "<network>\n  <name>\(e(spec.name))</name>\n  <uuid>\(spec.uuid.uuidString.lowercased())</uuid>\n"
        switch spec.mode {
        case .nat: out += "  <forward mode='nat'/>\n"
        case .routed: out += "  <forward mode='route'/>\n"
        case .bridge: out += "  <forward mode='bridge'/>\n"
        case .isolated: break
        }
        if let bridge = spec.bridge {
            out += spec.mode == .bridge ? "  <bridge name='\(e(bridge))'/>\n" : "  <bridge name='\(e(bridge))' stp='off' delay='0'/>\n"
        }
        if let subnet = spec.subnet {
            out += "  <ip address='\(subnet.host)' netmask='\(subnet.netmask)'>\n"
            if let root = spec.tftpRoot { out += "    <tftp root='\(e(root))'/>\n" }
            out += "    <dhcp>\n"
            if let pool = spec.dhcpPool { out += "      <range start='\(pool.lowerBound)' end='\(pool.upperBound)'/>\n" }
            for host in spec.hosts {
                out += "      <host mac='\(host.mac)' ip='\(e(host.ip))'\(host.name.map { " name='\(e($0))'" } ?? "")/>\n"
            }
            if let file = spec.bootFile { out += "      <bootp file='\(e(file))'/>\n" }
            out += "    </dhcp>\n  </ip>\n"
        }
        if let subnet6 = spec.subnet6 {
            out += "  <ip family='ipv6' address='\(subnet6.host)' prefix='\(subnet6.prefix)'"
            if let pool = spec.dhcp6Pool {
                out += ">\n    <dhcp>\n      <range start='\(pool.lowerBound)' end='\(pool.upperBound)'/>\n    </dhcp>\n  </ip>\n"
            } else {
                out += "/>\n"
            }
        }
        return out + "</network>\n"
    }
}
