import ArgumentParser
import BerthModel

struct NetStart: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "net-start",
        abstract: "Start a network: its bridge, dnsmasq and firewall rules (or, in bridge mode, check the host bridge).")

    @Argument(help: "The network.") var name: String
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let info = try await connection.run { try await $0.startNetwork(name) }
        if output.json { return try output.printJSON(info) }
        print("Network '\(name)' started (bridge \(info.spec.bridge ?? "?")).")
    }
}
