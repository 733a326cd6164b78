import BerthDisk
import Testing

@Suite
struct LVMTests {
    static let mib: UInt64 = 1 << 20

    static func pvPartition() throws -> SliceSource {
        let disk = try DiskFixture.image("lvm.img")
        let table = try PartitionTable.read(from: disk)
        let pv = try #require(table.partitions.first { $0.isLVM })
        #expect(pv.number == 2)
        return try pv.source(in: disk)
    }

    @Test("PV label, metadata and logical volumes written by pvcreate/vgcreate/vgcfgrestore")
    func volumeGroup() throws {
        let source = try Self.pvPartition()
        #expect(LVM.hasLabel(source))
        let pv = try LVM.PhysicalVolume(source: source)
        #expect(pv.uuid.count == 32)
        let vg = try LVM.VolumeGroup(physicalVolumes: [pv])
        #expect(vg.name == "vgberth")
        #expect(vg.extentSize == Self.mib)
        #expect(vg.logicalVolumes.map(\.name) == ["root", "data", "meta"])
        #expect(vg.logicalVolumes.map(\.visible) == [true, true, false])
        #expect(vg.logicalVolumes.map(\.size) == [16 * Self.mib, 8 * Self.mib, Self.mib])
        #expect(vg.logicalVolumes.allSatisfy { $0.unavailableReason == nil })
    }

    @Test("a linear LV of two out-of-order segments reads as one filesystem", arguments: ["root", "data"])
    func linear(name: String) throws {
        let vg = try LVM.VolumeGroup(source: Self.pvPartition())
        let lv = try #require(vg.logicalVolume(named: name))
        let fs = try Ext4FileSystem(source: lv.source())
        try DiskFixture.expectMatches(fs, tree: "lvm-" + name)
    }

    @Test("a striped LV across two PVs maps every read across the stripes")
    func striped() throws {
        let pvs = try [LVM.PhysicalVolume(source: DiskFixture.image("pv-a.img")), LVM.PhysicalVolume(source: DiskFixture.image("pv-b.img"))]
        let vg = try LVM.VolumeGroup(physicalVolumes: pvs)
        #expect(vg.name == "vgstripe")
        let lv = try #require(vg.logicalVolume(named: "striped"))
        let source = try lv.source()
        #expect(source.size == 16 * Self.mib)
        // A read that spans stripe boundaries equals the same bytes read in pieces.
        let whole = try source.read(at: 60 << 10, count: 200 << 10)
        var pieces: [UInt8] = []
        for k in 0..<50 { pieces += try source.read(at: (60 << 10) + UInt64(k) * 4096, count: 4096) }
        #expect(whole == pieces)
        try DiskFixture.expectMatches(Ext4FileSystem(source: source), tree: "lvm-striped")
    }

    @Test("an LV on a missing PV is listed as unavailable, with the reason")
    func missingPV() throws {
        let vg = try LVM.VolumeGroup(source: DiskFixture.image("pv-a.img"))
        let lv = try #require(vg.logicalVolume(named: "striped"))
        #expect(lv.unavailableReason?.contains("not present") == true)
        #expect(throws: LVM.Error.self) { try lv.source() }
    }

    @Test("damaged label and metadata are refused with what to do")
    func damage() throws {
        let source = try Self.pvPartition()
        let label = try source.read(at: 512, count: 512)
        #expect(String(decoding: label[0..<8], as: UTF8.self) == "LABELONE")
        var badLabel = PatchedSource(source)
        badLabel.write([label[100] ^ 1], at: 512 + 100)
        #expect(throws: LVM.Error.badLabel(sector: 1, reason: "checksum mismatch")) { try LVM.PhysicalVolume(source: badLabel) }

        // Flip a byte inside the metadata text: its checksum no longer matches.
        let head = try source.read(at: 0, count: 1 << 20)
        let needle = Array("vgberth {".utf8)
        let at = try #require((0..<head.count - needle.count).last { Array(head[$0..<$0 + needle.count]) == needle })
        var badText = PatchedSource(source)
        badText.write([UInt8(ascii: "V")], at: UInt64(at))
        #expect {
            try LVM.PhysicalVolume(source: badText)
        } throws: { error in
            guard case .badMetadataArea(_, let reason) = error as? LVM.Error else { return false }
            return reason.contains("checksum") && "\(error)".contains("vgcfgrestore")
        }
        #expect(throws: LVM.Error.noLabel) { try LVM.PhysicalVolume(source: DiskFixture.image("ext4.img")) }
    }
}

@Suite struct LVMConfigTests {
    @Test("the metadata text of a real vgcfgbackup file")
    func backupFile() throws {
        let config = try LVM.parseConfig(DiskFixture.bytes(ofFile: DiskFixture.path("lvm-vg.txt")))
        #expect(config["contents"]?.string == "Text Format Volume Group")
        #expect(config["version"]?.number == 1)
        let vg = try #require(config["vgberth"])
        #expect(vg["extent_size"]?.number == 2048)
        #expect(vg["physical_volumes"]?["pv0"]?["pe_start"]?.number == 2048)
        #expect(vg["logical_volumes"]?["root"]?["segment2"]?["stripes"] == .array([.string("pv0"), .number(4)]))
        #expect(config["description"]?.string?.contains("\"a|^/dev/loop") == true)
    }

    @Test("values: strings with escapes, numbers, nested arrays, comments, empty sections")
    func values() throws {
        let text = """
            # comment
            a = "x \\"quoted\\" \\\\ y"   # trailing comment
            n = -42
            f = 1.5
            list = [1, "two", [3, 4], ]
            s {
              inner { }
              k = []
            }
            \0\0\0 garbage after NUL padding is ignored {
            """
        let c = try LVM.parseConfig(Array(text.utf8))
        #expect(c["a"] == .string("x \"quoted\" \\ y"))
        #expect(c["n"] == .number(-42))
        #expect(c["f"] == .string("1.5"))
        #expect(c["list"] == .array([.number(1), .string("two"), .array([.number(3), .number(4)])]))
        #expect(c["s"]?["inner"] == .section([]))
        #expect(c["s"]?["k"] == .array([]))
    }

    @Test(
        "malformed text is an error with its line",
        arguments: [
            "a = \"unterminated", "a = ", "a {", "}", "a = [1, 2", "a b", "= 3", "a = 12x", "a = @",
            String(repeating: "a {", count: 100) + String(repeating: "}", count: 100),
            "a = " + String(repeating: "[", count: 100),
        ])
    func malformed(text: String) {
        #expect(throws: LVM.Error.self) { try LVM.parseConfig(Array(text.utf8)) }
    }
}
