import ArgumentParser
import BerthModel

struct NetList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "net-list", abstract: "List active networks (all with --all).")

    @Flag(name: .shortAndLong, help: "Include inactive networks.") var all = false
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let networks = try await connection.run { try await $0.networks() }.filter { all || $0.active }
        if output.json { return try output.printJSON(networks) }
        func pad(_ text: String, _ width: Int) -> String { text.padding(toLength: width, withPad: " ", startingAt: 0) }
        let width = max(12, (networks.map(\.spec.name.count).max() ?? 0) + 2)
        print(" " + pad("Name", width) + pad("State", 10) + pad("Autostart", 11) + pad("Mode", 10) + pad("Bridge", 12) + "Subnet")
        print(String(repeating: "-", count: width + 62))
        for network in networks {
            print(
                " " + pad(network.spec.name, width) + pad(network.active ? "active" : "inactive", 10)
                    + pad(network.spec.autostart ? "yes" : "no", 11) + pad(network.spec.mode.rawValue, 10)
                    + pad(network.spec.bridge ?? "", 12) + (network.spec.subnet?.cidr ?? "-")
                    + (network.spec.subnet6.map { " " + $0.cidr } ?? ""))
        }
    }
}
