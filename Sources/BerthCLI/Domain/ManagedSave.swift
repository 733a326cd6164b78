import ArgumentParser
import BerthClient
import BerthModel

/// `berth managedsave NAME` (virsh managedsave).
struct ManagedSave: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "managedsave",
        abstract: "Save a running domain under berthd's state directory; its next 'start' resumes it.")
    @Argument(help: "Domain name.") var name: String
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let info = try await connection.run { client in
            try await client.finish(try await client.beginManagedSave(name), progress: ProgressBar.show)
            return try await client.info(name)
        }
        ProgressBar.end()
        if output.json { return try output.printJSON(info) }
        print("Domain '\(name)' saved; 'berth start \(name)' resumes it.")
    }
}
