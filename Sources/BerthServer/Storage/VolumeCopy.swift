import BerthHost
import BerthModel
import FoundationEssentials
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The byte work of `vol-clone`: a raw file's data copied by the kernel (`copy_file_range`)
/// extent by extent, holes left as holes, with the offset reached reported as progress. Runs on
/// a thread of its own (`BlockingIO.run`); the caller's task being cancelled stops it between
/// pieces.
enum VolumeCopy {
    /// Bytes per `copy_file_range` call, and so the progress step.
    static let piece = 8 << 20
    /// Linux's `lseek` whences for the next data and the next hole (not in Swift's Glibc module).
    private static let seekData: Int32 = 3
    private static let seekHole: Int32 = 4

    private typealias CopyFileRange =
        @convention(c) (Int32, UnsafeMutablePointer<Int>?, Int32, UnsafeMutablePointer<Int>?, Int, UInt32) -> Int

    /// glibc 2.27+ has it; Swift's Glibc module does not import it, so look it up.
    private static let copyFileRange: CopyFileRange? = {
        guard let symbol = dlsym(dlopen(nil, RTLD_NOW), "copy_file_range") else { return nil }
        return unsafeBitCast(symbol, to: CopyFileRange.self)
    }()

    /// Copies the raw file `source` into the new file `target` (same length, same holes).
    static func copyRaw(from source: String, to target: String, progress: @escaping ProgressSink) async throws {
        try await stoppable { stop in try copyBlocking(source, target, progress, stop) }
    }

    /// Copies the first `length` bytes of the open file `input` into the empty file `output`
    /// (holes stay holes; the caller sets the final size).
    static func copyData(from input: Int32, to output: Int32, length: Int, progress: @escaping ProgressSink) async throws {
        try await stoppable { stop in
            try copyExtents(input, output, length: length, progress, stop, names: ("the file", "the volume"))
        }
    }

    /// Copies `length` bytes of `input` from `offset` into the empty file `output` from its
    /// start (`vol-download`): a file's data extents (holes stay holes), or a logical volume's
    /// range of its physical volume piece by piece.
    static func copyOut(from input: Int32, offset: Int, length: Int, to output: Int32, progress: @escaping ProgressSink) async throws {
        try await stoppable { stop in
            guard ftruncate(output, off_t(length)) == 0 else { throw Hypervisor.transferError("size", "the file") }
            if offset == 0 {
                try copyExtents(input, output, length: length, progress, stop, names: ("the volume", "the file"))
            } else {
                try copyRange(input, from: offset, to: output, length: length, progress, stop)
            }
        }
    }

    /// `length` bytes at `offset` of `input` (a block device: no extents to ask for) to the
    /// start of `output`, through the kernel where it copies between them, else a buffer.
    private static func copyRange(
        _ input: Int32, from offset: Int, to output: Int32, length: Int, _ progress: ProgressSink, _ stop: StopFlag
    ) throws {
        var done = 0
        progress(0, UInt64(length))
        while done < length {
            guard !stop.isSet else { throw CancellationError() }
            let count = min(piece, length - done)
            var from = offset + done
            var to = done
            var moved = copyFileRange.map { $0(input, &from, output, &to, count, 0) } ?? -1
            if moved < 0, errno == EINTR { continue }
            if moved < 0 { moved = copyThroughBuffer(input, output, at: offset + done, shift: -offset, count: count) }
            guard moved > 0 else { throw Hypervisor.transferError("copy to", "the file") }
            done += moved
            progress(UInt64(done), UInt64(length))
        }
    }

    /// Runs `body` on a thread of its own with a flag its task's cancellation sets.
    private static func stoppable(_ body: @escaping @Sendable (StopFlag) throws -> Void) async throws {
        let stop = StopFlag()
        try await withTaskCancellationHandler {
            try await BlockingIO.run { try body(stop) }
        } onCancel: {
            stop.set()
        }
    }

    /// Set when the copy's task is cancelled; the copying thread looks between pieces.
    private final class StopFlag: Sendable {
        private let stopped = Mutex(false)
        func set() { stopped.withLock { $0 = true } }
        var isSet: Bool { stopped.withLock { $0 } }
    }

