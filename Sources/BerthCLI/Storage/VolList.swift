import ArgumentParser
import BerthModel

struct VolList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "vol-list", abstract: "List a pool's volumes.")

    @Argument(help: "Pool name.") var pool: String
    @Flag(help: "Format, capacity, allocation, backing volume and users too.") var details = false
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let volumes = try await connection.run { try await $0.volumes(pool: pool) }
        if output.json { return try output.printJSON(volumes) }
        var rows = [["Name", "Path"] + (details ? ["Format", "Capacity", "Allocation", "Backing", "Used by"] : [])]
        for volume in volumes {
            var row = [volume.name, volume.path]
            if details {
                row += [
                    volume.format.rawValue, ByteSize.describe(volume.capacity), ByteSize.describe(volume.allocation),
                    volume.backingVolume ?? "-", volume.usedBy.isEmpty ? "-" : volume.usedBy.joined(separator: ","),
                ]
            }
            rows.append(row)
        }
        printTable(rows)
    }
}
