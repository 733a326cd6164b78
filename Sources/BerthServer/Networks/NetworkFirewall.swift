import BerthModel
import BerthQEMU
import FoundationEssentials
import Glibc

/// The nftables rules of Berth's running networks: one table of this daemon's own
/// (`inet berthnet_<block>`, both address families), replaced atomically with every network
/// start and stop, and deleted when no network needs it. No other table is read, flushed or
/// touched, so Docker's, firewalld's and the host's own rules survive every `net-start` and
/// `net-destroy` (the one exception, accept rules in a `FORWARD` chain that drops, is
/// `ForwardChainCompatibility`'s and removes only its own rules).
///
/// - input: a Berth bridge's guests reach the host for DHCP (and DHCPv6), DNS, ping, IPv6
///   neighbour and router discovery and the install-media listener, nothing else (not the
///   API, not sshd, not another guest's VNC); the media listener on a bridge's address
///   (`NetworkMediaServer`) is reached from that bridge and the host only;
/// - forward: `nat` out of the subnet and replies back in; `routed` both ways; `isolated`
///   nothing; guests on one bridge always reach each other. IPv6 is routed on `nat` and
///   `routed` networks (libvirt's default: no NAT for IPv6);
/// - postrouting: masquerade for `nat`'s IPv4 (not to multicast or broadcast, as libvirt does).
struct NetworkFirewall: Sendable {
    struct Entry: Sendable {
        var bridge: String
        var subnet: IPv4Subnet
        var subnet6: IPv6Subnet?
        var mode: NetworkSpec.Mode
        /// dnsmasq serves TFTP on the bridge (network boot).
        var tftp = false
    }

    let table: String
    /// Host TCP ports guests on a network may reach (the install-media listener).
    let mediaPorts: [Int]

    init(guestIDBlock: UInt32?, mediaPorts: [Int]) {
        table = "berthnet_\(guestIDBlock ?? 0)"
        self.mediaPorts = mediaPorts
    }

    func ruleset(_ networks: [Entry]) -> String {
        // The `ip` table is what berthd made before IPv6; a berthd adopting its networks drops it.
        var text = "table ip \(table) {\n}\ndelete table ip \(table)\n"
        text += "table inet \(table) {\n}\ndelete table inet \(table)\n"
        guard !networks.isEmpty else { return text }
        var input: [String] = []
        var forward: [String] = []
        var postrouting: [String] = []
        for network in networks {
            input += inputRules(network)
            forward += forwardRules(network)
            if network.mode == .nat {
                let net = network.subnet.cidr
                postrouting += [
                    "ip saddr \(net) ip daddr 224.0.0.0/24 return",
                    "ip saddr \(net) ip daddr 255.255.255.255 return",
                    "ip saddr \(net) ip daddr != \(net) masquerade",
                ]
            }
        }
        func chain(_ name: String, _ hook: String, _ rules: [String]) -> String {
            let type = hook == "postrouting" ? "nat" : "filter"
            let priority = hook == "postrouting" ? "srcnat" : "filter"
            return "    chain \(name) {\n        type \(type) hook \(hook) priority \(priority); policy accept;\n"
                + rules.map { "        \($0)\n" }.joined() + "    }\n"
        }
        text += "table inet \(table) {\n"
        text += chain("input", "input", input)
        text += chain("forward", "forward", forward)
        if !postrouting.isEmpty { text += chain("postrouting", "postrouting", postrouting) }
        text += "}\n"
        return text
    }

    private func inputRules(_ network: Entry) -> [String] {
        let b = "iifname \"\(network.bridge)\""
        // The media listener on this bridge's address is for this bridge's guests (and the host).
        var rules = mediaPorts.map {
            "iifname != { \"lo\", \"\(network.bridge)\" } ip daddr \(network.subnet.host) tcp dport \($0) counter drop"
        }
        rules += ["\(b) udp dport { 53, 67 } accept", "\(b) tcp dport 53 accept"]
        if network.tftp { rules.append("\(b) udp dport 69 accept") }
        if network.subnet6 != nil {
            rules += [
                "\(b) udp dport 547 accept",
                "\(b) icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit, echo-request } accept",
            ]
        }
        rules += mediaPorts.map { "\(b) tcp dport \($0) accept" }
        return rules + [
            "\(b) icmp type echo-request accept",
            "\(b) ct state established,related accept",
            "\(b) counter drop",
        ]
    }

    private func forwardRules(_ network: Entry) -> [String] {
        let b = "iifname \"\(network.bridge)\""
        let o = "oifname \"\(network.bridge)\""
        let net = network.subnet.cidr
        var rules = ["\(b) \(o) accept"]
        switch network.mode {
        case .nat:
            rules += ["\(b) ip saddr \(net) accept", "\(o) ip daddr \(net) ct state established,related accept"]
        case .routed:
            rules += ["\(b) ip saddr \(net) accept", "\(o) ip daddr \(net) accept"]
        case .isolated, .bridge:
            break
        }
        if let net6 = network.subnet6?.cidr, network.mode == .nat || network.mode == .routed {
            rules += ["\(b) ip6 saddr \(net6) accept", "\(o) ip6 daddr \(net6) accept"]
        }
        return rules + ["\(b) counter reject", "\(o) counter reject"]
    }

    /// Loads the rules for exactly these networks (none: the table goes).
    func apply(_ networks: [Entry], directory: String) async throws {
        let nft = try HostLinks.tool("nft", package: "nftables")
        let file = directory + "/networks.nft"
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            try ruleset(networks).write(toFile: file, atomically: true, encoding: .utf8)
        } catch {
            throw BerthError(.unavailable, "Cannot write \(file): \(BerthError.reason(error))")
        }
        let outcome = try await Spawn.run([nft, "-f", file], timeout: .seconds(30))
        guard outcome.status == 0 else {
            throw BerthError(
                .unavailable, "nft refused the network rules: \(outcome.output.prefix(500))",
                remedy: "Check that the kernel has nf_tables and nft_masq (modprobe nft_masq) and that berthd runs as root.")
        }
    }
}
