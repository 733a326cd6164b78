import ArgumentParser
import BerthModel
import Foundation

struct Define: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Define a domain from a file (Berth JSON).",
        discussion: "The file is read by the CLI, so relative paths inside it are resolved against the current directory.")

    @Argument(help: "The domain document.", completion: .file())
    var file: String
    @Flag(help: "Replace the definition of an existing domain of the same name.")
    var update = false
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let spec = try DocumentLoader.load(file)
        let info = try await connection.run { client in
            update ? try await client.update(spec) : try await client.define(spec)
        }
        if output.json { return try output.printJSON(info) }
        print("Domain '\(info.spec.name)' \(update ? "updated" : "defined") from \(file).")
    }
}

/// Reads a domain document from disk and makes its host paths absolute.
enum DocumentLoader {
    static let maxSize = 4 << 20

    static func read(_ file: String) throws -> String {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: file) else {
            throw BerthError(.notFound, "Cannot read \(file): no such file.", remedy: "Check the path.")
        }
        if let size = attributes[.size] as? Int, size > maxSize {
            throw BerthError(.invalidArgument, "\(file) is \(size) bytes; a domain document is at most \(maxSize).")
        }
        guard let data = FileManager.default.contents(atPath: file) else {
            throw BerthError(.notFound, "Cannot read \(file).", remedy: "Check its permissions.")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw BerthError(.invalidArgument, "\(file) is not UTF-8 text.", remedy: "Give a JSON domain document.")
        }
        return text
    }

    static func load(_ file: String) throws -> DomainSpec {
        var spec = try DocumentParser.parse(try read(file), source: file)
        let base = URL(fileURLWithPath: file).deletingLastPathComponent()
        func absolute(_ path: String?) -> String? {
            guard let path, !path.hasPrefix("/") else { return path }
            return base.appendingPathComponent(path).standardizedFileURL.path
        }
        spec.kernel = absolute(spec.kernel)
        spec.initrd = absolute(spec.initrd)
        for index in spec.disks.indices { spec.disks[index].path = absolute(spec.disks[index].path) ?? "" }
        return spec
    }
}

/// Turns document text into a domain; JSON here, other formats join through BerthFormats.
enum DocumentParser {
    static func parse(_ text: String, source: String) throws -> DomainSpec {
        do {
            return try JSONDecoder().decode(DomainSpec.self, from: Data(text.utf8))
        } catch let error as DecodingError {
            throw BerthError(
                .invalidArgument, "\(source): \(describe(error))",
                remedy: "Fix the field named; see the README for the domain document's fields.")
        }
    }

    static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
        }
        switch error {
        case .keyNotFound(let key, let context):
            let parent = path(context)
            return "missing field '\(key.stringValue)'" + (parent.isEmpty ? "" : " in '\(parent)'")
        case .typeMismatch(let type, let context): return "field '\(path(context))' should be \(type)"
        case .valueNotFound(let type, let context): return "field '\(path(context))' should be \(type), not null"
        case .dataCorrupted(let context):
            let where_ = path(context)
            return (where_.isEmpty ? "" : "field '\(where_)': ") + context.debugDescription
        @unknown default: return "\(error)"
        }
    }
}
