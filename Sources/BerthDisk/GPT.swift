/// The GUID partition table: a header at LBA 1 (and a backup at the last LBA), each with a
/// CRC32 of itself and of its entry array.
public enum GPT {
    /// A GUID as GPT stores it: the first three fields little-endian.
    public struct GUID: Sendable, Hashable, CustomStringConvertible {
        public var bytes: [UInt8]

        /// From the 16 on-disk bytes.
        public init?(diskBytes: some Collection<UInt8>) {
            guard diskBytes.count == 16 else { return nil }
            bytes = Array(diskBytes)
        }

        /// From the text form `E6D6D379-F507-44C2-A23C-238F2A3DF928`.
        public init?(_ text: String) {
            let hex = text.filter { $0 != "-" }
            guard hex.count == 32 else { return nil }
            var raw: [UInt8] = []
            var it = hex.makeIterator()
            while let a = it.next(), let b = it.next() {
                guard let v = UInt8(String([a, b]), radix: 16) else { return nil }
                raw.append(v)
            }
            // Text order to disk order: reverse the first three fields.
            bytes =
                Array(raw[0..<4].reversed()) + Array(raw[4..<6].reversed()) + Array(raw[6..<8].reversed())
                + Array(raw[8..<16])
        }

        public var isZero: Bool { bytes.allSatisfy { $0 == 0 } }

        public var description: String {
            func hex(_ s: [UInt8]) -> String {
                s.map { b in
                    let h = String(b, radix: 16, uppercase: true)
                    return h.count < 2 ? "0" + h : h
                }.joined()
            }
            return hex(bytes[0..<4].reversed()) + "-" + hex(bytes[4..<6].reversed()) + "-"
                + hex(bytes[6..<8].reversed()) + "-" + hex(Array(bytes[8..<10])) + "-" + hex(Array(bytes[10..<16]))
        }

        private init(raw: [UInt8]) { bytes = raw }

        // Only called on the well-formed literals below.
        static func fixed(_ text: String) -> GUID { GUID(text) ?? GUID(raw: [UInt8](repeating: 0, count: 16)) }

        public static let linuxLVM = fixed("E6D6D379-F507-44C2-A23C-238F2A3DF928")
        public static let linuxFilesystem = fixed("0FC63DAF-8483-4772-8E79-3D69D8477DE4")
        public static let efiSystem = fixed("C12A7328-F81F-11D2-BA4B-00A0C93EC93B")
        public static let biosBoot = fixed("21686148-6449-6E6F-744E-656564454649")
    }

    struct Header {
        var myLBA: UInt64
        var alternateLBA: UInt64
        var firstUsable: UInt64
        var lastUsable: UInt64
        var entriesLBA: UInt64
        var entryCount: UInt32
        var entrySize: UInt32
        var entriesCRC: UInt32
    }

    /// Tries the primary header at each sector size, then the backup at the last LBA.
    static func read(from disk: any ByteSource, sectorSizes: [UInt64]) throws -> PartitionTable {
        var primaryReason: String?
        var backupReason: String?
        // Keep the most telling reason: a damaged header beats "no signature" at a wrong sector size.
        func note(_ error: Swift.Error, into reason: inout String?) {
            let signatureMissing: Bool
            if case .gptHeader(_, let r)? = error as? PartitionTable.Error, r == notGPT {
                signatureMissing = true
            } else {
                signatureMissing = false
            }
            if reason == nil || !signatureMissing { reason = "\(error)" }
        }
        let sizes = sectorSizes.filter { disk.size >= 3 * $0 }
        for sectorSize in sizes {
            do {
                return try table(disk: disk, sectorSize: sectorSize, headerLBA: 1, problems: [])
            } catch {
                note(error, into: &primaryReason)
            }
        }
        for sectorSize in sizes {
            do {
                return try table(
                    disk: disk, sectorSize: sectorSize, headerLBA: disk.size / sectorSize - 1,
                    problems: [.primaryGPTBroken(reason: primaryReason ?? "not found")])
            } catch {
                note(error, into: &backupReason)
            }
        }
        throw PartitionTable.Error.noUsableGPT(primary: primaryReason ?? "not found", backup: backupReason ?? "not found")
    }

    static let notGPT = "no 'EFI PART' signature"

