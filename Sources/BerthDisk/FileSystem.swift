/// What the bootloader needs from any guest filesystem: look a path up, list a
/// directory, read a file with a cap. Implemented by the ext, XFS, FAT and ISO9660 readers.
public protocol FileSystem: Sendable {
    /// A short name for messages: `ext4`, `xfs`, `vfat`, `iso9660`.
    var kind: String { get }
    /// Metadata of the file at an absolute path (`/boot/grub/grub.cfg`), following symlinks
    /// (with a depth limit) in every component.
    func stat(_ path: String) throws -> FileInfo
    /// Names in a directory (without `.` and `..`), in on-disk order.
    func list(_ path: String) throws -> [String]
    /// The whole content of a regular file; throws if it is larger than `limit` bytes.
    func read(_ path: String, limit: Int) throws -> [UInt8]
    /// The content of a regular file in order, handed to `sink` in pieces (holes as zeros), so
    /// a kernel can be copied out without holding it whole. Throws like `read`.
    func stream(_ path: String, limit: Int, into sink: (FileChunk) throws -> Void) throws
}

/// A piece of a streamed file: bytes, or where they lie in the image file (to copy kernel-side).
public enum FileChunk: Sendable, Equatable {
    case bytes([UInt8])
    case file(FileRange)

    public var count: Int {
        switch self {
        case .bytes(let bytes): bytes.count
        case .file(let range): range.count
        }
    }
}

extension FileSystem {
    /// Readers without a streaming path hand over the whole file at once.
    public func stream(_ path: String, limit: Int, into sink: (FileChunk) throws -> Void) throws {
        try sink(.bytes(try read(path, limit: limit)))
    }
}

public struct FileInfo: Sendable, Equatable {
    public enum Kind: Sendable, Equatable { case file, directory, symlink, other }
    public var kind: Kind
    public var size: UInt64

    public init(kind: Kind, size: UInt64) {
        self.kind = kind
        self.size = size
    }
}

/// Errors shared by every filesystem reader for path-level failures; structural
/// corruption uses each reader's own nested error type.
public enum FileSystemError: Error, CustomStringConvertible, Sendable, Equatable {
    case notFound(path: String)
    case notADirectory(path: String)
    case notAFile(path: String)
    case tooLarge(path: String, size: UInt64, limit: Int)
    case symlinkLoop(path: String)

    public var description: String {
        switch self {
        case .notFound(let path): "\(path): no such file"
        case .notADirectory(let path): "\(path): not a directory"
        case .notAFile(let path): "\(path): not a regular file"
        case .tooLarge(let path, let size, let limit): "\(path): \(size) bytes is over the \(limit)-byte limit"
        case .symlinkLoop(let path): "\(path): too many levels of symbolic links"
        }
    }
}

public enum FileSystemLimits {
    /// Linux's own MAXSYMLINKS is 40; a guest that needs more is hostile.
    public static let maxSymlinkDepth = 40
    /// Entries read from one directory before giving up (a crafted directory can claim millions).
    public static let maxDirectoryEntries = 100_000
    /// Path components in one lookup.
    public static let maxPathComponents = 256
}
