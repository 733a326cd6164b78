import BerthModel
import Foundation
import Testing

@testable import BerthFormats
@testable import BerthXML

@Suite struct LibvirtXMLTests {
    /// What virt-install wrote for the seed's devel1 on a Xen host (virsh dumpxml shape).
    static let devel1 = """
        <?xml version="1.0"?>
        <domain type='xen' id='3'>
          <name>devel1</name>
          <uuid>6b0e5a7f-9f2b-4d3c-8a52-0c291a98d5aa</uuid>
          <memory unit='KiB'>1228800</memory>
          <currentMemory>1228800</currentMemory>
          <vcpu>2</vcpu>
          <bootloader>/usr/bin/pygrub</bootloader>
          <os>
            <type arch='x86_64' machine='xenpv'>linux</type>
          </os>
          <features><acpi/><apic/><pae/></features>
          <clock offset='utc'/>
          <on_poweroff>destroy</on_poweroff>
          <on_reboot>restart</on_reboot>
          <on_crash>restart</on_crash>
          <devices>
            <emulator>/usr/lib64/xen/bin/qemu-dm</emulator>
            <disk type='block' device='disk'>
              <driver name='phy'/>
              <source dev='/dev/xenspace/devel1'/>
              <target dev='xvda' bus='xen'/>
            </disk>
            <disk type='file' device='cdrom'>
              <driver name='qemu' type='raw'/>
              <source file='/srv/iso/CentOS-6.iso'/>
              <target dev='hdc' bus='ide'/>
              <readonly/>
            </disk>
            <interface type='bridge'>
              <mac address='00:0C:29:1A:98:D5'/>
              <source bridge='xenbr0'/>
              <script path='vif-bridge'/>
              <target dev='vif3.0'/>
            </interface>
            <console type='pty'><target type='xen' port='0'/></console>
            <input type='mouse' bus='xen'/>
            <graphics type='vnc' port='-1' autoport='yes' listen='0.0.0.0' keymap='en-us'/>
            <sound model='es1370'/>
          </devices>
          <seclabel type='none'/>
        </domain>
        """