    static func table(
        disk: any ByteSource, sectorSize: UInt64, headerLBA: UInt64, problems: [PartitionTable.Error]
    ) throws -> PartitionTable {
        var problems = problems
        let header = try readHeader(disk: disk, sectorSize: sectorSize, lba: headerLBA)
        let entries = try readEntries(disk: disk, sectorSize: sectorSize, header: header)
        var partitions: [Partition] = []
        for (index, raw) in entries.enumerated() {
            let r = FieldReader(raw, structure: "GPT entry \(index + 1)")
            guard let type = GUID(diskBytes: try r.slice(0, 16)), !type.isZero else { continue }
            let first = try r.u64(32)
            let last = try r.u64(40)
            let attributes = try r.u64(48)
            guard last >= first else {
                throw PartitionTable.Error.gptEntries(
                    lba: header.entriesLBA, reason: "entry \(index + 1) ends (\(last)) before it starts (\(first))")
            }
            let (sectors, overflow) = (last - first).addingReportingOverflow(1)
            if let p = PartitionTable.makePartition(
                number: index + 1, type: .gpt(type), startSector: first, sectors: overflow ? .max : sectors,
                sectorSize: sectorSize, bootable: attributes & 4 != 0, name: try utf16Name(r.slice(56, 72)),
                diskSize: disk.size, problems: &problems)
            {
                partitions.append(p)
            }
        }
        return PartitionTable(scheme: .gpt, sectorSize: sectorSize, partitions: partitions, problems: problems)
    }

    static func readHeader(disk: any ByteSource, sectorSize: UInt64, lba: UInt64) throws -> Header {
        let offset = lba * sectorSize
        let sector = try disk.read(at: offset, count: Int(sectorSize))
        let r = FieldReader(sector, structure: "GPT header", at: offset)
        func fail(_ reason: String) -> PartitionTable.Error { .gptHeader(lba: lba, reason: reason) }
        guard r.matches(0, "EFI PART") else { throw fail(notGPT) }
        let headerSize = try r.u32(12)
        guard headerSize >= 92, UInt64(headerSize) <= sectorSize else {
            throw fail("header size \(headerSize) is outside 92…\(sectorSize)")
        }
        var copy = Array(sector[0..<Int(headerSize)])
        for i in 16..<20 { copy[i] = 0 }
        let stored = try r.u32(16)
        let computed = DiskCRC32.ieee(copy)
        guard stored == computed else {
            throw fail("header CRC32 is \(hex(stored)) but the header's bytes give \(hex(computed))")
        }
        let header = Header(
            myLBA: try r.u64(24), alternateLBA: try r.u64(32), firstUsable: try r.u64(40), lastUsable: try r.u64(48),
            entriesLBA: try r.u64(72), entryCount: try r.u32(80), entrySize: try r.u32(84), entriesCRC: try r.u32(88))
        guard header.myLBA == lba else { throw fail("header says it lives at sector \(header.myLBA)") }
        return header
    }

    static func readEntries(disk: any ByteSource, sectorSize: UInt64, header: Header) throws -> [[UInt8]] {
        func fail(_ reason: String) -> PartitionTable.Error { .gptEntries(lba: header.entriesLBA, reason: reason) }
        let size = Int(header.entrySize)
        guard size >= 128, size % 8 == 0, size <= 4096 else { throw fail("entry size \(size) is not 128…4096") }
        guard header.entryCount <= PartitionTable.Limits.maxGPTEntries else {
            throw fail("\(header.entryCount) entries is over the limit of \(PartitionTable.Limits.maxGPTEntries)")
        }
        let total = Int(header.entryCount) * size
        guard total <= PartitionTable.Limits.maxGPTEntryArrayBytes else {
            throw fail("the \(total)-byte entry array is over the limit")
        }
        let (offset, overflow) = header.entriesLBA.multipliedReportingOverflow(by: sectorSize)
        guard !overflow else { throw fail("sector number overflows") }
        let bytes = try disk.read(at: offset, count: total)
        let computed = DiskCRC32.ieee(bytes)
        guard computed == header.entriesCRC else {
            throw fail("entry array CRC32 is \(hex(header.entriesCRC)) but its bytes give \(hex(computed))")
        }
        return (0..<Int(header.entryCount)).map { Array(bytes[$0 * size..<($0 + 1) * size]) }
    }

    static func utf16Name(_ raw: ArraySlice<UInt8>) -> String {
        var units: [UInt16] = []
        var i = raw.startIndex
        while i + 1 < raw.endIndex {
            let u = UInt16(raw[i]) | UInt16(raw[i + 1]) << 8
            if u == 0 { break }
            units.append(u)
            i += 2
        }
        return String(decoding: units, as: UTF16.self)
    }

    static func hex(_ v: UInt32) -> String { "0x" + String(v, radix: 16) }
}
