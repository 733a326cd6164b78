import BerthModel
import NIOCore
import NIOWebSocket

extension BerthClient {
    /// Attaches to a running domain's serial line through berthd (`/v1/domains/NAME/console/ws`),
    /// on a local or a remote host alike: what `input` yields goes to the guest, what the guest
    /// prints goes to `output`. Returns when `input` ends (the user detached) or berthd closes
    /// the console (the guest stopped).
    public func console(
        _ name: String, input: AsyncStream<[UInt8]>, output: @escaping @Sendable ([UInt8]) throws -> Void
    ) async throws {
        let (socket, _) = try await transport.webSocket(path: "/v1/domains/\(Self.escape(name))/console/ws")
        try await socket.executeThenClose { inbound, outbound in
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    for await bytes in input {
                        // RFC 6455: a client masks every frame it sends.
                        try await outbound.write(
                            WebSocketFrame(fin: true, opcode: .binary, maskKey: .random(), data: ByteBuffer(bytes: bytes)))
                    }
                    try? await outbound.write(
                        WebSocketFrame(fin: true, opcode: .connectionClose, maskKey: .random(), data: ByteBuffer()))
                }
                group.addTask {
                    for try await frame in inbound {
                        switch frame.opcode {
                        case .binary, .text, .continuation: try output(Array(frame.unmaskedData.readableBytesView))
                        case .connectionClose: return
                        case .ping:
                            try await outbound.write(
                                WebSocketFrame(fin: true, opcode: .pong, maskKey: .random(), data: frame.unmaskedData))
                        default: continue
                        }
                    }
                }
                // Whichever side ends first ends the attachment.
                try await group.next()
                group.cancelAll()
            }
        }
    }
}
