#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Read-only random access to untrusted bytes: an image file, a block device, or a window
/// (partition, logical volume) of another source.
///
/// Every read is checked against `size` before it is issued, so no reader can ask for bytes
/// outside the image, and no read is larger than `ByteSourceLimits.maxReadLength`.
public protocol ByteSource: Sendable {
    var size: UInt64 { get }
    /// Reads exactly `count` bytes at `offset`, or throws `ByteSourceError`.
    func read(at offset: UInt64, count: Int) throws -> [UInt8]
}

public enum ByteSourceLimits {
    /// No structure on a guest disk needs a single read this large; a kernel is read in pieces.
    /// Caps allocations driven by image-controlled lengths (XSA-25).
    public static let maxReadLength = 64 << 20
}

public enum ByteSourceError: Error, CustomStringConvertible, Sendable, Equatable {
    case cannotOpen(path: String, errno: Int32)
    case outOfBounds(offset: UInt64, count: Int, size: UInt64)
    case readTooLarge(count: Int)
    case ioError(offset: UInt64, errno: Int32)

    public var description: String {
        switch self {
        case .cannotOpen(let path, let errno):
            "cannot open \(path): \(String(cString: strerror(errno)))"
        case .outOfBounds(let offset, let count, let size):
            "read of \(count) bytes at offset \(offset) is past the end of the image (\(size) bytes)"
        case .readTooLarge(let count):
            "read of \(count) bytes exceeds the \(ByteSourceLimits.maxReadLength)-byte limit"
        case .ioError(let offset, let errno):
            "I/O error at offset \(offset): \(String(cString: strerror(errno)))"
        }
    }
}

extension ByteSource {
    /// Validates a read request; readers call this through `read(at:count:)` implementations.
    @inlinable
    public func checkRange(_ offset: UInt64, _ count: Int) throws {
        guard count >= 0, count <= ByteSourceLimits.maxReadLength else {
            throw ByteSourceError.readTooLarge(count: count)
        }
        let (end, overflow) = offset.addingReportingOverflow(UInt64(count))
        guard !overflow, end <= size else {
            throw ByteSourceError.outOfBounds(offset: offset, count: count, size: size)
        }
    }

    /// Where `count` bytes at `offset` lie in an open file, when the source is one (or a window
    /// of one), so they can be copied kernel-side; nil for in-memory sources. Range-checked.
    public func backingFile(at offset: UInt64, count: Int) throws -> FileRange? {
        try checkRange(offset, count)
        switch self {
        case let file as FileSource: return FileRange(fd: file.fd, offset: offset, count: count)
        case let slice as SliceSource: return try slice.base.backingFile(at: slice.offset + offset, count: count)
        default: return nil
        }
    }

    /// A window of this source, e.g. a partition.
    public func slice(offset: UInt64, length: UInt64) throws -> SliceSource {
        try SliceSource(base: self, offset: offset, length: length)
    }
}

/// An image file or block device read with `pread` at absolute offsets.
public final class FileSource: ByteSource {
    public let path: String
    public let size: UInt64
    let fd: Int32

    public init(path: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ByteSourceError.cannotOpen(path: path, errno: errno) }
        // lseek to the end works for both regular files and block devices (stat gives 0 for the latter).
        let end = lseek(fd, 0, SEEK_END)
        guard end >= 0 else {
            let err = errno
            close(fd)
            throw ByteSourceError.cannotOpen(path: path, errno: err)
        }
        self.path = path
        self.fd = fd
        self.size = UInt64(end)
    }

    deinit { close(fd) }

    public func read(at offset: UInt64, count: Int) throws -> [UInt8] {
        try checkRange(offset, count)
        // Filled by pread directly: no zeroing pass over what is about to be overwritten.
        var failure: ByteSourceError?
        let buffer = [UInt8](unsafeUninitializedCapacity: count) { raw, initialized in
            var done = 0
            while done < count {
                let got = pread(fd, raw.baseAddress! + done, count - done, off_t(offset) + off_t(done))
                if got < 0 {
                    if errno == EINTR { continue }
                    failure = .ioError(offset: offset + UInt64(done), errno: errno)
                    break
                }
                if got == 0 {
                    failure = .outOfBounds(offset: offset, count: count, size: size)
                    break
                }
                done += got
            }
            // On failure the partial contents are dropped; keep what was read initialized.
            initialized = done
        }
        if let failure { throw failure }
        return buffer
    }
}

/// A byte range of an open file (valid while its source lives).
public struct FileRange: Sendable, Equatable {
    public let fd: Int32
    public let offset: UInt64
    public let count: Int
}

/// Bytes held in memory: tests, fuzzing, and small structures already read.
public struct MemorySource: ByteSource {
    public let bytes: [UInt8]
    public var size: UInt64 { UInt64(bytes.count) }

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    public func read(at offset: UInt64, count: Int) throws -> [UInt8] {
        try checkRange(offset, count)
        let start = Int(offset)
        return Array(bytes[start..<start + count])
    }
}

/// A bounded window of another source (a partition, a logical volume segment).
public struct SliceSource: ByteSource {
    public let base: any ByteSource
    public let offset: UInt64
    public let size: UInt64

    public init(base: any ByteSource, offset: UInt64, length: UInt64) throws {
        let (end, overflow) = offset.addingReportingOverflow(length)
        guard !overflow, end <= base.size else {
            throw ByteSourceError.outOfBounds(offset: offset, count: Int(clamping: length), size: base.size)
        }
        self.base = base
        self.offset = offset
        self.size = length
    }

    public func read(at offset: UInt64, count: Int) throws -> [UInt8] {
        try checkRange(offset, count)
        return try base.read(at: self.offset + offset, count: count)
    }
}
