import BerthModel
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Tells raw from qcow2 by the first bytes, so QEMU is always given an explicit format.
///
/// Letting QEMU probe is unsafe: a guest that writes a qcow2 header into its raw disk would
/// make the next start open it as qcow2, with a backing file of the guest's choosing
/// (CVE-2008-2004).
public enum DiskFormat {
    /// `QFI\xfb`
    static let qcow2Magic: [UInt8] = [0x51, 0x46, 0x49, 0xFB]

    /// The spec's format, or the one the file's first bytes show.
    ///
    /// - Throws: `BerthError(.notFound)` when the file cannot be read.
    public static func resolve(_ disk: DiskSpec) throws -> DiskSpec.Format {
        if let format = disk.format { return format }
        return try detect(path: disk.path)
    }

    /// qcow2 when the file starts with its magic, raw otherwise (empty files and ISOs too).
    public static func detect(path: String) throws -> DiskSpec.Format {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let why = String(cString: strerror(errno))
            throw BerthError(
                errno == ENOENT ? .notFound : .unavailable, "Cannot read disk '\(path)': \(why).",
                remedy: "Check that the image or block device exists on the host, or give its format explicitly.")
        }
        defer { close(fd) }
        var header = [UInt8](repeating: 0, count: 4)
        let n = header.withUnsafeMutableBytes { pread(fd, $0.baseAddress, 4, 0) }
        return n == 4 && header == qcow2Magic ? .qcow2 : .raw
    }
}
