import ArgumentParser
import BerthModel

struct VolInfo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "vol-info", abstract: "Show a volume's format and sizes.")

    @Argument(help: "Volume: NAME with --pool, POOL/NAME, or its path.") var volume: String
    @OptionGroup var volumeOptions: VolumeOptions
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let info = try await connection.run { client in
            let (pool, name) = try await volumeOptions.locate(volume, client: client)
            return try await client.volume(pool: pool, name: name)
        }
        if output.json { return try output.printJSON(info) }
        var rows: [(String, String)] = [
            ("Name", info.name), ("Pool", info.pool), ("Type", info.extent == nil ? "file" : "block"), ("Path", info.path),
            ("Format", info.format.rawValue), ("Capacity", ByteSize.describe(info.capacity)),
            ("Allocation", ByteSize.describe(info.allocation)),
        ]
        if let backing = info.backingVolume { rows.append(("Backing volume", backing)) }
        if !info.usedBy.isEmpty { rows.append(("Used by", info.usedBy.joined(separator: ", "))) }
        printRows(rows)
    }
}

struct VolPath: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "vol-path", abstract: "Print a volume's host path.")

    @Argument(help: "Volume: NAME with --pool, or POOL/NAME.") var volume: String
    @OptionGroup var volumeOptions: VolumeOptions
    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        let info = try await connection.run { client in
            let (pool, name) = try await volumeOptions.locate(volume, client: client)
            return try await client.volume(pool: pool, name: name)
        }
        print(info.path)
    }
}
