import ArgumentParser
import BerthHost
import BerthModel
import Foundation

/// `berth media`: install trees and ISOs that berthd serves to guests on its media listener,
/// `http://127.0.0.1:8001/install/NAME/` (a guest on user-mode networking uses 10.0.2.2:8001).
struct Media: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "media",
        abstract: "Serve install trees and ISOs to guests over HTTP (/install/NAME/).",
        subcommands: [MediaAdd.self, MediaList.self, MediaRemove.self], defaultSubcommand: MediaList.self)
}

struct MediaOptions: ParsableArguments {
    @Option(help: "berthd's state directory (default: BERTH_STATE_DIR, /var/lib/berth as root).")
    var stateDir: String?
    @OptionGroup var connection: ConnectionOptions

    /// The media listener's base URLs, on the host and as a guest on user-mode networking sees
    /// it, from the running daemon (`GET /v1/host`); nil when berthd is not running or serves no
    /// media. `BERTH_MEDIA_URL` overrides the guest's.
    func mediaURLs() async -> (host: String, guest: String)? {
        guard let client = try? connection.client(), let info = try? await client.host(),
            let address = info.mediaAddress, let port = info.mediaPort
        else { return nil }
        let guest = (try? Installer.mediaURL(host: info)) ?? "http://\(Installer.guestHostAddress):\(port)"
        return ("http://" + address, guest)
    }

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

struct MediaAdd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "add", abstract: "Register an ISO image or a tree directory.")
    @Argument(help: "The name in URLs: /install/NAME/.") var name: String
    @Argument(help: "An ISO image or an install tree directory.", completion: .file()) var path: String
    @Flag(help: "Replace a registration of the same name.") var replace = false
    @OptionGroup var options: MediaOptions

    func run() async throws {
        let entry = try options.run { try $0.add(name: name, path: path, replace: replace) }
        print("Media '\(entry.name)' (\(entry.kind.rawValue) \(entry.path)) is served at /install/\(entry.name)/")
        if let urls = await options.mediaURLs() {
            print("  on this host: --location=\(urls.host)/install/\(entry.name)/")
            print("  guests on user-mode networking: --location=\(urls.guest)/install/\(entry.name)/")
        } else {
            print("  berthd is not running or serves no media: start it (its media listener is 127.0.0.1:8001 unless --media-listen says otherwise).")
        }
    }
}

struct MediaList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List registered media.")
    @OptionGroup var options: MediaOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let entries = try options.run { try $0.entries() }
        let urls = await options.mediaURLs()
        if output.json {
            struct Row: Encodable {
                var name, kind, path, url: String
                var hostURL, guestURL: String?
            }
            return try output.printJSON(
                entries.map { entry in
                    Row(
                        name: entry.name, kind: entry.kind.rawValue, path: entry.path, url: "/install/\(entry.name)/",
                        hostURL: urls.map { "\($0.host)/install/\(entry.name)/" },
                        guestURL: urls.map { "\($0.guest)/install/\(entry.name)/" })
                })
        }
        if entries.isEmpty {
            print("No media registered. Add one with 'berth media add NAME ISO|DIR'.")
            return
        }
        let width = max(4, entries.map(\.name.count).max() ?? 0)
        print("Name".padding(toLength: width, withPad: " ", startingAt: 0) + "  Kind       Path")
        for entry in entries {
            print(
                entry.name.padding(toLength: width, withPad: " ", startingAt: 0) + "  "
                    + entry.kind.rawValue.padding(toLength: 9, withPad: " ", startingAt: 0) + "  " + entry.path)
        }
        if let urls {
            print("Served at \(urls.host)/install/NAME/ (guests on user-mode networking: \(urls.guest)/install/NAME/).")
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
