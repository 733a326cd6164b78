import BerthHost
import BerthModel
import BerthPOSIX
import BerthStore
import FoundationEssentials
import NIOCore

#if canImport(Glibc)
    import Glibc
#endif

/// `vol-upload` and `vol-download`: a volume's bytes streamed over the API, never whole in
/// memory. An upload is written under a hidden name and renamed over the volume only when all
/// of it arrived, so a failed upload leaves the volume as it was.
extension Hypervisor {
    /// Replaces a raw volume's content with `length` bytes that `receive` writes to the
    /// descriptor it is given (returning how many it wrote); the rest of the volume is zeros.
    public func uploadVolume(
        pool: String, name: String, length: UInt64, receive: (Int32) async throws -> UInt64
    ) async throws -> VolumeInfo {
        let record = try activePool(pool)
        return try await claiming("\(pool)/\(name)") {
            let volume = try catalog.volume(pool: pool, name: name)
            guard volume.format == .raw else {
                throw BerthError(
                    .invalidArgument,
                    "Volume \(volume.key) is qcow2; Berth uploads into raw volumes only (an image's header could name any backing file).",
                    remedy: "Upload into a raw volume, then convert it with 'berth vol-clone' or qemu-img on berthd's host.")
            }
            guard length <= volume.capacity else {
                throw BerthError(
                    .invalidArgument,
                    "The upload (\(ByteSize.describe(length))) is bigger than \(volume.key) (\(ByteSize.describe(volume.capacity))).",
                    remedy: "Grow the volume first ('berth vol-resize \(volume.name) SIZE --pool \(pool)'), or upload a smaller file.")
            }
            for user in try catalog.domainsUsing(path: volume.path) where try isRunning(user) {
                throw BerthError(
                    .wrongState, "Volume \(volume.key) is a disk of the running domain '\(user)'.",
                    remedy: "Shut '\(user)' off before replacing its disk's content.")
            }
            if record.spec.type == .logical {
                try await uploadLogicalVolume(record, volume, length: length, receive: receive)
                return try volumeInfo(pool: pool, name: name)
            }
            try await placed(at: volume.path, replacing: true) { temporary in
                let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
                guard fd >= 0 else { throw Self.transferError("create", temporary) }
                defer { close(fd) }
                let received = try await receive(fd)
                guard received == length else {
                    throw BerthError(
                        .invalidArgument, "The upload ended after \(received) of \(length) bytes; \(volume.key) was not changed.",
                        remedy: "Send it again.")
                }
                guard ftruncate(fd, off_t(volume.capacity)) == 0, fsync(fd) == 0 else { throw Self.transferError("write", temporary) }
            } record: {
            }
            return try volumeInfo(of: volume)
        }
    }

    /// `vol-upload` of a file on berthd's host (a client on the unix socket): the kernel copies
    /// its data into the hidden file (`VolumeCopy.copyData`, holes stay holes), with progress.
    func uploadVolume(pool: String, name: String, file: String, progress: @escaping ProgressSink) async throws -> VolumeInfo {
        guard file.hasPrefix("/") else {
            throw BerthError(.invalidArgument, "\(file) is not an absolute path.", remedy: "Give the file's absolute path.")
        }
        let source = open(file, O_RDONLY | O_CLOEXEC)
        guard source >= 0 else {
            throw BerthError(.notFound, "Cannot open \(file): \(String(cString: strerror(errno)))", remedy: "Give a readable file.")
        }
        defer { close(source) }
        var info = stat()
        guard fstat(source, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            throw BerthError(.invalidArgument, "\(file) is not a regular file.", remedy: "Give a file.")
        }
        let length = Int(info.st_size)
        return try await uploadVolume(pool: pool, name: name, length: UInt64(length)) { fd in
            try await VolumeCopy.copyData(from: source, to: fd, length: length, progress: progress)
            return UInt64(length)
        }
    }

