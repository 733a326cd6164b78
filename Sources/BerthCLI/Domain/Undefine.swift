import ArgumentParser

struct Undefine: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "undefine", abstract: "Remove a shut-off domain's definition.")

    @Argument(help: "Domain name.") var name: String
    @Flag(help: "Keep the domain's console log files.") var keepLogs = false
    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        try await connection.run { try await $0.undefine(name, keepLogs: keepLogs) }
        print("Domain '\(name)' has been undefined.")
    }
}
