import Hummingbird
import HummingbirdCore
import HummingbirdWebSocket
import Logging
import NIOCore

/// The API listeners speak HTTP/1 with WebSocket upgrades. Hummingbird's WebSocket-upgrade
/// channel arms its idle timeout only once a first request has arrived, so a client that
/// connects and sends nothing would hold a connection forever; this closes it after `timeout`
/// unless a first byte comes. From then on the idle timeout of the HTTP configuration applies
/// (a request in progress, such as an event stream, is never idle).
struct FirstRequestTimeout<Inner: ServerChildChannel>: ServerChildChannel {
    typealias Value = Inner.Value
    let inner: Inner
    let timeout: TimeAmount

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let timeout = timeout
        return channel.eventLoop.makeCompletedFuture {
            // Reads of up to 1 MiB when the peer sends that fast (a streamed vol-upload), not
            // NIO's 64 KiB: fewer, larger body parts for the request's body sequence.
            try channel.syncOptions?.setOption(
                .recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 2048, maximum: 1 << 20))
            try channel.pipeline.syncOperations.addHandler(FirstByteTimer(timeout: timeout), position: .first)
        }.flatMap { inner.setup(channel: channel, logger: logger) }
    }

    func handle(value: Value, logger: Logger) async {
        await inner.handle(value: value, logger: logger)
    }
}

extension HTTPServerBuilder {
    /// `.http1WebSocketUpgrade` whose connections must send their first request within `idle`.
    static func apiServer<Router: HTTPResponderBuilder>(webSocketRouter: Router, idle: TimeAmount) -> HTTPServerBuilder
    where Router.Responder.Context: WebSocketRequestContext {
        let webSocketResponder = webSocketRouter.buildResponder()
        return HTTPServerBuilder { responder in
            FirstRequestTimeout(
                inner: HTTP1WebSocketUpgradeChannel(
                    responder: responder, webSocketResponder: webSocketResponder,
                    configuration: .init(http1: .init(idleTimeout: .nanoseconds(idle.nanoseconds)), ws: .init(maxFrameSize: 1 << 20))),
                timeout: idle)
        }
    }
}

/// Closes a connection that sends nothing within `timeout`; steps aside at its first byte.
private final class FirstByteTimer: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    let timeout: TimeAmount
    private var timer: Scheduled<Void>?

    init(timeout: TimeAmount) { self.timeout = timeout }

    func handlerAdded(context: ChannelHandlerContext) {
        let channel = context.channel
        timer = context.eventLoop.scheduleTask(in: timeout) { channel.close(promise: nil) }
    }

    func handlerRemoved(context: ChannelHandlerContext) { timer?.cancel() }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        timer?.cancel()
        timer = nil
        context.fireChannelRead(data)
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }
}
