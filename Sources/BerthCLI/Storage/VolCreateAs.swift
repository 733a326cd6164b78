import ArgumentParser
import BerthModel

struct VolCreateAs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vol-create-as", abstract: "Create a volume: a raw or qcow2 image, or a qcow2 overlay on another volume.",
        discussion: "berth vol-create-as default devel1 8G --format qcow2; berth vol-create-as default web2 8G --backing-vol base")

    @Argument(help: "Pool name.") var pool: String
    @Argument(help: "Volume name.") var name: String
    @Argument(help: "Size: bytes or a number with K, M, G, T (10G).") var capacity: String
    @Option(help: "raw (default) or qcow2.") var format: DiskSpec.Format?
    @Option(help: "Make a qcow2 overlay on this volume (NAME in the same pool, or POOL/NAME).") var backingVol: String?
    @OptionGroup var connection: ConnectionOptions

    func validate() throws { _ = try ByteSize.argument(capacity) }

    func run() async throws {
        let request = VolumeCreateRequest(
            name: name, capacity: try ByteSize.parse(capacity), format: format, backingVolume: backingVol)
        _ = try await connection.run { try await $0.createVolume(pool: pool, request) }
        print("Vol \(name) created")
    }
}
