import ArgumentParser
import BerthFormats
import BerthModel
import BerthXML
import Foundation

extension DomainDocument.Format: ExpressibleByArgument {
    public init?(argument: String) { self.init(name: argument) }
}

struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Convert a domain document between xl/xm, libvirt XML and Berth JSON (needs no daemon).")

    @Argument(help: "The document to read (format recognised by content).", completion: .file())
    var file: String
    @Option(help: "Output format: xl, xml or json.") var to: DomainDocument.Format

    func run() throws {
        let parsed = try DomainDocument.parse(bytes: try DocumentLoader.read(file), source: file)
        for warning in parsed.warnings { FileHandle.standardError.write(Data("warning: \(file): \(warning)\n".utf8)) }
        try parsed.spec.validate()
        print(DomainDocument.write(parsed.spec, as: to), terminator: "")
    }
}

struct DumpXML: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "dumpxml", abstract: "Print a domain as libvirt XML.")

    @Argument(help: "Domain name.") var name: String
    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        let info = try await connection.run { try await $0.info(name) }
        print(DomainDocument.write(info.spec, as: .libvirtXML), terminator: "")
    }
}

struct DumpConfig: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dumpconfig", abstract: "Print a domain's definition as an xl config, JSON or libvirt XML.")

    @Argument(help: "Domain name.") var name: String
    @Option(help: "xl, json or xml.") var format: DomainDocument.Format = .xl
    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        let info = try await connection.run { try await $0.info(name) }
        print(DomainDocument.write(info.spec, as: format), terminator: "")
    }
}
