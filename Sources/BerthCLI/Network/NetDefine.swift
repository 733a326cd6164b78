import ArgumentParser
import BerthFormats
import BerthModel
import BerthXML
import Foundation

struct NetDefine: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "net-define",
        abstract: "Define a network from a file: Berth JSON or libvirt network XML (virsh net-dumpxml).",
        discussion:
            "Modes: nat (a Berth bridge, DHCP and DNS, masquerade), routed (the same without NAT), isolated (guests and host only), bridge (an existing host bridge; the LAN's DHCP server). Start it with 'berth net-start NAME'."
    )

    @Argument(help: "The network document.", completion: .file())
    var file: String
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let parsed = try NetworkDocument.parse(bytes: try DocumentLoader.read(file), source: file)
        if !output.json {
            for warning in parsed.warnings { FileHandle.standardError.write(Data("warning: \(file): \(warning)\n".utf8)) }
        }
        let info = try await connection.run { try await $0.defineNetwork(parsed.spec) }
        if output.json { return try output.printJSON(info) }
        print("Network '\(info.spec.name)' defined from \(file) (\(info.spec.mode.rawValue), bridge \(info.spec.bridge ?? "?")).")
    }
}
