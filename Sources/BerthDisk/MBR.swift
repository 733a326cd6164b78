/// The DOS partition table: four primary entries in sector 0, logical partitions in a chain
/// of extended boot records inside an extended partition.
public enum MBR {
    struct Entry: Equatable {
        var status: UInt8
        var type: UInt8
        var startLBA: UInt64
        var sectors: UInt64
        var isEmpty: Bool { type == 0 || sectors == 0 }
        var isExtended: Bool { type == 0x05 || type == 0x0F || type == 0x85 }
    }

    /// The four entries of a boot sector, or nil when it is not a partition table: no 55AA
    /// signature, or a status byte other than 0x00/0x80 (a FAT or ISO boot sector carries code
    /// there, and must then be read as a whole-disk filesystem).
    static func parseBootSector(_ sector: [UInt8]) -> [Entry]? {
        guard sector.count >= 512, sector[510] == 0x55, sector[511] == 0xAA else { return nil }
        var entries: [Entry] = []
        for i in 0..<4 {
            let e = FieldReader(Array(sector[(446 + 16 * i)..<(462 + 16 * i)]), structure: "MBR entry \(i + 1)")
            guard let status = try? e.u8(0), let type = try? e.u8(4), let start = try? e.u32(8),
                let count = try? e.u32(12)
            else { return nil }
            guard status == 0 || status == 0x80 else { return nil }
            entries.append(Entry(status: status, type: type, startLBA: UInt64(start), sectors: UInt64(count)))
        }
        // A boot sector whose four entries are all empty is a table with no partitions only if
        // nothing else looks like code there; treat it as "no table" so the whole disk is tried.
        if entries.allSatisfy(\.isEmpty) { return nil }
        return entries
    }

    static func table(from entries: [Entry], disk: any ByteSource, sectorSize: UInt64) -> PartitionTable {
        var problems: [PartitionTable.Error] = []
        var partitions: [Partition] = []
        var extended: Entry?
        for (i, entry) in entries.enumerated() where !entry.isEmpty {
            if entry.isExtended {
                // Linux follows only the first extended partition.
                if extended == nil { extended = entry }
                continue
            }
            if let p = PartitionTable.makePartition(
                number: i + 1, type: .mbr(entry.type), startSector: entry.startLBA, sectors: entry.sectors,
                sectorSize: sectorSize, bootable: entry.status == 0x80, name: "", diskSize: disk.size,
                problems: &problems)
            {
                partitions.append(p)
            }
        }
        if let extended {
            partitions += logicalPartitions(in: extended, disk: disk, sectorSize: sectorSize, problems: &problems)
        }
        return PartitionTable(scheme: .mbr, sectorSize: sectorSize, partitions: partitions, problems: problems)
    }

    /// Follows the EBR chain: each EBR's first entry is a logical partition (relative to that
    /// EBR), its second links to the next EBR (relative to the extended partition's start).
    static func logicalPartitions(
        in extended: Entry, disk: any ByteSource, sectorSize: UInt64, problems: inout [PartitionTable.Error]
    ) -> [Partition] {
        var result: [Partition] = []
        var visited = Set<UInt64>()
        let extStart = extended.startLBA
        let extEnd = extended.startLBA + extended.sectors
        var ebr = extStart
        var number = 5
        while true {
            guard visited.insert(ebr).inserted else {
                problems.append(.extendedChainLoop(lba: ebr))
                break
            }
            guard visited.count <= PartitionTable.Limits.maxLogicalPartitions else {
                problems.append(.tooManyLogicalPartitions(limit: PartitionTable.Limits.maxLogicalPartitions))
                break
            }
            guard ebr >= extStart, ebr < extEnd else {
                problems.append(.ebrOutsideExtended(lba: ebr))
                break
            }
            let (byte, overflow) = ebr.multipliedReportingOverflow(by: sectorSize)
            guard !overflow, let sector = try? disk.read(at: byte, count: 512) else {
                problems.append(.partitionStartsPastEnd(number: number, offset: overflow ? .max : byte, diskSize: disk.size))
                break
            }
            guard sector[510] == 0x55, sector[511] == 0xAA else {
                problems.append(.badEBRSignature(lba: ebr))
                break
            }
            let r = FieldReader(sector, structure: "extended boot record", at: byte)
            guard let type0 = try? r.u8(446 + 4), let start0 = try? r.u32(446 + 8), let count0 = try? r.u32(446 + 12),
                let status0 = try? r.u8(446), let type1 = try? r.u8(462 + 4), let start1 = try? r.u32(462 + 8)
            else { break }
            if type0 != 0, count0 != 0 {
                if let p = PartitionTable.makePartition(
                    number: number, type: .mbr(type0), startSector: ebr + UInt64(start0), sectors: UInt64(count0),
                    sectorSize: sectorSize, bootable: status0 == 0x80, name: "", diskSize: disk.size,
                    problems: &problems)
                {
                    result.append(p)
                }
                number += 1
            }
            guard type1 != 0, start1 != 0 else { break }
            ebr = extStart + UInt64(start1)
        }
        return result
    }
}
