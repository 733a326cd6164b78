import BerthModel
import BerthQEMU
import FoundationEssentials
import Glibc

/// Berth's guests against another firewall's `FORWARD` chain that drops by policy (Docker sets
/// `iptables -P FORWARD DROP`). nftables runs every base chain on the hook, and a packet one
/// chain drops is gone whatever Berth's own table accepts; so, as libvirt does, berthd puts
/// accept rules for its bridges into that chain itself, through `iptables`/`ip6tables` (the
/// tool that owns it: rules written with `nft` would make the table unreadable to Docker's
/// iptables-nft). Each rule carries the comment `berthnet_<block>`, and only rules with that
/// comment are ever removed. Berth's own table still decides what may pass (NAT out only,
/// isolated nowhere); these rules only keep the other chain from dropping it first.
///
/// Nothing is done when `iptables` is not installed or its `filter` table has no `FORWARD`
/// chain with a drop policy, so a host without such a firewall gets no rules there.
struct ForwardChainCompatibility: Sendable {
    let comment: String

    init(table: String) { comment = table }

    /// The rules `-S FORWARD` prints that are this daemon's, as `-D` arguments.
    func ownRules(in listing: String) -> [[String]] {
        listing.split(separator: "\n").compactMap { line in
            let words = line.split(separator: " ").map(String.init)
            guard words.first == "-A", words.count > 2, words[1] == "FORWARD",
                zip(words, words.dropFirst()).contains(where: { $0 == "--comment" && ($1 == comment || $1 == "\"\(comment)\"") })
            else { return nil }
            return ["-D"] + words.dropFirst().map { $0 == "\"\(comment)\"" ? comment : $0 }
        }
    }

    /// The rules to insert for `bridges` (into a dropping chain).
    func rules(for bridges: [String]) -> [[String]] {
        bridges.flatMap { bridge in
            ["-i", "-o"].map { ["-I", "FORWARD", "1", $0, bridge, "-m", "comment", "--comment", comment, "-j", "ACCEPT"] }
        }
    }

    /// Makes both families' `FORWARD` chains hold exactly the rules for `bridges` (none: this
    /// daemon's rules go). `bridges6` are the bridges with IPv6.
    func apply(bridges: [String], bridges6: [String]) async throws {
        for (tool, wanted) in [("iptables", bridges), ("ip6tables", bridges6)] {
            guard let path = try? HostLinks.tool(tool, package: "iptables") else { continue }
            try await apply(path, wanted)
        }
    }

    private func apply(_ tool: String, _ bridges: [String]) async throws {
        let listing = try await Spawn.run([tool, "-w", "-S", "FORWARD"], timeout: .seconds(20))
        guard listing.status == 0 else { return }
        let text = String(decoding: listing.stdout, as: UTF8.self)
        for rule in ownRules(in: text) { try await run(tool, rule) }
        guard text.split(separator: "\n").contains("-P FORWARD DROP") else { return }
        for rule in rules(for: bridges) { try await run(tool, rule) }
    }

    private func run(_ tool: String, _ arguments: [String]) async throws {
        let outcome = try await Spawn.run([tool, "-w"] + arguments, timeout: .seconds(20))
        guard outcome.status == 0 else {
            throw BerthError(
                .unavailable,
                "'\(tool) \(arguments.joined(separator: " "))' failed: \(outcome.output.trimmed().prefix(300))",
                remedy: "The host's FORWARD chain drops by policy (Docker does this); check that iptables works ('\(tool) -S FORWARD').")
        }
    }
}
