import BerthHost
import BerthModel
import BerthStore
import FoundationEssentials
import Glibc
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import HummingbirdWebSocket
import Logging
import NIOSSL
import ServiceLifecycle

/// berthd: the catalog, the supervisors, the HTTP API on a unix socket and on 127.0.0.1:8000
/// (with a token; TLS with client certificates off loopback), and install media on a listener of their own (127.0.0.1:8001, no token).
public enum Daemon {
    /// The API router shared by the unix socket and the TCP listener; `token` set means every
    /// request must carry it (or the web console's session). Install media are not served
    /// here: see `mediaRouter`. The same router answers WebSocket upgrades (the consoles).
    static func router(
        hypervisor: Hypervisor, token: String?, media: (address: String, port: Int)? = nil, limits: StreamLimits = StreamLimits(),
        sessions: WebSessions = WebSessions(), clientCertificates: Bool = false, hostsAllow: [String] = []
    ) -> Router<APIRequestContext> {
        let router = Router(context: APIRequestContext.self)
        router.add(middleware: ErrorMappingMiddleware())
        if !hostsAllow.isEmpty { router.add(middleware: HostsAllowMiddleware(patterns: hostsAllow)) }
        if let token {
            var certified: (@Sendable (APIRequestContext) async -> Bool)?
            if clientCertificates { certified = { context in await context.hasClientCertificate() } }
            router.add(middleware: TokenMiddleware(token: token, sessions: sessions, certified: certified))
        }
        let v1 = router.group("v1")
        DomainsController(hypervisor: hypervisor, limits: limits).add(to: v1)
        ConsoleController(hypervisor: hypervisor, limits: limits).add(to: v1)
        HostController(hypervisor: hypervisor, media: media, limits: limits).add(to: v1)
        StorageController(hypervisor: hypervisor, local: token == nil).add(to: v1)
        MediaLibraryController(hypervisor: hypervisor, mediaAddress: media?.address).add(to: v1)
        InstallController(hypervisor: hypervisor, mediaPort: media?.port).add(to: v1)
        MetricsController(hypervisor: hypervisor).add(to: router)
        WebUI(sessions: sessions, token: token).add(to: router)
        SavesController(hypervisor: hypervisor).add(to: v1)
        NetworksController(networks: hypervisor.networks).add(to: v1)
        MigrationsController(hypervisor: hypervisor).add(to: v1)
        return router
    }

