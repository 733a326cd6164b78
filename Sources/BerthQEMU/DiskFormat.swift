import BerthModel
import FoundationEssentials

#if canImport(Glibc)
    import Glibc
#endif

/// Decides a disk's format once, when its domain is defined, so QEMU is always given an
/// explicit format and never probes.
///
/// Letting QEMU probe at every start is unsafe: a guest that writes a qcow2 header into its raw
/// disk would make the next start open it as qcow2, with a backing file of the guest's choosing
/// (CVE-2008-2004). Berth reads the first bytes at define time, records the answer in the
/// catalog, and from then on the recorded format is the only one used.
public enum DiskFormat {
    /// `QFI\xfb`
    static let qcow2Magic: [UInt8] = [0x51, 0x46, 0x49, 0xFB]
    /// The qcow2 header fields Berth reads: magic, version, backing file offset and size.
    static let qcow2HeaderBytes = 20
    /// QEMU refuses backing file names longer than this (`BDRV_... 1023`).
    static let maxBackingNameBytes: UInt32 = 1023

    /// What the first bytes of an image say.
    public struct Probe: Sendable, Equatable {
        public var format: DiskSpec.Format
        /// The backing file a qcow2 header names, if any.
        public var backingFile: String?
    }

    /// The disk with its format recorded: the spec's own when it has one, else what its first
    /// bytes show. A qcow2 image that names a backing file is refused unless it is exactly the
    /// backing volume berthd recorded for it (`disk.backing`): following any other would open a
    /// host file the definition never named.
    ///
    /// - Throws: `BerthError(.notFound)` when the file cannot be read; `.invalidArgument` for a
    ///   qcow2 image with a backing file.
    public static func recorded(_ disk: DiskSpec) throws -> DiskSpec {
        var disk = disk
        if let extent = disk.extent {
            // A byte range of a physical volume (an LV without device-mapper): always raw.
            guard access(extent.device, R_OK) == 0 else {
                throw BerthError(.notFound, "The physical volume \(extent.device) of \(disk.path) cannot be read.")
            }
            disk.format = .raw
            disk.backing = nil
            return disk
        }
        let probe = try probe(path: disk.path)
        if disk.format == nil { disk.format = probe.format }
        if disk.format == .qcow2, let backing = probe.backingFile {
            // An overlay berthd made: its header names exactly the backing volume the catalog
            // recorded, and QEMU is given that file (as a descriptor) and nothing else.
            if let recorded = disk.backing, recorded.path == backing { return disk }
            if let recorded = disk.backing {
                throw BerthError(
                    .invalidArgument,
                    "Disk '\(disk.path)' names the backing file '\(backing)', but its volume record says '\(recorded.path)'.",
                    remedy: "The image was changed outside Berth; recreate the overlay with 'berth vol-create-as POOL NAME SIZE --backing-vol VOL'.")
            }
            throw BerthError(
                .invalidArgument, "Disk '\(disk.path)' is a qcow2 overlay on the backing file '\(backing)'.",
                remedy:
                    "Berth opens qcow2 images without their backing chain. Flatten it first: 'qemu-img convert -O qcow2 \(disk.path) NEW.qcow2', and define NEW.qcow2, or make the overlay a volume with 'berth vol-create-as POOL NAME SIZE --backing-vol VOL'."
            )
        }
        if disk.backing != nil, probe.backingFile == nil {
            // The recorded chain no longer matches the file: give QEMU no backing at all.
            disk.backing = nil
        }
        return disk
    }

    /// qcow2 when the file starts with its magic, raw otherwise (empty files and ISOs too).
    public static func detect(path: String) throws -> DiskSpec.Format { try probe(path: path).format }

    /// Reads the image's first bytes (every field range-checked; the file is a guest's).
    public static func probe(path: String) throws -> Probe {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let why = String(cString: strerror(errno))
            throw BerthError(
                errno == ENOENT ? .notFound : .unavailable, "Cannot read disk '\(path)': \(why).",
                remedy: "Check that the image or block device exists on the host, or give its format explicitly.")
        }
        defer { close(fd) }
        var header = [UInt8](repeating: 0, count: qcow2HeaderBytes)
        let n = header.withUnsafeMutableBytes { pread(fd, $0.baseAddress, qcow2HeaderBytes, 0) }
        guard n >= 4, Array(header[0..<4]) == qcow2Magic else { return Probe(format: .raw) }
        guard n == qcow2HeaderBytes else { return Probe(format: .qcow2) }
        let offset = header[8..<16].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        let size = header[16..<20].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        guard offset != 0, size != 0 else { return Probe(format: .qcow2) }
        // A name we cannot read back is still a backing file: report it without its text.
        guard size <= maxBackingNameBytes, offset <= UInt64(Int64.max) else {
            return Probe(format: .qcow2, backingFile: "(unreadable name)")
        }
        var name = [UInt8](repeating: 0, count: Int(size))
        let got = name.withUnsafeMutableBytes { pread(fd, $0.baseAddress, Int(size), off_t(offset)) }
        let text = got == Int(size) ? String(decoding: name, as: UTF8.self) : "(unreadable name)"
        return Probe(format: .qcow2, backingFile: text)
    }

    /// Whether `path` is a block device (a logical volume, a partition): QEMU's `host_device`.
    public static func isBlockDevice(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFBLK
    }
}
