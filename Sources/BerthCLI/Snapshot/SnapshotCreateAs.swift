import ArgumentParser
import BerthClient
import BerthModel

/// `berth snapshot-create-as NAME SNAP` (virsh snapshot-create-as).
struct SnapshotCreateAs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "snapshot-create-as",
        abstract: "Take an internal snapshot of a domain's qcow2 disks (with its memory when it runs).")
    @Argument(help: "Domain name.") var name: String
    @Argument(help: "Snapshot name.") var snapshot: String
    @Option(help: "A description.") var description: String?
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let info = try await connection.run {
            try await $0.createSnapshot(name, SnapshotRequest(name: snapshot, description: description))
        }
        if output.json { return try output.printJSON(info) }
        print("Domain snapshot \(snapshot) created\(info.memory ? " (disks and memory)" : " (disks only)").")
    }
}
