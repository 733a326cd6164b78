import BerthModel
import Foundation
import Hummingbird
import HummingbirdWebSocket
import NIOCore
import NIOSSL

/// The API's request context: Hummingbird's WebSocket context plus the connection, which the
/// token check asks for a TLS client certificate and `xend-relocation-hosts-allow` for the
/// peer's address.
struct APIRequestContext: RequestContext, WebSocketRequestContext {
    var coreContext: CoreRequestContextStorage
    let webSocket: WebSocketHandlerReference<Self>
    let channel: any Channel

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        webSocket = .init()
        channel = source.channel
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
        return patterns.contains { pattern in
            let names = loopback ? [address, "localhost", "localhost.localdomain"] : [address]
            return names.contains { $0.range(of: pattern, options: .regularExpression) != nil }
        }
    }
}
