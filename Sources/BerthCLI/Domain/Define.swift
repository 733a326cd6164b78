import ArgumentParser
import BerthFormats
import BerthModel
import BerthXML
import Foundation

struct Define: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "define",
        abstract: "Define a domain from a file: Berth JSON, libvirt XML or an xm/xl config.",
        discussion:
            "The format is recognised by content, not by file name. The CLI reads the file, so relative paths inside it are resolved against the file's directory. Settings Berth cannot honour are printed as warnings and kept in the domain's notes."
    )

    @Argument(help: "The domain document.", completion: .file())
    var file: String
    @Flag(help: "Replace the definition of an existing domain of the same name.")
    var update = false
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let spec = try DocumentLoader.load(file, printWarnings: !output.json)
        let info = try await connection.run { client in
            update ? try await client.update(spec) : try await client.define(spec)
        }
        if output.json { return try output.printJSON(info) }
        print("Domain '\(info.spec.name)' \(update ? "updated" : "defined") from \(file).")
        if let problem = info.spec.bootProblem {
            FileHandle.standardError.write(Data("warning: \(problem) 'berth start' refuses it until it has one.\n".utf8))
        }
    }
}

/// Reads a domain document from disk and makes its host paths absolute.
enum DocumentLoader {
    static let maxSize = 4 << 20

    static func read(_ file: String) throws -> [UInt8] {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: file) else {
            throw BerthError(.notFound, "Cannot read \(file): no such file.", remedy: "Check the path.")
        }
        if let size = attributes[.size] as? Int, size > maxSize {
            throw BerthError(.invalidArgument, "\(file) is \(size) bytes; a domain document is at most \(maxSize).")
        }
        guard let data = FileManager.default.contents(atPath: file) else {
            throw BerthError(.notFound, "Cannot read \(file).", remedy: "Check its permissions.")
        }
        return [UInt8](data)
    }

    /// Reads any domain document (JSON, libvirt XML, xm/xl), printing what could not be
    /// carried over.
    static func load(_ file: String, printWarnings: Bool = true) throws -> DomainSpec {
        let parsed = try DomainDocument.parse(bytes: try read(file), source: file)
        if printWarnings {
            for warning in parsed.warnings {
                FileHandle.standardError.write(Data("warning: \(file): \(warning)\n".utf8))
            }
        }
        var spec = parsed.spec
        let base = URL(fileURLWithPath: file).deletingLastPathComponent()
        func absolute(_ path: String?) -> String? {
            guard let path, !path.hasPrefix("/") else { return path }
            return base.appendingPathComponent(path).standardizedFileURL.path
        }
        spec.kernel = absolute(spec.kernel)
        spec.initrd = absolute(spec.initrd)
        // A disk naming a volume has no path yet: berthd resolves it.
        for index in spec.disks.indices where !(spec.disks[index].volume != nil && spec.disks[index].path.isEmpty) {
            spec.disks[index].path = absolute(spec.disks[index].path) ?? ""
        }
        return spec
    }
}