    @Test func virtInstallXenDomain() throws {
        let result = try LibvirtXML.read(Self.devel1, source: "devel1.xml")
        let spec = result.spec
        #expect(spec.name == "devel1")
        #expect(spec.uuid == UUID(uuidString: "6b0e5a7f-9f2b-4d3c-8a52-0c291a98d5aa"))
        #expect(spec.memory == 1200 && spec.maxMemory == nil && spec.vcpus == 2)
        #expect(spec.machine == "xenpv")
        #expect(spec.bootloader == BootloaderSpec())
        #expect(spec.onCrash == .restart && spec.acpi)
        #expect(
            spec.disks == [
                DiskSpec(path: "/dev/xenspace/devel1", target: "xvda"),
                DiskSpec(path: "/srv/iso/CentOS-6.iso", format: .raw, device: .cdrom, bus: .ide, readOnly: true, target: "hdc"),
            ])
        #expect(spec.nics == [NICSpec(mode: .bridge, mac: MACAddress("00:0c:29:1a:98:d5"), bridge: "xenbr0")])
        #expect(spec.graphics == GraphicsSpec(kind: .vnc, listen: "0.0.0.0"))
        // Unknown elements are reported with their line, and kept.
        let sound = try #require(result.warnings.first { $0.message.contains("<sound> in <devices>") })
        #expect(sound.position?.line == 39)
        #expect(result.warnings.contains { $0.message.contains("<seclabel> in <domain>") })
        #expect(spec.notes.count == 2)
        #expect(result.warnings.contains { $0.message.contains("bus 'xen' becomes a virtio disk") })
        try spec.validate()
        try XenAcceptanceTests.expectRoundTrips(spec)
    }

    @Test func memoryUnitsAndBallooning() throws {
        let xml = "<domain><name>m</name><memory unit='GiB'>2</memory><currentMemory unit='MB'>1100</currentMemory><features/></domain>"
        let spec = try LibvirtXML.read(xml).spec
        #expect(spec.maxMemory == 2048)
        #expect(spec.memory == 1050)  // 1100 MB = 1049.04 MiB, rounded up
        let bad = try #require(throws: BerthError.self) {
            try LibvirtXML.read("<domain><name>m</name>\n<memory unit='parsecs'>2</memory></domain>", source: "m.xml")
        }
        #expect(bad.message.hasPrefix("m.xml:2:"), "\(bad.message)")
        #expect(bad.message.contains("unknown unit 'parsecs'"))
    }

    /// libvirt puts a plain virtio balloon in every dump: only free page reporting (or
    /// `model='none'`) says something about Berth's `balloon`; every value round-trips.
    @Test func memballoonWithFreePageReportingIsTheBalloon() throws {
        func balloon(_ device: String) throws -> Bool? {
            try LibvirtXML.read("<domain><name>b</name><devices>\(device)</devices></domain>").spec.balloon
        }
        #expect(try balloon("<memballoon model='virtio' freePageReporting='on'/>") == true)
        #expect(try balloon("<memballoon model='virtio'/>") == nil)
        #expect(try balloon("<memballoon model='none'/>") == false)
        for value: Bool? in [true, false, nil] {
            try XenAcceptanceTests.expectRoundTrips(DomainSpec(name: "b", balloon: value))
        }
    }

    @Test func directKernelInterfacesAndSerial() throws {
        let xml = """
            <domain type='qemu'>
              <name>k</name>
              <os><type arch='x86_64' machine='q35'>hvm</type><kernel>/k/vmlinuz</kernel><initrd>/k/initrd</initrd>
                <cmdline>console=ttyS0 root=/dev/vda1</cmdline><boot dev='cdrom'/><boot dev='hd'/></os>
              <devices>
                <interface type='user'><model type='virtio'/></interface>
                <interface type='network'><source network='default'/><mac address='52:54:00:aa:bb:cc'/></interface>
                <interface type='ethernet'><script path='/etc/xen/scripts/vif-route'/><ip address='10.1.1.2'/></interface>
                <interface type='direct'><source dev='eth0' mode='vepa'/></interface>
                <serial type='tcp'><source mode='bind' host='0.0.0.0' service='4555'/></serial>
                <serial type='pty'/>
                <graphics type='spice' port='5930' autoport='no'><listen type='address' address='127.0.0.1'/></graphics>
              </devices>
            </domain>
            """
        let result = try LibvirtXML.read(xml)
        let spec = result.spec
        #expect(spec.accel == .tcg && spec.machine == "q35" && !spec.acpi)
        #expect(spec.kernel == "/k/vmlinuz" && spec.initrd == "/k/initrd" && spec.cmdline == "console=ttyS0 root=/dev/vda1")
        #expect(
            spec.nics == [
                NICSpec(mode: .user, model: "virtio"), NICSpec(mode: .network, mac: MACAddress("52:54:00:aa:bb:cc"), network: "default"),
                NICSpec(mode: .route, ip: "10.1.1.2"),
            ])
        #expect(spec.graphics == GraphicsSpec(kind: .spice, listen: "127.0.0.1", port: 5930))
        #expect(spec.notes.contains { $0.contains("<interface type='direct'>") })
        #expect(spec.notes.contains { $0.contains("<serial type='tcp'>") })
        #expect(spec.notes.contains { $0.contains("boot order cdrom,hd") })
        #expect(result.warnings.contains { $0.message.contains("no ACPI") })
        try XenAcceptanceTests.expectRoundTrips(spec)
    }

    /// A network NIC's `<ip>` is its reserved IPv4 address; an IPv6 `<ip>` stays a note.
    @Test func aNetworkInterfacesIPIsItsReservation() throws {
        let xml = """
            <domain type='qemu'><name>r</name><os><type>hvm</type></os><devices>
              <interface type='network'><source network='lan'/><mac address='52:54:00:aa:00:05'/>
                <ip address='fd00:50::5' family='ipv6' prefix='64'/><ip address='10.50.0.5' family='ipv4' prefix='24'/></interface>
            </devices></domain>
            """
        let spec = try LibvirtXML.read(xml).spec
        #expect(spec.nics == [NICSpec(mode: .network, mac: MACAddress("52:54:00:aa:00:05"), network: "lan", ip: "10.50.0.5")])
        #expect(spec.notes.contains { $0.contains("fd00:50::5") })
        try XenAcceptanceTests.expectRoundTrips(spec)
    }

    /// libvirt's UEFI guests and boot orders, both ways; a domain with no disk (network boot)
    /// reads as libvirt defines it.
    @Test func firmwareAndBootOrder() throws {
        let xml = """
            <domain type='kvm'><name>efi</name><memory unit='MiB'>512</memory>
              <os firmware='efi'><type arch='x86_64' machine='pc'>hvm</type>
                <loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.fd</loader>
                <nvram template='/usr/share/OVMF/OVMF_VARS_4M.fd'>/var/lib/berth/nvram/efi_VARS.fd</nvram>
                <boot dev='network'/><boot dev='cdrom'/><boot dev='hd'/></os>
              <devices><interface type='network'><source network='default'/></interface></devices>
            </domain>
            """
        let spec = try LibvirtXML.read(xml).spec
        #expect(
            spec.firmware
                == FirmwareSpec(
                    kind: .uefi, bootOrder: [.network, .cdrom, .hd], loader: "/usr/share/OVMF/OVMF_CODE_4M.fd",
                    nvram: "/var/lib/berth/nvram/efi_VARS.fd", varsTemplate: "/usr/share/OVMF/OVMF_VARS_4M.fd"))
        #expect(spec.disks.isEmpty && spec.bootProblem == nil)
        #expect(try LibvirtXML.read(LibvirtXML.write(spec)).spec == spec)
        // A plain <boot dev='hd'/> is the default: no firmware section is made up for it.
        let plain = try LibvirtXML.read("<domain><name>p</name><os><type>hvm</type><boot dev='hd'/></os></domain>").spec
        #expect(plain.firmware == nil && plain.bootProblem != nil)
    }

    @Test func escapingSurvives() throws {
        let spec = DomainSpec(
            name: "esc", kernel: "/k/<&>'\"", cmdline: "a=\"b\" c='d' <e> & f\ttab",
            disks: [DiskSpec(path: "/d/it's & \"that\".img", target: "vda")], description: "x ]]> y\n<z/>",
            notes: ["<note & 'quote'>"])
        let xml = LibvirtXML.write(spec)
        #expect(!xml.contains("<z/>"))
        #expect(try LibvirtXML.read(xml).spec == spec)
    }

    static let malformed: [(String, String)] = [
        ("<domain><name>x</name>", "malformed XML"),
        ("<domain><name>x</nam></domain>", "malformed XML"),
        ("<domain name='x></domain>", "malformed XML"),
        ("<network><name>x</name></network>", "not <domain>"),
        ("<domain><uuid>nope</uuid><name>x</name></domain>", "not a UUID"),
        ("<domain><memory>lots</memory><name>x</name></domain>", "not a memory size"),
        ("<domain></domain>", "has no <name>"),
        ("<!DOCTYPE d [<!ENTITY a \"aaaa\"><!ENTITY b \"&a;&a;&a;\">]><domain><name>&b;</name></domain>", "DOCTYPE"),
        (
            "<domain><name>x</name><devices><disk type='file'><driver type='vmdk'/><source file='/a'/></disk></devices></domain>",
            "Berth reads raw and qcow2"
        ),
        ("<domain><name>x</name><devices><interface type='bridge'/></devices></domain>", "needs <source bridge"),
        // Found by fuzz/targets/LibvirtXML.swift: a data-less PI crashed Foundation's XMLParser.
        ("<?xml?>\n<domain><name>x</name></domain>", "d.xml:1:1: XML processing instructions"),
        ("<?xml version='1.0'?>\n<domain><name>x<?php echo 1 ?></name></domain>", "d.xml:2:16: XML processing instructions"),
    ]

    @Test(arguments: malformed)
    func malformedDocuments(xml: String, phrase: String) throws {
        let error = try #require(throws: BerthError.self) { try LibvirtXML.read(xml, source: "d.xml") }
        #expect(error.code == .invalidArgument)
        #expect(error.message.hasPrefix("d.xml:"), "\(error.message)")
        #expect(error.message.contains(phrase), "\(error.message)")
        #expect(error.remedy?.isEmpty == false)
    }

    @Test func deepNestingIsCapped() throws {
        let xml = "<domain><name>x</name>" + String(repeating: "<a>", count: 5000) + String(repeating: "</a>", count: 5000) + "</domain>"
        let error = try #require(throws: BerthError.self) { try LibvirtXML.read(xml) }
        #expect(error.message.contains("nested deeper"))
    }
}

