import BerthModel
import Foundation
import Testing

@testable import BerthFormats
@testable import BerthXML

/// Every firmware form a domain can have survives libvirt XML both ways, and what Berth
/// writes is a domain libvirt's own schema accepts.
@Suite struct LibvirtFirmwareTests {
    static let disk = DiskSpec(path: "/srv/guests/f.img", format: .raw, target: "vda")
    static let cd = DiskSpec(path: "/srv/iso/install.iso", format: .raw, device: .cdrom, bus: .ide, readOnly: true, target: "hdc")
    static let nvram = "/var/lib/berth/nvram/6b0e5a7f-9f2b-4d3c-8a52-0c291a98d5aa_VARS.fd"

    static func spec(
        _ name: String, _ firmware: FirmwareSpec?, kernel: String? = nil, bootloader: BootloaderSpec? = nil, disks: [DiskSpec] = [disk]
    ) -> DomainSpec {
        var spec = DomainSpec(name: name, memory: 512, kernel: kernel, bootloader: bootloader, firmware: firmware, disks: disks)
        spec.nics = [NICSpec(mode: .user)]
        if kernel != nil { spec.initrd = "/k/initrd.img" }
        if kernel != nil { spec.cmdline = "console=ttyS0" }
        return spec
    }

    /// name → spec: SeaBIOS with and without an order, OVMF chosen by libvirt or named, with
    /// its variable store and template or only some of them, and each under a host kernel
    /// (its EFI stub) or Berth's bootloader (the kernel from the guest's disk).
    static let forms: [String: DomainSpec] = [
        "bios": spec("bios", FirmwareSpec(kind: .bios)),
        "bios-hd": spec("bios-hd", FirmwareSpec(kind: .bios, bootOrder: [.hd])),
        "bios-cd-hd": spec("bios-cd-hd", FirmwareSpec(kind: .bios, bootOrder: [.cdrom, .hd]), disks: [disk, cd]),
        "bios-network": spec("bios-network", FirmwareSpec(kind: .bios, bootOrder: [.network]), disks: []),
        "bios-bootloader": spec("bios-bootloader", FirmwareSpec(kind: .bios), bootloader: BootloaderSpec(entry: "1")),
        "efi": spec("efi", FirmwareSpec(kind: .uefi)),
        "efi-hd": spec("efi-hd", FirmwareSpec(kind: .uefi, bootOrder: [.hd])),
        "efi-nvram": spec("efi-nvram", FirmwareSpec(kind: .uefi, nvram: nvram, varsTemplate: FirmwareSpec.defaultVarsTemplate)),
        "efi-template": spec("efi-template", FirmwareSpec(kind: .uefi, varsTemplate: "/srv/fw/MY_VARS.fd")),
        "efi-defined": spec(
            "efi-defined",
            FirmwareSpec(
                kind: .uefi, bootOrder: [.cdrom, .hd], loader: FirmwareSpec.defaultLoader, nvram: nvram,
                varsTemplate: FirmwareSpec.defaultVarsTemplate), disks: [disk, cd]),
        "efi-loader-only": spec("efi-loader-only", FirmwareSpec(kind: .uefi, loader: "/srv/fw/OVMF_CODE.fd")),
        "efi-kernel": spec("efi-kernel", FirmwareSpec(kind: .uefi, nvram: nvram), kernel: "/k/vmlinuz"),
        "efi-kernel-order": spec("efi-kernel-order", FirmwareSpec(kind: .uefi, bootOrder: [.cdrom, .hd]), kernel: "/k/vmlinuz"),
        "efi-bootloader": spec(
            "efi-bootloader", FirmwareSpec(kind: .uefi, loader: FirmwareSpec.defaultLoader, nvram: nvram),
            bootloader: BootloaderSpec(args: "root=/dev/vda1", extraArgs: "quiet")),
        "none-kernel": spec("none-kernel", nil, kernel: "/k/vmlinuz"),
        "none-disk": spec("none-disk", nil),
    ]

    @Test(arguments: forms.keys.sorted())
    func readThenWriteKeepsTheFirmware(form: String) throws {
        let spec = try #require(Self.forms[form])
        try spec.validate()
        let xml = LibvirtXML.write(spec)
        let read = try LibvirtXML.read(xml, source: "\(form).xml").spec
        #expect(read.firmware == spec.firmware, "\(form):\n\(xml)")
        #expect(read == spec, "\(form):\n\(xml)")
        // Read → write → read: the second document is the first.
        #expect(LibvirtXML.write(read) == xml)
        try XenAcceptanceTests.expectRoundTrips(spec)
        try Self.expectLibvirtAccepts(xml, form)
    }

