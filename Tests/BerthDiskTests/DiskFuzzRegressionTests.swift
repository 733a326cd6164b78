import BerthDisk
import Testing

/// Inputs found by the fuzz targets in `fuzz/targets/` (and their close relatives), kept as
/// crafted images so that each stays fixed.
@Suite
struct DiskFuzzRegressionTests {
    static func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * UInt32($0))) } }
    static func le64(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> (8 * UInt64($0))) } }

    /// CRC-32 computed bit by bit, independent of the library's table.
    static func crc(_ bytes: ArraySlice<UInt8>, seed: UInt32, invert: Bool) -> UInt32 {
        var c = seed
        for b in bytes {
            c ^= UInt32(b)
            for _ in 0..<8 { c = c & 1 != 0 ? (c >> 1) ^ 0xEDB8_8320 : c >> 1 }
        }
        return invert ? ~c : c
    }

    // Found by fuzz-ext4: an inode table block near 2^64 overflowed `table + tableBlocks`.
    @Test("a group descriptor whose inode table lies at 2^64 - 1 is an error, not a trap")
    func inodeTableOverflow() throws {
        let image = try DiskFixture.memory("corpus/ext4/ext4-small.img")
        var patched = PatchedSource(image)
        patched.write(Self.le32(.max), at: 2048 + 0x08)
        patched.write(Self.le32(.max), at: 2048 + 0x28)
        let fs = try Ext4FileSystem(source: patched)
        #expect(throws: Ext4FileSystem.Error.badGroupDescriptor(group: 0, reason: "inode table at block \(UInt64.max) is outside the filesystem")) {
            try fs.list("/")
        }
    }

    @Test("a block count whose byte size overflows 64 bits is refused")
    func blockCountOverflow() throws {
        let image = try DiskFixture.memory("corpus/ext4/ext4-small.img")
        var patched = PatchedSource(image)
        patched.write(Self.le32(6), at: 1024 + 0x18)  // 64 KiB blocks
        patched.write(Self.le32(.max), at: 1024 + 0x150)  // s_blocks_count_hi
        #expect(throws: Ext4FileSystem.Error.self) { try Ext4FileSystem(source: patched) }
    }

    @Test("a GPT entry that ends at LBA 2^64 - 1 is clipped to the disk")
    func gptEntryOverflow() throws {
        let image = try DiskFixture.memory("corpus/partitions/gpt-small.img")
        var bytes = image.bytes
        // Entry 1's last LBA, then both CRCs recomputed so that only the range is hostile.
        bytes.replaceSubrange(1024 + 40..<1024 + 48, with: Self.le64(.max))
        let entries = bytes[1024..<1024 + 128 * 128]
        bytes.replaceSubrange(512 + 88..<512 + 92, with: Self.le32(Self.crc(entries, seed: .max, invert: true)))
        bytes.replaceSubrange(512 + 16..<512 + 20, with: [0, 0, 0, 0])
        bytes.replaceSubrange(512 + 16..<512 + 20, with: Self.le32(Self.crc(bytes[512..<512 + 92], seed: .max, invert: true)))
        let table = try PartitionTable.read(from: MemorySource(bytes))
        #expect(table.scheme == .gpt)
        #expect(table.partitions.first?.offset == 40 * 512)
        #expect(table.partitions.first?.length == UInt64(bytes.count) - 40 * 512)
        #expect(table.problems == [.partitionPastEnd(number: 1, endByte: .max, diskSize: UInt64(bytes.count))])
    }
}

/// Crafted LVM metadata on the head of a real PV: the label and metadata area header are
/// pvcreate's, the text is ours (with its checksums recomputed).
@Suite
struct LVMCraftedTests {
    static func pv(withText text: String) throws -> MemorySource {
        var bytes = try DiskFixture.bytes(ofFile: DiskFixture.path("corpus/lvm/pv-head.img"))
        let probe = FieldReaderProbe(bytes)
        // PV header at 512 + 32: uuid, size, data areas (offset, size)… 0, metadata areas… 0.
        var at = 512 + 32 + 40
        while probe.u32(at) != 0 || probe.u32(at + 4) != 0 { at += 16 }
        at += 16
        let mda = Int(probe.u32(at))
        let raw = Array(text.utf8)
        bytes.replaceSubrange(mda + 512..<mda + 512 + raw.count, with: raw)
        bytes.replaceSubrange(mda + 40..<mda + 48, with: DiskFuzzRegressionTests.le64(512))
        bytes.replaceSubrange(mda + 48..<mda + 56, with: DiskFuzzRegressionTests.le64(UInt64(raw.count)))
        let textCRC = DiskFuzzRegressionTests.crc(raw[...], seed: 0xF597_A6CF, invert: false)
        bytes.replaceSubrange(mda + 56..<mda + 60, with: DiskFuzzRegressionTests.le32(textCRC))
        bytes.replaceSubrange(mda + 64..<mda + 80, with: [UInt8](repeating: 0, count: 16))
        let headerCRC = DiskFuzzRegressionTests.crc(bytes[mda + 4..<mda + 512], seed: 0xF597_A6CF, invert: false)
        bytes.replaceSubrange(mda..<mda + 4, with: DiskFuzzRegressionTests.le32(headerCRC))
        return MemorySource(bytes)
    }

    /// The real PV's UUID in metadata form, so the crafted VG finds its PV.
    static func pvID() throws -> String {
        let pv = try LVM.PhysicalVolume(source: MemorySource(DiskFixture.bytes(ofFile: DiskFixture.path("corpus/lvm/pv-head.img"))))
        let u = Array(pv.uuid)
        let cuts = [6, 4, 4, 4, 4, 4, 6]
        var parts: [String] = []
        var i = 0
        for n in cuts {
            parts.append(String(u[i..<i + n]))
            i += n
        }
        return parts.joined(separator: "-")
    }

