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
    case notReadOnly(path: String)
    case notSeekable(path: String)

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
        case .notReadOnly(let path):
            "\(path) is open for writing; pass the image read-only (O_RDONLY)"
        case .notSeekable(let path):
            "\(path) is neither a regular file nor a block device; pass the image itself, not a pipe"
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

    /// Reads an image from a descriptor someone else opened: berthd (root) opens the guest's
    /// disk and passes it to a deprivileged `berth-bootloader` that could not open it itself.
    ///
    /// The descriptor is duplicated (close-on-exec), so the caller keeps its own; it must be
    /// open for reading only, on a regular file or a block device (reads use `pread`, so its
    /// file offset does not matter and is not moved).
    /// - Parameters:
    ///   - descriptor: an open descriptor, e.g. 0 for standard input.
    ///   - name: what messages call the image (`fd:0`).
    public init(descriptor: Int32, name: String) throws {
        let flags = fcntl(descriptor, F_GETFL)
        guard flags >= 0 else { throw ByteSourceError.cannotOpen(path: name, errno: errno) }
        // A writable disk handed to the sandbox would let a compromised reader change the guest.
        guard flags & O_ACCMODE == O_RDONLY else { throw ByteSourceError.notReadOnly(path: name) }
        var st = stat()
        guard fstat(descriptor, &st) == 0 else { throw ByteSourceError.cannotOpen(path: name, errno: errno) }
        let kind = st.st_mode & S_IFMT
        guard kind == S_IFREG || kind == S_IFBLK else { throw ByteSourceError.notSeekable(path: name) }
        let fd = fcntl(descriptor, F_DUPFD_CLOEXEC, 3)
        guard fd >= 0 else { throw ByteSourceError.cannotOpen(path: name, errno: errno) }
        var size: UInt64 = 0
        if kind == S_IFREG {
            size = UInt64(clamping: st.st_size)
        } else if ioctl(fd, FileSource.blkGetSize64, &size) != 0 {
            // BLKGETSIZE64 missing (an old or foreign kernel): the end of a block device is its size.
            let end = lseek(fd, 0, SEEK_END)
            guard end >= 0 else {
                let err = errno
                close(fd)
                throw ByteSourceError.cannotOpen(path: name, errno: err)
            }
            size = UInt64(end)
        }
        // pread takes an off_t: a size past Int64.max could not be read, and no disk is that large.
        guard size <= UInt64(Int64.max) else {
            close(fd)
            throw ByteSourceError.cannotOpen(path: name, errno: EFBIG)
        }
        self.path = name
        self.fd = fd
        self.size = size
    }

    /// `_IOR(0x12, 114, size_t)` from <linux/fs.h>: a block device's size in bytes.
    static let blkGetSize64: UInt = 0x8008_1272

    deinit { close(fd) }

    public func read(at offset: UInt64, count: Int) throws -> [UInt8] {
        try checkRange(offset, count)
        // Filled by pread directly: no zeroing pass over what is about to be overwritten.
        var failure: ByteSourceError?
        let buffer = [UInt8](unsafeUninitializedCapacity: count) { raw, initialized in
            var done = 0
            while done < count {
                let got = pread(fd, raw.baseAddress.map { $0 + done }, count - done, off_t(offset) + off_t(done))
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
