import ArgumentParser
import BerthClient
import BerthModel
import Foundation

/// `berth media`: install trees and ISOs that berthd serves to guests on its media listener,
/// `http://127.0.0.1:8001/install/NAME/` (a guest on user-mode networking uses 10.0.2.2:8001).
/// The library is berthd's (`/v1/media`), so it works against a remote host (`--connect`).
struct Media: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "media",
        abstract: "Serve install trees and ISOs to guests over HTTP (/install/NAME/).",
        subcommands: [MediaAdd.self, MediaList.self, MediaRemove.self], defaultSubcommand: MediaList.self)
}

/// The media listener's base URLs, on berthd's host and as a guest on user-mode networking sees
/// it (`GET /v1/host`); nil when berthd serves no media. `BERTH_MEDIA_URL` overrides the guest's.
private func mediaURLs(_ client: BerthClient) async throws -> (host: String, guest: String)? {
    let info = try await client.host()
    guard let address = info.mediaAddress, let port = info.mediaPort else { return nil }
    let guest = (try? Installer.mediaURL(host: info)) ?? "http://\(Installer.guestHostAddress):\(port)"
    return ("http://" + address, guest)
}

struct MediaAdd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add", abstract: "Register an ISO image or a tree directory on berthd's host.")
    @Argument(help: "The name in URLs: /install/NAME/.") var name: String
    @Argument(
        help: "An ISO image or an install tree directory on berthd's host (a relative path is taken from the current directory).",
        completion: .file())
    var path: String
    @Flag(help: "Replace a registration of the same name.") var replace = false
    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        let (info, urls) = try await connection.run { client in
            let info = try await client.addMedia(MediaAddRequest(name: name, path: absolute, replace: replace ? true : nil))
            return (info, try await mediaURLs(client))
        }
        print("Media '\(info.name)' (\(info.kind) \(info.path)) is served at /install/\(info.name)/")
        if let urls {
            print("  on berthd's host: --location=\(urls.host)/install/\(info.name)/")
            print("  guests on user-mode networking: --location=\(urls.guest)/install/\(info.name)/")
        } else {
            print("  berthd serves no media (it runs with --media-listen none): restart it with --media-listen 127.0.0.1:8001.")
        }
    }
}

struct MediaList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List registered media.")
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let (entries, urls) = try await connection.run { client in (try await client.media(), try await mediaURLs(client)) }
        if output.json {
            struct Row: Encodable {
                var name, kind, path, url: String
                var hostURL, guestURL: String?
            }
            return try output.printJSON(
                entries.map { entry in
                    Row(
                        name: entry.name, kind: entry.kind, path: entry.path, url: "/install/\(entry.name)/",
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
                    + entry.kind.padding(toLength: 9, withPad: " ", startingAt: 0) + "  " + entry.path)
        }
        if let urls {
            print("Served at \(urls.host)/install/NAME/ (guests on user-mode networking: \(urls.guest)/install/NAME/).")
        }
    }
}

struct MediaRemove: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "remove", abstract: "Stop serving a medium (its files are kept).")
    @Argument(help: "Media name.") var name: String
    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        try await connection.run { client in try await client.removeMedia(name) }
        print("Media '\(name)' removed.")
    }
}