    /// `vol-download` into a file on berthd's host (a root client on the unix socket, which
    /// created `file` empty): the kernel copies the volume's data into it (holes stay holes),
    /// with progress. The file is never replaced, only filled, so a symlink or a file that
    /// already holds data is refused.
    func downloadVolume(pool: String, name: String, file: String, progress: @escaping ProgressSink) async throws {
        guard file.hasPrefix("/") else {
            throw BerthError(.invalidArgument, "\(file) is not an absolute path.", remedy: "Give the file's absolute path.")
        }
        let output = open(file, O_WRONLY | O_CLOEXEC | O_NOFOLLOW)
        guard output >= 0 else {
            throw BerthError(.notFound, "Cannot open \(file): \(String(cString: strerror(errno)))", remedy: "Create the file first (empty).")
        }
        defer { close(output) }
        var info = stat()
        guard fstat(output, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG, info.st_size == 0 else {
            throw BerthError(.invalidArgument, "\(file) is not an empty regular file.", remedy: "Give a new, empty file.")
        }
        let (input, offset, length) = try openVolumeForDownload(pool: pool, name: name)
        defer { close(input) }
        try await VolumeCopy.copyOut(from: input, offset: Int(offset), length: Int(length), to: output, progress: progress)
    }

    /// The volume's file (or logical volume's device) opened for reading, where its bytes
    /// start, and how many (what `vol-download` streams).
    public func openVolumeForDownload(pool: String, name: String) throws -> (descriptor: Int32, offset: UInt64, length: UInt64) {
        let record = try activePool(pool)
        let volume = try catalog.volume(pool: pool, name: name)
        if record.spec.type == .logical { return try openLogicalVolume(volume) }
        let fd = open(volume.path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { throw Self.transferError("open", volume.path) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            close(fd)
            throw Self.transferError("read", volume.path)
        }
        return (fd, 0, UInt64(max(0, info.st_size)))
    }

    static func transferError(_ what: String, _ path: String) -> BerthError {
        BerthError(
            .unavailable, "Cannot \(what) \(path): \(String(cString: strerror(errno)))",
            remedy: "Check free space and permissions in the pool's directory.")
    }
}

/// Writes an upload's body into the volume's temporary file: the body's pieces (tens of KiB
/// each, as the connection delivers them) are gathered into batches of `batch` bytes, and
/// each batch is written on a thread of its own (`BlockingIO.run`) while the next one
/// arrives, so neither the network nor the disk waits for the other, and no thread of the
/// cooperative pool waits on the disk.
enum VolumeWriter {
    static let batch = 8 << 20

    /// Returns the bytes received; more than `limit` stops the writing (nothing past it is written).
    static func write<Body: AsyncSequence>(_ body: Body, to fd: Int32, limit: UInt64) async throws -> UInt64
    where Body.Element == ByteBuffer {
        var received: UInt64 = 0
        var gathered: [ByteBuffer] = []
        var gatheredBytes = 0
        var writing: Task<Void, any Error>?
        for try await buffer in body {
            received += UInt64(buffer.readableBytes)
            guard received <= limit else { break }
            gathered.append(buffer)
            gatheredBytes += buffer.readableBytes
            guard gatheredBytes >= batch else { continue }
            try await writing?.value
            writing = start(gathered, fd)
            gathered = []
            gatheredBytes = 0
        }
        try await writing?.value
        if received <= limit { try await start(gathered, fd).value }
        return received
    }

    private static func start(_ buffers: [ByteBuffer], _ fd: Int32) -> Task<Void, any Error> {
        Task {
            try await BlockingIO.run {
                for buffer in buffers {
                    do { try buffer.withUnsafeReadableBytes { try BerthPOSIX.writeAll(fd, $0) } } catch {
                        throw BerthError(
                            .unavailable, "Cannot write the volume: \(error)",
                            remedy: "Check free space and permissions in the pool's directory.")
                    }
                }
            }
        }
    }
}

/// Reads a volume's `length` bytes from `offset` for `vol-download`: each piece is read on a
/// thread of its own (`BlockingIO.run`) straight into the buffer that is sent, and the next
/// piece is read while this one goes out, so neither the disk nor the network waits for the
/// other, and no thread of the cooperative pool waits on the disk.
enum VolumeReader {
    static let piece = 4 << 20

    static func stream(
        _ fd: Int32, offset: UInt64, length: UInt64, send: (ByteBuffer) async throws -> Void
    ) async throws {
        var position: UInt64 = 0
        var next: Task<ByteBuffer, any Error>? = length > 0 ? read(fd, at: offset, count: min(UInt64(piece), length)) : nil
        do {
            while let reading = next {
                next = nil
                let buffer = try await reading.value
                position += UInt64(buffer.readableBytes)
                if buffer.readableBytes > 0, position < length {
                    next = read(fd, at: offset + position, count: min(UInt64(piece), length - position))
                }
                try await send(buffer)
            }
        } catch {
            // The descriptor is closed after this returns: no read may still be using it.
            _ = try? await next?.value
            throw error
        }
    }

    private static func read(_ fd: Int32, at offset: UInt64, count: UInt64) -> Task<ByteBuffer, any Error> {
        Task {
            try await BlockingIO.run {
                var buffer = ByteBufferAllocator().buffer(capacity: Int(count))
                var failure: Int32 = 0
                _ = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: Int(count)) { space in
                    guard let base = space.baseAddress else { return 0 }
                    var done = 0
                    while done < Int(count) {
                        let n = pread(fd, base + done, Int(count) - done, off_t(offset) + off_t(done))
                        if n < 0, errno == EINTR { continue }
                        if n < 0 { failure = errno }
                        guard n > 0 else { break }
                        done += n
                    }
                    return done
                }
                guard failure == 0 else {
                    throw BerthError(.unavailable, "Cannot read the volume: \(String(cString: strerror(failure)))")
                }
                return buffer
            }
        }
    }
}
