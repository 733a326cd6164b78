/// One partition of a disk: where it lies and what its table says it holds.
public struct Partition: Sendable, Equatable, CustomStringConvertible {
    /// The partition type as its table records it.
    public enum TypeCode: Sendable, Equatable, CustomStringConvertible {
        case mbr(UInt8)
        case gpt(GPT.GUID)

        public var description: String {
            switch self {
            case .mbr(let code):
                let hex = String(code, radix: 16)
                return "0x" + (hex.count < 2 ? "0" + hex : hex)
            case .gpt(let guid): return guid.description
            }
        }
    }

    /// The number Linux gives it: 1–4 for MBR primaries, 5 and up for logical partitions,
    /// 1 and up for GPT entries (the entry's index + 1).
    public var number: Int
    public var type: TypeCode
    /// Byte offset of the first byte on the disk.
    public var offset: UInt64
    /// Length in bytes (clipped to the end of the disk when the table overstates it).
    public var length: UInt64
    /// MBR active flag, or the GPT "legacy BIOS bootable" attribute.
    public var bootable: Bool
    /// GPT partition name (empty for MBR).
    public var name: String

    public init(number: Int, type: TypeCode, offset: UInt64, length: UInt64, bootable: Bool = false, name: String = "") {
        self.number = number
        self.type = type
        self.offset = offset
        self.length = length
        self.bootable = bootable
        self.name = name
    }

    /// An LVM2 physical volume by its type code (MBR 0x8e, GPT E6D6D379-…).
    public var isLVM: Bool {
        switch type {
        case .mbr(let code): code == 0x8E
        case .gpt(let guid): guid == GPT.GUID.linuxLVM
        }
    }

    /// This partition's bytes as a source.
    public func source(in disk: any ByteSource) throws -> SliceSource {
        try disk.slice(offset: offset, length: length)
    }

    public var description: String {
        "partition \(number) (type \(type), \(length) bytes at \(offset)\(name.isEmpty ? "" : ", \"\(name)\""))"
    }
}

/// A disk's partition table: MBR (with logical partitions), GPT, or none.
public struct PartitionTable: Sendable, Equatable {
    public enum Scheme: String, Sendable, Equatable {
        /// No recognizable table: the whole disk is one volume (PyGRUB's rule).
        case none
        case mbr
        case gpt
    }

    public var scheme: Scheme
    public var sectorSize: UInt64
    /// In table order: MBR primaries 1–4 (extended containers left out), then logical
    /// partitions in chain order; GPT entries in array order. Empty entries are skipped.
    public var partitions: [Partition]
    /// Damage that was survived: a looping EBR chain, a broken primary GPT replaced by the
    /// backup, an entry past the end of the disk.
    public var problems: [Error]

    public init(scheme: Scheme, sectorSize: UInt64, partitions: [Partition], problems: [Error] = []) {
        self.scheme = scheme
        self.sectorSize = sectorSize
        self.partitions = partitions
        self.problems = problems
    }

    /// Limits on structures a hostile table controls.
    public enum Limits {
        /// Logical partitions followed in an extended chain; Linux stops far lower in practice.
        public static let maxLogicalPartitions = 128
        /// GPT entries read; the specification's minimum array is 128, tools never exceed a few hundred.
        public static let maxGPTEntries = 4096
        /// Bytes of GPT entry array read (XSA-25: a size field must not drive an allocation).
        public static let maxGPTEntryArrayBytes = 1 << 20
    }

    public enum Error: Swift.Error, CustomStringConvertible, Sendable, Equatable {
        case extendedChainLoop(lba: UInt64)
        case tooManyLogicalPartitions(limit: Int)
        case ebrOutsideExtended(lba: UInt64)
        case badEBRSignature(lba: UInt64)
        case partitionPastEnd(number: Int, endByte: UInt64, diskSize: UInt64)
        case partitionStartsPastEnd(number: Int, offset: UInt64, diskSize: UInt64)
        case gptHeader(lba: UInt64, reason: String)
        case gptEntries(lba: UInt64, reason: String)
        case primaryGPTBroken(reason: String)
        case noUsableGPT(primary: String, backup: String)
        case badSectorSize(UInt64)

