import BerthModel
import BerthQEMU
import Foundation

/// The nftables rules of Berth's running networks: one table of this daemon's own
/// (`berthnet_<block>`), replaced atomically with every network start and stop, and deleted
/// when no network needs it. No other table is read, flushed or touched, so Docker's,
/// firewalld's and the host's own rules survive every `net-start` and `net-destroy`.
///
/// - input: a Berth bridge's guests reach the host for DHCP, DNS, ping and the install-media
///   listener, nothing else (not the API, not sshd, not another guest's VNC);
/// - forward: `nat` out of the subnet and replies back in; `routed` both ways; `isolated`
///   nothing; guests on one bridge always reach each other;
/// - postrouting: masquerade for `nat` (not to multicast or broadcast, as libvirt does).
///
/// Another table whose forward chain drops by policy (Docker's) still drops: nftables runs
/// every base chain, and an accept here cannot overrule a drop there.
struct NetworkFirewall: Sendable {
    struct Entry: Sendable {
        var bridge: String
        var subnet: IPv4Subnet
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
        var text = "table ip \(table) {\n}\ndelete table ip \(table)\n"
        guard !networks.isEmpty else { return text }
        var input: [String] = []
        var forward: [String] = []
        var postrouting: [String] = []
        for network in networks {
            let b = "iifname \"\(network.bridge)\""
            let o = "oifname \"\(network.bridge)\""
            let net = network.subnet.cidr
            input += [
                "\(b) udp dport { 53, 67 } accept",
                "\(b) tcp dport 53 accept",
            ]
            if network.tftp { input.append("\(b) udp dport 69 accept") }
            input += mediaPorts.map { "\(b) tcp dport \($0) accept" }
            input += [
                "\(b) icmp type echo-request accept",
                "\(b) ct state established,related accept",
                "\(b) counter drop",
            ]
            forward.append("\(b) \(o) accept")
            switch network.mode {
            case .nat:
                forward += ["\(b) ip saddr \(net) accept", "\(o) ip daddr \(net) ct state established,related accept"]
                postrouting += [
                    "ip saddr \(net) ip daddr 224.0.0.0/24 return",
                    "ip saddr \(net) ip daddr 255.255.255.255 return",
                    "ip saddr \(net) ip daddr != \(net) masquerade",
                ]
            case .routed:
                forward += ["\(b) ip saddr \(net) accept", "\(o) ip daddr \(net) accept"]
            case .isolated, .bridge:
                break
            }
            forward += ["\(b) counter reject", "\(o) counter reject"]
        }
        func chain(_ name: String, _ hook: String, _ rules: [String]) -> String {
            let type = hook == "postrouting" ? "nat" : "filter"
            let priority = hook == "postrouting" ? "srcnat" : "filter"
            return "    chain \(name) {\n        type \(type) hook \(hook) priority \(priority); policy accept;\n"
                + rules.map { "        \($0)\n" }.joined() + "    }\n"
        }
        text += "table ip \(table) {\n"
        text += chain("input", "input", input)
        text += chain("forward", "forward", forward)
        if !postrouting.isEmpty { text += chain("postrouting", "postrouting", postrouting) }
        text += "}\n"
        return text
    }

    /// Loads the rules for exactly these networks (none: the table goes).
    func apply(_ networks: [Entry], directory: String) async throws {
        let nft = try HostLinks.tool("nft", package: "nftables")
        let file = directory + "/networks.nft"
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            try ruleset(networks).write(toFile: file, atomically: true, encoding: .utf8)
        } catch {
            throw BerthError(.unavailable, "Cannot write \(file): \(error.localizedDescription)")
        }
        let outcome = try await Spawn.run([nft, "-f", file], timeout: .seconds(30))
        guard outcome.status == 0 else {
            throw BerthError(
                .unavailable, "nft refused the network rules: \(outcome.output.prefix(500))",
                remedy: "Check that the kernel has nf_tables and nft_masq (modprobe nft_masq) and that berthd runs as root.")
        }
    }
}
