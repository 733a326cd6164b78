import Foundation

// Fuzz builds compile BerthModel's sources into this module (fuzz/targets/*.swift).
#if canImport(BerthModel)
    import BerthModel
#endif

/// A domain document of any format Berth reads, recognised by its content.
public enum DomainDocument {
    public enum Format: String, Sendable, Equatable, CaseIterable {
        /// Berth's own JSON (`DomainSpec`).
        case json
        /// libvirt domain XML.
        case libvirtXML = "libvirt-xml"
        /// xl or xm domain config.
        case xl

        /// A format as users name it on the command line: `json`, `xml`/`libvirt`, `xl`/`xm`.
        public init?(name: String) {
            switch name.lowercased() {
            case "json", "berth": self = .json
            case "xml", "libvirt", "libvirt-xml", "virsh": self = .libvirtXML
            case "xl", "xm", "xen", "cfg": self = .xl
            default: return nil
            }
        }
    }

    /// Writes `spec` in `format`; each reads back to the same spec.
    public static func write(_ spec: DomainSpec, as format: Format) -> String {
        switch format {
        case .json: encodeJSON(spec)
        case .libvirtXML: LibvirtXML.write(spec)
        case .xl: XLDomain.write(spec)
        }
    }

    /// Recognises the format by content, not file name: `{` starts JSON, `<` starts XML,
    /// anything else is read as an xl/xm config.
    public static func detect(_ text: String) -> Format {
        var rest = Substring(text)
        if rest.hasPrefix("\u{FEFF}") { rest = rest.dropFirst() }
        let first = rest.first(where: { !$0.isWhitespace })
        switch first {
        case "{": return .json
        case "<": return .libvirtXML
        default: return .xl
        }
    }

    /// Parses any domain document.
    /// - Parameters:
    ///   - source: the file name for messages.
    ///   - options: how xl/xm vifs without a bridge are mapped.
    /// - Returns: the spec, what could not be carried over, and the format found.
    /// - Throws: `BerthError(.invalidArgument)` naming the position or JSON field and what to do.
    public static func parse(_ text: String, source: String = "domain", options: XLDomain.Options = XLDomain.Options())
        throws -> (spec: DomainSpec, warnings: [FormatWarning], format: Format)
    {
        try parse(bytes: Array(text.utf8), source: source, options: options)
    }

    public static func parse(
        bytes: [UInt8], source: String = "domain", options: XLDomain.Options = XLDomain.Options()
    ) throws -> (spec: DomainSpec, warnings: [FormatWarning], format: Format) {
        let text = try InputCheck.text(bytes, source: source, what: "a domain document")
        let format = detect(text)
        switch format {
        case .json:
            return (try decodeJSON(bytes, source: source), [], .json)
        case .libvirtXML:
            let result = try LibvirtXML.read(bytes: bytes, source: source)
            return (result.spec, result.warnings, .libvirtXML)
        case .xl:
            let result = try XLDomain.read(bytes: bytes, source: source, options: options)
            return (result.spec, result.warnings, .xl)
        }
    }

    /// Berth JSON, with decoding failures turned into errors that name the field.
    public static func decodeJSON(_ bytes: [UInt8], source: String = "domain.json") throws -> DomainSpec {
        do {
            return try JSONDecoder().decode(DomainSpec.self, from: Data(bytes))
        } catch let error as DecodingError {
            throw describe(error, source: source)
        } catch let error as BerthError {
            throw error
        } catch {
            throw BerthError(.invalidArgument, "\(source): \(error)", remedy: "Check the JSON syntax.")
        }
    }

    /// Writes Berth JSON (sorted keys, pretty-printed).
    public static func encodeJSON(_ spec: DomainSpec) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(spec) else { return "{}" }
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    static func path(_ codingPath: [any CodingKey]) -> String {
        var out = ""
        for key in codingPath {
            if let index = key.intValue {
                out += "[\(index)]"
            } else {
                out += out.isEmpty ? key.stringValue : "." + key.stringValue
            }
        }
        return out.isEmpty ? "the document" : "'\(out)'"
    }

    /// A JSON decoding failure as a user error naming the field (shared with berthd's API).
    public static func describe(_ error: DecodingError, source: String) -> BerthError {
        switch error {
        case .keyNotFound(let key, let context):
            let field = path(context.codingPath + [key])
            return BerthError(
                .invalidArgument, "\(source): required field \(field) is missing.",
                remedy: "Add \(field) to the JSON; only \"name\" is required at the top level, \"path\" in each disk.")
        case .typeMismatch(let type, let context):
            return BerthError(
                .invalidArgument, "\(source): field \(path(context.codingPath)) has the wrong type (expected \(type)).",
                remedy: "Fix the value of \(path(context.codingPath)); \(context.debugDescription)")
        case .valueNotFound(let type, let context):
            return BerthError(
                .invalidArgument, "\(source): field \(path(context.codingPath)) is null (expected \(type)).",
                remedy: "Give a value or remove the field.")
        case .dataCorrupted(let context):
            let underlying = (context.underlyingError as NSError?)?.userInfo["NSDebugDescription"] as? String
            let detail = underlying ?? context.debugDescription
            if context.codingPath.isEmpty {
                return BerthError(.invalidArgument, "\(source): not valid JSON: \(detail)", remedy: "Check the JSON syntax (quotes, commas, braces).")
            }
            return BerthError(
                .invalidArgument, "\(source): field \(path(context.codingPath)) is invalid: \(detail)",
                remedy: "Fix the value of \(path(context.codingPath)).")
        @unknown default:
            return BerthError(.invalidArgument, "\(source): \(error)", remedy: "Check the JSON document.")
        }
    }
}