@Suite struct DomainDocumentTests {
    @Test func detectionByContent() throws {
        #expect(DomainDocument.detect("  \n{\"name\":\"a\"}") == .json)
        #expect(DomainDocument.detect("\u{FEFF}<?xml version='1.0'?><domain/>") == .libvirtXML)
        #expect(DomainDocument.detect("# xm\nname = 'a'") == .xl)
        let json = try DomainDocument.parse("{\"name\": \"a\", \"memory\": 512, \"disks\": [{\"path\": \"/d.img\", \"device\": \"cdrom\"}]}")
        #expect(json.format == .json && json.spec.memory == 512 && json.spec.disks[0].readOnly)
    }

    static let badJSON: [(String, String)] = [
        ("{\"memory\": 5}", "required field 'name' is missing"),
        ("{\"name\": \"a\", \"memory\": \"lots\"}", "field 'memory' has the wrong type"),
        ("{\"name\": \"a\", \"disks\": [{\"path\": \"/a\"}, {\"format\": \"raw\"}]}", "required field 'disks[1].path' is missing"),
        ("{\"name\": \"a\", \"nics\": [{\"mac\": \"nope\"}]}", "field 'nics[0].mac' is invalid"),
        ("{\"name\": \"a\", \"accel\": \"xen\"}", "field 'accel' is invalid"),
        ("{\"name\": \"a\",", "not valid JSON"),
    ]

