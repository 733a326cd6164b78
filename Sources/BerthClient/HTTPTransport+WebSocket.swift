import BerthModel
import NIOCore
import NIOHTTP1
import NIOWebSocket

extension HTTPTransport {
    typealias WebSocket = NIOAsyncChannel<WebSocketFrame, WebSocketFrame>

    private enum Upgrade: Sendable {
        case accepted(WebSocket)
        case refused
    }

    /// Opens the WebSocket at `path` over the endpoint's connection (unix socket, TCP, TLS
    /// or ssh), with the same authentication as any request.
    func webSocket(path: String) async throws -> (WebSocket, SSHChild?) {
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: "berthd")
        headers.add(name: "Content-Length", value: "0")
        if let token = endpoint.token { headers.add(name: "Authorization", value: "Bearer \(token)") }
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: path, headers: headers)
        let (negotiation, ssh) = try await open { channel -> EventLoopFuture<Upgrade> in
            let upgrader = NIOTypedWebSocketClientUpgrader<Upgrade>(
                maxFrameSize: 1 << 20,
                upgradePipelineHandler: { channel, _ in
                    channel.eventLoop.makeCompletedFuture { .accepted(try WebSocket(wrappingChannelSynchronously: channel)) }
                })
            let upgrade = NIOTypedHTTPClientUpgradeConfiguration<Upgrade>(
                upgradeRequestHead: head, upgraders: [upgrader],
                notUpgradingCompletionHandler: { channel in
                    channel.close(promise: nil)
                    return channel.eventLoop.makeSucceededFuture(.refused)
                })
            return try channel.pipeline.syncOperations.configureUpgradableHTTPClientPipeline(
                configuration: .init(upgradeConfiguration: upgrade))
        }
        let outcome: Upgrade
        do {
            outcome = try await negotiation.get()
        } catch {
            if let ssh { throw await ssh.failure() }
            throw BerthError(.connection, "The WebSocket \(path) could not be opened: \(error).", remedy: "Check berthd's log.")
        }
        guard case .accepted(let socket) = outcome else {
            throw BerthError(
                .unavailable, "berthd did not open the WebSocket \(path).",
                remedy: "Check that the domain is running ('berth domstate NAME') and that berthd serves fewer consoles than its limit.")
        }
        return (socket, ssh)
    }
}
