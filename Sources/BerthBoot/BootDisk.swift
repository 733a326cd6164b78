import BerthDisk

/// Opens the filesystems of a guest disk image, in the order PyGRUB tries partitions.
/// - Parameters: the whole image, and `offset` (bytes) to force one filesystem start (`--offset=`).
/// - Returns: every filesystem found; the bootloader reads the menu from the first that has one.
public typealias FileSystemOpener = @Sendable (_ image: any ByteSource, _ offset: UInt64?) throws -> [any FileSystem]

public enum BootDisk {
    /// Filesystem readers the bootloader knows, tried in order on a source (a whole disk or a
    /// partition); each returns nil when the bytes are not its filesystem.
    public typealias Probe = @Sendable (any ByteSource) throws -> (any FileSystem)?

    /// Until BerthDisk's volume discovery lands, no reader is linked here; callers pass
    /// their own opener (tests) or get a clear error.
    public static let probes: [Probe] = []

    /// The default opener: the image (or the slice at `offset`) as one filesystem.
    public static let open: FileSystemOpener = { image, offset in
        let source: any ByteSource = try offset.map { try image.slice(offset: $0, length: image.size - min($0, image.size)) } ?? image
        for probe in probes {
            if let fs = try probe(source) { return [fs] }
        }
        throw BootError.noFileSystem(image: "image", reason: "no filesystem reader recognized it")
    }
}
