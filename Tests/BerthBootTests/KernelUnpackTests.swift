import BerthDisk
import Testing

@testable import BerthBoot

#if canImport(Glibc)
    import Glibc
#endif

/// `KernelUnpack`: the ELF inside a bzImage for QEMU's PVH boot, from (possibly hostile) bytes.
@Suite struct KernelUnpackTests {
    typealias NotUnpackable = KernelUnpack.NotUnpackable

    /// "abc", a 9-byte match at offset 3 (overlapping: it repeats the 3 bytes), then "xyz".
    static let block: [UInt8] = [0x35] + Array("abc".utf8) + [3, 0] + [0x30] + Array("xyz".utf8)

    static func frame(_ blocks: [[UInt8]], trailer: UInt32?) -> [UInt8] {
        var out = KernelUnpack.lz4LegacyMagic
        for block in blocks { out += le32(UInt32(block.count)) + block }
        if let trailer { out += le32(trailer) }
        return out
    }

    static func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }

    func decode(_ bytes: [UInt8]) throws -> [UInt8] {
        var out: [UInt8] = []
        _ = try KernelUnpack.decodeLZ4Legacy(bytes[...]) { out += $0 }
        return out
    }

    @Test func decodesLiteralsAndOverlappingMatches() throws {
        let expected = Array("abcabcabcabcxyz".utf8)
        #expect(try decode(Self.frame([Self.block], trailer: 15)) == expected)
        #expect(try decode(Self.frame([Self.block, Self.block], trailer: 30)) == expected + expected)
        // A long literal run: nibble 15 plus extra length bytes.
        let long = [UInt8](repeating: 0x41, count: 300)
        #expect(try decode(Self.frame([[0xF0, 255, 30] + long], trailer: nil)) == long)
    }

    @Test(
        arguments: [
            [0x35, 0x61, 0x62, 0x63, 0, 0, 0x30, 0x78],  // offset 0
            [0x35, 0x61, 0x62, 0x63, 9, 0, 0x30, 0x78],  // offset before the block's start
            [0x35, 0x61, 0x62, 0x63, 3],  // offset cut short
            [0x90, 0x61],  // 9 literals, 1 present
            [0xF0, 255, 255],  // a length that never ends
        ] as [[UInt8]])
    func refusesCorruptBlocks(_ block: [UInt8]) {
        #expect(throws: NotUnpackable.self) { try decode(Self.frame([block], trailer: nil)) }
    }

    @Test func refusesTruncatedFramesAndOtherFormats() {
        var truncated = Self.frame([Self.block], trailer: nil)
        truncated.removeLast(2)
        #expect(throws: NotUnpackable.self) { try decode(truncated) }
        #expect(throws: NotUnpackable.self) { try decode([0x28, 0xB5, 0x2F, 0xFD, 0, 0, 0, 0]) }  // zstd
        #expect(throws: NotUnpackable.self) { try decode(KernelUnpack.lz4LegacyMagic) }
    }

    @Test func capsTheOutput() {
        #expect(throws: NotUnpackable.self) {
            _ = try KernelUnpack.decodeLZ4Legacy(Self.frame([Self.block, Self.block], trailer: nil)[...], maxOutput: 20) { _ in }
        }
    }

    @Test func findsThePayloadOnlyInsideTheFile() throws {
        var image = [UInt8](repeating: 0, count: 0x1000)
        image[0x1F1] = 1  // setup: 2 sectors, the payload from 0x400
        image[0x1FE] = 0x55
        image[0x1FF] = 0xAA
        image.replaceSubrange(0x202..<0x206, with: Array("HdrS".utf8))
        image.replaceSubrange(0x206..<0x208, with: [0x0F, 0x02])
        image.replaceSubrange(0x248..<0x250, with: Self.le32(0x10) + Self.le32(0x20))
        #expect(try KernelUnpack.payload(image).indices == 0x410..<0x430)
        image.replaceSubrange(0x24C..<0x250, with: Self.le32(0xFFFF_FFFF))
        #expect(throws: NotUnpackable.self) { try KernelUnpack.payload(image) }
        image.replaceSubrange(0x206..<0x208, with: [0x07, 0x02])  // protocol 2.07: no payload fields
        #expect(throws: NotUnpackable.self) { try KernelUnpack.payload(image) }
    }

    @Test func findsTheXenPVHNote() {
        func note(_ name: [UInt8], type: UInt32, desc: Int = 8) -> [UInt8] {
            var n = Self.le32(UInt32(name.count)) + Self.le32(UInt32(desc)) + Self.le32(type) + name
            while n.count % 4 != 0 { n.append(0) }
            return n + [UInt8](repeating: 0, count: (desc + 3) & ~3)
        }
        let xen: [UInt8] = [0x58, 0x65, 0x6E, 0]
        #expect(KernelUnpack.hasPVHNote(note(xen, type: 6) + note(xen, type: 18)))
        #expect(!KernelUnpack.hasPVHNote(note(xen, type: 6)))
        #expect(!KernelUnpack.hasPVHNote(note(Array("GNU\0".utf8), type: 18)))
        // A descsz running past the segment ends the walk.
        #expect(!KernelUnpack.hasPVHNote(Self.le32(4) + Self.le32(0xFFFF) + Self.le32(18) + xen))
    }

    /// The test guest's kernel (Debian 6.1, LZ4): the ELF it unpacks to has the PVH entry and
    /// the size the build appended after the payload.
    @Test func unpacksTheTestKernel() throws {
        let kernel = try SandboxTests.guestKernel()
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let source = try FileSource(path: kernel)
        try KernelUnpack.unpack(source, to: dir.path + "/vmlinux")
        let payload = try KernelUnpack.payload(try source.read(at: 0, count: Int(source.size)))
        let trailer = payload.suffix(4).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        let elf = try FileSource(path: dir.path + "/vmlinux")
        #expect(elf.size == UInt64(trailer))
        #expect(try elf.read(at: 0, count: 4) == [0x7F, 0x45, 0x4C, 0x46])
        // Never over an existing file.
        #expect(throws: BootError.self) { try KernelUnpack.unpack(source, to: dir.path + "/vmlinux") }
        // A bzImage-less file is not unpacked, and leaves nothing behind.
        #expect(throws: NotUnpackable.self) { try KernelUnpack.unpack(elf, to: dir.path + "/again") }
        #expect(access(dir.path + "/again", F_OK) != 0)
    }
}
