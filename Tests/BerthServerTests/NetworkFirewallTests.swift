import BerthModel
import Foundation
import Testing

@testable import BerthServer

/// The rules berthd writes for its networks, checked by the kernel (`nft -c`, in a namespace of
/// the test's own) and by what they say.
@Suite struct NetworkFirewallTests {
    static func entry(_ bridge: String, _ v4: String, _ v6: String?, _ mode: NetworkSpec.Mode) throws -> NetworkFirewall.Entry {
        NetworkFirewall.Entry(
            bridge: bridge, subnet: try #require(IPv4Subnet(v4)), subnet6: v6.flatMap(IPv6Subnet.init), mode: mode)
    }

    @Test func everyModeWithAndWithoutIPv6IsAcceptedByTheKernel() throws {
        let firewall = NetworkFirewall(guestIDBlock: 7, mediaPorts: [8001])
        let rules = firewall.ruleset([
            try Self.entry("virbr0", "10.50.0.1/24", "fd00:50::1/64", .nat),
            try Self.entry("virbr1", "10.51.0.1/24", "fd00:51::1/64", .routed),
            try Self.entry("virbr2", "10.52.0.1/24", "fd00:52::1/64", .isolated),
            try Self.entry("virbr3", "10.53.0.1/24", nil, .nat),
        ])
        // IPv6 is routed, never masqueraded; the isolated network forwards nothing.
        #expect(rules.contains("iifname \"virbr0\" ip6 saddr fd00:50::/64 accept"))
        #expect(rules.contains("oifname \"virbr1\" ip6 daddr fd00:51::/64 accept"))
        #expect(!rules.contains("fd00:52::/64"))
        #expect(!rules.contains("ip6 saddr fd00:50::/64 masquerade") && rules.contains("ip saddr 10.50.0.0/24 ip daddr != 10.50.0.0/24 masquerade"))
        #expect(rules.contains("iifname != { \"lo\", \"virbr0\" } ip daddr 10.50.0.1 tcp dport 8001 counter drop"))
        let namespace = try TestNamespace("nft")
        defer { namespace.destroy() }
        let file = NSTemporaryDirectory() + "berthnet-\(UUID().uuidString).nft"
        try rules.write(toFile: file, atomically: true, encoding: .utf8)
        defer { unlink(file) }
        let checked = namespace.attempt(["nft", "-c", "-f", file])
        #expect(checked.status == 0, "\(checked.output)\n\(rules)")
        // Loaded for real, then emptied: the table goes (and an older berthd's `ip` table with it).
        try namespace.run(["nft", "add", "table", "ip", "berthnet_7"])
        try namespace.run(["nft", "-f", file])
        #expect(namespace.nftTables() == ["table inet berthnet_7"])
        try firewall.ruleset([]).write(toFile: file, atomically: true, encoding: .utf8)
        try namespace.run(["nft", "-f", file])
        #expect(namespace.nftTables().isEmpty)
    }

    @Test func onlyThisDaemonsForwardRulesAreRemoved() {
        let compatibility = ForwardChainCompatibility(table: "berthnet_7")
        let listing = """
            -P FORWARD DROP
            -A FORWARD -j DOCKER-USER
            -A FORWARD -i virbr0 -m comment --comment berthnet_7 -j ACCEPT
            -A FORWARD -o virbr0 -m comment --comment "berthnet_7" -j ACCEPT
            -A FORWARD -i virbr9 -m comment --comment berthnet_8 -j ACCEPT
            """
        #expect(
            compatibility.ownRules(in: listing) == [
                ["-D", "FORWARD", "-i", "virbr0", "-m", "comment", "--comment", "berthnet_7", "-j", "ACCEPT"],
                ["-D", "FORWARD", "-o", "virbr0", "-m", "comment", "--comment", "berthnet_7", "-j", "ACCEPT"],
            ])
        #expect(compatibility.rules(for: ["virbr0"]).count == 2)
    }
}