    static func vg(extentSize: String = "8", peStart: String = "16", peCount: String = "12", lvs: String) throws -> String {
        """
        vg { id = "x" seqno = 99 extent_size = \(extentSize)
          physical_volumes { pv0 { id = "\(try pvID())" pe_start = \(peStart) pe_count = \(peCount) } }
          logical_volumes { \(lvs) }
        }
        """
    }

    static func lv(_ name: String, _ segments: String) -> String {
        "\(name) { id = \"\(name)\" status = [\"READ\", \"VISIBLE\"] \(segments) }"
    }

    @Test("linear and two-way striped segments map to the right PV bytes")
    func mapping() throws {
        // 4 KiB extents from byte 8192 of the PV; 1 KiB stripes.
        let text = try Self.vg(
            lvs: Self.lv("lin", "segment1 { start_extent = 0 extent_count = 2 type = \"striped\" stripe_count = 1 stripes = [\"pv0\", 3] }")
                + Self.lv(
                    "str",
                    "segment1 { start_extent = 0 extent_count = 4 type = \"striped\" stripe_count = 2 stripe_size = 2 stripes = [\"pv0\", 0, \"pv0\", 6] }"
                ))
        let source = try Self.pv(withText: text)
        let vg = try LVM.VolumeGroup(source: source)
        #expect(vg.seqno == 99)
        let lin = try #require(vg.logicalVolume(named: "lin")).source()
        #expect(lin.size == 8192)
        #expect(try lin.read(at: 100, count: 5000) == source.read(at: 8192 + 3 * 4096 + 100, count: 5000))
        let str = try #require(vg.logicalVolume(named: "str")).source()
        #expect(str.size == 16384)
        // Chunk k (1 KiB) goes to stripe k % 2, row k / 2.
        var expected: [UInt8] = []
        for k in 0..<16 {
            let base: UInt64 = k % 2 == 0 ? 8192 : 8192 + 6 * 4096
            expected += try source.read(at: base + UInt64(k / 2) * 1024, count: 1024)
        }
        #expect(try str.read(at: 0, count: 16384) == expected)
        #expect(try str.read(at: 1000, count: 3000) == Array(expected[1000..<4000]))
        #expect(throws: ByteSourceError.self) { try str.read(at: 16000, count: 1000) }
    }

    @Test(
        "hostile segment numbers make the LV unavailable, never trap",
        arguments: [
            ("stripe_count = 1 stripes = [\"pv0\", 9223372036854775807]", "bad stripe entry"),
            ("stripe_count = 1 stripes = [\"pv0\", 11]", "past the"),
            ("stripe_count = 1 stripes = [\"pv9\", 0]", "unknown PV"),
            ("stripe_count = 1000 stripes = []", "stripe_count"),
            ("stripe_count = 2 stripe_size = 9223372036854775807 stripes = [\"pv0\", 0, \"pv0\", 2]", "stripe_size"),
            ("stripe_count = 2 stripes = [\"pv0\", 0]", "pairs"),
        ])
    func hostileSegments(segment: String, reason: String) throws {
        let text = try Self.vg(
            lvs: Self.lv("bad", "segment1 { start_extent = 0 extent_count = 2 type = \"striped\" \(segment) }"))
        let vg = try LVM.VolumeGroup(source: Self.pv(withText: text))
        let lv = try #require(vg.logicalVolume(named: "bad"))
        #expect(lv.unavailableReason?.contains(reason) == true, "\(lv.unavailableReason ?? "nil")")
    }

    @Test("the tiny PV from pvcreate/vgcfgrestore (the fuzz seed) maps both of its LVs")
    func tinyPV() throws {
        let pv = try DiskFixture.image("corpus/lvm/pv-tiny.img")
        let vg = try LVM.VolumeGroup(source: pv)
        #expect(vg.name == "vgtiny")
        #expect(vg.extentSize == 8192)
        let lin = try #require(vg.logicalVolume(named: "lin")).source()
        let expected = try pv.read(at: 65536 + 3 * 8192, count: 8192) + pv.read(at: 65536, count: 8192)
        #expect(try lin.read(at: 0, count: 16384) == expected)
        let str = try #require(vg.logicalVolume(named: "str")).source()
        var striped: [UInt8] = []
        for k in 0..<4 { striped += try pv.read(at: 65536 + UInt64(1 + k % 2) * 8192 + UInt64(k / 2) * 4096, count: 4096) }
        #expect(try str.read(at: 0, count: 16384) == striped)
    }

    @Test("unsupported segment types and gaps are reported per volume")
    func otherSegments() throws {
        let text = try Self.vg(
            lvs: Self.lv("thin", "segment1 { start_extent = 0 extent_count = 2 type = \"thin\" }")
                + Self.lv("gap", "segment1 { start_extent = 1 extent_count = 1 type = \"striped\" stripe_count = 1 stripes = [\"pv0\", 0] }"))
        let vg = try LVM.VolumeGroup(source: Self.pv(withText: text))
        #expect(vg.logicalVolume(named: "thin")?.unavailableReason?.contains("not supported") == true)
        #expect(vg.logicalVolume(named: "gap")?.unavailableReason?.contains("gap") == true)
    }

    @Test("impossible extent sizes are refused for the whole group", arguments: ["0", "-8", "9223372036854775807"])
    func extentSize(value: String) throws {
        let text = try Self.vg(extentSize: value, lvs: "")
        #expect(throws: LVM.Error.self) { try LVM.VolumeGroup(source: Self.pv(withText: text)) }
    }
}
