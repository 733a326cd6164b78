import ArgumentParser
import BerthModel

struct Create: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create",
        abstract: "Define a domain from a file and start it (xm create).")

    @Argument(help: "The domain document: Berth JSON, libvirt XML or an xm/xl config.", completion: .file())
    var file: String
    @Flag(name: [.customShort("c"), .long], help: "Attach to the console after starting.") var console = false
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let spec = try DocumentLoader.load(file, printWarnings: !output.json)
        let info = try await connection.run { client in
            _ = try await client.define(spec)
            return try await client.perform(.start, on: spec.name)
        }
        if output.json { return try output.printJSON(info) }
        print("Domain '\(spec.name)' created from \(file) and started.")
        if console { try await ConsoleAttachment.attach(spec.name, connection) }
    }
}
