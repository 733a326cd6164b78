import BerthDisk
import Testing

@Suite
struct PartitionsTests {
    static let mib: UInt64 = 1 << 20

    @Test("MBR: primaries, then logical partitions from the extended chain, as sfdisk wrote them")
    func mbrWithLogicals() throws {
        let table = try PartitionTable.read(from: DiskFixture.image("mbr.img"))
        #expect(table.scheme == .mbr)
        #expect(table.problems.isEmpty)
        #expect(table.partitions.map(\.number) == [1, 5, 6])
        let offsets: [UInt64] = [2048 * 512, 45056 * 512, 79872 * 512]
        #expect(table.partitions.map(\.offset) == offsets)
        #expect(table.partitions.map(\.length) == [20 * Self.mib, 16 * Self.mib, 16 * Self.mib])
        #expect(table.partitions.map(\.bootable) == [true, false, false])
        #expect(table.partitions.allSatisfy { $0.type == .mbr(0x83) && !$0.isLVM })
    }

    @Test("GPT: entries with types and names; the protective MBR is recognized")
    func gpt() throws {
        let table = try PartitionTable.read(from: DiskFixture.image("gpt.img"))
        #expect(table.scheme == .gpt)
        #expect(table.problems.isEmpty)
        #expect(table.partitions.map(\.number) == [1, 2, 3])
        #expect(table.partitions.map(\.name) == ["bios", "root", "data"])
        let types: [Partition.TypeCode] = [.gpt(.biosBoot), .gpt(.linuxFilesystem), .gpt(.linuxFilesystem)]
        #expect(table.partitions.map(\.type) == types)
        let offsets: [UInt64] = [2048 * 512, 4096 * 512, 53248 * 512]
        #expect(table.partitions.map(\.offset) == offsets)
        #expect(table.partitions.map(\.length) == [Self.mib, 24 * Self.mib, 24 * Self.mib])
        #expect(GPT.GUID.linuxLVM.description == "E6D6D379-F507-44C2-A23C-238F2A3DF928")
    }

    @Test(
        "GPT: a damaged primary header or entry array falls back to the backup",
        arguments: [(UInt64(552), "CRC32"), (UInt64(1064), "CRC32"), (UInt64(512), "EFI PART")])
    func gptBackup(damageAt offset: UInt64, reasonMentions: String) throws {
        let image = try DiskFixture.image("gpt.img")
        let good = try PartitionTable.read(from: image)
        var patched = PatchedSource(image)
        patched.write([(try image.read(at: offset, count: 1))[0] ^ 0xFF], at: offset)
        let table = try PartitionTable.read(from: patched)
        #expect(table.scheme == .gpt)
        #expect(table.partitions == good.partitions)
        #expect(table.problems.count == 1)
        if case .primaryGPTBroken(let reason)? = table.problems.first {
            #expect(reason.contains(reasonMentions))
        } else {
            Issue.record("expected primaryGPTBroken, got \(table.problems)")
        }
    }

    @Test("GPT: both copies damaged is an error that says what to do")
    func gptBothBroken() throws {
        let image = try DiskFixture.image("gpt.img")
        var patched = PatchedSource(image)
        patched.write([(try image.read(at: 512 + 16, count: 1))[0] ^ 0xFF], at: 512 + 16)
        patched.write([0], at: image.size - 512)
        #expect {
            try PartitionTable.read(from: patched)
        } throws: { error in
            guard case .noUsableGPT = error as? PartitionTable.Error else { return false }
            return "\(error)".contains("repair")
        }
    }

    @Test("a disk without a table is one volume")
    func noTable() throws {
        #expect(try PartitionTable.read(from: DiskFixture.image("ext4.img")).scheme == .none)
        #expect(try PartitionTable.read(from: MemorySource([1, 2, 3])).scheme == .none)
        // A boot sector with 55AA whose "status" bytes are code is not a table (FAT, hybrid ISO).
        var sector = [UInt8](repeating: 0x90, count: 512)
        sector[510] = 0x55
        sector[511] = 0xAA
        #expect(try PartitionTable.read(from: MemorySource(sector)).scheme == .none)
    }

    @Test("an extended chain that loops back stops with a problem, keeping what was read")
    func ebrLoop() throws {
        let image = try DiskFixture.image("mbr.img")
        let extStart: UInt64 = 43008
        let first = FieldReaderProbe(try image.read(at: extStart * 512, count: 512))
        let secondEBR = extStart + UInt64(first.u32(462 + 8))
        var patched = PatchedSource(image)
        // The second EBR's link now points at the first EBR (relative start 0 → extStart)... which is
        // "no next" (start 0); make it point at itself instead, relative to the extended start.
        let rel = UInt32(secondEBR - extStart)
        patched.write([0x05], at: secondEBR * 512 + 462 + 4)
        patched.write(withUnsafeBytes(of: rel.littleEndian, Array.init), at: secondEBR * 512 + 462 + 8)
        patched.write(withUnsafeBytes(of: UInt32(2048).littleEndian, Array.init), at: secondEBR * 512 + 462 + 12)
        let table = try PartitionTable.read(from: patched)
        #expect(table.partitions.map(\.number) == [1, 5, 6])
        #expect(table.problems == [.extendedChainLoop(lba: secondEBR)])
    }

    @Test("a long extended chain stops at the logical partition limit")
    func ebrCountLimit() throws {
        let count = 300
        var disk = [UInt8](repeating: 0, count: (2 + 2 * count) * 512)
        func put(_ sector: Int, entry: Int, type: UInt8, start: UInt32, size: UInt32) {
            let at = sector * 512 + 446 + 16 * entry
            disk[at + 4] = type
            for i in 0..<4 {
                disk[at + 8 + i] = UInt8(truncatingIfNeeded: start >> (8 * UInt32(i)))
                disk[at + 12 + i] = UInt8(truncatingIfNeeded: size >> (8 * UInt32(i)))
            }
            disk[sector * 512 + 510] = 0x55
            disk[sector * 512 + 511] = 0xAA
        }
        put(0, entry: 0, type: 0x05, start: 2, size: UInt32(2 * count))
        for k in 0..<count {
            let ebr = 2 + 2 * k
            put(ebr, entry: 0, type: 0x83, start: 1, size: 1)
            if k + 1 < count { put(ebr, entry: 1, type: 0x05, start: UInt32(2 * (k + 1)), size: 2) }
        }
        let table = try PartitionTable.read(from: MemorySource(disk))
        #expect(table.partitions.count == PartitionTable.Limits.maxLogicalPartitions)
        #expect(table.problems == [.tooManyLogicalPartitions(limit: PartitionTable.Limits.maxLogicalPartitions)])
        #expect(table.partitions.last?.offset == UInt64(2 + 2 * 127 + 1) * 512)
    }

    @Test("a truncated image: partitions past its end are clipped or dropped, with problems")
    func truncated() throws {
        let patched = PatchedSource(try DiskFixture.image("mbr.img"), size: 10 * Self.mib)
        let table = try PartitionTable.read(from: patched)
        #expect(table.partitions.map(\.number) == [1])
        #expect(table.partitions.first?.length == 9 * Self.mib)
        #expect(table.problems.count == 2)
        #expect(table.problems.first == .partitionPastEnd(number: 1, endByte: 21 * Self.mib, diskSize: 10 * Self.mib))
    }
}

/// Reads little-endian fields in tests (the library's decoder is internal).
struct FieldReaderProbe {
    let bytes: [UInt8]
    init(_ bytes: [UInt8]) { self.bytes = bytes }
    func u32(_ at: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(bytes[at + $1]) << (8 * UInt32($1)) } }
}
