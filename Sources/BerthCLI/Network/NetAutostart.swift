import ArgumentParser
import BerthModel

struct NetAutostart: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "net-autostart", abstract: "Start a network whenever berthd starts.")

    @Argument(help: "The network.") var name: String
    @Flag(help: "Stop starting it with berthd.") var disable = false
    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        _ = try await connection.run { try await $0.setNetworkAutostart(name, !disable) }
        print("Network '\(name)' \(disable ? "no longer starts" : "starts") with berthd.")
    }
}
