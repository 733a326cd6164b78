import FoundationEssentials
import Glibc

/// An error that reaches a user: what went wrong and what to do next.
///
/// The HTTP layer maps `code` to a status, the CLI maps it to an exit code, and
/// both print `message` followed by `remedy`.
public struct BerthError: Error, Codable, Sendable, Equatable, CustomStringConvertible {
    public enum Code: String, Codable, Sendable, CaseIterable {
        /// The request itself is wrong (bad field, out of range, malformed file).
        case invalidArgument = "invalid-argument"
        /// Something named does not exist (domain, file, network).
        case notFound = "not-found"
        /// A name, MAC, UUID or disk is already taken.
        case alreadyExists = "already-exists"
        /// The domain is not in a state that allows this (already running, not running).
        case wrongState = "wrong-state"
        /// The host lacks something (QEMU not installed, KVM unusable).
        case unavailable = "unavailable"
        /// The API token is missing or wrong.
        case unauthorized = "unauthorized"
        /// The operation did not finish in time (a guest that ignores ACPI).
        case timeout = "timeout"
        /// The daemon could not be reached.
        case connection = "connection"
        /// A bug or an unexpected host failure.
        case `internal` = "internal"

        /// Stable process exit codes for the CLI (documented in the README).
        public var exitCode: Int32 {
            switch self {
            case .invalidArgument: 2
            case .notFound: 3
            case .alreadyExists: 4
            case .wrongState: 5
            case .unavailable: 6
            case .unauthorized: 7
            case .timeout: 8
            case .connection: 9
            case .internal: 10
            }
        }

        /// The HTTP status the API answers with.
        public var httpStatus: Int {
            switch self {
            case .invalidArgument: 400
            case .notFound: 404
            case .alreadyExists, .wrongState: 409
            case .unavailable: 503
            case .unauthorized: 401
            case .timeout: 504
            case .connection: 502
            case .internal: 500
            }
        }
    }

    public var code: Code
    public var message: String
    public var remedy: String?

    public init(_ code: Code, _ message: String, remedy: String? = nil) {
        self.code = code
        self.message = message
        self.remedy = remedy
    }

    public var description: String {
        guard let remedy, !remedy.isEmpty else { return message }
        return "\(message) — \(remedy)"
    }
}

extension BerthError {
    public static func unknownDomain(_ name: String) -> BerthError {
        BerthError(.notFound, "No domain named '\(name)'.", remedy: "List domains with 'berth list --all'.")
    }

    public static func nameInUse(_ name: String) -> BerthError {
        BerthError(
            .alreadyExists, "Guest name '\(name)' is already in use.",
            remedy: "Remove it with 'berth undefine \(name)' or choose another name.")
    }
}

extension BerthError {
    /// What went wrong, in words, for any error: FoundationEssentials' file errors have no
    /// `localizedDescription`, so theirs is built from the path and the system's message.
    public static func reason(_ error: any Error) -> String {
        switch error {
        case let berth as BerthError: return berth.message
        case let posix as POSIXError: return String(cString: strerror(posix.code.rawValue))
        case let cocoa as CocoaError:
            let cause = (cocoa.userInfo["NSUnderlyingError"] as? POSIXError).map { String(cString: strerror($0.code.rawValue)) }
            let what = cause ?? "file operation failed (code \(cocoa.code.rawValue))"
            return (cocoa.userInfo["NSFilePath"] as? String).map { "\($0): \(what)" } ?? what
        default: return String(describing: error)
        }
    }
}
