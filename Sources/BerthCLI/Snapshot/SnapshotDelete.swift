import ArgumentParser
import BerthClient

/// `berth snapshot-delete NAME SNAP` (virsh snapshot-delete).
struct SnapshotDelete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "snapshot-delete",
        abstract: "Delete a snapshot from the catalog and the disks (an external one is merged into the files under it).")
    @Argument(help: "Domain name.") var name: String
    @Argument(help: "Snapshot name.") var snapshot: String
    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        let saved = try await connection.run { client in
            let saved = try await client.snapshot(name, snapshot)
            try await client.deleteSnapshot(name, snapshot)
            return saved
        }
        if let overlays = saved.overlays {
            return print(
                "Domain snapshot \(snapshot) deleted: \(overlays.joined(separator: ", ")) merged into \(saved.disks.joined(separator: ", ")), which the domain uses again."
            )
        }
        print("Domain snapshot \(snapshot) deleted.")
    }
}
