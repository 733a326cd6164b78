import BerthModel
import FoundationEssentials
import Glibc
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// Where the daemon listens.
public enum Endpoint: Sendable, Equatable, CustomStringConvertible {
    case unix(path: String)
    /// Plain HTTP with the token: meant for loopback (berthd refuses other addresses without TLS).
    case tcp(host: String, port: Int, token: String?)
    /// TLS: berthd's certificate checked against `tls.ca`, this client's certificate when it has one.
    case https(host: String, port: Int, token: String?, tls: TLSSettings)
    /// `berth proxy-stdio` on another host, reached by ssh.
    case ssh(SSHTarget)

    public var description: String {
        switch self {
        case .unix(let path): "unix socket \(path)"
        case .tcp(let host, let port, _): "http://\(Self.hostPort(host, port))"
        case .https(let host, let port, _, _): "https://\(Self.hostPort(host, port))"
        case .ssh(let target): target.description
        }
    }

    /// A berthd on another host, whose failures the local host's remedies do not fit.
    public var isRemote: Bool {
        switch self {
        case .unix, .tcp: false
        case .https, .ssh: true
        }
    }

    var token: String? {
        switch self {
        case .tcp(_, _, let token), .https(_, _, let token, _): token
        case .unix, .ssh: nil
        }
    }

    static func hostPort(_ host: String, _ port: Int) -> String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// One HTTP/1.1 exchange per connection over SwiftNIO's HTTP codec: small, and enough for
/// a CLI that makes a request or two per run. The connection is a unix socket, TCP, TLS over
/// TCP, or the pipes of an ssh child (`HTTPTransport+SSH.swift`).
struct HTTPTransport: Sendable {
    let endpoint: Endpoint

    struct Reply: Sendable {
        var status: Int
        var body: Data
    }

    typealias Connection = NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>

    /// The connection ended before berthd's answer was complete.
    struct ClosedBeforeAnswer: Error {
        var writeError: (any Error)?
    }

    /// A request body read from a file as it is sent (never whole in memory).
    struct Upload: Sendable {
        var descriptor: Int32
        var length: UInt64
        var progress: @Sendable (UInt64) -> Void
    }

    /// Sends a request; body chunks go to `onChunk` as they arrive (streams) or are
    /// collected into the reply when `onChunk` is nil.
    func send(
        method: HTTPMethod, path: String, body: Data? = nil, upload: Upload? = nil,
        onChunk: (@Sendable (ByteBuffer) async throws -> Void)? = nil
    ) async throws -> Reply {
        let (channel, ssh) = try await open(Self.httpLayer)
        do {
            return try await exchange(
                channel, head: head(method: method, path: path, body: body, upload: upload), body: body, upload: upload,
                onChunk: onChunk)
        } catch let closed as ClosedBeforeAnswer {
            if let ssh { throw await ssh.failure() }
            throw BerthError(
                .connection, "berthd closed the connection before answering\(closed.writeError.map { " (\($0))" } ?? "").",
                remedy: "Check berthd's log.")
        } catch {
            if case .https(let host, let port, _, let tls) = endpoint, let failure = await Self.tlsFailure(error, host: host, port: port, tls: tls) {
                throw failure
            }
            throw error
        }
    }

    private func head(method: HTTPMethod, path: String, body: Data?, upload: Upload?) -> HTTPRequestHead {
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: "berthd")
        headers.add(name: "Connection", value: "close")
        if let token = endpoint.token { headers.add(name: "Authorization", value: "Bearer \(token)") }
        if let body {
            headers.add(name: "Content-Type", value: body.first == UInt8(ascii: "{") ? "application/json" : "text/plain")
            headers.add(name: "Content-Length", value: String(body.count))
        }
        if let upload {
            headers.add(name: "Content-Type", value: "application/octet-stream")
            headers.add(name: "Content-Length", value: String(upload.length))
        }
        return HTTPRequestHead(version: .http1_1, method: method, uri: path, headers: headers)
    }

    private func exchange(
        _ channel: Connection, head: HTTPRequestHead, body: Data?, upload: Upload?,
        onChunk: (@Sendable (ByteBuffer) async throws -> Void)?
    ) async throws -> Reply {
        try await channel.executeThenClose { inbound, outbound in
            // The daemon may answer (and close) before the request is fully written, e.g. an
            // early 401: keep the write error only in case no answer comes.
            var writeError: (any Error)?
            // The event loop reads a file region after `write` returns: its descriptor stays
            // open until berthd has answered (it answers once every byte has arrived).
            let regionFile = FileRegionFile()
            defer { regionFile.close() }
            do {
                var parts: [HTTPClientRequestPart] = [.head(head)]
                if let body { parts.append(.body(.byteBuffer(ByteBuffer(bytes: body)))) }
                if let upload {
                    try await outbound.write(contentsOf: parts)
                    parts = []
                    switch endpoint {
                    case .unix, .tcp: try await Self.sendFile(upload, from: regionFile, to: outbound)
                    case .https, .ssh: try await Self.stream(upload, to: outbound)
                    }
                }
                parts.append(.end(nil))
                try await outbound.write(contentsOf: parts)
            } catch {
                writeError = error
            }
            var reply = Reply(status: 0, body: Data())
            do {
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
            } catch let reset as IOError {
                // A reset before the answer ended (berthd closed the connection): same as a close.
                throw ClosedBeforeAnswer(writeError: writeError ?? reset)
            }
            if let writeError, Self.isTLS(writeError) { throw writeError }
            throw ClosedBeforeAnswer(writeError: writeError)
        }
    }

