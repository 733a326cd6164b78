import BerthModel
import FoundationEssentials
import Glibc
import Hummingbird
import Synchronization

/// Query parameters, checked: a value that is not well-formed, not finite or out of range is a
/// 400 naming the parameter and what it takes, never a trap (`Int(Double.nan)`) in the daemon.
struct QueryParameters {
    let request: Request

    private func raw(_ name: String) -> String? { request.uri.queryParameters.get(name) }

    private func invalid(_ name: String, _ value: String, _ takes: String) -> BerthError {
        BerthError(
            .invalidArgument, "Query parameter '\(name)=\(value.prefix(64))' is invalid: \(name) takes \(takes).",
            remedy: "Send \(name) as \(takes), or leave it out.")
    }

    /// `true`/`false` (also `1`/`0`); absent is `defaultValue`.
    func bool(_ name: String, default defaultValue: Bool = false) throws -> Bool {
        guard let value = raw(name) else { return defaultValue }
        switch value.lowercased() {
        case "true", "1": return true
        case "false", "0": return false
        default: throw invalid(name, value, "true or false")
        }
    }

    /// A whole number in `range`; absent is nil.
    func integer(_ name: String, in range: ClosedRange<Int>) throws -> Int? {
        guard let value = raw(name) else { return nil }
        guard value.utf8.count <= 20, value.allSatisfy({ $0.isASCII && $0.isNumber }), let number = Int(value),
            range.contains(number)
        else {
            throw invalid(name, value, "a whole number from \(range.lowerBound) to \(range.upperBound)")
        }
        return number
    }

    /// A finite decimal number of seconds in `range`; absent is nil.
    func seconds(_ name: String, in range: ClosedRange<Double>) throws -> Duration? {
        guard let value = raw(name) else { return nil }
        guard value.utf8.count <= 32, let number = Double(value), number.isFinite, range.contains(number) else {
            throw invalid(name, value, "a number of seconds from \(Self.format(range.lowerBound)) to \(Self.format(range.upperBound))")
        }
        return .milliseconds(Int64((number * 1000).rounded()))
    }

    private static func format(_ value: Double) -> String {
        value == value.rounded() ? String(Int(value)) : String(value)
    }
}

extension Request {
    var query: QueryParameters { QueryParameters(request: self) }
}

/// Caps the number of long-lived streams of one kind (event subscribers, console followers):
/// each holds a connection and a task until its client goes away, so without a cap a client
/// could exhaust the daemon's file descriptors.
final class StreamLimit: Sendable {
    let kind: String
    let maximum: Int
    private let count = Mutex(0)

    init(kind: String, maximum: Int) {
        self.kind = kind
        self.maximum = maximum
    }

    /// A slot, freed when the returned lease is released (by the response body, or when the
    /// response is dropped unsent).
    func acquire() throws -> Lease {
        let granted = count.withLock { count -> Bool in
            guard count < maximum else { return false }
            count += 1
            return true
        }
        guard granted else {
            throw BerthError(
                .unavailable, "berthd already serves \(maximum) \(kind), its limit.",
                remedy: "Close \(kind) that are no longer needed (each is a client still connected), then retry.")
        }
        return Lease(limit: self)
    }

    var current: Int { count.withLock { $0 } }

    fileprivate func release() { count.withLock { $0 -= 1 } }

    final class Lease: Sendable {
        private let limit: StreamLimit
        fileprivate init(limit: StreamLimit) { self.limit = limit }
        deinit { limit.release() }
    }
}

/// The daemon-wide stream caps, shared by the unix socket and the TCP listener.
struct StreamLimits: Sendable {
    var events = StreamLimit(kind: "event streams", maximum: 64)
    var consoleFollowers = StreamLimit(kind: "console followers", maximum: 64)
    /// Serial and VNC consoles over WebSocket.
    var webSockets = StreamLimit(kind: "WebSocket consoles", maximum: 64)
}
