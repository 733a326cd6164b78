import BerthModel
import FoundationEssentials
import Glibc
import Hummingbird
import HummingbirdWebSocket
import NIOCore
import NIOSSL

/// The API's request context: Hummingbird's WebSocket context plus the connection, which the
/// token check asks for a TLS client certificate and `xend-relocation-hosts-allow` for the
/// peer's address.
struct APIRequestContext: RequestContext, WebSocketRequestContext, PeerIdentifying {
    var coreContext: CoreRequestContextStorage
    let webSocket: WebSocketHandlerReference<Self>
    let channel: any Channel

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        webSocket = .init()
        channel = source.channel
    }

    /// The user ID of the process on the other end of a unix socket when it connected
    /// (`SO_PEERCRED`); nil on TCP.
    func peerUID() async -> uid_t? {
        guard let provider = channel as? any SocketOptionProvider, channel.localAddress?.protocol == .unix else { return nil }
        let credentials: PeerCredentials? = try? await provider.unsafeGetSocketOption(
            level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(SO_PEERCRED)
        ).get()
        return credentials?.uid
    }

    /// Whether the client presented a certificate, which the TLS handshake already verified
    /// against the CA (a certificate from another CA ends the handshake); false without TLS.
    func hasClientCertificate() async -> Bool {
        (try? await channel.nioSSL_peerCertificate().map { $0 != nil }.get()) ?? false
    }
}

/// `xend-relocation-hosts-allow`: only peers whose address matches one of the regular
/// expressions (xend matched names and addresses; Berth matches the address, and
/// `^localhost$` as every loopback address) may use that listener. Empty means everyone.
struct HostsAllowMiddleware: RouterMiddleware {
    typealias Context = APIRequestContext
    let patterns: [String]

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard !patterns.isEmpty else { return try await next(request, context) }
        let address = context.channel.remoteAddress?.ipAddress ?? ""
        guard Self.allows(address, patterns: patterns) else {
            throw BerthError(
                .unauthorized, "\(address) is not in this berthd's xend-relocation-hosts-allow.",
                remedy: "Add a pattern matching \(address) to xend-relocation-hosts-allow in berthd's --config file.")
        }
        return try await next(request, context)
    }

    static func allows(_ address: String, patterns: [String]) -> Bool {
        let loopback = address.hasPrefix("127.") || address == "::1"
        let names = loopback ? [address, "localhost", "localhost.localdomain"] : [address]
        return patterns.contains { pattern in
            // A pattern that is not a valid regular expression matches nothing.
            guard let regex = try? Regex(pattern) else { return false }
            return names.contains { $0.contains(regex) }
        }
    }
}

/// Linux's `struct ucred` (pid_t, uid_t, gid_t: three 32-bit fields, laid out in order), which
/// Swift's Glibc module does not carry; what `SO_PEERCRED` fills in.
private struct PeerCredentials: Sendable {
    var pid: Int32
    var uid: UInt32
    var gid: UInt32
}
