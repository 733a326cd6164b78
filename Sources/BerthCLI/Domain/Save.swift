import ArgumentParser
import BerthClient
import BerthModel
import Foundation

/// `berth save NAME FILE [--running|--paused]` (xm save, virsh save).
struct Save: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "save",
        abstract: "Save a running domain's memory and device state to a file on berthd's host; the domain stops.",
        discussion:
            "The file records the domain's definition; 'berth restore FILE' brings the guest back where it was, and refuses if the definition changed since."
    )
    @Argument(help: "Domain name.") var name: String
    @Argument(help: "The file to write (it must not exist), on berthd's host.", completion: .file()) var file: String
    @Flag(help: "The state to restore into (default: the state it is in now).") var state: SavedRunState?
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let request = SaveRequest(file: SavePaths.absolute(file), state: state)
        let done = try await connection.run { client in
            try await client.finish(try await client.beginSave(name, request), progress: ProgressBar.show)
        }
        ProgressBar.end()
        if output.json { return try output.printJSON(done) }
        print("Domain '\(name)' saved to \(request.file).")
    }
}

extension SavedRunState: EnumerableFlag {}

/// Paths the daemon resolves are made absolute by the CLI (berthd has another working directory).
enum SavePaths {
    static func absolute(_ path: String) -> String {
        if path.hasPrefix("/") { return path }
        return FileManager.default.currentDirectoryPath + "/" + path
    }
}

/// A one-line progress display on standard error, when it is a terminal.
enum ProgressBar {
    static let enabled = isatty(STDERR_FILENO) == 1

    static func show(_ progress: OperationProgress) {
        guard enabled else { return }
        let mib = Double(progress.bytes) / 1_048_576
        let text: String
        if progress.total > 0 {
            let fraction = min(1, Double(progress.bytes) / Double(progress.total))
            let filled = Int(fraction * 30)
            text = String(
                format: "\r[%@%@] %3.0f%% %.1f MiB", String(repeating: "#", count: filled),
                String(repeating: " ", count: 30 - filled), fraction * 100, mib)
        } else {
            text = String(format: "\r%.1f MiB", mib)
        }
        FileHandle.standardError.write(Data(text.utf8))
    }

    static func end() {
        if enabled { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}
