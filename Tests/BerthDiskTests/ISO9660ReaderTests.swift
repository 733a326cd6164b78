import Foundation
import Testing

@testable import BerthDisk

@Suite struct ISO9660ReaderTests {
    @Test func rockRidgeTreeMatchesSource() throws {
        let fs = try ISO9660FileSystem(source: try FSReadFixtures.image("fsread-rr-joliet.iso"))
        #expect(fs.names == .rockRidge)
        #expect(fs.volumeID == "BERTH_RRJ")
        let files = try FSReadFixtures.compareTree(fs, root: try FSReadFixtures.sourceRoot(), linkReader: { try fs.readLink($0) })
        #expect(files > 400)
        // Rock Ridge names are exact; a case-folded lookup still finds them.
        #expect(try fs.read("/Boot/GRUB/grub.CFG", limit: 4096) == (try fs.read("/boot/grub/grub.cfg", limit: 4096)))
        #expect(try fs.read("/remote-link", limit: 100) == Array("deep file\n".utf8))
        #expect(try fs.read("/small/kernel-link", limit: 1 << 20).count == 300_000)
        #expect(throws: FileSystemError.symlinkLoop(path: "/loop-b")) { try fs.read("/loop-b", limit: 10) }
        // Ten levels of nesting: deeper than ISO9660's 8, so the tool relocated some (CL/RE).
        #expect(
            try fs.read("/nest/level0/level1/level2/level3/level4/level5/level6/level7/level8/level9/here.txt", limit: 100)
                == Array("level 9\n".utf8))
    }

    @Test func jolietTreeMatchesSource() throws {
        let fs = try ISO9660FileSystem(source: try FSReadFixtures.image("fsread-joliet.iso"))
        #expect(fs.names == .joliet)
        let files = try FSReadFixtures.compareTree(fs, root: try FSReadFixtures.sourceRoot("fsread-isosrc"))
        #expect(files > 400)
        #expect(try fs.list("/").contains("café-ünicode.txt"))
        #expect(try fs.stat("/A LONG FILE NAME WITH SPACES.TXT").size == 16)
    }

    @Test func plainNamesAreCaseInsensitiveWithoutVersions() throws {
        let fs = try ISO9660FileSystem(source: try FSReadFixtures.image("fsread-plain.iso"))
        #expect(fs.names == .plain)
        let root = try FSReadFixtures.sourceRoot("fsread-isosrc")
        #expect(try fs.read("/boot/grub/grub.cfg", limit: 4096) == (try FSReadFixtures.contents(root + "/boot/grub/grub.cfg")))
        #expect(try fs.read("/BOOT/VMLINUZ", limit: 1 << 20) == (try FSReadFixtures.contents(root + "/boot/vmlinuz")))
        #expect(try fs.read("/efi/boot/bootx64.efi", limit: 1 << 20) == (try FSReadFixtures.contents(root + "/EFI/BOOT/BOOTX64.EFI")))
        #expect(try fs.list("/BOOT").contains("GRUB"))
        #expect(!(try fs.list("/BOOT/GRUB")).contains { $0.contains(";") })
    }

    @Test func openServesRanges() throws {
        let fs = try ISO9660FileSystem(source: try FSReadFixtures.image("fsread-rr-joliet.iso"))
        let whole = try FSReadFixtures.contents(try FSReadFixtures.sourceRoot() + "/boot/initrd.img")
        let file = try fs.open("/boot/initrd.img")
        #expect(file.size == UInt64(whole.count))
        #expect(file.segments.count == 1)
        #expect(try file.read(at: 0, count: 10) == Array(whole[0..<10]))
        #expect(try file.read(at: 1_000_000, count: 4096) == Array(whole[1_000_000..<1_004_096]))
        #expect(try file.read(at: UInt64(whole.count) - 5, count: 100) == Array(whole[(whole.count - 5)...]))
        #expect(try file.read(at: UInt64(whole.count), count: 100) == [])
        #expect(throws: FileSystemError.notAFile(path: "/boot")) { try fs.open("/boot") }
    }

    @Test func matchesOnlyISO() throws {
        #expect(ISO9660FileSystem.matches(try FSReadFixtures.image("fsread-plain.iso")))
        #expect(!ISO9660FileSystem.matches(try FSReadFixtures.image("fsread-fat12.img")))
        #expect(throws: ISO9660FileSystem.Error.self) { try ISO9660FileSystem(source: MemorySource([UInt8](repeating: 0, count: 40000))) }
    }

    @Test func multiExtentFileIsJoined() throws {
        // Build a tiny image by hand: a plain PVD and a root holding one file in two extents.
        var image = [UInt8](repeating: 0, count: 24 * 2048)
        func put(_ at: Int, _ bytes: [UInt8]) { image.replaceSubrange(at..<at + bytes.count, with: bytes) }
        func both32(_ v: UInt32) -> [UInt8] {
            [
                UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v >> 16 & 0xFF), UInt8(v >> 24), UInt8(v >> 24), UInt8(v >> 16 & 0xFF),
                UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF),
            ]
        }
        func record(lba: UInt32, length: UInt32, flags: UInt8, name: [UInt8]) -> [UInt8] {
            var r = [UInt8](repeating: 0, count: 33 + name.count + (name.count % 2 == 0 ? 1 : 0))
            r[0] = UInt8(r.count)
            r.replaceSubrange(2..<10, with: both32(lba))
            r.replaceSubrange(10..<18, with: both32(length))
            r[25] = flags
            r[32] = UInt8(name.count)
            r.replaceSubrange(33..<33 + name.count, with: name)
            return r
        }
        put(16 * 2048, [1] + Array("CD001".utf8) + [1])
        put(16 * 2048 + 128, [0, 8, 8, 0])
        put(16 * 2048 + 156, record(lba: 18, length: 2048, flags: 2, name: [0]))
        put(17 * 2048, [255] + Array("CD001".utf8) + [1])
        var dir = record(lba: 18, length: 2048, flags: 2, name: [0]) + record(lba: 18, length: 2048, flags: 2, name: [1])
        dir += record(lba: 20, length: 2048, flags: 0x80, name: Array("BIG.BIN;1".utf8))
        dir += record(lba: 22, length: 100, flags: 0, name: Array("BIG.BIN;1".utf8))
        put(18 * 2048, dir)
        put(20 * 2048, [UInt8](repeating: 0xAA, count: 2048))
        put(22 * 2048, [UInt8](repeating: 0xBB, count: 100))
        let fs = try ISO9660FileSystem(source: MemorySource(image))
        let file = try fs.open("/big.bin")
        #expect(file.size == 2148)
        #expect(file.segments.count == 2)
        #expect(try file.read(at: 2040, count: 16) == [UInt8](repeating: 0xAA, count: 8) + [UInt8](repeating: 0xBB, count: 8))
        #expect(try fs.list("/") == ["BIG.BIN"])
    }
}

@Suite struct ISO9660ZisofsTests {
    @Test func compressedFilesAreRefusedNotServedRaw() throws {
        let fs = try ISO9660FileSystem(source: try FSReadFixtures.image("fsread-zisofs.iso"))
        #expect(fs.names == .rockRidge)
        #expect(try fs.list("/") == ["text.txt"])
        #expect(throws: ISO9660FileSystem.Error.self) { try fs.read("/text.txt", limit: 1 << 20) }
        #expect(throws: ISO9660FileSystem.Error.self) { try fs.open("/text.txt") }
    }
}