    private static func copyBlocking(_ source: String, _ target: String, _ progress: ProgressSink, _ stop: StopFlag) throws {
        let input = open(source, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard input >= 0 else { throw Hypervisor.transferError("open", source) }
        defer { close(input) }
        let output = open(target, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard output >= 0 else { throw Hypervisor.transferError("create", target) }
        defer { close(output) }
        var info = stat()
        guard fstat(input, &info) == 0, ftruncate(output, info.st_size) == 0 else {
            throw Hypervisor.transferError("size", target)
        }
        try copyExtents(input, output, length: Int(info.st_size), progress, stop, names: (source, target))
        guard fsync(output) == 0 else { throw Hypervisor.transferError("write", target) }
    }

    /// Up to `count` bytes at `offset` read from `input` and written at `offset + shift` of
    /// `output`; the bytes moved, or -1.
    private static func copyThroughBuffer(_ input: Int32, _ output: Int32, at offset: Int, shift: Int, count: Int) -> Int {
        var buffer = [UInt8](repeating: 0, count: count)
        let read = buffer.withUnsafeMutableBytes { pread(input, $0.baseAddress, count, offset) }
        guard read > 0 else { return -1 }
        let written = buffer.withUnsafeBytes { pwrite(output, $0.baseAddress, read, offset + shift) }
        return written == read ? read : -1
    }

    /// The data extents of `input`'s first `length` bytes copied to the same offsets of
    /// `output`, counted from `output`'s current offset (a logical volume's start on its PV).
    private static func copyExtents(
        _ input: Int32, _ output: Int32, length: Int, _ progress: ProgressSink, _ stop: StopFlag, names: (String, String)
    ) throws {
        guard let copyFileRange else {
            throw BerthError(.unavailable, "This C library has no copy_file_range (glibc 2.27 or later needed).")
        }
        let shift = max(0, lseek(output, 0, SEEK_CUR))
        var offset = 0
        progress(0, UInt64(length))
        while offset < length {
            guard !stop.isSet else { throw CancellationError() }
            let data = lseek(input, offset, seekData)
            if data < 0, errno == ENXIO { break }  // only a hole is left
            guard data >= 0 else { throw Hypervisor.transferError("read", names.0) }
            let hole = min(lseek(input, data, seekHole), length)
            guard hole > data else { throw Hypervisor.transferError("read", names.0) }
            var from = data
            var to = data + shift
            while from < hole {
                var count = copyFileRange(input, &from, output, &to, min(piece, hole - from), 0)
                if count < 0, errno == EINTR { continue }
                if count < 0, [EXDEV, EINVAL, ENOSYS, EOPNOTSUPP].contains(errno) {
                    // Another filesystem the kernel will not copy between: through a buffer.
                    count = copyThroughBuffer(input, output, at: from, shift: shift, count: min(piece, hole - from))
                    if count > 0 {
                        from += count
                        to += count
                    }
                }
                guard count > 0 else { throw Hypervisor.transferError("copy to", names.1) }
                progress(UInt64(from), UInt64(length))
                guard !stop.isSet else { throw CancellationError() }
            }
            offset = hole
        }
        progress(UInt64(length), UInt64(length))
    }

    /// Runs `work` (a qemu-img that writes `target`) and reports the bytes `target` holds
    /// so far against `expected`, every 200 ms, until it ends.
    static func watching<T: Sendable>(
        _ target: String, expected: UInt64, progress: @escaping ProgressSink, _ work: () async throws -> T
    ) async throws -> T {
        let watcher = Task {
            while !Task.isCancelled {
                var info = stat()
                if stat(target, &info) == 0 {
                    progress(min(UInt64(max(0, info.st_blocks)) * 512, expected - min(expected, 1)), expected)
                }
                try? await Task.sleep(nanoseconds: 200_000_000)
            }
        }
        defer { watcher.cancel() }
        let result = try await work()
        progress(expected, expected)
        return result
    }
}
