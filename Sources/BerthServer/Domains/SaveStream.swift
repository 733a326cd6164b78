import BerthHost
import BerthModel
import BerthPOSIX
import FoundationEssentials
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// QEMU's outgoing migration stream into a save file through a pipe that berthd drains on a
/// thread of its own, as `exec:cat > FILE` does for a QEMU allowed to spawn.
///
/// Handed the file itself, QEMU's one migration thread both walks guest memory and copies every
/// page into the page cache; through a pipe the two run on two CPUs (raw QEMU on a loaded host,
/// 256 MiB guest: 1.3–1.7 s to the file, 0.6–1.5 s through `cat`). The drain moves pages with `splice` (no copy through user
/// space) and starts their write-back as it goes (`sync_file_range`), so the `fsync` that makes
/// the file whole finds little left to do.
enum SaveStream {
    /// The pipe's buffer (Linux's default ceiling for unprivileged pipes).
    static let pipeSize: Int32 = 1 << 20
    /// Write-back is started every this many bytes.
    static let writeBackStep = 8 << 20

    /// Runs `body` with the pipe's write end (to pass to QEMU), and drains the pipe into `file`
    /// from its current offset until every write end is closed. Ours closes when `body` returns.
    ///
    /// - Throws: `body`'s error first; otherwise the drain's (a full file system: the drain then
    ///   closes the pipe, so QEMU's migration fails too rather than blocking).
    static func into(_ file: Int32, path: String, _ body: (Int32) async throws -> Void) async throws {
        var ends: [Int32] = [-1, -1]
        // Close-on-exec from the start: a child spawned meanwhile holding the write end would
        // keep the drain from ever seeing the end of the stream.
        guard let pipe2, pipe2(&ends, O_CLOEXEC) == 0 else { throw SaveImage.ioError("make a pipe for", path) }
        let (readEnd, writeEnd) = (ends[0], ends[1])
        _ = fcntl(writeEnd, setPipeSize, pipeSize)
        let stop = StopFlag()
        let drain = Task {
            try await BlockingIO.run {
                defer { close(readEnd) }
                try drainPipe(readEnd, into: file, path: path) { stop.isSet }
            }
        }
        var failure: (any Error)?
        do { try await body(writeEnd) } catch { failure = error }
        close(writeEnd)
        // QEMU's end closes when its migration ends either way; a QEMU that never took the
        // descriptor (or hangs on it) must not hold the drain forever once `body` failed.
        if failure != nil { stop.set() }
        let drained = await drain.result
        if let failure { throw failure }
        try drained.get()
    }

    /// Set when `body` failed: the draining thread looks between reads.
    private final class StopFlag: Sendable {
        private let stopped = Mutex(false)
        func set() { stopped.withLock { $0 = true } }
        var isSet: Bool { stopped.withLock { $0 } }
    }

    /// Moves everything from the pipe into the file; returns at end of stream or when `stopped`.
    private static func drainPipe(_ pipe: Int32, into file: Int32, path: String, stopped: () -> Bool) throws {
        var start = lseek(file, 0, SEEK_CUR)
        var unsynced = 0
        var buffer: [UInt8] = []
        while !stopped() {
            var ready = pollfd(fd: pipe, events: Int16(POLLIN), revents: 0)
            let polled = poll(&ready, 1, 100)
            if polled < 0, errno != EINTR { throw SaveImage.ioError("read the guest's state for", path) }
            guard polled > 0 else { continue }
            let moved = try move(from: pipe, to: file, path: path, buffer: &buffer)
            guard moved > 0 else { return }
            unsynced += moved
            if unsynced >= writeBackStep, start >= 0 {
                _ = syncFileRange?(file, Int64(start), Int64(unsynced), syncFileRangeWrite)
                start += off_t(unsynced)
                unsynced = 0
            }
        }
    }

    /// One `splice` (or, where the file system refuses it, one read and write); 0 at the end.
    private static func move(from pipe: Int32, to file: Int32, path: String, buffer: inout [UInt8]) throws -> Int {
        if buffer.isEmpty, let splice {
            let moved = splice(pipe, nil, file, nil, Int(pipeSize), spliceMove | spliceMore)
            if moved >= 0 { return moved }
            if errno == EINTR || errno == EAGAIN { return try move(from: pipe, to: file, path: path, buffer: &buffer) }
            guard errno == EINVAL else { throw SaveImage.ioError("write", path) }
        }
        if buffer.isEmpty { buffer = [UInt8](repeating: 0, count: Int(pipeSize)) }
        let count = buffer.count
        let got = buffer.withUnsafeMutableBytes { read(pipe, $0.baseAddress, count) }
        if got < 0, errno == EINTR || errno == EAGAIN { return try move(from: pipe, to: file, path: path, buffer: &buffer) }
        guard got >= 0 else { throw SaveImage.ioError("read the guest's state for", path) }
        do { try BerthPOSIX.writeAll(file, buffer[0..<got]) } catch { throw SaveImage.ioError("write", path, error.errno) }
        return got
    }

    // Swift's Glibc module imports none of these calls: looked up like `copy_file_range`.
    private typealias Splice =
        @convention(c) (Int32, UnsafeMutablePointer<Int64>?, Int32, UnsafeMutablePointer<Int64>?, Int, UInt32) -> Int
    private typealias SyncFileRange = @convention(c) (Int32, Int64, Int64, UInt32) -> Int32
    private typealias Pipe2 = @convention(c) (UnsafeMutablePointer<Int32>?, Int32) -> Int32
    /// `F_SETPIPE_SZ`.
    private static let setPipeSize: Int32 = 1031
    private static let spliceMove: UInt32 = 1
    private static let spliceMore: UInt32 = 4
    private static let syncFileRangeWrite: UInt32 = 2

    private static let splice: Splice? = {
        guard let symbol = dlsym(dlopen(nil, RTLD_NOW), "splice") else { return nil }
        return unsafeBitCast(symbol, to: Splice.self)
    }()

    private static let pipe2: Pipe2? = {
        guard let symbol = dlsym(dlopen(nil, RTLD_NOW), "pipe2") else { return nil }
        return unsafeBitCast(symbol, to: Pipe2.self)
    }()

    private static let syncFileRange: SyncFileRange? = {
        guard let symbol = dlsym(dlopen(nil, RTLD_NOW), "sync_file_range") else { return nil }
        return unsafeBitCast(symbol, to: SyncFileRange.self)
    }()
}
