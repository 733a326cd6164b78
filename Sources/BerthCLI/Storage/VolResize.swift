import ArgumentParser
import BerthModel

struct VolResize: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vol-resize", abstract: "Grow a volume (live when a running guest has it); shrinking needs --shrink.",
        discussion:
            "berth vol-resize devel1 20G --pool default. A running guest's disk grows at once (QMP block_resize); grow the partition and filesystem inside the guest afterwards."
    )

    @Argument(help: "Volume: NAME with --pool, POOL/NAME, or its path.") var volume: String
    @Argument(help: "The new size (20G), or +SIZE to add to it.") var capacity: String
    @Flag(help: "Allow a smaller size: the end of the volume is discarded.") var shrink = false
    @OptionGroup var volumeOptions: VolumeOptions
    @OptionGroup var connection: ConnectionOptions

    func validate() throws { _ = try ByteSize.argument(capacity.hasPrefix("+") ? String(capacity.dropFirst()) : capacity) }

    func run() async throws {
        let info = try await connection.run { client in
            let (pool, name) = try await volumeOptions.locate(volume, client: client)
            var size = try ByteSize.parse(capacity.hasPrefix("+") ? String(capacity.dropFirst()) : capacity)
            if capacity.hasPrefix("+") { size += try await client.volume(pool: pool, name: name).capacity }
            return try await client.resizeVolume(pool: pool, name: name, VolumeResizeRequest(capacity: size, shrink: shrink))
        }
        print("Size of volume '\(info.name)' successfully changed to \(ByteSize.describe(info.capacity))")
    }
}
