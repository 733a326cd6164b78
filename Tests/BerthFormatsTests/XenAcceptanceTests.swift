import BerthModel
import Foundation
import Testing

@testable import BerthFormats
@testable import BerthXML

/// Xen's own example configs (tools/examples at RELEASE-4.4.0 and head), read as a user
/// migrating from xm/xl would: every one is read or refused at the right line, converted,
/// written back as xl and as libvirt XML, and read again to the same model.
@Suite struct XenAcceptanceTests {
    static let readable = [
        "xmexample1", "xmexample.hvm", "xmexample.nbd", "xmexample.pv-grub", "xlexample.hvm", "xlexample.pvlinux",
        "xlexample.pvhlinux",
    ]

    /// xl → model → xl → model and model → XML → model give the same `DomainSpec`.
    static func expectRoundTrips(_ spec: DomainSpec) throws {
        let xl = XLDomain.write(spec)
        let fromXL = try XLDomain.read(xl, source: "written.cfg")
        #expect(fromXL.spec == spec, "xl round trip changed the spec:\n\(xl)")
        let xml = LibvirtXML.write(spec)
        let fromXML = try LibvirtXML.read(xml, source: "written.xml")
        #expect(fromXML.spec == spec, "XML round trip changed the spec:\n\(xml)")
        // Detection by content picks the right reader for each.
        #expect(try DomainDocument.parse(xl).format == .xl)
        #expect(try DomainDocument.parse(xml).format == .libvirtXML)
        #expect(try DomainDocument.parse(DomainJSON.encode(spec)).spec == spec)
    }

    @Test(arguments: readable)
    func everyExampleReadsAndRoundTrips(file: String) throws {
        let result = try XLDomain.read(bytes: try Fixture.bytes("xen-configs/" + file), source: file)
        try result.spec.validate()
        try Self.expectRoundTrips(result.spec)
    }

