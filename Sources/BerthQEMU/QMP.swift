import BerthModel
import FoundationEssentials
import Glibc

/// The QEMU Machine Protocol: JSON objects, one per line, over QEMU's control socket.
///
/// `QMP.Client` speaks it; `QMP.Value` is its JSON; `QMP.Event` its asynchronous events.
public enum QMP {
    /// A QMP line longer than this is a broken peer, not a reply: close rather than buffer forever.
    static let maxLineBytes = 16 * 1024 * 1024
}

extension QMP {
    /// A JSON value as QMP carries it.
    public enum Value: Sendable, Equatable, Codable, CustomStringConvertible {
        case null
        case bool(Bool)
        case int(Int64)
        case double(Double)
        case string(String)
        case array([Value])
        case object([String: Value])

        public init(from decoder: any Decoder) throws {
            let c = try decoder.singleValueContainer()
            if c.decodeNil() {
                self = .null
            } else if let b = try? c.decode(Bool.self) {
                self = .bool(b)
            } else if let i = try? c.decode(Int64.self) {
                self = .int(i)
            } else if let d = try? c.decode(Double.self) {
                self = .double(d)
            } else if let s = try? c.decode(String.self) {
                self = .string(s)
            } else if let a = try? c.decode([Value].self) {
                self = .array(a)
            } else {
                self = .object(try c.decode([String: Value].self))
            }
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.singleValueContainer()
            switch self {
            case .null: try c.encodeNil()
            case .bool(let b): try c.encode(b)
            case .int(let i): try c.encode(i)
            case .double(let d): try c.encode(d)
            case .string(let s): try c.encode(s)
            case .array(let a): try c.encode(a)
            case .object(let o): try c.encode(o)
            }
        }

        public subscript(key: String) -> Value? {
            if case .object(let o) = self { return o[key] }
            return nil
        }

        public var string: String? {
            if case .string(let s) = self { return s }
            return nil
        }

        public var bool: Bool? {
            if case .bool(let b) = self { return b }
            return nil
        }

        public var int: Int64? {
            switch self {
            case .int(let i): return i
            case .double(let d) where d.rounded() == d && abs(d) < 9.0e18: return Int64(d)
            default: return nil
            }
        }

        public var array: [Value]? {
            if case .array(let a) = self { return a }
            return nil
        }

        public var object: [String: Value]? {
            if case .object(let o) = self { return o }
            return nil
        }

        /// Compact JSON with sorted keys (stable for logs and tests).
        public var json: String {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            guard let data = try? encoder.encode(self) else { return "null" }
            return String(decoding: data, as: UTF8.self)
        }

        public var description: String { json }
    }
}

extension QMP {
    /// What went wrong talking to QEMU. Transport, peer-reported and decoding failures stay apart
    /// so the daemon can tell "QEMU is gone" from "QEMU said no" from "QEMU said something odd".
    public enum Error: Swift.Error, Sendable, Equatable, CustomStringConvertible {
        /// The socket could not be reached, read or written.
        case transport(String)
        /// The socket closed (QEMU exited or the client was closed) before the reply came.
        case closed
        /// QEMU answered the command with an error (`class`, `desc`); `raw` is its reply line.
        case qemu(command: String, errorClass: String, description: String, raw: String)
        /// QEMU sent something that is not the QMP this client understands; `raw` is the line.
        case decoding(String, raw: String)
        /// No reply within the time allowed.
        case timeout(command: String, seconds: Double)

        public var description: String {
            switch self {
            case .transport(let why): "QMP transport failure: \(why)"
            case .closed: "QMP connection closed (QEMU exited or the connection was closed)"
            case .qemu(let command, let cls, let desc, _): "QEMU refused '\(command)': \(desc) (\(cls))"
            case .decoding(let why, let raw): "QMP decoding failure: \(why) in \(raw.prefix(200))"
            case .timeout(let command, let seconds): "QEMU did not answer '\(command)' within \(seconds) s"
            }
        }

        /// The same failure as a user-facing error with a next step.
        public var berthError: BerthError {
            switch self {
            case .transport, .closed:
                BerthError(
                    .connection, description,
                    remedy: "The guest's QEMU may have exited; check 'berth dominfo' and the console log.")
            case .qemu:
                BerthError(.wrongState, description, remedy: "Check the domain's state and try again.")
            case .decoding:
                BerthError(.internal, description, remedy: "Report this with the QEMU version ('berth host-check').")
            case .timeout:
                BerthError(
                    .timeout, description,
                    remedy: "QEMU may be hung or stopped; 'berth destroy' stops it forcibly.")
            }
        }
    }
}

extension QMP {
    /// QEMU's greeting: its version and the capabilities it offers.
    public struct Greeting: Sendable, Equatable {
        public var major: Int
        public var minor: Int
        public var micro: Int
        /// Distribution package string, such as `Debian 1:7.2+dfsg-7`.
        public var package: String
        public var capabilities: [String]

        public var version: String { "\(major).\(minor).\(micro)" }
    }

    /// One decoded line from QEMU.
    enum Message: Sendable, Equatable {
        case greeting(Greeting)
        case reply(id: Value?, result: Value)
        case error(id: Value?, errorClass: String, description: String)
        case event(Event)
    }

    /// Decodes one QMP line; every failure names what was wrong and keeps the line.
    static func decode(line: [UInt8]) throws(QMP.Error) -> Message {
        let raw = String(decoding: line, as: UTF8.self)
        let value: Value
        do {
            value = try JSONDecoder().decode(Value.self, from: Data(line))
        } catch {
            throw .decoding("not JSON", raw: raw)
        }
        guard let object = value.object else { throw .decoding("not a JSON object", raw: raw) }
        if let greeting = object["QMP"] {
            let version = greeting["version"]?["qemu"]
            guard let major = version?["major"]?.int, let minor = version?["minor"]?.int,
                let micro = version?["micro"]?.int
            else { throw .decoding("greeting without version.qemu.major/minor/micro", raw: raw) }
            let caps = greeting["capabilities"]?.array?.compactMap(\.string) ?? []
            return .greeting(
                Greeting(
                    major: Int(major), minor: Int(minor), micro: Int(micro),
                    package: greeting["version"]?["package"]?.string ?? "", capabilities: caps))
        }
        if let result = object["return"] {
            return .reply(id: object["id"], result: result)
        }
        if let error = object["error"] {
            guard let cls = error["class"]?.string else { throw .decoding("error without a class", raw: raw) }
            return .error(id: object["id"], errorClass: cls, description: error["desc"]?.string ?? "")
        }
        if let name = object["event"]?.string {
            return .event(Event(name: name, data: object["data"] ?? .null, timestamp: object["timestamp"], raw: raw))
        }
        throw .decoding("neither greeting, return, error nor event", raw: raw)
    }
}
