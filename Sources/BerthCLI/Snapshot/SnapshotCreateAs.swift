import ArgumentParser
import BerthClient
import BerthModel

/// `berth snapshot-create-as NAME SNAP` (virsh snapshot-create-as).
struct SnapshotCreateAs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "snapshot-create-as",
        abstract: "Take a snapshot: internal, in a domain's qcow2 disks (with its memory when it runs), or external with --disk-only.")
    @Argument(help: "Domain name.") var name: String
    @Argument(help: "Snapshot name.") var snapshot: String
    @Option(help: "A description.") var description: String?
    @Flag(
        name: .customLong("disk-only"),
        help: "External snapshot: keep each disk's file as it is and write to a new qcow2 overlay next to it (raw disks too).")
    var diskOnly = false
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let info = try await connection.run {
            try await $0.createSnapshot(
                name, SnapshotRequest(name: snapshot, description: description, diskOnly: diskOnly ? true : nil))
        }
        if output.json { return try output.printJSON(info) }
        if let overlays = info.overlays {
            return print("Domain snapshot \(snapshot) created (external, disks only); the guest now writes to \(overlays.joined(separator: ", ")).")
        }
        print("Domain snapshot \(snapshot) created\(info.memory ? " (disks and memory)" : " (disks only)").")
    }
}