        public var description: String {
            switch self {
            case .extendedChainLoop(let lba):
                "the extended partition chain loops back to sector \(lba); logical partitions after it are ignored"
            case .tooManyLogicalPartitions(let limit):
                "the extended partition chain has more than \(limit) logical partitions; the rest are ignored"
            case .ebrOutsideExtended(let lba):
                "an extended boot record at sector \(lba) lies outside the extended partition; the chain stops there"
            case .badEBRSignature(let lba):
                "the extended boot record at sector \(lba) has no 55AA signature; the chain stops there"
            case .partitionPastEnd(let number, let endByte, let diskSize):
                "partition \(number) ends at byte \(endByte), past the end of the \(diskSize)-byte disk; it was shortened — is the image truncated?"
            case .partitionStartsPastEnd(let number, let offset, let diskSize):
                "partition \(number) starts at byte \(offset), past the end of the \(diskSize)-byte disk; it was ignored — is the image truncated?"
            case .gptHeader(let lba, let reason):
                "GPT header at sector \(lba): \(reason)"
            case .gptEntries(let lba, let reason):
                "GPT entry array at sector \(lba): \(reason)"
            case .primaryGPTBroken(let reason):
                "the primary GPT is damaged (\(reason)); the backup at the end of the disk was used — repair it with 'sgdisk -e' or 'gdisk'"
            case .noUsableGPT(let primary, let backup):
                "the disk has a protective MBR but neither GPT is usable (primary: \(primary); backup: \(backup)); repair the table or pass an explicit offset"
            case .badSectorSize(let size):
                "sector size \(size) is not supported (use 512 or 4096)"
            }
        }
    }

    /// Reads the table of a disk. Never reads more than the table's own sectors.
    ///
    /// - Parameter sectorSize: 512 unless the disk is 4K-native; GPT is also looked for at 4096.
    /// - Throws: `PartitionTable.Error.noUsableGPT` when a protective MBR announces a GPT that
    ///   cannot be read; `ByteSourceError` on I/O failure. Survivable damage lands in `problems`.
    public static func read(from disk: any ByteSource, sectorSize: UInt64 = 512) throws -> PartitionTable {
        guard sectorSize == 512 || sectorSize == 4096 else { throw Error.badSectorSize(sectorSize) }
        guard disk.size >= 512 else { return PartitionTable(scheme: .none, sectorSize: sectorSize, partitions: []) }
        let sector0 = try disk.read(at: 0, count: 512)
        guard let mbr = MBR.parseBootSector(sector0) else {
            // Without an MBR a GPT may still be found (a disk whose MBR was wiped).
            if let table = try? GPT.read(from: disk, sectorSizes: [sectorSize, 4096]) { return table }
            return PartitionTable(scheme: .none, sectorSize: sectorSize, partitions: [])
        }
        if mbr.contains(where: { $0.type == 0xEE }) {
            return try GPT.read(from: disk, sectorSizes: sectorSize == 512 ? [512, 4096] : [sectorSize])
        }
        return MBR.table(from: mbr, disk: disk, sectorSize: sectorSize)
    }

    /// Builds a checked partition from a table entry; clips to the disk, or records why not.
    static func makePartition(
        number: Int, type: Partition.TypeCode, startSector: UInt64, sectors: UInt64, sectorSize: UInt64,
        bootable: Bool, name: String, diskSize: UInt64, problems: inout [Error]
    ) -> Partition? {
        let (offset, o1) = startSector.multipliedReportingOverflow(by: sectorSize)
        let (length, o2) = sectors.multipliedReportingOverflow(by: sectorSize)
        guard !o1, offset < diskSize else {
            problems.append(.partitionStartsPastEnd(number: number, offset: o1 ? .max : offset, diskSize: diskSize))
            return nil
        }
        var clipped = length
        let (end, o3) = offset.addingReportingOverflow(length)
        if o2 || o3 || end > diskSize {
            problems.append(.partitionPastEnd(number: number, endByte: (o2 || o3) ? .max : end, diskSize: diskSize))
            clipped = diskSize - offset
        }
        return Partition(number: number, type: type, offset: offset, length: clipped, bootable: bootable, name: name)
    }
}
