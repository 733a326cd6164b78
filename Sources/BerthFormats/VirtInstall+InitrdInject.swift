/// `--initrd-inject FILE`: files put at the root of the installer's initrd, so that
/// `-x ks=file:/ks.cfg` (or `inst.ks=file:/ks.cfg`, `preseed/file=/preseed.cfg`) finds them.
///
/// virt-install appended a gzip-compressed newc cpio archive to the fetched initrd; the kernel
/// unpacks concatenated archives in order, so the added files land in the initramfs (and replace
/// files of the same name). This builds that appendix; the daemon reads the host files and writes
/// `initrd + appendix`.
public enum InitrdInjection {
    public struct File: Sendable, Equatable {
        /// Name at the root of the initramfs: the host file's base name.
        public var name: String
        public var contents: [UInt8]
        /// Permission bits (`0o644`, `0o755` for a script).
        public var mode: UInt32

        public init(name: String, contents: [UInt8], mode: UInt32 = 0o644) {
            self.name = name
            self.contents = contents
            self.mode = mode
        }
    }

    /// Kickstart files and scripts are small; this keeps a mistaken `--initrd-inject /dev/sda` out.
    public static let maxFileSize = 64 << 20

    /// The base name a host path is injected as (`/root/ks.cfg` → `ks.cfg`).
    public static func injectedName(forHostPath path: String) -> String {
        path.split(separator: "/").last.map(String.init) ?? path
    }

    /// A gzip member holding a newc cpio archive of `files`, to append to an initrd.
    /// - Throws: `VirtInstallError.invalidValue` for a name that is not a plain file name, a repeated
    ///   name, or a file larger than `maxFileSize`.
    public static func appendix(_ files: [File], mtime: UInt32 = 0) throws -> [UInt8] {
        var seen = Set<String>()
        var archive: [UInt8] = []
        for (index, file) in files.enumerated() {
            guard !file.name.isEmpty, file.name != ".", file.name != "..", !file.name.contains("/"),
                !file.name.contains("\0"), file.name.utf8.count < 256
            else {
                throw VirtInstallError.invalidValue(
                    option: "--initrd-inject", value: file.name, reason: "give a file whose name has no '/'")
            }
            guard seen.insert(file.name).inserted else {
                throw VirtInstallError.invalidValue(
                    option: "--initrd-inject", value: file.name, reason: "two files would get this name")
            }
            guard file.contents.count <= maxFileSize else {
                throw VirtInstallError.invalidValue(
                    option: "--initrd-inject", value: file.name, reason: "larger than \(maxFileSize >> 20) MiB")
            }
            appendEntry(
                to: &archive, name: file.name, mode: 0o100000 | (file.mode & 0o7777), inode: UInt32(index + 1),
                nlink: 1, mtime: mtime, contents: file.contents)
        }
        appendEntry(to: &archive, name: "TRAILER!!!", mode: 0, inode: 0, nlink: 1, mtime: 0, contents: [])
        return gzipStored(archive)
    }

    /// One newc entry: "070701", 13 eight-digit hex fields, the name with its NUL, both padded to 4 bytes.
    static func appendEntry(
        to archive: inout [UInt8], name: String, mode: UInt32, inode: UInt32, nlink: UInt32, mtime: UInt32,
        contents: [UInt8]
    ) {
        let nameBytes = Array(name.utf8) + [0]
        let fields: [UInt32] = [
            inode, mode, 0, 0, nlink, mtime, UInt32(contents.count), 0, 0, 0, 0, UInt32(nameBytes.count), 0,
        ]
        archive += Array("070701".utf8)
        for field in fields {
            let hex = String(field, radix: 16, uppercase: true)
            archive += Array((String(repeating: "0", count: 8 - hex.count) + hex).utf8)
        }
        archive += nameBytes
        pad(&archive)
        archive += contents
        pad(&archive)
    }

    static func pad(_ bytes: inout [UInt8]) {
        while bytes.count % 4 != 0 { bytes.append(0) }
    }

    /// gzip with stored (uncompressed) deflate blocks: every kernel that boots a gzip initrd reads it,
    /// and no compression library is needed. Kickstart files are a few KiB.
    static func gzipStored(_ data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]
        var offset = 0
        repeat {
            let count = min(65535, data.count - offset)
            let final = offset + count == data.count
            out.append(final ? 1 : 0)
            out += [UInt8(count & 0xff), UInt8(count >> 8), UInt8(~count & 0xff), UInt8((~count >> 8) & 0xff)]
            out += data[offset..<offset + count]
            offset += count
        } while offset < data.count
        for value in [crc32(data), UInt32(truncatingIfNeeded: data.count)] {
            out += [UInt8(value & 0xff), UInt8((value >> 8) & 0xff), UInt8((value >> 16) & 0xff), UInt8(value >> 24)]
        }
        return out
    }

    static let crcTable: [UInt32] = (0..<256).map { index in
        var crc = UInt32(index)
        for _ in 0..<8 { crc = crc & 1 == 1 ? 0xEDB8_8320 ^ (crc >> 1) : crc >> 1 }
        return crc
    }

    static func crc32(_ data: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in data { crc = crcTable[Int((crc ^ UInt32(byte)) & 0xff)] ^ (crc >> 8) }
        return ~crc
    }
}
