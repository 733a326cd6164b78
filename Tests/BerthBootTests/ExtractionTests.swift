import BerthDisk
import Testing

@testable import BerthBoot

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct ExtractionTests {
    func mode(_ path: String) -> mode_t? {
        var st = stat()
        return lstat(path, &st) == 0 ? st.st_mode & 0o7777 : nil
    }

    @Test func kernelAndConcatenatedInitrdsArePrivateFiles() throws {
        let fs = MemoryFileSystem(bytes: ["/k": Array("KERNEL".utf8), "/a": [1, 2, 3], "/b": [4, 5, 6, 7, 8]])
        let tmp = TemporaryDirectory()
        defer { tmp.remove() }
        let out = tmp.path + "/out"
        let result = try Extraction.extract(
            kernel: GuestFile(fs: fs, path: "/k"), initrds: [GuestFile(fs: fs, path: "/a"), GuestFile(fs: fs, path: "/b")], to: out)
        #expect(mode(out) == 0o700)
        #expect(mode(result.kernel) == 0o600)
        let kernelBytes = try FileSource(path: result.kernel).read(at: 0, count: 6)
        #expect(kernelBytes == Array("KERNEL".utf8))
        let ramdisk = try #require(result.ramdisk)
        #expect(mode(ramdisk) == 0o600)
        let source = try FileSource(path: ramdisk)
        // Each initrd but the last is padded to 4 bytes, as GRUB lays them out.
        #expect(try source.read(at: 0, count: Int(source.size)) == [1, 2, 3, 0, 4, 5, 6, 7, 8])
        #expect(result.kernel.hasPrefix(out + "/boot_kernel."))
        for path in [result.kernel, ramdisk] { unlink(path) }
        rmdir(out)
    }

    @Test func sizeLimitRefusesBeforeWritingAnything() throws {
        let fs = MemoryFileSystem(bytes: ["/k": [UInt8](repeating: 1, count: 600), "/i": [UInt8](repeating: 2, count: 600)])
        let tmp = TemporaryDirectory()
        defer { tmp.remove() }
        #expect(throws: BootError.tooLarge(total: 1200, limit: 1000)) {
            try Extraction.extract(
                kernel: GuestFile(fs: fs, path: "/k"), initrds: [GuestFile(fs: fs, path: "/i")], to: tmp.path,
                limits: ExtractionLimits(maxTotalBytes: 1000))
        }
        #expect(try listDirectory(tmp.path).isEmpty)
    }

    /// A guest's inode sizes that sum past 2^64 once wrapped to a small total and passed.
    @Test func sizesThatOverflowTheSumAreRefusedBeforeWriting() throws {
        struct LyingSizes: FileSystem {
            var kind: String { "lying" }
            let sizes: [String: UInt64]
            func stat(_ path: String) throws -> FileInfo {
                guard let size = sizes[path] else { throw FileSystemError.notFound(path: path) }
                return FileInfo(kind: .file, size: size)
            }
            func list(_ path: String) throws -> [String] { throw FileSystemError.notFound(path: path) }
            func read(_ path: String, limit: Int) throws -> [UInt8] { [UInt8](repeating: 0, count: 100) }
        }
        let fs = LyingSizes(sizes: ["/k": 100, "/i": UInt64.max - 49])
        let tmp = TemporaryDirectory()
        defer { tmp.remove() }
        #expect(throws: BootError.tooLarge(total: .max, limit: 1000)) {
            try Extraction.extract(
                kernel: GuestFile(fs: fs, path: "/k"), initrds: [GuestFile(fs: fs, path: "/i")], to: tmp.path,
                limits: ExtractionLimits(maxTotalBytes: 1000))
        }
        #expect(try listDirectory(tmp.path).isEmpty)
    }

    /// A reader that hands over more than its `limit` (stat says small, the data is not):
    /// the copy stops at the cap and leaves nothing behind.
    @Test func aReaderStreamingPastItsLimitIsStopped() throws {
        struct Overlong: FileSystem {
            var kind: String { "overlong" }
            func stat(_ path: String) throws -> FileInfo { FileInfo(kind: .file, size: 10) }
            func list(_ path: String) throws -> [String] { [] }
            func read(_ path: String, limit: Int) throws -> [UInt8] { [UInt8](repeating: 7, count: 5000) }
        }
        let tmp = TemporaryDirectory()
        defer { tmp.remove() }
        #expect(throws: BootError.tooLarge(total: 5000, limit: 1000)) {
            try Extraction.extract(
                kernel: GuestFile(fs: Overlong(), path: "/k"), initrds: [], to: tmp.path, limits: ExtractionLimits(maxTotalBytes: 1000))
        }
        #expect(try listDirectory(tmp.path).isEmpty)
    }

    @Test func timeLimitStopsAndCleansUp() throws {
        let fs = MemoryFileSystem(bytes: ["/k": [UInt8](repeating: 1, count: 100)])
        let tmp = TemporaryDirectory()
        defer { tmp.remove() }
        #expect(throws: BootError.timedOut(seconds: -1)) {
            try Extraction.extract(kernel: GuestFile(fs: fs, path: "/k"), initrds: [], to: tmp.path, limits: ExtractionLimits(seconds: -1))
        }
        #expect(try listDirectory(tmp.path).isEmpty)
    }

    @Test func symlinkedOrSharedOutputDirectoriesAreRefused() throws {
        let fs = MemoryFileSystem(["/k": "K"])
        let tmp = TemporaryDirectory()
        defer { tmp.remove() }
        let real = tmp.path + "/real"
        mkdir(real, 0o700)
        symlink(real, tmp.path + "/link")
        #expect(throws: BootError.self) {
            try Extraction.extract(kernel: GuestFile(fs: fs, path: "/k"), initrds: [], to: tmp.path + "/link")
        }
        let shared = tmp.path + "/shared"
        mkdir(shared, 0o700)
        chmod(shared, 0o777)
        #expect(throws: BootError.self) {
            try Extraction.extract(kernel: GuestFile(fs: fs, path: "/k"), initrds: [], to: shared)
        }
        #expect(try listDirectory(real).isEmpty)
        rmdir(real)
        rmdir(shared)
        unlink(tmp.path + "/link")
    }

    @Test func missingKernelSaysWhatToDo() {
        let tmp = TemporaryDirectory()
        defer { tmp.remove() }
        do {
            _ = try Extraction.extract(kernel: GuestFile(fs: MemoryFileSystem(), path: "/vmlinuz"), initrds: [], to: tmp.path)
            Issue.record("extraction of a missing kernel succeeded")
        } catch let error as BootError {
            #expect(error == .fileMissing(path: "/vmlinuz"))
            #expect(error.description.contains("--kernel="))
        } catch {
            Issue.record("\(error)")
        }
    }

    @Test func bootSelectionFromARealExt4Image() throws {
        let kernel = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let menu = """
            set default="1"
            menuentry 'first' { linux /boot/vmlinuz-a ro }
            menuentry 'second' { linux /boot/vmlinuz-b root=/dev/vda ro
                initrd /boot/initrd-b }
            """
        guard
            let image = Ext4Image([
                "/boot/grub/grub.cfg": Array(menu.utf8), "/boot/vmlinuz-a": [1], "/boot/vmlinuz-b": kernel,
                "/boot/initrd-b": Array("INITRD".utf8),
            ])
        else {
            Issue.record("mke2fs -d failed: install e2fsprogs")
            return
        }
        defer { image.remove() }
        let out = image.directory.path + "/out"
        let selection = try BootSelection.pick(BootRequest(image: image.path, extraArgs: "console=ttyS0", outputDirectory: out))
        #expect(selection.entry?.title == "second")
        #expect(selection.cmdline == "root=/dev/vda ro console=ttyS0")
        let k = try FileSource(path: selection.kernelPath)
        #expect(try k.read(at: 0, count: Int(k.size)) == kernel)
        let initrd = try FileSource(path: try #require(selection.initrdPath))
        #expect(try initrd.read(at: 0, count: Int(initrd.size)) == Array("INITRD".utf8))
        let byTitle = try BootSelection.pick(BootRequest(image: image.path, entry: "first", outputDirectory: out, notReally: true))
        #expect(byTitle.kernelPath == "<kernel:/boot/vmlinuz-a>")
        #expect(byTitle.initrdPath == nil)
        for path in try listDirectory(out) { unlink(out + "/" + path) }
        rmdir(out)
    }
}

