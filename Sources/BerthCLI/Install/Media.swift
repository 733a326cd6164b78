import ArgumentParser
import BerthHost
import BerthModel
import Foundation

/// `berth media`: install trees and ISOs that berthd serves to guests at
/// `http://HOST:8000/install/NAME/` (a guest on user-mode networking uses 10.0.2.2:8000).
struct Media: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve install trees and ISOs to guests over HTTP (/install/NAME/).",
        subcommands: [MediaAdd.self, MediaList.self, MediaRemove.self], defaultSubcommand: MediaList.self)
}

struct MediaOptions: ParsableArguments {
    @Option(help: "berthd's state directory (default: BERTH_STATE_DIR, /var/lib/berth as root).")
    var stateDir: String?

    var library: MediaLibrary { MediaLibrary(stateDirectory: stateDir ?? DefaultPaths.current().stateDirectory) }

    func run<T>(_ body: (MediaLibrary) throws -> T) throws -> T {
        do {
            return try body(library)
        } catch let error as MediaError {
            let code: BerthError.Code =
                switch error {
                case .exists: .alreadyExists
                case .missing, .unknown, .notFound: .notFound
                default: .invalidArgument
                }
            throw BerthError(code, error.description, remedy: error.remedy)
        }
    }
}

struct MediaAdd: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "add", abstract: "Register an ISO image or a tree directory.")
    @Argument(help: "The name in URLs: /install/NAME/.") var name: String
    @Argument(help: "An ISO image or an install tree directory.", completion: .file()) var path: String
    @Flag(help: "Replace a registration of the same name.") var replace = false
    @OptionGroup var options: MediaOptions

    func run() throws {
        let entry = try options.run { try $0.add(name: name, path: path, replace: replace) }
        print("Media '\(entry.name)' (\(entry.kind.rawValue) \(entry.path)) is served at /install/\(entry.name)/")
        print("  guests on user-mode networking: --location=http://\(Installer.guestHostAddress):8000/install/\(entry.name)/")
    }
}

struct MediaList: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List registered media.")
    @OptionGroup var options: MediaOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        let entries = try options.run { try $0.entries() }
        if output.json {
            struct Row: Encodable { var name, kind, path, url: String }
            return try output.printJSON(entries.map { Row(name: $0.name, kind: $0.kind.rawValue, path: $0.path, url: "/install/\($0.name)/") })
        }
        if entries.isEmpty {
            print("No media registered. Add one with 'berth media add NAME ISO|DIR'.")
            return
        }
        let width = max(4, entries.map(\.name.count).max() ?? 0)
        print("Name".padding(toLength: width, withPad: " ", startingAt: 0) + "  Kind       Path")
        for entry in entries {
            print(entry.name.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + entry.kind.rawValue.padding(toLength: 9, withPad: " ", startingAt: 0) + "  " + entry.path)
        }
    }
}

struct MediaRemove: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "remove", abstract: "Stop serving a medium (its files are kept).")
    @Argument(help: "Media name.") var name: String
    @OptionGroup var options: MediaOptions

    func run() throws {
        try options.run { try $0.remove(name: name) }
        print("Media '\(name)' removed.")
    }
}
