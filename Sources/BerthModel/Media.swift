import FoundationEssentials
import Glibc

/// One entry of the media library, as berthd's catalog holds it: an install tree directory or
/// an ISO image on berthd's host, served to guests as `/install/NAME/` by the media listener.
public struct MediaEntry: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable { case directory, iso }
    public var name: String
    /// Absolute and standardized, on berthd's host.
    public var path: String
    public var kind: Kind

    public init(name: String, path: String, kind: Kind) {
        self.name = name
        self.path = path
        self.kind = kind
    }

    /// A name that is one URL path segment: 1–64 ASCII letters, digits, `.`, `_`, `-`, not `.`/`..`.
    public static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 64 && name != "." && name != ".."
            && name.unicodeScalars.allSatisfy {
                $0.isASCII && (Character($0).isLetter || Character($0).isNumber || "._-".unicodeScalars.contains($0))
            }
    }

    /// - Throws: `BerthError(.invalidArgument)` when `name` is not a media name.
    public static func validate(name: String) throws {
        guard isValidName(name) else {
            throw BerthError(
                .invalidArgument, "'\(name)' is not a media name: use letters, digits, '.', '_' and '-'.",
                remedy: "Choose a name such as 'centos6'.")
        }
    }
}

/// `POST /v1/media`: register `path` (on berthd's host) as `/install/NAME/`.
public struct MediaAddRequest: Codable, Sendable, Equatable {
    public var name: String
    /// An absolute path on berthd's host: an ISO9660 image or an install tree directory.
    public var path: String
    /// Replace an entry of the same name instead of refusing.
    public var replace: Bool?

    public init(name: String, path: String, replace: Bool? = nil) {
        self.name = name
        self.path = path
        self.replace = replace
    }
}

/// A registered install tree or ISO (`GET /v1/media`, `berth media list`): what the web
/// console's new-guest form offers as the install location.
public struct MediaInfo: Codable, Sendable, Equatable {
    public var name: String
    /// `directory` or `iso`.
    public var kind: String
    /// The tree or ISO on berthd's host.
    public var path: String
    /// `--location` for it: the media listener's URL (berthd rewrites it for the guest); nil
    /// when berthd serves no media.
    public var location: String?

    public init(name: String, kind: String, path: String, location: String?) {
        self.name = name
        self.kind = kind
        self.path = path
        self.location = location
    }
}
