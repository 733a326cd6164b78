import BerthClient
import BerthModel
import Foundation

/// The destination berthd as the source reaches it. This is the one place the source makes
/// its client of the destination's API, so a new transport (TLS, ssh) is added here only.
struct MigrationPeer: Sendable {
    let url: String
    let client: BerthClient

    init(url: String, token: String?) throws {
        guard let components = URLComponents(string: url), components.scheme == "http", let host = components.host,
            !host.isEmpty
        else {
            throw BerthError(
                .invalidArgument, "'\(url)' is not a destination berthd address.",
                remedy: "Give the destination's API as http://HOST:PORT (its --listen address), with its token.")
        }
        self.url = url
        self.client = BerthClient(endpoint: .tcp(host: host, port: components.port ?? 8000, token: token))
    }

    /// A failure of the destination, said as one (the source's guest is not affected).
    static func refused(_ error: any Error, url: String) -> BerthError {
        guard let error = error as? BerthError else {
            return BerthError(.unavailable, "The destination \(url) failed: \(error)")
        }
        return BerthError(
            error.code, "The destination \(url) refused the guest: \(error.message)",
            remedy: error.remedy ?? "Fix it on the destination; the guest keeps running here.")
    }
}