    /// `berth dumpxml` of a UEFI domain as berthd records it (the loader filled in, the
    /// variable store made from its template): libvirt's manual firmware selection, the field
    /// names of libvirt's domain format, and nothing libvirt's schema refuses.
    @Test func aDefinedUEFIDomainIsWrittenAsLibvirtWritesIt() throws {
        let spec = try #require(Self.forms["efi-defined"])
        let xml = LibvirtXML.write(spec)
        #expect(xml.contains("  <os>\n    <type arch='x86_64'>hvm</type>\n"), "\(xml)")
        #expect(xml.contains("    <loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.fd</loader>\n"))
        #expect(xml.contains("    <nvram template='/usr/share/OVMF/OVMF_VARS_4M.fd'>\(Self.nvram)</nvram>\n"))
        #expect(xml.contains("    <boot dev='cdrom'/>\n    <boot dev='hd'/>\n"))
        #expect(!xml.contains("firmware="), "a named loader is libvirt's manual selection, without firmware='efi'")
        // libvirt's automatic selection when no loader is named; SeaBIOS said as such.
        #expect(LibvirtXML.write(try #require(Self.forms["efi"])).contains("<os firmware='efi'>"))
        #expect(LibvirtXML.write(try #require(Self.forms["bios"])).contains("<os firmware='bios'>"))
        #expect(!LibvirtXML.write(try #require(Self.forms["none-disk"])).contains("firmware="))
        try Self.expectLibvirtAccepts(xml, "efi-defined")
    }

    /// What libvirt 9 itself prints for a UEFI guest (automatic selection expanded in the live
    /// XML, Secure Boot asked off): read as Berth's OVMF with the same store; Secure Boot asked
    /// on, or a BIOS ROM of the guest's own, is kept as a note and said.
    @Test func libvirtsOwnUEFIFormsRead() throws {
        let live = """
            <domain type='kvm'><name>lv</name><memory unit='KiB'>524288</memory>
              <os firmware='efi'>
                <type arch='x86_64' machine='pc-q35-7.2'>hvm</type>
                <firmware><feature enabled='no' name='enrolled-keys'/><feature enabled='no' name='secure-boot'/></firmware>
                <loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.fd</loader>
                <nvram template='/usr/share/OVMF/OVMF_VARS_4M.fd'>/var/lib/libvirt/qemu/nvram/lv_VARS.fd</nvram>
                <boot dev='hd'/>
              </os>
              <features><acpi/><apic/></features>
            </domain>
            """
        let result = try LibvirtXML.read(live)
        #expect(
            result.spec.firmware
                == FirmwareSpec(
                    kind: .uefi, bootOrder: [.hd], loader: FirmwareSpec.defaultLoader, nvram: "/var/lib/libvirt/qemu/nvram/lv_VARS.fd",
                    varsTemplate: FirmwareSpec.defaultVarsTemplate))
        #expect(result.spec.notes.isEmpty && result.warnings.isEmpty, "\(result.warnings)")

        let secure = """
            <domain><name>sb</name><os firmware='efi'><type>hvm</type>
              <firmware><feature enabled='yes' name='secure-boot'/></firmware>
              <loader readonly='yes' secure='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.ms.fd</loader></os><features><acpi/></features>
            </domain>
            """
        let refused = try LibvirtXML.read(secure)
        #expect(refused.spec.firmware?.kind == .uefi && refused.spec.firmware?.loader == "/usr/share/OVMF/OVMF_CODE_4M.ms.fd")
        #expect(refused.spec.notes.filter { $0.contains("without Secure Boot") }.count == 2, "\(refused.spec.notes)")
        #expect(refused.warnings.contains { $0.message.contains("firmware feature 'secure-boot' is kept as a note only") })
        #expect(refused.warnings.contains { $0.message.contains("<loader secure='yes'> is kept as a note only") })
        try XenAcceptanceTests.expectRoundTrips(refused.spec)

        let rom = """
            <domain><name>rom</name><os><type>hvm</type><loader type='rom'>/srv/fw/bios-custom.bin</loader><boot dev='cdrom'/></os>
              <devices><disk type='file' device='cdrom'><source file='/srv/iso/a.iso'/><target dev='hdc' bus='ide'/></disk></devices>
            </domain>
            """
        let bios = try LibvirtXML.read(rom).spec
        #expect(bios.firmware == FirmwareSpec(kind: .bios, bootOrder: [.cdrom]), "a ROM loader is not UEFI")
        #expect(bios.notes.contains { $0.contains("bios-custom.bin") && $0.contains("SeaBIOS") })
    }

    /// libvirt's own `virt-xml-validate` (its RelaxNG schema) on a written document.
    static func expectLibvirtAccepts(_ xml: String, _ form: String) throws {
        for tool in ["/usr/bin/virt-xml-validate", "/usr/bin/xmllint"] where !FileManager.default.isExecutableFile(atPath: tool) {
            Issue.record("\(tool) is missing: run scripts/install-host-deps (libvirt-clients libxml2-utils).")
            return
        }
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("berth-\(form)-\(UUID().uuidString).xml").path
        try xml.write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let result = try run("/bin/sh", ["-c", "virt-xml-validate \"$1\" domain 2>&1", "sh", file])
        #expect(result.status == 0, "libvirt's schema refused \(form):\n\(result.output)\n\(xml)")
    }
}
