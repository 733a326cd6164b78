import BerthModel
import Foundation
import Testing

@testable import BerthStore

/// Networks and their reservations in a real SQLite catalog.
@Suite struct CatalogNetworkTests {
    func network(_ name: String, _ address: String, bridge: String) -> NetworkSpec {
        NetworkSpec(name: name, mode: .nat, bridge: bridge, address: address)
    }

    @Test func aDomainNICReservesItsAddressAndGivesItBackWhenUndefined() throws {
        let store = try TemporaryCatalog()
        try store.catalog.defineNetwork(network("lan", "10.1.0.1/24", bridge: "virbr0"))
        let nic = NICSpec(mode: .network, mac: MACAddress("52:54:00:00:00:01"), network: "lan", ip: "10.1.0.10")
        try store.catalog.define(DomainSpec(name: "a", kernel: "/k", nics: [nic]))
        let hosts = try store.catalog.network(named: "lan").spec.hosts
        #expect(hosts == [DHCPHost(mac: MACAddress(bytes: [0x52, 0x54, 0, 0, 0, 1]), ip: "10.1.0.10", name: "a", domain: "a")])

        // Another domain may not take the address; the message names who has it.
        var other = nic
        other.mac = MACAddress("52:54:00:00:00:02")
        let clash = #expect(throws: BerthError.self) {
            try store.catalog.define(DomainSpec(name: "b", kernel: "/k", nics: [other]))
        }
        #expect(clash?.code == .alreadyExists && clash?.message.contains("'a'") == true)
        // Nothing of the refused domain was written (one transaction).
        #expect(throws: BerthError.self) { try store.catalog.domain(named: "b") }

        try store.catalog.undefine("a")
        #expect(try store.catalog.network(named: "lan").spec.hosts.isEmpty)
    }

    @Test func aXenVifRouteNICReservesOnTheRoutedNetworkHoldingItsAddress() throws {
        let store = try TemporaryCatalog()
        try store.catalog.defineNetwork(NetworkSpec(name: "public", mode: .routed, bridge: "virbr3", address: "10.7.0.1/24"))
        try store.catalog.define(DomainSpec(name: "front", kernel: "/k", nics: [NICSpec(mode: .route, ip: "10.7.0.20")]))
        #expect(try store.catalog.network(named: "public").spec.hosts.map(\.ip) == ["10.7.0.20"])
        #expect(try store.catalog.routedNetwork(containing: "10.8.0.1") == nil)
    }

    @Test func reservationsAreCheckedAgainstTheSubnetAndEachOther() throws {
        let store = try TemporaryCatalog()
        try store.catalog.defineNetwork(network("lan", "10.1.0.1/24", bridge: "virbr0"))
        let mac = try #require(MACAddress("52:54:00:00:00:05"))
        try store.catalog.addReservation(DHCPHost(mac: mac, ip: "10.1.0.5"), network: "lan")
        #expect(throws: BerthError.self) {
            try store.catalog.addReservation(DHCPHost(mac: mac, ip: "10.1.0.6"), network: "lan")
        }
        #expect(throws: BerthError.self) {
            try store.catalog.addReservation(DHCPHost(mac: MACAddress(bytes: [2, 0, 0, 0, 0, 9]), ip: "10.2.0.6"), network: "lan")
        }
        #expect(throws: BerthError.self) {
            try store.catalog.addReservation(DHCPHost(mac: MACAddress(bytes: [2, 0, 0, 0, 0, 9]), ip: "10.1.0.1"), network: "lan")
        }
        try store.catalog.removeReservation(mac: mac, network: "lan")
        #expect(try store.catalog.network(named: "lan").spec.hosts.isEmpty)
    }

    @Test func subnetsAndBridgesBelongToOneNetwork() throws {
        let store = try TemporaryCatalog()
        try store.catalog.defineNetwork(network("one", "10.1.0.1/24", bridge: "virbr0"))
        let overlap = #expect(throws: BerthError.self) {
            try store.catalog.defineNetwork(network("two", "10.1.0.1/16", bridge: "virbr1"))
        }
        #expect(overlap?.message.contains("'one'") == true)
        #expect(throws: BerthError.self) { try store.catalog.defineNetwork(network("three", "10.3.0.1/24", bridge: "virbr0")) }
        // Bridge-mode networks may share a host bridge.
        try store.catalog.defineNetwork(NetworkSpec(name: "lan1", mode: .bridge, bridge: "br0"))
        try store.catalog.defineNetwork(NetworkSpec(name: "lan2", mode: .bridge, bridge: "br0"))
        #expect(try store.catalog.allNetworks().count == 3)
    }
}
