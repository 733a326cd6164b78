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
