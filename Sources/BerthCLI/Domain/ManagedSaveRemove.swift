import ArgumentParser
import BerthClient

/// `berth managedsave-remove NAME` (virsh managedsave-remove).
struct ManagedSaveRemove: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "managedsave-remove",
        abstract: "Discard a domain's managed save; its next start boots afresh.")
    @Argument(help: "Domain name.") var name: String
    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        try await connection.run { try await $0.removeManagedSave(name) }
        print("Managed save of '\(name)' removed.")
    }
}
