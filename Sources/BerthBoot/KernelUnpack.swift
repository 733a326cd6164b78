import BerthDisk
import BerthPOSIX

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The uncompressed kernel (`vmlinux`, an ELF) inside an x86 bzImage, for QEMU's PVH direct
/// boot: given an ELF with a PVH entry note, QEMU starts the kernel at its 32-bit PVH entry, and
/// the guest skips the bzImage's own decompression (about a sixth of a direct-kernel boot under
/// TCG, measured with `bench/density/boot.py`).
///
/// The bzImage may come from a guest, so this is hostile input: every offset and length is
/// checked, output is capped, and `berth-bootloader --unpack-kernel` runs it in its sandbox.
/// Only LZ4 payloads (Debian's and Ubuntu's kernels) are decoded; any other payload, or an ELF
/// without the note, is `notUnpackable` and the caller boots the bzImage as before.
public enum KernelUnpack {
    /// Why a kernel is booted as it is.
    public struct NotUnpackable: Error, Sendable, Equatable, CustomStringConvertible {
        public var reason: String
        public var description: String { reason }
    }

    /// The output's cap (a stripped distribution vmlinux is 50–70 MiB).
    public static let maxOutputBytes = 256 << 20
    /// The input's cap: a bzImage is read whole (`ByteSourceLimits.maxReadLength`).
    public static let maxInputBytes = 64 << 20
    /// LZ4's legacy frame: this magic, then blocks of `u32 LE compressed size` + data, each
    /// decoding (independently) to at most 8 MiB.
    static let lz4LegacyMagic: [UInt8] = [0x02, 0x21, 0x4C, 0x18]
    static let lz4LegacyBlock = 8 << 20
    /// `XEN_ELFNOTE_PHYS32_ENTRY`, the note QEMU's PVH loader looks for.
    static let pvhNoteType: UInt32 = 18

    /// The output file's name, in the current directory (`berth-bootloader --unpack-kernel`).
    public static let outputName = "vmlinux"

