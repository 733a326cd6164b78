import BerthModel
import FoundationEssentials
import Glibc
import Hummingbird
import HummingbirdWebSocket
import NIOCore
import NIOPosix

/// The live consoles over WebSocket, proxied by berthd so a browser or another machine
/// reaches them through the API's authentication only, never by an open port:
/// `/v1/domains/{name}/console/ws` (the serial line, bytes both ways),
/// `/v1/domains/{name}/vnc` (raw RFB in binary frames, what noVNC speaks) and
/// `/v1/domains/{name}/spice` (raw SPICE, what spice-html5 speaks: it opens one WebSocket per
/// SPICE channel, each becoming its own connection to QEMU's socket), plus the display's
/// whereabouts and the live statistics.
struct ConsoleController<Context: WebSocketRequestContext & RequestContext> {
    let hypervisor: Hypervisor
    var limits = StreamLimits()

    func add(to group: RouterGroup<Context>) {
        group.get("domains/:name/display") { _, context in
            try JSONResponse.make(try await hypervisor.display(try context.parameters.require("name")))
        }
        group.get("domains/:name/stats") { _, context in
            try JSONResponse.make(try await hypervisor.stats(try context.parameters.require("name")))
        }
        group.get("stats") { _, _ in try JSONResponse.make(try await hypervisor.allStats()) }

        let limit = limits.webSockets
        group.ws(
            "domains/:name/console/ws",
            shouldUpgrade: { request, context in
                try Self.requireUpgrade(request)
                let name = try context.parameters.require("name")
                _ = try consoleSocket(name)
                try Self.requireRoom(limit)
                return .upgrade(Self.subprotocol(request))
            },
            onUpgrade: { inbound, outbound, context in
                let name = try context.requestContext.parameters.require("name")
                try await Self.splice(inbound, outbound, to: .unixDomainSocket(try consoleSocket(name)), limit: limit)
            })
        for kind in GraphicsSpec.Kind.allCases {
            group.ws(
                "domains/:name/\(kind.rawValue)",
                shouldUpgrade: { request, context in
                    try Self.requireUpgrade(request)
                    _ = try await display(try context.parameters.require("name"), kind: kind)
                    try Self.requireRoom(limit)
                    return .upgrade(Self.subprotocol(request))
                },
                onUpgrade: { inbound, outbound, context in
                    let display = try await display(try context.requestContext.parameters.require("name"), kind: kind)
                    let target: Target =
                        if let socket = display.socket { .unixDomainSocket(socket) } else {
                            .tcp(host: display.host ?? "127.0.0.1", port: display.port ?? 5900)
                        }
                    try await Self.splice(inbound, outbound, to: target, limit: limit)
                })
        }
    }

    /// The running display of `name`, when it speaks `kind` (a SPICE client cannot use VNC).
    private func display(_ name: String, kind: GraphicsSpec.Kind) async throws -> DisplayInfo {
        let display = try await hypervisor.display(name)
        guard display.kind == kind else {
            throw BerthError(
                .wrongState, "Domain '\(name)' has a \(display.kind.rawValue) display, not \(kind.rawValue).",
                remedy: "Open \(display.webSocket) instead.")
        }
        return display
    }

    private func consoleSocket(_ name: String) throws -> String {
        let info = try hypervisor.info(name)
        guard let socket = info.consoleSocket else {
            throw BerthError(
                .wrongState, "Domain '\(name)' is \(info.state.rawValue), so it has no live console.",
                remedy: "Start it with 'berth start \(name)', or read its log at /v1/domains/\(name)/console.")
        }
        return socket
    }

    /// A plain GET of a WebSocket path is a mistake, not an empty 200.
    static func requireUpgrade(_ request: Request) throws {
        guard request.headers[.upgrade]?.lowercased() == "websocket" else {
            throw BerthError(
                .invalidArgument, "\(request.uri.path) is a WebSocket; this request did not ask to upgrade.",
                remedy: "Open it with a WebSocket client (Upgrade: websocket), such as the web console at /ui/.")
        }
    }

    /// Refuses the upgrade when the cap is reached (the session takes its slot once upgraded).
    static func requireRoom(_ limit: StreamLimit) throws {
        _ = try limit.acquire()  // released at once: this only asks whether one is free
    }

    /// noVNC may ask for the `binary` subprotocol (spice-html5 always does); a browser drops a connection whose answer
    /// does not name the one it asked for.
    static func subprotocol(_ request: Request) -> HTTPFields {
        guard let asked = request.headers[.secWebSocketProtocol] else { return [:] }
        let offered = asked.split(separator: ",").map { $0.trimmed() }
        guard offered.contains("binary") else { return [:] }
        return [.secWebSocketProtocol: "binary"]
    }

    enum Target {
        case unixDomainSocket(String)
        case tcp(host: String, port: Int)
    }

    /// Copies bytes both ways between the WebSocket and the socket until either side closes.
    /// Text and binary frames from the browser are both taken as bytes; everything back is
    /// binary.
    static func splice(
        _ inbound: WebSocketInboundStream, _ outbound: WebSocketOutboundWriter, to target: Target, limit: StreamLimit
    ) async throws {
        let lease: StreamLimit.Lease
        do {
            lease = try limit.acquire()
        } catch {
            try await outbound.close(.unknown(1013), reason: "berthd serves \(limit.maximum) consoles already")
            return
        }
        defer { withExtendedLifetime(lease) {} }
        let bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        let initializer: @Sendable (any Channel) -> EventLoopFuture<NIOAsyncChannel<ByteBuffer, ByteBuffer>> = { channel in
            channel.eventLoop.makeCompletedFuture {
                try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
            }
        }
        let channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>
        do {
            switch target {
            case .unixDomainSocket(let path):
                channel = try await bootstrap.connect(unixDomainSocketPath: path, channelInitializer: initializer)
            case .tcp(let host, let port):
                channel = try await bootstrap.connect(host: host, port: port, channelInitializer: initializer)
            }
        } catch {
            try await outbound.close(.unexpectedServerError, reason: "cannot reach the console")
            return
        }
        // Both loops run on the socket's event loop: a frame then goes on from the thread that
        // read it instead of hopping to the cooperative pool and back (the serial round trip).
        let executor = EventLoopTaskExecutor(channel.channel.eventLoop)
        try await channel.executeThenClose { socketIn, socketOut in
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask(executorPreference: executor) {
                    for try await buffer in socketIn {
                        try await outbound.write(.binary(buffer))
                    }
                }
                group.addTask(executorPreference: executor) {
                    for try await frame in inbound where frame.opcode == .binary || frame.opcode == .text || frame.opcode == .continuation {
                        try await socketOut.write(frame.data)
                    }
                }
                // Either side ending ends the session (the guest stopped, or the page closed).
                _ = try await group.next()
                group.cancelAll()
            }
        }
        try? await outbound.close(.normalClosure, reason: nil)
    }
}

/// A task executor that runs its jobs on one NIO event loop.
final class EventLoopTaskExecutor: TaskExecutor, @unchecked Sendable {
    let loop: any EventLoop

    init(_ loop: any EventLoop) { self.loop = loop }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        loop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
