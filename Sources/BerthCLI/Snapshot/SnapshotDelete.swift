import ArgumentParser
import BerthClient

/// `berth snapshot-delete NAME SNAP` (virsh snapshot-delete).
struct SnapshotDelete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "snapshot-delete", abstract: "Delete a snapshot from the catalog and the disks.")
    @Argument(help: "Domain name.") var name: String
    @Argument(help: "Snapshot name.") var snapshot: String
    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        try await connection.run { try await $0.deleteSnapshot(name, snapshot) }
        print("Domain snapshot \(snapshot) deleted.")
    }
}