    /// Unpacks the bzImage `image` into a new file `path` (mode 0644; it must not exist).
    /// - Throws: `NotUnpackable` when the kernel is to be booted as it is (the file is then
    ///   removed); `BootError.write` when the file cannot be written.
    public static func unpack(_ image: FileSource, to path: String) throws {
        guard image.size <= UInt64(maxInputBytes) else { throw NotUnpackable(reason: "the kernel is over \(maxInputBytes) bytes") }
        let bytes = try image.read(at: 0, count: Int(image.size))
        let compressed = try payload(bytes)
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw BootError.write(path: path, errno: errno) }
        var done = false
        defer {
            close(fd)
            if !done { unlink(path) }
        }
        _ = try decodeLZ4Legacy(compressed) { block in
            do throws(SystemCallError) { try BerthPOSIX.writeAll(fd, block) } catch { throw BootError.write(path: path, errno: error.errno) }
        }
        let output = try FileSource(path: path)
        guard try hasPVHEntry(read: { offset, count in (try? output.read(at: UInt64(offset), count: count)) ?? [] }) else {
            throw NotUnpackable(reason: "the kernel has no PVH entry (CONFIG_PVH)")
        }
        done = true
    }

    /// The compressed payload of a bzImage: the setup header's `payload_offset` (0x248) and
    /// `payload_length` (0x24C), from the protected-mode code after `setup_sects` (0x1F1)
    /// sectors. Needs boot protocol 2.08+ (`HdrS` at 0x202).
    public static func payload(_ image: [UInt8]) throws -> ArraySlice<UInt8> {
        guard image.count > 0x250, image[0x1FE] == 0x55, image[0x1FF] == 0xAA,
            image[0x202..<0x206].elementsEqual(Array("HdrS".utf8)),
            let version = le16(image, 0x206), version >= 0x208,
            let offset = le32(image, 0x248), let length = le32(image, 0x24C)
        else { throw NotUnpackable(reason: "not a bzImage of boot protocol 2.08 or later") }
        let setupSectors = image[0x1F1] == 0 ? 4 : Int(image[0x1F1])
        let start = (setupSectors + 1) * 512 + Int(offset)
        let (end, overflow) = start.addingReportingOverflow(Int(length))
        guard !overflow, end <= image.count, length > 0 else {
            throw NotUnpackable(reason: "the bzImage's payload lies outside the file")
        }
        return image[start..<end]
    }

    /// Decodes `payload` (LZ4 legacy) and hands each decoded block to `write`; returns the
    /// bytes decoded. The kernel's build appends the decoded size (4 bytes) after the last block.
    public static func decodeLZ4Legacy(
        _ payload: ArraySlice<UInt8>, maxOutput: Int = maxOutputBytes, write: ([UInt8]) throws -> Void
    ) throws -> Int {
        guard payload.starts(with: lz4LegacyMagic) else {
            throw NotUnpackable(reason: "the payload is not LZ4 (only LZ4 kernels are unpacked)")
        }
        var at = payload.startIndex + 4
        var total = 0
        var block = [UInt8](repeating: 0, count: lz4LegacyBlock)
        while payload.endIndex - at >= 4 {
            guard let size = le32(payload, at) else { break }
            let left = payload.endIndex - at - 4
            if UInt32(size) == 0x184C_2102 {  // another frame follows
                at += 4
                continue
            }
            guard Int(size) <= left else {
                // The size trailer: exactly 4 bytes left, naming what was decoded.
                guard left == 0 else { throw NotUnpackable(reason: "the LZ4 payload is truncated") }
                break
            }
            let produced = try decodeBlock(payload[(at + 4)..<(at + 4 + Int(size))], into: &block)
            total += produced
            guard total <= maxOutput else { throw NotUnpackable(reason: "the kernel decodes to over \(maxOutput) bytes") }
            try write(Array(block[0..<produced]))
            at += 4 + Int(size)
        }
        guard total > 0 else { throw NotUnpackable(reason: "the LZ4 payload is empty") }
        return total
    }

    /// One LZ4 block (sequences of literals and back-references within the block) into `out`;
    /// returns the bytes produced. Every length and offset is checked against both buffers.
    static func decodeBlock(_ input: ArraySlice<UInt8>, into out: inout [UInt8]) throws -> Int {
        let bad = NotUnpackable(reason: "the LZ4 payload is corrupt")
        return try input.withUnsafeBufferPointer { src in
            try out.withUnsafeMutableBufferPointer { dst in
                guard let from = src.baseAddress, let to = dst.baseAddress else { throw bad }
                var i = 0
                var o = 0
                func length(_ nibble: Int) throws -> Int {
                    var n = nibble
                    guard nibble == 15 else { return n }
                    while true {
                        guard i < src.count else { throw bad }
                        let b = Int(src[i])
                        i += 1
                        n += b
                        guard n <= dst.count else { throw bad }
                        if b != 255 { return n }
                    }
                }
                while i < src.count {
                    let token = Int(src[i])
                    i += 1
                    let literals = try length(token >> 4)
                    guard literals <= src.count - i, literals <= dst.count - o else { throw bad }
                    if literals > 0 { memcpy(to + o, from + i, literals) }
                    i += literals
                    o += literals
                    if i == src.count { break }  // the last sequence has literals only
                    guard src.count - i >= 2 else { throw bad }
                    let offset = Int(src[i]) | Int(src[i + 1]) << 8
                    i += 2
                    let match = try length(token & 15) + 4
                    guard offset > 0, offset <= o, match <= dst.count - o else { throw bad }
                    if offset >= match {
                        memcpy(to + o, to + o - offset, match)
                    } else {
                        for k in 0..<match { dst[o + k] = dst[o + k - offset] }
                    }
                    o += match
                }
                return o
            }
        }
    }

    /// Whether an ELF64 x86-64 image (read through `read(offset, count)`) has a PVH entry:
    /// a `PT_NOTE` segment holding a "Xen" note of type 18. At most 64 program headers and
    /// 64 KiB of notes are looked at.
    public static func hasPVHEntry(read: (Int, Int) throws -> [UInt8]) throws -> Bool {
        let header = try read(0, 64)
        guard header.count == 64, header.starts(with: [0x7F, 0x45, 0x4C, 0x46, 2, 1]), le16(header, 18) == 62,
            let phoff = le64(header, 32), let phentsize = le16(header, 54), let phnum = le16(header, 56),
            phentsize >= 56, phnum <= 64, phoff < UInt64(maxOutputBytes)
        else { return false }
        for index in 0..<Int(phnum) {
            let entry = try read(Int(phoff) + index * Int(phentsize), 56)
            guard entry.count == 56, le32(entry, 0) == 4, let offset = le64(entry, 8), let size = le64(entry, 32),
                offset < UInt64(maxOutputBytes), size <= 65536
            else { continue }
            if hasPVHNote(try read(Int(offset), Int(size))) { return true }
        }
        return false
    }

    /// Walks one note segment: `namesz`, `descsz`, `type`, then name and desc, each padded to 4.
    static func hasPVHNote(_ notes: [UInt8]) -> Bool {
        var at = 0
        while notes.count - at >= 12, let nameSize = le32(notes, at), let descSize = le32(notes, at + 4),
            let type = le32(notes, at + 8)
        {
            let name = at + 12
            let desc = name + (Int(nameSize) + 3) & ~3
            let next = desc + (Int(descSize) + 3) & ~3
            guard nameSize <= 64, descSize <= 65536, next <= notes.count else { return false }
            if type == pvhNoteType, nameSize == 4, notes[name..<(name + 4)].elementsEqual([0x58, 0x65, 0x6E, 0]) { return true }
            at = next
        }
        return false
    }

    static func le16<C: RandomAccessCollection<UInt8>>(_ b: C, _ at: C.Index) -> UInt16? where C.Index == Int {
        guard at >= b.startIndex, at + 2 <= b.endIndex else { return nil }
        return UInt16(b[at]) | UInt16(b[at + 1]) << 8
    }

    static func le32<C: RandomAccessCollection<UInt8>>(_ b: C, _ at: C.Index) -> UInt32? where C.Index == Int {
        guard at >= b.startIndex, at + 4 <= b.endIndex else { return nil }
        return (0..<4).reduce(UInt32(0)) { $0 | UInt32(b[at + $1]) << (8 * UInt32($1)) }
    }

    static func le64<C: RandomAccessCollection<UInt8>>(_ b: C, _ at: C.Index) -> UInt64? where C.Index == Int {
        guard at >= b.startIndex, at + 8 <= b.endIndex else { return nil }
        return (0..<8).reduce(UInt64(0)) { $0 | UInt64(b[at + $1]) << (8 * UInt64($1)) }
    }
}
