import BerthModel
import BerthStore
import Foundation

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
        try refuseLogical(record, "vol-upload")
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

    /// The volume's file opened for reading, and its length (what `vol-download` streams).
    public func openVolumeForDownload(pool: String, name: String) throws -> (descriptor: Int32, length: UInt64) {
        let record = try activePool(pool)
        try refuseLogical(record, "vol-download")
        let volume = try catalog.volume(pool: pool, name: name)
        let fd = open(volume.path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { throw Self.transferError("open", volume.path) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            close(fd)
            throw Self.transferError("read", volume.path)
        }
        return (fd, UInt64(max(0, info.st_size)))
    }

    /// Writes all of `bytes` to `fd`.
    static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws {
        var done = 0
        while done < bytes.count {
            let rest = UnsafeRawBufferPointer(rebasing: bytes[done...])
            let count = write(fd, rest.baseAddress, rest.count)
            if count < 0, errno == EINTR { continue }
            guard count > 0 else { throw transferError("write", "the volume") }
            done += count
        }
    }

    static func transferError(_ what: String, _ path: String) -> BerthError {
        BerthError(
            .unavailable, "Cannot \(what) \(path): \(String(cString: strerror(errno)))",
            remedy: "Check free space and permissions in the pool's directory.")
    }
}
