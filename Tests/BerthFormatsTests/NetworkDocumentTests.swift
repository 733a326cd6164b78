import BerthFormats
import BerthModel
import BerthXML
import Foundation
import Testing

/// libvirt network XML as `virsh net-dumpxml` prints it, and Berth's JSON.
@Suite struct NetworkDocumentTests {
    static let libvirtDefault = """
        <network>
          <name>default</name>
          <uuid>3e3fce45-4f53-4fa7-bb32-11f34168b82b</uuid>
          <forward mode='nat'>
            <nat><port start='1024' end='65535'/></nat>
          </forward>
          <bridge name='virbr0' stp='on' delay='0'/>
          <mac address='52:54:00:ab:cd:ef'/>
          <ip address='192.168.122.1' netmask='255.255.255.0'>
            <dhcp>
              <range start='192.168.122.2' end='192.168.122.254'/>
              <host mac='00:50:56:78:0a:1b' name='devel1' ip='192.168.122.50'/>
            </dhcp>
          </ip>
        </network>
        """

    @Test func libvirtsDefaultNetworkReadsAndWritesBack() throws {
        let parsed = try NetworkDocument.parse(bytes: Array(Self.libvirtDefault.utf8), source: "default.xml")
        let spec = parsed.spec
        #expect(spec.name == "default" && spec.mode == .nat && spec.bridge == "virbr0")
        #expect(spec.address == "192.168.122.1/24")
        #expect(spec.dhcpStart == "192.168.122.2" && spec.dhcpEnd == "192.168.122.254")
        #expect(spec.hosts == [DHCPHost(mac: MACAddress(bytes: [0, 0x50, 0x56, 0x78, 0x0a, 0x1b]), ip: "192.168.122.50", name: "devel1")])
        #expect(parsed.warnings.contains { $0.contains("<nat>") })
        let again = try NetworkDocument.parse(bytes: Array(NetworkDocument.writeXML(spec).utf8), source: "again.xml").spec
        #expect(again == spec)
    }

    @Test func networkBootReadsAndWritesBackAndRefusesConfigInjection() throws {
        let xml = """
            <network><name>pxe</name><ip address='10.9.0.1' prefix='24'><tftp root='/srv/tftp'/>
            <dhcp><range start='10.9.0.10' end='10.9.0.20'/><bootp file='boot.ipxe'/></dhcp></ip></network>
            """
        let spec = try NetworkDocument.parse(bytes: Array(xml.utf8), source: "pxe.xml").spec
        #expect(spec.tftpRoot == "/srv/tftp" && spec.bootFile == "boot.ipxe" && spec.servesNetworkBoot)
        let written = NetworkDocument.writeXML(spec)
        #expect(written.contains("<tftp root='/srv/tftp'/>") && written.contains("<bootp file='boot.ipxe'/>"))
        #expect(try NetworkDocument.parse(bytes: Array(written.utf8), source: "again.xml").spec == spec)
        for (root, file) in [("/srv/tftp\ndhcp-option=3", "boot.ipxe"), ("/srv/tftp", "a,b"), ("/srv/tftp", "../etc/passwd"), ("srv", "x")] {
            var bad = spec
            bad.tftpRoot = root
            bad.bootFile = file
            #expect(throws: BerthError.self) { try bad.validate() }
        }
        var noRoot = spec
        noRoot.tftpRoot = nil
        #expect(throws: BerthError.self) { try noRoot.validate() }
    }

    @Test(arguments: [("<forward mode='route'/>", NetworkSpec.Mode.routed), ("", .isolated)])
    func forwardModes(forward: String, mode: NetworkSpec.Mode) throws {
        let xml = "<network><name>n</name>\(forward)<ip address='10.9.0.1' prefix='24'/></network>"
        let spec = try NetworkDocument.parse(bytes: Array(xml.utf8)).spec
        #expect(spec.mode == mode && spec.address == "10.9.0.1/24")
        try spec.validate()
    }

    @Test func aHostBridgeNetworkAndJSON() throws {
        let xml = "<network><name>lan</name><forward mode='bridge'/><bridge name='xenbr0'/></network>"
        let spec = try NetworkDocument.parse(bytes: Array(xml.utf8)).spec
        #expect(spec.mode == .bridge && spec.bridge == "xenbr0")
        try spec.validate()
        let json = #"{"name": "lan", "address": "10.0.0.254/24"}"#
        let fromJSON = try NetworkDocument.parse(bytes: Array(json.utf8)).spec
        #expect(fromJSON.mode == .nat)
        // The host sits at the top of the subnet: the pool is below it.
        let pool = try #require(fromJSON.dhcpPool)
        #expect(pool.lowerBound.description == "10.0.0.1" && pool.upperBound.description == "10.0.0.253")
    }