    @Test(arguments: badJSON)
    func jsonErrorsNameTheField(json: String, phrase: String) throws {
        let error = try #require(throws: BerthError.self) { try DomainDocument.parse(json, source: "a.json") }
        #expect(error.code == .invalidArgument)
        #expect(error.message.contains(phrase), "\(error.message)")
    }

    @Test func writeInEveryFormat() throws {
        let spec = DomainSpec(name: "devel1", memory: 1200, vcpus: 2, disks: [DiskSpec(path: "/dev/xenspace/devel1", target: "xvda")])
        for format in DomainDocument.Format.allCases {
            let parsed = try DomainDocument.parse(DomainDocument.write(spec, as: format))
            #expect(parsed.format == format)
            #expect(parsed.spec == spec)
        }
        #expect(DomainDocument.Format(name: "xm") == .xl && DomainDocument.Format(name: "libvirt") == .libvirtXML)
        #expect(DomainDocument.Format(name: "yaml") == nil)
    }

    @Test func binaryInputIsRefusedWithAPosition() throws {
        let error = try #require(throws: BerthError.self) { try DomainDocument.parse(bytes: [0x7B, 0x0A, 0x00], source: "disk.img") }
        #expect(error.message == "disk.img:2:1: NUL byte in a domain document.")
    }
}
