import BerthHost
import BerthModel
import BerthStore
import Foundation
import Hummingbird
import Logging
import ServiceLifecycle

/// berthd: the catalog, the supervisors, and the HTTP API on a unix socket and on
/// 127.0.0.1:8000 (with a token).
public enum Daemon {
    /// Builds the router shared by both listeners; `token` set means every request must carry it.
    static func router(hypervisor: Hypervisor, token: String?) -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: ErrorMappingMiddleware())
        if let token { router.add(middleware: TokenMiddleware(token: token)) }
        let v1 = router.group("v1")
        DomainsController(hypervisor: hypervisor).add(to: v1)
        HostController(hypervisor: hypervisor).add(to: v1)
        StorageController(hypervisor: hypervisor).add(to: v1)
        MediaController(library: MediaLibrary(stateDirectory: hypervisor.stateDirectory)).add(to: router)
        return router
    }

    /// Runs until SIGTERM/SIGINT. Guests keep running after the daemon stops.
    public static func run(
        configuration: DaemonConfiguration, driver: any GuestDriver, bootPreparer: BootPreparer, logger: Logger
    ) async throws {
        try prepareDirectories(configuration)
        let lock = try DaemonLock(path: configuration.runtimeDirectory + "/berthd.pid")
        let token = try loadOrCreateToken(at: configuration.tokenPath)
        let catalog = try Catalog(path: configuration.catalogPath)
        let hypervisor = try Hypervisor(
            catalog: catalog, driver: driver, bootPreparer: bootPreparer,
            stateDirectory: configuration.stateDirectory)
        if let block = hypervisor.guestIDBlock {
            // Before any guest runs (re-attached ones included): guests reach only the media.
            try await GuestFirewall(guestIDBlock: block, mediaPorts: configuration.guestReachablePorts)
                .apply(runtimeDirectory: configuration.runtimeDirectory)
        }
        do {
            try hypervisor.ensureDefaultPool()
        } catch {
            logger.warning("The default storage pool could not be made: \(error)")
        }
        hypervisor.autostartPools()
        await hypervisor.recoverAll()

        unlink(configuration.socketPath)  // a stale socket; the lock proves no daemon owns it
        let socketPath = configuration.socketPath
        var services: [any Service] = [
            Application(
                router: router(hypervisor: hypervisor, token: nil),
                configuration: .init(address: .unixDomainSocket(path: socketPath), serverName: "berthd"),
                onServerRunning: { _ in chmod(socketPath, 0o660) },
                logger: logger)
        ]
        if let host = configuration.tcpHost {
            if host.isEmpty || host == "0.0.0.0" || host == "::" {
                logger.warning("Listening on all interfaces (port \(configuration.tcpPort)); every request needs the API token.")
            }
            services.append(
                Application(
                    router: router(hypervisor: hypervisor, token: token),
                    configuration: .init(
                        address: .hostname(host.isEmpty ? "0.0.0.0" : host, port: configuration.tcpPort),
                        serverName: "berthd"),
                    logger: logger))
        }
        logger.info(
            "berthd ready: socket \(socketPath)\(configuration.tcpHost.map { ", http://\($0):\(configuration.tcpPort)" } ?? "")")
        let group = ServiceGroup(
            configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do {
            try await group.run()
        } catch where "\(error)".contains("Address already in use") {
            throw BerthError(
                .alreadyExists,
                "Port \(configuration.tcpPort) on \(configuration.tcpHost ?? "") is already in use (another berthd, or xend?).",
                remedy: "Stop that program, or start berthd with --listen HOST:PORT for another port, or --listen none.")
        }
        withExtendedLifetime(lock) {}
    }

    static func prepareDirectories(_ configuration: DaemonConfiguration) throws {
        for directory in [
            configuration.stateDirectory, configuration.runtimeDirectory, configuration.logDirectory,
            configuration.bootDirectory,
        ] {
            do {
                try FileManager.default.createDirectory(
                    atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            } catch {
                throw BerthError(
                    .unavailable, "Cannot create \(directory): \(error.localizedDescription)",
                    remedy: "Run berthd as root, or give it a writable --state-dir.")
            }
        }
    }

    /// The TCP listener's token, created once with mode 0600.
    static func loadOrCreateToken(at path: String) throws -> String {
        if let existing = try? String(contentsOfFile: path, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines),
            !existing.isEmpty
        {
            return existing
        }
        var generator = SystemRandomNumberGenerator()
        let token = (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw BerthError(.unavailable, "Cannot write the API token to \(path).", remedy: "Check the state directory's permissions.")
        }
        defer { close(fd) }
        let bytes = Array((token + "\n").utf8)
        guard write(fd, bytes, bytes.count) == bytes.count else {
            throw BerthError(.unavailable, "Cannot write the API token to \(path).", remedy: "Check free space in the state directory.")
        }
        return token
    }
}

/// One daemon per state directory: an exclusive `flock` on its pidfile.
final class DaemonLock: Sendable {
    private let fd: Int32

    init(path: String) throws {
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw BerthError(.unavailable, "Cannot open \(path).", remedy: "Check the runtime directory's permissions.")
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let owner = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
            close(fd)
            throw BerthError(
                .alreadyExists, "Another berthd (pid \(owner ?? "?")) already runs with this state directory.",
                remedy: "Use that daemon, or stop it first.")
        }
        ftruncate(fd, 0)
        let pid = Array("\(getpid())\n".utf8)
        _ = write(fd, pid, pid.count)
    }

    deinit { close(fd) }
}
