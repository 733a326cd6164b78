import BerthClient
import BerthModel
import FoundationEssentials
import Glibc

/// The destination berthd as the source reaches it. This is the one place the source makes
/// its client of the destination's API, through `BerthClient.resolve` like the CLI's
/// `--connect`: `http://` (loopback, with the destination's token), `https://` (TLS; the CA and
/// client certificate from berthd's `--migration-tls-*` options, else `berth tls init`'s client
/// files) or `ssh://` (`berth proxy-stdio` on the destination; `--migration-ssh-option`). None
/// of this host's own credentials go to the destination unless named in `options`.
struct MigrationPeer: Sendable {
    let url: String
    let client: BerthClient

    init(url: String, token: String?, options: RemoteOptions) throws {
        guard let components = URLComponents(string: url), ["http", "https", "ssh"].contains(components.scheme ?? ""),
            let host = components.host, !host.isEmpty
        else {
            throw BerthError(
                .invalidArgument, "'\(url)' is not a destination berthd address.",
                remedy:
                    "Give the destination's API as https://HOST:PORT (TLS with this host's client certificate), ssh://[USER@]HOST, or http://HOST:PORT with its token."
            )
        }
        var options = options
        options.token = token
        options.localCredentials = false
        self.url = url
        self.client = try BerthClient.resolve(url: url, options: options)
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
