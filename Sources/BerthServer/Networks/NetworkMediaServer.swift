import BerthHost
import BerthModel
import FoundationEssentials
import Glibc
import Hummingbird
import Logging
import ServiceLifecycle
import Synchronization

/// Install media for guests on Berth's networks: while a network runs, a listener of its own
/// on the host's address on that bridge (`10.50.0.1:8001`), with the same read-only router as
/// the loopback media listener (user-mode guests reach that one as 10.0.2.2). The network's nft
/// table lets only that bridge's guests and the host itself reach it (`NetworkFirewall`).
final class NetworkMediaServer: Sendable {
    let library: MediaLibrary
    let port: Int
    let idle: Duration
    let logger: Logger
    private let running = Mutex<[String: Task<Void, Never>]>([:])

    init(library: MediaLibrary, port: Int, idle: Duration, logger: Logger) {
        self.library = library
        self.port = port
        self.idle = idle
        self.logger = logger
    }

    /// Serves media on `address` for `network`; returns once the listener is bound.
    /// - Throws: the address and port cannot be bound.
    func start(network: String, address: IPv4Address) async throws {
        stop(network: network)
        let host = address.description
        let (started, signal) = AsyncStream.makeStream(of: String?.self)
        let application = Application(
            router: Daemon.mediaRouter(library: library, listenHost: host, port: port),
            server: .http1(configuration: .init(idleTimeout: .seconds(idle.components.seconds))),
            configuration: .init(address: .hostname(host, port: port), serverName: "berthd"),
            onServerRunning: { _ in signal.yield(nil) },
            logger: logger)
        let group = ServiceGroup(
            configuration: .init(services: [application], gracefulShutdownSignals: [], logger: logger))
        let task = Task {
            do {
                try await group.run()
            } catch {
                signal.yield("\(error)")
            }
            signal.finish()
        }
        var failure: String? = "the listener ended before it was ready"
        for await outcome in started {
            failure = outcome
            break
        }
        guard let failure else {
            running.withLock { $0[network] = task }
            return
        }
        task.cancel()
        throw BerthError(
            .unavailable, "Cannot serve install media on \(host):\(port) for network '\(network)': \(failure).",
            remedy: "Stop the program using that port, or start berthd with --media-listen 127.0.0.1:PORT for another one.")
    }

    /// Closes the network's media listener, if it has one.
    func stop(network: String) {
        running.withLock { $0.removeValue(forKey: network) }?.cancel()
    }
}
