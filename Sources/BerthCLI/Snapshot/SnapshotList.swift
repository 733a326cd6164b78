import ArgumentParser
import BerthClient
import BerthModel
import Foundation

/// `berth snapshot-list NAME` (virsh snapshot-list).
struct SnapshotList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "snapshot-list", abstract: "List a domain's snapshots.")
    @Argument(help: "Domain name.") var name: String
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let snapshots = try await connection.run { try await $0.snapshots(name) }
        if output.json { return try output.printJSON(snapshots) }
        let width = max(4, snapshots.map(\.name.count).max() ?? 0) + 2
        print("Name".padding(toLength: width, withPad: " ", startingAt: 0) + "Creation Time              State")
        let formatter = ISO8601DateFormatter()
        for snapshot in snapshots {
            print(
                snapshot.name.padding(toLength: width, withPad: " ", startingAt: 0)
                    + formatter.string(from: snapshot.createdAt).padding(toLength: 27, withPad: " ", startingAt: 0)
                    + snapshot.state.rawValue + (snapshot.external ? " (disk only, external)" : snapshot.memory ? "" : " (disk only)"))
        }
    }
}
