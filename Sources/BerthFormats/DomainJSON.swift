import FoundationEssentials
import Glibc

// Fuzz builds compile BerthModel's sources into this module (fuzz/targets/*.swift).
#if canImport(BerthModel)
    import BerthModel
#endif

/// Berth's own JSON domain documents (`DomainSpec`). berthd reads only this format; the
/// others (xl, libvirt XML) are read by the CLI (`DomainDocument` in `BerthXML`).
public enum DomainJSON {
    /// Berth JSON, with decoding failures turned into errors that name the field.
    public static func decode(_ bytes: [UInt8], source: String = "domain.json") throws -> DomainSpec {
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
    public static func encode(_ spec: DomainSpec) -> String {
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
            let detail = context.underlyingError.map { String(describing: $0) } ?? context.debugDescription
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