    /// Sends the upload's file in 4 MiB chunks read straight into the buffers NIO writes; each
    /// write waits for the connection to take it.
    private static func stream(_ upload: Upload, to outbound: NIOAsyncChannelOutboundWriter<HTTPClientRequestPart>)
        async throws
    {
        var sent: UInt64 = 0
        let allocator = ByteBufferAllocator()
        while sent < upload.length {
            let wanted = Int(min(4 << 20, upload.length - sent))
            var chunk = allocator.buffer(capacity: wanted)
            let count = chunk.writeWithUnsafeMutableBytes(minimumWritableBytes: wanted) { max(0, read(upload.descriptor, $0.baseAddress, wanted)) }
            guard count > 0 else {
                throw BerthError(
                    .invalidArgument, "The file ended after \(sent) of \(upload.length) bytes.", remedy: "Check that nothing is writing it.")
            }
            try await outbound.write(.body(.byteBuffer(chunk)))
            sent += UInt64(count)
            upload.progress(sent)
        }
    }

    /// Sends the upload's file as file regions of 16 MiB (`sendfile`: the kernel moves the
    /// bytes from the page cache to the socket, the CLI never copies them), each write waiting
    /// for the connection to take it. Plain sockets only: TLS and ssh's pipes need the bytes.
    private static func sendFile(
        _ upload: Upload, from file: FileRegionFile, to outbound: NIOAsyncChannelOutboundWriter<HTTPClientRequestPart>
    ) async throws {
        let start = lseek(upload.descriptor, 0, SEEK_CUR)
        let handle = try file.open(upload.descriptor)
        guard start >= 0, let end = Int(exactly: UInt64(start) + upload.length) else {
            throw BerthError(.invalidArgument, "Cannot read the file to upload: \(String(cString: strerror(errno)))", remedy: "Give a regular file.")
        }
        var offset = Int(start)
        while offset < end {
            let next = min(end, offset + (16 << 20))
            try await outbound.write(.body(.fileRegion(FileRegion(fileHandle: handle, readerIndex: offset, endIndex: next))))
            offset = next
            upload.progress(UInt64(offset - Int(start)))
        }
    }

    /// HTTP/1.1 requests and responses on a connected channel.
    static func httpLayer(_ channel: any Channel) throws -> Connection {
        try channel.pipeline.syncOperations.addHTTPClientHandlers()
        return try NIOAsyncChannel(wrappingChannelSynchronously: channel)
    }

    /// Connects to the endpoint (TLS included) and puts `layer`, the protocol on top, on the
    /// channel; for ssh, also the ssh child whose exit explains a connection that ends early.
    func open<Output: Sendable>(_ layer: @escaping @Sendable (any Channel) throws -> Output) async throws
        -> (Output, SSHChild?)
    {
        do {
            if case .ssh(let target) = endpoint {
                let child = try SSHChild.start(target)
                return (try await child.connect { channel in channel.eventLoop.makeCompletedFuture { try layer(channel) } }, child)
            }
            let bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connectTimeout(.seconds(10))
            let plain: @Sendable (any Channel) -> EventLoopFuture<Output> = { channel in
                channel.eventLoop.makeCompletedFuture {
                    // Reads of up to 1 MiB when berthd sends that fast (a vol-download), not NIO's 64 KiB.
                    try channel.syncOptions?.setOption(
                        .recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 2048, maximum: 1 << 20))
                    return try layer(channel)
                }
            }
            switch endpoint {
            case .unix(let path):
                return (try await bootstrap.connect(unixDomainSocketPath: path, channelInitializer: plain), nil)
            case .tcp(let host, let port, _):
                return (try await bootstrap.connect(host: host, port: port, channelInitializer: plain), nil)
            case .https(let host, let port, _, let tls):
                let tlsLayer = try Self.tlsLayer(host: host, tls: tls)
                let output = try await bootstrap.connect(host: host, port: port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try tlsLayer(channel)
                        return try layer(channel)
                    }
                }
                return (output, nil)
            case .ssh:
                preconditionFailure("handled above")
            }
        } catch let error as BerthError {
            throw error
        } catch {
            throw BerthError(.connection, "Could not connect to berthd at \(endpoint): \(describe(error)).", remedy: unreachableRemedy)
        }
    }

    private var unreachableRemedy: String? {
        guard endpoint.isRemote else { return nil }
        return "Check that the host is up and reachable from here and that berthd listens there (berthd --listen ADDRESS:PORT with TLS)."
    }

    /// NIO's connection errors list every address tried; a user needs the cause.
    private func describe(_ error: any Error) -> String {
        let text = "\(error)"
        for (needle, meaning) in [
            ("Connection refused", "connection refused"), ("No such file", "no such socket"),
            ("Permission denied", "permission denied"), ("timed out", "connection timed out"),
            ("No route to host", "no route to host"), ("Network is unreachable", "network unreachable"),
            ("Host is unreachable", "host unreachable"),
        ] where text.contains(needle) {
            return meaning
        }
        return text
    }
}

/// The copy of an upload's descriptor that its file regions are sent from, closed by the
/// exchange once berthd has answered (not when the last `write` returns: the event loop may
/// still be sending it).
private final class FileRegionFile: Sendable {
    private let handle = Mutex<NIOFileHandle?>(nil)

    func open(_ descriptor: Int32) throws -> NIOFileHandle {
        let copy = dup(descriptor)
        guard copy >= 0 else {
            throw BerthError(.invalidArgument, "Cannot read the file to upload: \(String(cString: strerror(errno)))", remedy: "Give a regular file.")
        }
        let opened = NIOFileHandle(_deprecatedTakingOwnershipOfDescriptor: copy)
        handle.withLock { $0 = opened }
        return opened
    }

    func close() { handle.withLock { try? $0?.close() } }
}
