import ArgumentParser
import BerthModel

struct DomBlkList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "domblklist", abstract: "List a domain's disks.")

    @Argument(help: "Domain name.") var name: String
    @Flag(help: "Type, device, format and volume too.") var details = false
    @Flag(help: "The stored definition's disks, not the running guest's.") var inactive = false
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    struct Row: Encodable {
        var target: String
        var source: String
        var volume: String?
        var format: String?
        var device: String
        var readOnly: Bool
    }

    func run() async throws {
        let info = try await connection.run { try await $0.info(name) }
        // The running guest's disks (hot-plugged ones too), or with --inactive the definition's.
        let disks = inactive ? info.spec.disks : info.liveDisks ?? info.spec.disks
        let rows = zip(DiskSpec.targets(disks), disks).map { target, disk in
            Row(
                target: target, source: disk.path, volume: disk.volume, format: disk.format?.rawValue,
                device: disk.device.rawValue, readOnly: disk.readOnly)
        }
        if output.json { return try output.printJSON(rows) }
        var table = [(details ? ["Type", "Device"] : []) + ["Target", "Source"] + (details ? ["Format", "Volume"] : [])]
        for row in rows {
            let type = row.source.hasPrefix("/dev/") ? "block" : "file"
            table.append(
                (details ? [type, row.device] : []) + [row.target, row.source] + (details ? [row.format ?? "-", row.volume ?? "-"] : []))
        }
        printTable(table)
    }
}
