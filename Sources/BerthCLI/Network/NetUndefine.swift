import ArgumentParser
import BerthModel

struct NetUndefine: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "net-undefine", abstract: "Remove an inactive network and its reservations.")

    @Argument(help: "The network.") var name: String
    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        try await connection.run { try await $0.undefineNetwork(name) }
        print("Network '\(name)' undefined.")
    }
}
