import BerthFormats
import BerthModel
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
}
