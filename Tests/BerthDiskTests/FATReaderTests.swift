import Foundation
import Testing

@testable import BerthDisk

@Suite struct FATReaderTests {
    static let images: [(String, FATFileSystem.Bits)] = [
        ("fsread-fat12.img", .fat12), ("fsread-fat16.img", .fat16), ("fsread-fat32.img", .fat32),
    ]

    @Test(arguments: images) func wholeTreeMatchesSource(image: String, bits: FATFileSystem.Bits) throws {
        let fs = try FATFileSystem(source: try FSReadFixtures.image(image))
        #expect(fs.bits == bits)
        let files = try FSReadFixtures.compareTree(fs, root: try FSReadFixtures.sourceRoot("fsread-fatsrc"))
        #expect(files > 450)
    }

    @Test(arguments: images) func namesAreCaseInsensitiveAndShortNamesWork(image: String, bits: FATFileSystem.Bits) throws {
        let fs = try FATFileSystem(source: try FSReadFixtures.image(image))
        let cfg = try fs.read("/boot/grub/grub.cfg", limit: 4096)
        #expect(try fs.read("/BOOT/GRUB/GRUB.CFG", limit: 4096) == cfg)
        #expect(try fs.read("/efi/boot/bootx64.efi", limit: 1 << 20).count == 70_001)
        #expect(try fs.read("/a long file name with spaces.txt", limit: 100) == Array("long names work\n".utf8))
        #expect(try fs.read("/ALONGF~1.TXT", limit: 100) == Array("long names work\n".utf8))
        #expect(try fs.list("/").contains("café-ünicode.txt"))
        #expect(try fs.stat("/leafdir").kind == .directory)
        #expect(try fs.list("/leafdir").count == 400)
        #expect(try fs.stat("/leafdir/../boot/.").kind == .directory)
        #expect(throws: FileSystemError.notFound(path: "/nope")) { try fs.stat("/nope") }
        #expect(throws: FileSystemError.notAFile(path: "/boot")) { try fs.read("/boot", limit: 10) }
    }

    @Test func matchesOnlyFAT() throws {
        #expect(FATFileSystem.matches(try FSReadFixtures.image("fsread-fat32.img")))
        #expect(!FATFileSystem.matches(try FSReadFixtures.image("fsread-xfs-v5.img")))
        #expect(!FATFileSystem.matches(MemorySource([1, 2, 3])))
    }

    @Test func longNameChecksumMatchesSpecification() {
        // "FOO     BAR" from the Microsoft FAT specification's algorithm, computed independently.
        var sum: UInt8 = 0
        for b in Array("FOO     BAR".utf8) { sum = ((sum & 1) != 0 ? 0x80 : 0) &+ (sum >> 1) &+ b }
        #expect(FATFileSystem.checksum(Array("FOO     BAR".utf8)) == sum)
        #expect(FATFileSystem.shortName(Array("README  TXT".utf8), caseFlags: 0x18) == "readme.txt")
        #expect(FATFileSystem.shortName(Array("NOEXT      ".utf8), caseFlags: 0) == "NOEXT")
    }
}
