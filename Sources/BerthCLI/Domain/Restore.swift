import ArgumentParser
import BerthClient
import BerthModel

/// `berth restore FILE [--running|--paused]` (xm restore, virsh restore).
struct Restore: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore",
        abstract: "Restore a domain saved with 'berth save' from a file on berthd's host.",
        discussion: "The domain must be defined with the definition it was saved with, and shut off.")
    @Argument(help: "A file written by 'berth save'.", completion: .file()) var file: String
    @Flag(help: "The state to leave it in (default: the one recorded in the file).") var state: SavedRunState?
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let request = RestoreRequest(file: SavePaths.absolute(file), state: state)
        let (done, info) = try await connection.run { client in
            let done = try await client.finish(try await client.beginRestore(request), progress: ProgressBar.show)
            return (done, try await client.info(done.domain))
        }
        ProgressBar.end()
        if output.json { return try output.printJSON(info) }
        print("Domain '\(done.domain)' restored from \(request.file) (\(info.state.rawValue)).")
    }
}
