import ArgumentParser
import BerthModel

struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List running domains (all with --all).")

    @Flag(name: .shortAndLong, help: "Include domains that are not running.")
    var all = false
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let domains = try await connection.run { try await $0.list() }
            .filter { all || $0.state != .shutoff && $0.state != .crashed }
        if output.json { return try output.printJSON(domains) }
        let width = max(20, (domains.map(\.name.count).max() ?? 0) + 2)
        print(
            " " + "Name".padding(toLength: width, withPad: " ", startingAt: 0) + "State".padding(toLength: 12, withPad: " ", startingAt: 0)
                + "Memory  vCPUs  Autostart")
        print(String(repeating: "-", count: width + 40))
        for domain in domains {
            print(
                " " + domain.name.padding(toLength: width, withPad: " ", startingAt: 0)
                    + domain.state.rawValue.padding(toLength: 12, withPad: " ", startingAt: 0)
                    + "\(domain.memory)M".padding(toLength: 8, withPad: " ", startingAt: 0)
                    + "\(domain.vcpus)".padding(toLength: 7, withPad: " ", startingAt: 0)
                    + (domain.autostart ? "yes" : "no"))
        }
    }
}
