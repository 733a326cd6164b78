import ArgumentParser
import BerthFormats
import BerthModel
import Foundation

struct KickstartCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kickstart", abstract: "Validate kickstart files; print the kickstart a domain was installed with.",
        subcommands: [KickstartValidate.self, KickstartShow.self], defaultSubcommand: KickstartShow.self)
}

struct KickstartValidate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate", abstract: "Check a kickstart file and print each problem with its line (needs no daemon).")

    @Argument(help: "The kickstart file.", completion: .file()) var file: String

    func run() throws {
        let kickstart = try Kickstart.parse(bytes: try DocumentLoader.read(file), source: file)
        let problems = kickstart.validate()
        for problem in problems { print("\(file): \(problem)") }
        let errors = problems.filter { $0.severity == .error }.count
        if let url = kickstart.installURL { print("install tree: \(url)") }
        print("disk needed: at least \(kickstart.minimumDiskMiB) MiB")
        print(errors == 0 ? "\(file): valid (\(problems.count) warning(s))" : "\(file): \(errors) error(s)")
        if errors > 0 { throw ExitCode(BerthError.Code.invalidArgument.exitCode) }
    }
}

struct KickstartShow: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show", abstract: "Print the kickstart a domain was installed with (berth kickstart NAME).")

    @Argument(help: "Domain name.") var name: String
    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        print(try await connection.run { try await $0.kickstart(name) }, terminator: "")
    }
}
