import BerthModel
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// Where the daemon listens.
public enum Endpoint: Sendable, Equatable, CustomStringConvertible {
    case unix(path: String)
    case tcp(host: String, port: Int, token: String?)

    public var description: String {
        switch self {
        case .unix(let path): "unix socket \(path)"
        case .tcp(let host, let port, _): "http://\(host):\(port)"
        }
    }
}

/// One HTTP/1.1 exchange per connection over SwiftNIO's HTTP codec: small, and enough for
/// a CLI that makes a request or two per run.
struct HTTPTransport: Sendable {
    let endpoint: Endpoint

    struct Reply: Sendable {
        var status: Int
        var body: Data
    }

    /// Sends a request; body chunks go to `onChunk` as they arrive (streams) or are
    /// collected into the reply when `onChunk` is nil.
    func send(
        method: HTTPMethod, path: String, body: Data? = nil,
        onChunk: (@Sendable (ByteBuffer) async throws -> Void)? = nil
    ) async throws -> Reply {
        let channel: NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>
        do {
            channel = try await connect()
        } catch {
            throw BerthError(.connection, "Could not connect to berthd at \(endpoint): \(describe(error)).")
        }
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: "berthd")
        headers.add(name: "Connection", value: "close")
        if case .tcp(_, _, let token?) = endpoint { headers.add(name: "Authorization", value: "Bearer \(token)") }
        if let body {
            headers.add(name: "Content-Type", value: "application/json")
            headers.add(name: "Content-Length", value: String(body.count))
        }
        let head = HTTPRequestHead(version: .http1_1, method: method, uri: path, headers: headers)
        return try await channel.executeThenClose { inbound, outbound in
            // The daemon may answer (and close) before the request is fully written, e.g. an
            // early 401: keep the write error only in case no answer comes.
            var writeError: (any Error)?
            do {
                var parts: [HTTPClientRequestPart] = [.head(head)]
                if let body { parts.append(.body(.byteBuffer(ByteBuffer(bytes: body)))) }
                parts.append(.end(nil))
                try await outbound.write(contentsOf: parts)
            } catch {
                writeError = error
            }
            var reply = Reply(status: 0, body: Data())
            for try await part in inbound {
                switch part {
                case .head(let response):
                    reply.status = Int(response.status.code)
                case .body(let buffer):
                    if let onChunk, (200..<300).contains(reply.status) {
                        try await onChunk(buffer)
                    } else {
                        reply.body.append(contentsOf: buffer.readableBytesView)
                    }
                case .end:
                    return reply
                }
            }
            throw BerthError(
                .connection, "berthd closed the connection before answering\(writeError.map { " (\($0))" } ?? "").",
                remedy: "Check berthd's log.")
        }
    }

    private func connect() async throws -> NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart> {
        let bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.seconds(5))
        let setup: @Sendable (any Channel) -> EventLoopFuture<NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>> = {
            channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHTTPClientHandlers()
                return try NIOAsyncChannel(wrappingChannelSynchronously: channel)
            }
        }
        switch endpoint {
        case .unix(let path):
            return try await bootstrap.connect(unixDomainSocketPath: path, channelInitializer: setup)
        case .tcp(let host, let port, _):
            return try await bootstrap.connect(host: host, port: port, channelInitializer: setup)
        }
    }

    /// NIO's connection errors list every address tried; a user needs the cause.
    private func describe(_ error: any Error) -> String {
        let text = "\(error)"
        for (needle, meaning) in [
            ("Connection refused", "connection refused"), ("No such file", "no such socket"),
            ("Permission denied", "permission denied"), ("timed out", "connection timed out"),
        ] where text.contains(needle) {
            return meaning
        }
        return text
    }
}
