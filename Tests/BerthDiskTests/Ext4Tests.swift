import BerthDisk
import Foundation
import Testing

@Suite
struct Ext4Tests {
    static let images: [(image: String, tree: String, kind: String)] = [
        ("ext2.img", "ext2", "ext2"),
        ("ext3.img", "ext3", "ext3"),
        ("ext4.img", "ext4", "ext4"),
        ("ext4-1k.img", "ext4-1k", "ext4"),
        ("ext4-noextent.img", "ext4-noextent", "ext4"),
        ("ext4-metabg.img", "ext4-metabg", "ext4"),
        ("ext4-inline.img", "ext4-inline", "ext4"),
    ]

    @Test("every file, directory and symlink matches the source tree", arguments: images)
    func wholeTree(image: String, tree: String, kind: String) throws {
        let fs = try Ext4FileSystem(source: DiskFixture.image(image))
        #expect(fs.kind == kind)
        try DiskFixture.expectMatches(fs, tree: tree)
    }

    @Test("symlinks: fast, slow, absolute, chained, through directories, loops, dangling", arguments: images)
    func symlinks(image: String, tree: String, kind: String) throws {
        let fs = try Ext4FileSystem(source: DiskFixture.image(image))
        let root = DiskFixture.tree(tree)
        let grub = try DiskFixture.bytes(ofFile: root + "/boot/grub/grub.cfg")
        let kernel = try DiskFixture.bytes(ofFile: root + "/boot/vmlinuz-test")
        #expect(try fs.readLink("/boot/menu.lst") == "grub/grub.cfg")
        #expect(try fs.read("/boot/menu.lst", limit: 1 << 20) == grub)
        #expect(try fs.readLink("/long-link").utf8.count > 60)
        #expect(try fs.read("/long-link", limit: 1 << 20) == grub)
        #expect(DiskFixture.firstDifference(try fs.read("/vmlinuz", limit: 16 << 20), kernel) == nil)
        #expect(DiskFixture.firstDifference(try fs.read("/vmlinuz.chain", limit: 16 << 20), kernel) == nil)
        #expect(try fs.read("/bootdir/grub/grub.cfg", limit: 1 << 20) == grub)
        #expect(try fs.stat("/bootdir") == FileInfo(kind: .directory, size: try fs.stat("/boot").size))
        #expect(throws: FileSystemError.symlinkLoop(path: "/loop-a")) { try fs.stat("/loop-a") }
        #expect(throws: FileSystemError.symlinkLoop(path: "/loop-b/x")) { try fs.read("/loop-b/x", limit: 10) }
        #expect(throws: FileSystemError.notFound(path: "/a/b/c/d/e/f/g/h/i/j/slow-link-dangling")) {
            try fs.stat("/a/b/c/d/e/f/g/h/i/j/slow-link-dangling")
        }
        // ".." and "." resolve through real directory entries.
        #expect(try fs.read("/a/b/../b/./c/d/e/f/g/h/i/j/deep.txt", limit: 100) == Array("hello from deep\n".utf8))
        #expect(try fs.read("/../../boot/grub/grub.cfg", limit: 1 << 20) == grub)
    }

    @Test("path errors are the shared FileSystemError cases")
    func pathErrors() throws {
        let fs = try Ext4FileSystem(source: DiskFixture.image("ext4.img"))
        #expect(throws: FileSystemError.notFound(path: "/boot/nothing")) { try fs.stat("/boot/nothing") }
        #expect(throws: FileSystemError.notADirectory(path: "/empty")) { try fs.list("/empty") }
        #expect(throws: FileSystemError.notADirectory(path: "/empty/x")) { try fs.stat("/empty/x") }
        #expect(throws: FileSystemError.notAFile(path: "/boot")) { try fs.read("/boot", limit: 100) }
        let size = try fs.stat("/boot/vmlinuz-test").size
        #expect(throws: FileSystemError.tooLarge(path: "/boot/vmlinuz-test", size: size, limit: 1000)) {
            try fs.read("/boot/vmlinuz-test", limit: 1000)
        }
        #expect(try fs.read("/empty", limit: 0) == [])
        let deep = "/" + Array(repeating: "a", count: FileSystemLimits.maxPathComponents + 1).joined(separator: "/")
        #expect(throws: FileSystemError.notFound(path: deep)) { try fs.stat(deep) }
    }

    @Test("sparse files read holes as zeros (triple indirect at 1 KiB blocks)", arguments: ["ext2", "ext4-1k", "ext4"])
    func sparse(tree: String) throws {
        let fs = try Ext4FileSystem(source: DiskFixture.image(tree + ".img"))
        let data = try fs.read("/sparse.bin", limit: 128 << 20)
        #expect(data.count == 80 << 20)
        let line = Array("sparse79 000000000 berth disk fixture line\n".utf8)
        #expect(Array(data[(79 << 20)..<((79 << 20) + line.count)]) == line)
        #expect(data[(50 << 20)..<(50 << 20) + 4096].allSatisfy { $0 == 0 })
    }

    @Test("streaming gives the same bytes as reading, holes and inline data included", arguments: images)
    func streamMatchesRead(image: String, tree: String, kind: String) throws {
        let fs = try Ext4FileSystem(source: DiskFixture.image(image))
        for path in ["/vmlinuz", "/boot/grub/grub.cfg", "/sparse.bin"] {
            guard let whole = try? fs.read(path, limit: 128 << 20) else { continue }
            var streamed: [UInt8] = []
            var pieces = 0
            try fs.stream(path, limit: 128 << 20) { chunk in
                #expect(chunk.count <= 1 << 20)
                switch chunk {
                case .bytes(let bytes): streamed += bytes
                case .file(let range):
                    var bytes = [UInt8](repeating: 0, count: range.count)
                    let got = bytes.withUnsafeMutableBytes { pread(range.fd, $0.baseAddress, range.count, off_t(range.offset)) }
                    #expect(got == range.count)
                    streamed += bytes
                }
                pieces += 1
            }
            #expect(streamed.count == whole.count, "\(image) \(path)")
            #expect(DiskFixture.firstDifference(streamed, whole) == nil, "\(image) \(path)")
        }
        #expect(throws: FileSystemError.self) { try fs.stream("/vmlinuz", limit: 10) { _ in } }
    }

    @Test("a directory with an htree index lists every entry")
    func htree() throws {
        let fs = try Ext4FileSystem(source: DiskFixture.image("ext4.img"))
        let names = try fs.list("/many")
        #expect(names.count == 400)
        #expect(Set(names).count == 400)
        #expect(try fs.read("/many/file-with-a-longish-name-399", limit: 100) == Array("entry 399\n".utf8))
    }

    @Test("lazy: opening and reading the menu touches a few blocks, not the image")
    func lazy() throws {
        let recording = RecordingSource(try DiskFixture.image("ext4.img"))
        let fs = try Ext4FileSystem(source: recording)
        _ = try fs.read("/boot/grub/grub.cfg", limit: 1 << 20)
        #expect(recording.reads.count < 16)
        #expect(recording.bytesRead < 64 << 10)
    }

    @Test("what is not ext is refused with the magic it found")
    func notExt() throws {
        #expect(throws: Ext4FileSystem.Error.notExt(magic: 0)) {
            try Ext4FileSystem(source: MemorySource([UInt8](repeating: 0, count: 4096)))
        }
        #expect(!Ext4FileSystem.matches(MemorySource([UInt8](repeating: 0, count: 100))))
        #expect(throws: ByteSourceError.self) { try Ext4FileSystem(source: MemorySource([1, 2, 3])) }
    }

    @Test("an extent tree deeper than ext4 allows is refused")
    func extentDepthLimit() throws {
        // Find frag.bin's inode root in the image and claim depth 6.
        let image = try DiskFixture.memory("ext4.img")
        let fs = try Ext4FileSystem(source: image)
        let before = try fs.read("/frag.bin", limit: 8 << 20)
        #expect(before.count == 3 << 20)
        var patched = PatchedSource(image)
        let bytes = image.bytes
        // The root header of frag.bin: magic F30A, 1 entry, max 4, depth 1, inside an inode.
        let needle: [UInt8] = [0x0A, 0xF3, 0x01, 0x00, 0x04, 0x00, 0x01, 0x00]
        var found = 0
        var i = 0
        while i + needle.count <= bytes.count {
            if bytes[i] == 0x0A, bytes[i + 1] == 0xF3, Array(bytes[i..<i + 8]) == needle {
                patched.write([0x06, 0x00], at: UInt64(i + 6))
                found += 1
            }
            i += 1
        }
        #expect(found >= 1)
        let broken = try Ext4FileSystem(source: patched)
        #expect(throws: Ext4FileSystem.Error.self) { try broken.read("/frag.bin", limit: 8 << 20) }
    }
}
