import ArgumentParser
import BerthClient

/// `berth snapshot-revert NAME SNAP` (virsh snapshot-revert).
struct SnapshotRevert: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "snapshot-revert",
        abstract: "Bring a domain's disks (and memory, for a snapshot taken while it ran) back to a snapshot.")
    @Argument(help: "Domain name.") var name: String
    @Argument(help: "Snapshot name.") var snapshot: String
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let (saved, info) = try await connection.run { client in
            (try await client.snapshot(name, snapshot), try await client.revertSnapshot(name, snapshot))
        }
        if output.json { return try output.printJSON(info) }
        print("Domain '\(name)' reverted to snapshot \(snapshot) (\(info.state.rawValue)).")
        if let overlays = saved.overlays {
            print(
                "What it wrote since was discarded: \(overlays.joined(separator: ", ")) started again empty on \(saved.disks.joined(separator: ", "))."
            )
        }
    }
}