    /// The media listener's router: read-only install media and kickstarts, nothing else, for
    /// the names the listener is reached by (see `HostCheckMiddleware`).
    static func mediaRouter(library: MediaLibrary, listenHost: String, port: Int) -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: ErrorMappingMiddleware())
        router.add(middleware: HostCheckMiddleware(listenHost: listenHost, port: port))
        MediaController(library: library).add(to: router)
        return router
    }

    /// `HOST:PORT`, with brackets around an IPv6 host.
    static func display(_ host: String, _ port: Int) -> String {
        let name = host.isEmpty ? "0.0.0.0" : host
        return name.contains(":") ? "[\(name)]:\(port)" : "\(name):\(port)"
    }

    /// Runs until SIGTERM/SIGINT. Guests keep running after the daemon stops, unless
    /// `onShutdown` is `.save`: then each is saved and resumed by the next berthd.
    public static func run(
        configuration: DaemonConfiguration, driver: any GuestDriver, bootPreparer: BootPreparer, logger: Logger
    ) async throws {
        // Refused, and certificates read, before anything changes.
        let apiListeners = try configuration.apiListeners()
        let tlsConfigurations = try apiListeners.map { try $0.tls.map(tlsConfiguration) }
        try prepareDirectories(configuration)
        try checkStateDirectory(configuration.stateDirectory)
        try prepareSocketDirectory(configuration.socketPath)
        let lock = try DaemonLock(path: configuration.runtimeDirectory + "/berthd.pid")
        let token = try loadOrCreateToken(at: configuration.tokenPath)
        let catalog = try Catalog(path: configuration.catalogPath)
        let hypervisor = try Hypervisor(
            catalog: catalog, driver: driver, bootPreparer: bootPreparer,
            stateDirectory: configuration.stateDirectory, runtimeDirectory: configuration.runtimeDirectory,
            guestReachablePorts: configuration.guestReachablePorts,
            migrationHost: configuration.migrationHost ?? configuration.tcpHost.flatMap { $0.isEmpty ? nil : $0 } ?? "127.0.0.1",
            peerOptions: configuration.peerOptions,
            capacity: HostCapacity(startLimit: configuration.startLimit, hostReserveMiB: configuration.memoryReserveMiB))
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
        for path in hypervisor.removeLeftoverTemporaries() {
            logger.notice("Removed \(path), left by a volume operation that did not finish")
        }
        for settled in await hypervisor.recoverLogicalPools() {
            logger.notice("Settled \(settled), left by a logical volume operation that did not finish")
        }
        hypervisor.autostartPools()
        // A media listener on every interface already serves the bridges' addresses (and would
        // keep another listener from binding one of them).
        if let host = configuration.mediaHost, !["", "0.0.0.0", "::"].contains(host) {
            await hypervisor.networks.serveMedia(
                NetworkMediaServer(
                    library: hypervisor.mediaLibrary, port: configuration.mediaPort, idle: configuration.idleTimeout,
                    logger: logger))
        }
        // Networks before guests: re-attached guests keep their bridges, autostart guests find theirs.
        for message in await hypervisor.networks.recover() { logger.warning("\(message)") }
        // Half-made incoming migrations go before guests are re-attached; a migration this
        // berthd was sending is settled once its guest is re-attached (asking the destination).
        await hypervisor.recoverIncomingMigrations()
        for line in await hypervisor.sweepInterruptedInstalls() { logger.notice("\(line)") }
        await hypervisor.recoverAll()
        Task { await hypervisor.recoverOutgoingMigrations() }

        unlink(configuration.socketPath)  // a stale socket; the lock proves no daemon owns it
        let socketPath = configuration.socketPath
        let media = configuration.mediaHost.map {
            (address: display($0, configuration.mediaPort), port: configuration.mediaPort)
        }
        let limits = StreamLimits()
        // Read-idle connections are closed; a request in progress (an event stream, a console
        // follower, a large download) is not idle.
        let idle = Int64(configuration.idleTimeout.components.seconds)
        let unixRouter = router(hypervisor: hypervisor, token: nil, media: media, limits: limits)
        var services: [any Service] = [
            Listener(
                Application(
                    router: unixRouter, server: .apiServer(webSocketRouter: unixRouter, idle: .seconds(idle)),
                    configuration: .init(address: .unixDomainSocket(path: socketPath), serverName: "berthd"),
                    onServerRunning: { _ in chmod(socketPath, 0o660) },
                    logger: logger),
                address: "the unix socket \(socketPath)",
                remedy:
                    "Check that the directory \(PathName.directory(of: socketPath)) is writable by berthd, or set xend-unix-path (--config) to a writable place."
            )
        ]
        for (api, tls) in zip(apiListeners, tlsConfigurations) {
            services.append(
                try apiListener(
                    api, tls: tls, hypervisor: hypervisor, token: token, media: media, limits: limits, idle: idle, logger: logger))
        }
        if let host = configuration.mediaHost {
            if host.isEmpty || host == "0.0.0.0" || host == "::" {
                logger.warning("Serving install media on all interfaces (port \(configuration.mediaPort)), without a token.")
            }
            services.append(
                Listener(
                    Application(
                        router: mediaRouter(library: hypervisor.mediaLibrary, listenHost: host, port: configuration.mediaPort),
                        server: .http1(configuration: .init(idleTimeout: .seconds(idle))),
                        configuration: .init(
                            address: .hostname(host.isEmpty ? "0.0.0.0" : host, port: configuration.mediaPort),
                            serverName: "berthd"),
                        logger: logger),
                    address: "the media address \(display(host, configuration.mediaPort))",
                    remedy: "Stop the program using it, or start berthd with --media-listen HOST:PORT for another port, or --media-listen none."))
        }
        let apis = apiListeners.map { ", API \($0.tls == nil ? "http" : "https")://\(display($0.host, $0.port))" }.joined()
        logger.info("berthd ready: socket \(socketPath)\(apis)\(media.map { ", media http://\($0.address)" } ?? "")")
        let group = ServiceGroup(
            configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
        if configuration.onShutdown == .save {
            // The listeners are closed: nothing starts a guest while they are being saved.
            await hypervisor.saveRunningGuests { logger.notice("\($0)") }
        }
        withExtendedLifetime(lock) {}
    }

    /// A TCP API listener: plain HTTP with the token on loopback, TLS (client certificates or
    /// the token) when it has certificates (`tls`, read at start by `tlsConfiguration`).
    static func apiListener(
        _ api: DaemonConfiguration.APIListener, tls: TLSConfiguration?, hypervisor: Hypervisor, token: String, media: (address: String, port: Int)?,
        limits: StreamLimits, idle: Int64, logger: Logger
    ) throws -> Listener {
        let router = router(
            hypervisor: hypervisor, token: token, media: media, limits: limits, clientCertificates: api.tls != nil,
            hostsAllow: api.hostsAllow)
        var server = HTTPServerBuilder.apiServer(webSocketRouter: router, idle: .seconds(idle))
        if let tls { server = try .tls(server, tlsConfiguration: tls) }
        let address = display(api.host, api.port)
        return Listener(
            Application(
                router: router, server: server,
                configuration: .init(address: .hostname(api.host.isEmpty ? "0.0.0.0" : api.host, port: api.port), serverName: "berthd"),
                logger: logger),
            address: "the \(api.role) address \(address)",
            remedy:
                "Stop the program using it (another berthd, or xend?), or start berthd with --listen HOST:PORT for another port, or --listen none."
        )
    }

    /// berthd's side of TLS: its certificate and key, and the CA whose client certificates
    /// stand for the token (requested, not required: a client without one sends the token).
    static func tlsConfiguration(_ files: TLSFiles) throws -> TLSConfiguration {
        func load<T>(_ path: String, _ what: String, _ body: (String) throws -> T) throws -> T {
            do {
                return try body(path)
            } catch {
                throw BerthError(
                    .unavailable, "Cannot read the TLS \(what) \(path): \(error).",
                    remedy: "Give the files 'berth tls init' wrote (--tls-cert, --tls-key, --tls-ca), readable by berthd.")
            }
        }
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: try load(files.certificate, "certificate") { try NIOSSLCertificate.fromPEMFile($0) }.map { .certificate($0) },
            privateKey: .privateKey(try load(files.key, "key") { try NIOSSLPrivateKey(file: $0, format: .pem) }))
        configuration.trustRoots = .certificates(try load(files.ca, "CA certificate") { try NIOSSLCertificate.fromPEMFile($0) })
        configuration.certificateVerification = .optionalVerification
        configuration.minimumTLSVersion = .tlsv12
        return configuration
    }

    /// Creates the unix socket's directory when missing, mode 0755 as xend did for
    /// /var/lib/xend (the socket itself is 0660).
    static func prepareSocketDirectory(_ socketPath: String) throws {
        let directory = PathName.directory(of: socketPath)
        guard !directory.isEmpty, !FileManager.default.fileExists(atPath: directory) else { return }
        do {
            try FileManager.default.createDirectory(
                atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        } catch {
            throw BerthError(
                .unavailable, "Cannot create \(directory) for the unix socket \(socketPath): \(BerthError.reason(error))",
                remedy: "Run berthd as root, create \(directory) (mode 0755), or set xend-unix-path to a writable place.")
        }
    }

    /// The state directory holds the catalog and the API token: refuse one that is a symlink, is
    /// someone else's, or that others may write to (they could replace the token or catalog).
    /// 0711 is fine: unprivileged guest processes may need to traverse it.
    static func checkStateDirectory(_ path: String) throws {
        var info = stat()
        guard lstat(path, &info) == 0 else {
            throw BerthError(.unavailable, "Cannot inspect the state directory \(path).", remedy: "Check that it exists and is readable by berthd.")
        }
        let uid = geteuid()
        guard info.st_mode & S_IFMT != S_IFLNK else {
            throw BerthError(
                .unavailable, "The state directory \(path) is a symlink; berthd does not follow it.",
                remedy: "Give the real directory with --state-dir (readlink -f \(path)).")
        }
        guard info.st_mode & S_IFMT == S_IFDIR else {
            throw BerthError(.unavailable, "The state directory \(path) is not a directory.", remedy: "Move it away, or give another --state-dir.")
        }
        guard info.st_uid == uid else {
            throw BerthError(
                .unavailable, "The state directory \(path) is owned by uid \(info.st_uid), not berthd's uid \(uid).",
                remedy: "Run: chown \(uid) \(path)")
        }
        guard info.st_mode & 0o022 == 0 else {
            throw BerthError(
                .unavailable,
                "The state directory \(path) is writable by its group or others (mode \(String(info.st_mode & 0o7777, radix: 8))).",
                remedy: "Run: chmod go-w \(path)")
        }
    }

    /// The token file, when present, must be a regular file of ours that nobody else can read.
    static func checkTokenFile(_ path: String) throws {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        let uid = geteuid()
        guard info.st_mode & S_IFMT == S_IFREG else {
            throw BerthError(
                .unavailable, "The API token \(path) is not a regular file (a symlink?).",
                remedy: "Remove it (rm \(path)); berthd writes a new one.")
        }
        guard info.st_uid == uid else {
            throw BerthError(
                .unavailable, "The API token \(path) is owned by uid \(info.st_uid), not berthd's uid \(uid).",
                remedy: "Run: chown \(uid) \(path)")
        }
        guard info.st_mode & 0o077 == 0 else {
            throw BerthError(
                .unavailable,
                "The API token \(path) can be read or written by others (mode \(String(info.st_mode & 0o7777, radix: 8))).",
                remedy: "Run: chmod 600 \(path)")
        }
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
                    .unavailable, "Cannot create \(directory): \(BerthError.reason(error))",
                    remedy: "Run berthd as root, or give it a writable --state-dir.")
            }
        }
    }

    /// The TCP listener's token, created once with mode 0600.
    static func loadOrCreateToken(at path: String) throws -> String {
        try checkTokenFile(path)
        if let existing = try? String(contentsOfFile: path, encoding: .utf8).trimmed(),
            !existing.isEmpty
        {
            return existing
        }
        let token = Text.randomHex(byteCount: 32)
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0o600)
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
            let owner = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmed()
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

/// One listener: a bind failure becomes an error naming the address and the fix, and ends the
/// whole daemon (the service group stops the listeners already up), never a half-started one.
struct Listener: Service {
    let application: any Service
    let address: String
    let remedy: String

    init(_ application: any Service, address: String, remedy: String) {
        self.application = application
        self.address = address
        self.remedy = remedy
    }

    func run() async throws {
        do {
            try await application.run()
        } catch let error as BerthError {
            throw error
        } catch {
            let text = "\(error)"
            let reason =
                text.contains("Address already in use") || text.contains("EADDRINUSE")
                ? "it is already in use" : text
            throw BerthError(.unavailable, "Cannot listen on \(address): \(reason).", remedy: remedy)
        }
    }
}
