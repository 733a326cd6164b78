import ArgumentParser
import BerthClient
import BerthModel
import Foundation

/// `berth snapshot-info NAME SNAP` (virsh snapshot-info).
struct SnapshotInfoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "snapshot-info", abstract: "Show one snapshot.")
    @Argument(help: "Domain name.") var name: String
    @Argument(help: "Snapshot name.") var snapshot: String
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let info = try await connection.run { try await $0.snapshot(name, snapshot) }
        if output.json { return try output.printJSON(info) }
        var rows: [(String, String)] = [
            ("Name", info.name), ("Domain", name), ("Created", ISO8601DateFormatter().string(from: info.createdAt)),
            ("State", info.state.rawValue), ("Memory", info.memory ? "yes" : "no (disks only)"),
            ("Location", info.external ? "external" : "internal"), ("Disks", info.disks.joined(separator: ", ")),
        ]
        rows += info.overlays.map { [("Overlays", $0.joined(separator: ", "))] } ?? []
        rows += [
            ("Description", info.description ?? "")
        ]
        for (key, value) in rows { print((key + ":").padding(toLength: 14, withPad: " ", startingAt: 0) + value) }
    }
}