func listDirectory(_ path: String) throws -> [String] {
    guard let dir = opendir(path) else { throw BootError.fileMissing(path: path) }
    defer { closedir(dir) }
    var names: [String] = []
    while let entry = readdir(dir) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
        if name != "." && name != ".." { names.append(name) }
    }
    return names
}

@Suite struct PartitionedDiskTests {
    @Test func separateBootPartitionOnARealMBRDisk() throws {
        guard
            let dir = partitionedDisk(
                boot: [
                    "/grub/grub.cfg": Array("menuentry 'Fedora' { linux /vmlinuz-6.5 root=/dev/vda2 ro\n initrd /initramfs-6.5.img }".utf8),
                    "/vmlinuz-6.5": Array("KERNEL65".utf8), "/initramfs-6.5.img": Array("INITRD65".utf8),
                ],
                root: ["/etc/fstab": Array("/dev/vda2 / ext4 defaults 0 1\n".utf8)])
        else {
            Issue.record("building the disk failed: install e2fsprogs and fdisk (sfdisk)")
            return
        }
        defer { dir.remove() }
        let out = dir.path + "/out"
        let selection = try BootSelection.pick(BootRequest(image: dir.path + "/disk.img", outputDirectory: out))
        #expect(selection.entry?.title == "Fedora")
        #expect(selection.cmdline == "root=/dev/vda2 ro")
        let kernel = try FileSource(path: selection.kernelPath)
        #expect(try kernel.read(at: 0, count: Int(kernel.size)) == Array("KERNEL65".utf8))
        // --offset= names the boot partition's start directly, as with PyGRUB.
        let byOffset = try BootSelection.pick(BootRequest(image: dir.path + "/disk.img", outputDirectory: out, offset: 1 << 20, notReally: true))
        #expect(byOffset.kernelPath == "<kernel:/vmlinuz-6.5>")
        for name in try listDirectory(out) { unlink(out + "/" + name) }
        rmdir(out)
    }
}
