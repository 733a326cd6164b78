import BerthDisk

/// Opens the filesystems of a guest disk image, in the order PyGRUB tries partitions.
/// - Parameters: the whole image, and `offset` (bytes) to force one filesystem start (`--offset=`).
/// - Returns: every filesystem found; the bootloader reads the menu from the first that has one.
public typealias FileSystemOpener = @Sendable (_ image: any ByteSource, _ offset: UInt64?) throws -> [any FileSystem]

public enum BootDisk {
    /// The default opener: BerthDisk's volume discovery (MBR/GPT partitions, LVM logical
    /// volumes, or the whole disk), each volume probed with every reader BerthDisk links.
    public static let open: FileSystemOpener = { image, offset in
        let (volumes, problems) = try Volumes.discover(image, offset: offset)
        let filesystems = volumes.compactMap(\.filesystem)
        guard !filesystems.isEmpty else {
            var reasons = volumes.map { "\($0.location): \($0.failure ?? "unreadable")" }
            reasons += problems
            throw BootError.noFileSystem(
                image: "disk image", reason: reasons.isEmpty ? "no partition or filesystem found" : reasons.joined(separator: "; "))
        }
        return filesystems
    }
}
