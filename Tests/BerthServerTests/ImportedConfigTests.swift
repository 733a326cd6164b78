import BerthClient
import BerthFormats
import BerthModel
import BerthXML
import Foundation
import Testing

/// Files users already have (an xm/xl config, libvirt XML) define real, bootable domains.
@Suite(.serialized, .bootsGuests) struct ImportedConfigTests {
    @Test func anXLConfigDefinesAndBootsAGuest() async throws {
        let daemon = try await TestDaemon()
        defer { daemon.tearDown() }
        let config = """
            # /etc/xen/devel1, as an xm user wrote it
            name = "devel1"
            memory = 256
            vcpus = 1
            kernel = "\(GuestFixture.kernel)"
            ramdisk = "\(GuestFixture.initrd)"
            extra = "console=ttyS0 berth.marker=FROM-XL"
            vif = [ "mac=00:50:56:78:0a:1b" ]
            on_crash = "restart"
            """
        let parsed = try DomainDocument.parse(config, source: "devel1")
        #expect(parsed.format == .xl)
        #expect(parsed.spec.nics.first?.mac == MACAddress("00:50:56:78:0a:1b"))
        #expect(parsed.spec.onCrash == .restart)
        let defined = try await daemon.client.define(parsed.spec)
        #expect(defined.spec.nics.first?.mac == MACAddress("00:50:56:78:0a:1b"))
        _ = try await daemon.client.perform(.start, on: "devel1")
        // The init prints its marker line right after READY: wait for the marker itself.
        let log = try await daemon.waitForLog("devel1", "BERTH-GUEST-MARKER FROM-XL")
        #expect(log.contains("BERTH-GUEST-READY"))

        // What `berth dumpxml` prints reads back to the same domain.
        let stored = try await daemon.client.info("devel1").spec
        let xml = DomainDocument.write(stored, as: .libvirtXML)
        let again = try DomainDocument.parse(xml, source: "devel1.xml")
        #expect(again.format == .libvirtXML)
        #expect(again.spec == stored)
        _ = try await daemon.client.perform(.destroy, on: "devel1")
    }

    @Test func theSeedsBridgedVifIsKeptAndExplainedAtStart() async throws {
        let daemon = try await TestDaemon()
        defer { daemon.tearDown() }
        let config = """
            name = "bridged"
            kernel = "\(GuestFixture.kernel)"
            vif = [ "mac=00:50:56:78:0a:1b,bridge=xenbr0,script=vif-bridge" ]
            """
        let spec = try DomainDocument.parse(config, source: "bridged").spec
        #expect(spec.nics.first?.mode == .bridge)
        #expect(spec.nics.first?.bridge == "xenbr0")
        _ = try await daemon.client.define(spec)
        do {
            _ = try await daemon.client.perform(.start, on: "bridged")
            Issue.record("a bridged NIC started without host networking")
        } catch let error as BerthError {
            #expect(error.remedy?.isEmpty == false)
        }
        #expect(try await daemon.client.info("bridged").state == .shutoff)
    }
}
