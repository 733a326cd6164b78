import ArgumentParser
import BerthModel

struct NetDestroy: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "net-destroy",
        abstract: "Stop a network: removes its bridge, dnsmasq, firewall rules and the guests' taps on it.")

    @Argument(help: "The network.") var name: String
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let info = try await connection.run { try await $0.destroyNetwork(name) }
        if output.json { return try output.printJSON(info) }
        print("Network '\(name)' destroyed.")
    }
}