    @Test(arguments: [("xmexample2", 23), ("xmexample3", 23)])
    func pythonConfigsAreRefusedAtTheirFirstCode(file: String, line: Int) throws {
        let error = try #require(throws: BerthError.self) {
            try XLDomain.read(bytes: try Fixture.bytes("xen-configs/" + file), source: file)
        }
        #expect(error.code == .invalidArgument)
        #expect(error.message == "\(file):\(line):1: this is Python code, not a setting: a Python 'def' statement.")
        #expect(error.remedy?.contains("never runs Python") == true)
    }

    @Test func pythonCodeAfterTheFunctionIsPlacedToo() throws {
        // With the def removed, the next problem is the xm_vars call, then "VM%d" % vmid.
        var text = try Fixture.text("xen-configs/xmexample2")
        text = text.replacingOccurrences(
            of: "def vmid_check(var, val):\n    val = int(val)\n    if val <= 0:\n        raise ValueError\n    return val\n", with: "\n\n\n\n\n")
        let call = try #require(throws: BerthError.self) { try XLDomain.read(text, source: "xmexample2") }
        #expect(call.message.hasPrefix("xmexample2:30:1: this is Python code, not a setting: a call to 'xm_vars.var(…)'"))
        text = text.replacingOccurrences(of: "xm_vars.var('vmid',", with: "#").replacingOccurrences(of: "            use=", with: "#")
            .replacingOccurrences(of: "            check=", with: "#").replacingOccurrences(of: "xm_vars.check()", with: "#")
        let format = try #require(throws: BerthError.self) { try XLDomain.read(text, source: "xmexample2") }
        #expect(format.message.hasPrefix("xmexample2:56:15: this is Python code, not a setting: '%' string formatting"), "\(format.message)")
    }

    @Test func xmexample1() throws {
        let result = try XLDomain.read(try Fixture.text("xen-configs/xmexample1"), source: "xmexample1")
        let spec = result.spec
        #expect(spec.name == "ExampleDomain")
        #expect(spec.memory == 64)
        #expect(spec.kernel == "/boot/vmlinuz-2.6.10-xenU")
        #expect(spec.cmdline == "root=/dev/hda1 ro 4")
        #expect(spec.disks == [DiskSpec(path: "/dev/hda1", format: .raw, bus: .ide, target: "hda1")])
        #expect(spec.nics == [NICSpec(mode: .user)])
        #expect(spec.onCrash == .destroy)
        #expect(result.warnings.contains { $0.message.contains("Xen PV guest") })
        #expect(result.warnings.contains { $0.message.contains("user-mode networking") })
    }

    @Test func xmexampleHVM() throws {
        let result = try XLDomain.read(try Fixture.text("xen-configs/xmexample.hvm"), source: "xmexample.hvm")
        let spec = result.spec
        #expect(spec.name == "ExampleHVMDomain")
        #expect(spec.kernel == nil)  // hvmloader is Xen's firmware
        #expect(spec.disks == [DiskSpec(path: "/var/images/min-el3-i386.img", format: .raw, bus: .ide, target: "hda")])
        #expect(spec.nics == [NICSpec(mode: .bridge, bridge: "xenbr0")])
        #expect(spec.graphics == GraphicsSpec(kind: .vnc))
        // Nothing silently dropped: the empty CD-ROM and Xen-only keys are notes and warnings.
        for key in ["hdc:cdrom", "device_model = \"qemu-dm\"", "opengl = 1", "stdvga = 0", "tsc_mode = 0"] {
            #expect(spec.notes.contains { $0.contains(key) }, "no note for \(key): \(spec.notes)")
        }
        #expect(spec.notes.count == result.warnings.filter { $0.message.contains("kept as a note") }.count)
        #expect(result.warnings.contains { $0.message.contains("hvmloader") && $0.position?.line == 11 })
    }

    @Test func xmexampleNBD() throws {
        let result = try XLDomain.read(try Fixture.text("xen-configs/xmexample.nbd"), source: "xmexample.nbd")
        #expect(result.spec.disks.isEmpty)
        #expect(result.spec.notes.contains { $0.contains("nbd network disks are not supported") })
        #expect(result.spec.initrd == "/boot/initrd-2.6.13-15b-xen")
        #expect(result.spec.cmdline == "ip=:127.0.255.255:::nbd4:eth0:dhcp root=/dev/hda1 ro 3")
    }

    @Test func pvGrubBecomesBerthsBootloader() throws {
        let result = try XLDomain.read(try Fixture.text("xen-configs/xmexample.pv-grub"), source: "xmexample.pv-grub")
        #expect(result.spec.kernel == nil)
        #expect(result.spec.bootloader == BootloaderSpec())
        #expect(result.spec.notes.contains { $0.contains("(hd0,0)/boot/grub/menu.lst") })
    }

    @Test func xlExamples() throws {
        let hvm = try XLDomain.read(try Fixture.text("xen-configs/xlexample.hvm")).spec
        #expect(hvm.vcpus == 2)
        #expect(hvm.disks == [DiskSpec(path: "/dev/vg/guest-volume", format: .raw, target: "xvda")])
        #expect(hvm.graphics == GraphicsSpec(kind: .vnc))  // sdl=1 under a daemon
        let pvh = try XLDomain.read(try Fixture.text("xen-configs/xlexample.pvhlinux"))
        #expect(pvh.spec.kernel == "/boot/vmlinuz")
        #expect(pvh.spec.cmdline == "root=/dev/xvda1")
        #expect(pvh.spec.vcpus == 4 && pvh.spec.memory == 512)
        #expect(pvh.warnings.contains { $0.message.contains("/dev/vd*") })
    }

    @Test func xlConfIsNotADomain() throws {
        let config = try XLConfig.parse(try Fixture.text("xen-configs/xl.conf"))
        #expect(config.settings.isEmpty)
        let error = try #require(throws: BerthError.self) { try XLDomain.read(try Fixture.text("xen-configs/xl.conf"), source: "xl.conf") }
        #expect(error.message.contains("has no settings"))
        #expect(error.remedy?.contains("xl.conf is xl's global settings") == true)
    }

    @Test func theSeedsVifLineVerbatim() throws {
        // Pasted from the seed's web page, with its no-break spaces.
        let line = try Fixture.text("seed/vif-line.cfg")
        #expect(line.contains("\u{00A0}"))
        let result = try XLDomain.read("name = \"devel1\"\n" + line, source: "devel1.cfg")
        #expect(
            result.spec.nics == [NICSpec(mode: .bridge, mac: MACAddress("00:50:56:78:0a:1b"), bridge: "xenbr0")])
        #expect(!result.warnings.contains { $0.message.contains("vif") })
        let pygrub = try XLDomain.read(
            "name = 'devel1'\ndisk = ['phy:/dev/xenspace/devel1,xvda,w']\n" + (try Fixture.text("seed/pygrub-line.cfg")))
        #expect(pygrub.spec.bootloader == BootloaderSpec())
        try pygrub.spec.validate()
        try Self.expectRoundTrips(pygrub.spec)
    }

    @Test func theSeedsDevel1AsVirtInstallWroteIt() throws {
        let result = try XLDomain.read(try Fixture.text("seed/devel1.cfg"), source: "/etc/xen/devel1")
        #expect(
            result.spec
                == DomainSpec(
                    name: "devel1", uuid: try #require(UUID(uuidString: "6b0e5a7f-9f2b-4d3c-8a52-0c291a98d5aa")),
                    memory: 1200, vcpus: 2, bootloader: BootloaderSpec(),
                    disks: [DiskSpec(path: "/dev/xenspace/devel1", format: .raw, target: "xvda")],
                    nics: [NICSpec(mode: .bridge, mac: MACAddress("00:0c:29:1a:98:d5"), bridge: "xenbr0")],
                    onCrash: .restart))
        #expect(result.warnings.isEmpty, "\(result.warnings)")
        try result.spec.validate()
        try Self.expectRoundTrips(result.spec)
    }

    @Test func xendConfigListenSettings() throws {
        let config = try XendConfig.parse(try Fixture.text("xen-configs/xend-config.sxp"))
        #expect(config.httpServer == false)
        #expect(config.port == 8000)
        #expect(config.address == "")
        #expect(config.listensOnAllInterfaces)
        #expect(config.relocationServer)
        #expect(config.relocationHostsAllow == ["^localhost$", "^localhost\\.localdomain$"])
        #expect(config.networkScript == "network-bridge")
        #expect(config.vifScript == "vif-bridge")
        #expect(config.defaultNIC == NICSpec(mode: .bridge, bridge: "xenbr0"))
        #expect(config.vncPassword == nil)
        #expect(config.notes == ["(dom0-min-mem 196)", "(enable-dom0-ballooning yes)", "(total_available_memory 0)", "(dom0-cpus 0)"])
        // The seed's "Could not connect to localhost:8000" fix, pasted with its no-break spaces.
        let seed = try XendConfig.parse(try Fixture.text("seed/xend-snippet.sxp"))
        #expect(seed.httpServer && seed.port == 8000 && seed.address == "localhost" && !seed.listensOnAllInterfaces)
        #expect(seed.warnings.isEmpty)
        let routed = try XendConfig.parse((try Fixture.text("seed/xend-routed-snippet.sxp")).replacingOccurrences(of: "#", with: ""))
        #expect(routed.defaultNetworkMode == .route)
        let open = try XendConfig.parse("(xend-http-server yes)\n(xend-address '')")
        #expect(open.listensOnAllInterfaces && open.bindAddress == "0.0.0.0")
        #expect(open.warnings.contains { $0.message.contains("API token") })
    }
}
