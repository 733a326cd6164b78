import ArgumentParser
import BerthModel
import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

struct VolUpload: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vol-upload", abstract: "Replace a raw volume's content with a local file, streamed through berthd.",
        discussion:
            "berth vol-upload disk.img ./disk.raw --pool default. The rest of the volume becomes zeros; a failed upload leaves the volume as it was. Run as root against the local berthd (its unix socket), berthd reads the file itself; otherwise it is streamed."
    )

    @Argument(help: "Volume: NAME with --pool, POOL/NAME, or its path.") var volume: String
    @Argument(help: "The local file to send.") var file: String
    @OptionGroup var volumeOptions: VolumeOptions
    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        let fd = open(file, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw BerthError(.notFound, "Cannot open \(file): \(String(cString: strerror(errno)))", remedy: "Give a readable file.")
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            throw BerthError(.invalidArgument, "\(file) is not a regular file.", remedy: "Give a file.")
        }
        let length = UInt64(info.st_size)
        let meter = ProgressMeter(total: length)
        let result = try await connection.run { client in
            let (pool, name) = try await volumeOptions.locate(volume, client: client)
            // The local berthd reads the file itself for root (the kernel copies it); others
            // get it streamed, read with the caller's own permissions.
            if case .unix = client.endpoint, geteuid() == 0 {
                return try await client.uploadVolume(pool: pool, name: name, file: SavePaths.absolute(file)) { meter.show($0.bytes) }
            }
            return try await client.uploadVolume(pool: pool, name: name, from: fd, length: length) { meter.show($0) }
        }
        meter.finish()
        print("Volume '\(result.name)' now holds the \(length) bytes of \(file)")
    }
}

struct VolDownload: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vol-download", abstract: "Copy a volume's content into a local file, streamed through berthd.",
        discussion:
            "berth vol-download disk.img ./disk.raw --pool default. The file must not exist. Run as root against the local berthd (its unix socket), berthd writes the file itself (the kernel copies it, holes stay holes); otherwise it is streamed."
    )

    @Argument(help: "Volume: NAME with --pool, POOL/NAME, or its path.") var volume: String
    @Argument(help: "The local file to write (must not exist).") var file: String
    @OptionGroup var volumeOptions: VolumeOptions
    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        let fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw BerthError(
                .alreadyExists, "Cannot create \(file): \(String(cString: strerror(errno)))", remedy: "Give a new file name.")
        }
        defer { close(fd) }
        let meter = ProgressMeter(total: 0)
        do {
            try await connection.run { client in
                let (pool, name) = try await volumeOptions.locate(volume, client: client)
                let total = try await client.volume(pool: pool, name: name).capacity
                meter.total.withLock { $0 = total }
                // As for vol-upload: the local berthd fills the file itself for root.
                if case .unix = client.endpoint, geteuid() == 0 {
                    try await client.downloadVolume(pool: pool, name: name, file: SavePaths.absolute(file)) { meter.show($0.bytes) }
                    return
                }
                try await client.downloadVolume(pool: pool, name: name, to: fd) { meter.add($0) }
            }
        } catch {
            unlink(file)
            throw error
        }
        meter.finish()
        print("Downloaded volume '\(volume)' to \(file)")
    }
}

/// Bytes moved by a transfer, drawn with `ProgressBar` at most every 4 MiB.
final class ProgressMeter: Sendable {
    let total: Mutex<UInt64>
    private let done = Mutex<(bytes: UInt64, drawn: UInt64)>((0, 0))

    init(total: UInt64) { self.total = Mutex(total) }

    func add(_ bytes: UInt64) { show(done.withLock { $0.bytes + bytes }) }

    func show(_ bytes: UInt64) {
        let draw = done.withLock { state -> Bool in
            state.bytes = bytes
            guard bytes - min(bytes, state.drawn) >= 4 << 20 else { return false }
            state.drawn = bytes
            return true
        }
        if draw { ProgressBar.show(OperationProgress(bytes: bytes, total: total.withLock { $0 })) }
    }

    func finish() {
        ProgressBar.show(OperationProgress(bytes: done.withLock { $0.bytes }, total: total.withLock { $0 }))
        ProgressBar.end()
    }
}
