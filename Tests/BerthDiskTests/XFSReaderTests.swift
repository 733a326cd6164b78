import Foundation
import Testing

@testable import BerthDisk

@Suite struct XFSReaderTests {
    static let images = ["fsread-xfs-v4.img", "fsread-xfs-v5.img"]

    @Test(arguments: images) func wholeTreeMatchesSource(image: String) throws {
        let fs = try XFSFileSystem(source: try FSReadFixtures.image(image))
        let root = try FSReadFixtures.sourceRoot()
        // The prototype format cannot name files with spaces, so the script leaves them out.
        // holes.bin has holes punched by the script: see holesAndUnwrittenExtentsReadAsZeros.
        let files = try FSReadFixtures.compareTree(fs, root: root, skip: { $0.contains(" ") || $0 == "/holes.bin" })
        #expect(files > 400)
    }

    @Test(arguments: images) func directoryFormsAreAllPresent(image: String) throws {
        let fs = try XFSFileSystem(source: try FSReadFixtures.image(image))
        let expected: [(String, XFSFileSystem.ForkFormat, Int)] = [
            ("/small", .local, 3), ("/blockdir", .extents, 60), ("/leafdir", .extents, 400), ("/nodedir", .btree, 3000),
        ]
        for (path, format, count) in expected {
            let node = try fs.resolve(path)
            #expect(node.format == format, "\(path)")
            #expect(try fs.list(path).count == count, "\(path)")
        }
        #expect(try fs.list("/nodedir").first == "node-directory-entry-00000.txt")
    }

    @Test(arguments: images) func symlinksResolve(image: String) throws {
        let fs = try XFSFileSystem(source: try FSReadFixtures.image(image))
        let cfg = try fs.read("/boot/grub/grub.cfg", limit: 4096)
        #expect(try fs.read("/grub-link", limit: 4096) == cfg)
        #expect(try fs.read("/abs-boot/grub/grub.cfg", limit: 4096) == cfg)
        #expect(try fs.read("/small/kernel-link", limit: 1 << 20) == (try fs.read("/boot/vmlinuz", limit: 1 << 20)))
        #expect(try fs.read("/remote-link", limit: 100) == Array("deep file\n".utf8))
        #expect(try fs.resolve("/remote-link", followLast: false).format == .extents)
        #expect(try fs.stat("/small/../boot/./grub").kind == .directory)
        #expect(throws: FileSystemError.symlinkLoop(path: "/loop-a")) { try fs.stat("/loop-a") }
        #expect(throws: FileSystemError.notFound(path: "/boot/nope")) { try fs.stat("/boot/nope") }
        #expect(throws: FileSystemError.notADirectory(path: "/empty.txt/x")) { try fs.stat("/empty.txt/x") }
        #expect(throws: FileSystemError.tooLarge(path: "/boot/vmlinuz", size: 300_000, limit: 1000)) {
            try fs.read("/boot/vmlinuz", limit: 1000)
        }
    }

    @Test(arguments: images) func holesAndUnwrittenExtentsReadAsZeros(image: String) throws {
        let fs = try XFSFileSystem(source: try FSReadFixtures.image(image))
        var want = try FSReadFixtures.contents(try FSReadFixtures.sourceRoot() + "/holes.bin")
        for block in Array(20..<40) + Array(70..<80) {
            want.replaceSubrange(block * 4096..<(block + 1) * 4096, with: repeatElement(0, count: 4096))
        }
        let node = try fs.resolve("/holes.bin")
        let extents = try fs.extents(of: node)
        #expect(extents.count == 4)
        #expect(extents.map(\.unwritten) == [false, false, true, false])
        #expect(try fs.read("/holes.bin", limit: 1 << 20) == want)
    }

    @Test func matchesOnlyXFS() throws {
        #expect(XFSFileSystem.matches(try FSReadFixtures.image("fsread-xfs-v5.img")))
        #expect(!XFSFileSystem.matches(try FSReadFixtures.image("fsread-fat16.img")))
        #expect(!XFSFileSystem.matches(MemorySource([])))
        #expect(throws: XFSFileSystem.Error.self) { try XFSFileSystem(source: MemorySource([UInt8](repeating: 0, count: 4096))) }
    }
}

/// Another source with some byte ranges replaced.
struct OverlaySource: ByteSource {
    let base: any ByteSource
    let patches: [(offset: UInt64, bytes: [UInt8])]
    var size: UInt64 { base.size }
    func read(at offset: UInt64, count: Int) throws -> [UInt8] {
        var out = try base.read(at: offset, count: count)
        for p in patches {
            for (i, byte) in p.bytes.enumerated() {
                let at = p.offset + UInt64(i)
                if at >= offset && at < offset + UInt64(count) { out[Int(at - offset)] = byte }
            }
        }
        return out
    }
}

@Suite struct XFSBtreeFileTests {
    static func be(_ value: UInt64, _ bytes: Int) -> [UInt8] { (0..<bytes).reversed().map { UInt8(truncatingIfNeeded: value >> (8 * UInt64($0))) } }

    /// mkfs.xfs never writes a regular file in btree form, so move holes.bin's four real extent
    /// records into a bmap btree leaf in a free block and point the inode's root at it, the
    /// layout the kernel uses once a file outgrows its inode.
    @Test(arguments: XFSReaderTests.images) func btreeFormatRegularFile(image: String) throws {
        let source = try FSReadFixtures.image(image)
        let fs = try XFSFileSystem(source: source)
        let plain = try fs.read("/holes.bin", limit: 1 << 20)
        let node = try fs.resolve("/holes.bin")
        #expect(node.format == .extents)
        let dblocks = BinaryFields(try source.read(at: 0, count: 16)).be64(8)
        let lastAG = fs.sb.agCount - 1
        let fsb = lastAG << UInt64(fs.sb.agBlockLog) | (dblocks - lastAG * fs.sb.agBlocks - 1)
        let blockOffset = try fs.byteOffset(ofBlock: fsb, inode: 0)
        #expect(try source.read(at: blockOffset, count: fs.sb.blockSize).allSatisfy { $0 == 0 }, "the last block is not free")
        let v5 = fs.sb.isV5
        var leaf = Array((v5 ? "BMA3" : "BMAP").utf8) + Self.be(0, 2) + Self.be(4, 2) + Self.be(.max, 8) + Self.be(.max, 8)
        if v5 { leaf += Self.be(blockOffset / 512, 8) + [UInt8](repeating: 0, count: 24) + Self.be(node.number, 8) + [UInt8](repeating: 0, count: 8) }
        leaf += node.fork[0..<64]
        let rootMax = (node.fork.count - 4) / 16
        var root = Self.be(1, 2) + Self.be(1, 2) + Self.be(0, 8)
        root += [UInt8](repeating: 0, count: (rootMax - 1) * 8) + Self.be(fsb, 8)
        let forkStart = node.offset + UInt64(v5 ? 176 : 100)
        let patched = OverlaySource(
            base: source,
            patches: [
                (node.offset + 5, [3]), (forkStart, root), (blockOffset, leaf),
            ])
        let btree = try XFSFileSystem(source: patched)
        #expect(try btree.resolve("/holes.bin").format == .btree)
        #expect(try btree.extents(of: try btree.resolve("/holes.bin")).count == 4)
        #expect(try btree.read("/holes.bin", limit: 1 << 20) == plain)
    }
}