    @Test(arguments: ["52:54:00:12:34:56,192.168.122.50,web", "<host mac='52:54:00:12:34:56' name='web' ip='192.168.122.50'/>"])
    func dhcpHostsAsVirshSpellsThem(text: String) throws {
        let host = try DHCPHost(parsing: text)
        #expect(host.mac.description == "52:54:00:12:34:56" && host.ip == "192.168.122.50" && host.name == "web")
    }

    /// libvirt's documentation example: a NAT network with IPv6, DHCPv6 on a range.
    @Test func ipv6ReadsAndWritesBackStatefulOrSLAAC() throws {
        let xml = """
            <network><name>v6</name><forward mode='nat'/>
              <ip address='10.9.0.1' prefix='24'/>
              <ip family='ipv6' address='2001:db8:ca2:2::1' prefix='64'>
                <dhcp><range start='2001:db8:ca2:2:1::10' end='2001:db8:ca2:2:1::ff'/></dhcp>
              </ip>
            </network>
            """
        let spec = try NetworkDocument.parse(bytes: Array(xml.utf8)).spec
        #expect(spec.address6 == "2001:db8:ca2:2::1/64")
        #expect(spec.dhcp6Start == "2001:db8:ca2:2:1::10" && spec.dhcp6End == "2001:db8:ca2:2:1::ff")
        try spec.validate()
        let again = try NetworkDocument.parse(bytes: Array(NetworkDocument.writeXML(spec).utf8)).spec
        #expect(again.address6 == spec.address6 && again.dhcp6Start == spec.dhcp6Start && again.dhcp6End == spec.dhcp6End)

        let slaac = "<network><name>s</name><ip address='10.9.0.1' prefix='24'/><ip family='ipv6' address='fd00:9::1' prefix='64'/></network>"
        let slaacSpec = try NetworkDocument.parse(bytes: Array(slaac.utf8)).spec
        #expect(slaacSpec.address6 == "fd00:9::1/64" && slaacSpec.dhcp6Pool == nil)
        try slaacSpec.validate()
        #expect(NetworkDocument.writeXML(slaacSpec).contains("<ip family='ipv6' address='fd00:9::1' prefix='64'/>"))
    }

    @Test(arguments: [
        (#""address6": "fd00:9::1/56""#, "SLAAC"),  // SLAAC needs a /64
        (#""address6": "fe80::1/64""#, "global or unique-local"),
        (#""address6": "fd00:9::/64""#, "global or unique-local"),
        (#""address6": "fd00:9::1/64", "dhcp6Start": "fd00:8::10", "dhcp6End": "fd00:9::20""#, "dhcp6Start"),
        (#""dhcp6Start": "fd00:9::10", "dhcp6End": "fd00:9::20""#, "no IPv6 address"),
    ])
    func badIPv6IsRefusedWithWhatToDo(fields: String, says: String) throws {
        let json = #"{"name": "n", "address": "10.9.0.1/24", "#.appending(fields + "}")
        let spec = try JSONDecoder().decode(NetworkSpec.self, from: Data(json.utf8))
        let error = #expect(throws: BerthError.self) { try spec.validate() }
        #expect(error?.message.contains(says) == true || error?.remedy?.contains(says) == true, "\(String(describing: error))")
    }

    @Test(arguments: [
        ("fd00:50::1", "fd00:50::1"), ("2001:DB8:0:0:0:0:0:1", "2001:db8::1"), ("::", "::"), ("::1", "::1"),
        ("1:0:0:2:0:0:0:3", "1:0:0:2::3"), ("1:0:2:3:4:5:6:7", "1:0:2:3:4:5:6:7"), ("fe80::", "fe80::"),
    ])
    func ipv6AddressesPrintAsRFC5952Says(text: String, printed: String) throws {
        #expect(try #require(IPv6Address(text)).description == printed)
    }

    @Test(arguments: [
        "", ":", ":::", "1::2::3", "12345::", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7", "g::1", "1.2.3.4", "::ffff:1.2.3.4", "1:2:3:4:5:6:7::8",
    ])
    func ipv6AddressesThatAreNot(text: String) {
        #expect(IPv6Address(text) == nil)
    }

    @Test func ipv6SubnetsContainAndOverlap() throws {
        let a = try #require(IPv6Subnet("fd00:50::1/64"))
        #expect(a.cidr == "fd00:50::/64")
        #expect(a.contains(try #require(IPv6Address("fd00:50::5054:ff:feaa:1"))))
        #expect(!a.contains(try #require(IPv6Address("fd00:51::1"))))
        #expect(a.overlaps(try #require(IPv6Subnet("fd00::1/16"))))
        #expect(!a.overlaps(try #require(IPv6Subnet("fd00:51::1/64"))))
    }
}
