import BerthPOSIX
import FoundationEssentials
import Glibc

/// Runs blocking work (file and ISO reads, copies, a blocking accept) on a thread of its own, so no thread of
/// Swift's small cooperative pool, which serves berthd's API, ever waits on a disk.
public enum BlockingIO {
    public static func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            do {
                try startThread(named: "berth-blocking-io") { continuation.resume(with: Result { try body() }) }
            } catch {
                continuation.resume(throwing: error)
            }
        }
    }
}

/// A file created (or truncated) for writing, appended to in order; closed once.
public final class FileSink {
    let fd: Int32
    let path: String

    public init?(path: String) {
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        self.path = path
        if fd < 0 { return nil }
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        do { try writeAll(fd, bytes) } catch {
            throw InstallTreeError.cannotRead(path: path, reason: "cannot write: \(error)")
        }
    }

    public func write(_ bytes: [UInt8]) throws { try bytes.withUnsafeBytes { try write($0) } }

    public func close() { _ = Glibc.close(fd) }
}
