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
    /// A request body read from a file as it is sent (never whole in memory).
    struct Upload: Sendable {
        var descriptor: Int32
        var length: UInt64
        var progress: @Sendable (UInt64) -> Void
    }

    func send(
        method: HTTPMethod, path: String, body: Data? = nil, upload: Upload? = nil,
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
            headers.add(name: "Content-Type", value: body.first == UInt8(ascii: "{") ? "application/json" : "text/plain")
            headers.add(name: "Content-Length", value: String(body.count))
        }
        if let upload {
            headers.add(name: "Content-Type", value: "application/octet-stream")
            headers.add(name: "Content-Length", value: String(upload.length))
        }
        let head = HTTPRequestHead(version: .http1_1, method: method, uri: path, headers: headers)
        return try await channel.executeThenClose { inbound, outbound in
            // The daemon may answer (and close) before the request is fully written, e.g. an
            // early 401: keep the write error only in case no answer comes.
            var writeError: (any Error)?
            do {
                var parts: [HTTPClientRequestPart] = [.head(head)]
                if let body { parts.append(.body(.byteBuffer(ByteBuffer(bytes: body)))) }
                if let upload {
                    try await outbound.write(contentsOf: parts)
                    parts = []
                    try await Self.stream(upload, to: outbound)
                }
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

    /// Sends the upload's file in 1 MiB chunks; each write waits for the connection to take it.
    private static func stream(_ upload: Upload, to outbound: NIOAsyncChannelOutboundWriter<HTTPClientRequestPart>)
        async throws
    {
        var sent: UInt64 = 0
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while sent < upload.length {
            let wanted = Int(min(UInt64(chunk.count), upload.length - sent))
            let count = chunk.withUnsafeMutableBytes { read(upload.descriptor, $0.baseAddress, wanted) }
            guard count > 0 else {
                throw BerthError(
                    .invalidArgument, "The file ended after \(sent) of \(upload.length) bytes.", remedy: "Check that nothing is writing it.")
            }
            try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: chunk[0..<count]))))
            sent += UInt64(count)
            upload.progress(sent)
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
