import ArgumentParser
import BerthFormats
import BerthModel
import BerthXML

struct NetDumpXML: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "net-dumpxml", abstract: "Print a network as libvirt network XML (reservations included).")

    @Argument(help: "The network.") var name: String
    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        let info = try await connection.run { try await $0.network(name) }
        print(NetworkDocument.writeXML(info.spec), terminator: "")
    }
}
