import ArgumentParser
import BerthClient
import BerthFormats
import BerthModel
import BerthPOSIX
import BerthQEMU
import FoundationEssentials
import Glibc
import Logging

/// `berthd`: what xend and libvirtd were.
public struct BerthDaemonCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "berthd",
        abstract: "The Berth daemon: owns the catalog, runs and supervises guests, serves the API.",
        discussion:
            "Serves the API on a unix socket in the runtime directory and on 127.0.0.1:8000 (xend's port), where every request needs the token from <state-dir>/api-token (off loopback only with TLS: 'berth tls init' or --tls-*, and a client certificate signed by the CA stands for the token), and install media (/install/…, /kickstarts/…, read-only, no token) on a listener of their own, 127.0.0.1:8001, the only port guests may reach. Guests keep running when berthd stops; a restarted berthd re-attaches to them."
    )

    @Option(help: "State directory (catalog, token, logs). Default: /var/lib/berth as root, else the XDG state directory.")
    var stateDir: String?
    @Option(help: "TCP address to listen on as HOST:PORT; 'none' disables TCP. Default 127.0.0.1:8000.")
    var listen: String?
    @Option(help: "TLS certificate of the TCP API listener (with --tls-key and --tls-ca). Default off loopback: server-cert.pem of 'berth tls init'.")
    var tlsCert: String?
    @Option(help: "The TLS certificate's private key.")
    var tlsKey: String?
    @Option(help: "CA certificate whose client certificates are accepted instead of the API token.")
    var tlsCa: String?
    @Option(help: "Install media listener as HOST:PORT (guests fetch /install/… and /kickstarts/… here); 'none' disables it. Default 127.0.0.1:8001.")
    var mediaListen: String?
    @Option(help: "Seconds an idle connection is kept open (1...3600).")
    var idleTimeout: Int = 60
    @Option(
        help:
            "A xend-config.sxp (or Berth config in the same syntax): xend-http-server, xend-port, xend-address, xend-unix-server, xend-unix-path, xend-relocation-server, -address, -port, -hosts-allow.",
        completion: .file())
    var config: String?
    @Option(help: "Accelerator for domains that say 'auto': auto (probe), kvm or tcg.")
    var accel: Accelerator = .auto
    @Option(help: "The qemu-system-x86_64 binary to use.")
    var qemu: String?
    @Option(help: "Largest size of a guest's console log in bytes; over it, the log is rotated while the guest runs (5 old logs are kept).")
    var consoleLogMax: UInt64 = 1 << 20
    @Option(
        help:
            "What to do with running guests when berthd stops: 'leave' them running (re-attached at the next start), or 'save' each (a managed save) and resume them when berthd starts again, as libvirt-guests does."
    )
    var onShutdown: DaemonConfiguration.OnShutdown = .leave
    @Option(
        help:
            "IPv4 address incoming migrations listen on (a one-time random port per migration; xend's xend-relocation-address). Default: the --listen address."
    )
    var migrationListen: String?
    @Option(help: "CA certificate a migration destination's https:// certificate must come from. Default: ca-cert.pem of 'berth tls init'.")
    var migrationTlsCa: String?
    @Option(
        help:
            "Client certificate berthd presents to an https:// migration destination (with --migration-tls-key). Default: 'berth tls init''s client-cert.pem when present."
    )
    var migrationTlsCert: String?
    @Option(help: "The migration client certificate's private key.")
    var migrationTlsKey: String?
    @Option(help: "An ssh -o option for ssh:// migration destinations (repeatable).")
    var migrationSshOption: [String] = []
    @Option(
        help:
            "Guest starts run at once (autostart at berthd's start, API starts, restarts); the others wait their turn, however long. Default: two per core (1...1024)."
    )
    var startLimit: Int?
    @Option(help: "MiB of memory kept for the host: a guest that would eat into it is refused with the reason. Default 256.")
    var memoryReserve: Int = 256
    @Option(
        help:
            "Kernel samepage merging for the whole host (/sys/kernel/mm/ksm/run): 'on' merges identical guest pages (QEMU marks guest RAM mergeable), 'off' stops merging, 'leave' (default) does not touch it."
    )
    var ksm: KSMSetting = .leave
    @Option(help: "Log level: trace, debug, info, notice, warning, error.")
    var logLevel: String = "info"

    public init() {}

    /// Parses the arguments, runs the daemon and exits. (`main()` from a `main.swift` would
    /// pick the synchronous entry point on Linux.)
    public static func main(arguments: [String]) async -> Never {
        do {
            var command = try parseAsRoot(arguments)
            if let daemon = command as? BerthDaemonCommand {
                try await daemon.run()
            } else {
                try command.run()
            }
            Glibc.exit(0)
        } catch {
            exit(withError: error)
        }
    }

    public func run() async throws {
        var configuration = DaemonConfiguration.defaults(stateDirectory: stateDir ?? ProcessInfo.processInfo.environment["BERTH_STATE_DIR"])
        var logger = Logger(label: "berthd")
        logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info
        if let config { try apply(config, to: &configuration, logger: logger) }
        if let listen {
            let address = try Self.address(listen, option: "--listen", example: "127.0.0.1:8000")
            configuration.tcpHost = address?.host
            if let address { configuration.tcpPort = address.port }
        }
        if let mediaListen {
            let address = try Self.address(mediaListen, option: "--media-listen", example: "127.0.0.1:8001")
            configuration.mediaHost = address?.host
            if let address { configuration.mediaPort = address.port }
        }
        if let migrationListen {
            var address = in_addr()
            guard inet_pton(AF_INET, migrationListen, &address) == 1 else {
                throw ValidationError("--migration-listen takes an IPv4 address of this host (127.0.0.1).")
            }
            configuration.migrationHost = migrationListen
        }
        configuration.peerOptions = RemoteOptions(
            tlsCA: migrationTlsCa, tlsCertificate: migrationTlsCert, tlsKey: migrationTlsKey, sshOptions: migrationSshOption)
        switch (tlsCert, tlsKey, tlsCa) {
        case (nil, nil, nil): break
        case (let certificate?, let key?, let ca?): configuration.tls = TLSFiles(ca: ca, certificate: certificate, key: key)
        default: throw ValidationError("--tls-cert, --tls-key and --tls-ca go together ('berth tls init' writes all three).")
        }
        guard (1...3600).contains(idleTimeout) else { throw ValidationError("--idle-timeout takes 1...3600 seconds.") }
        configuration.idleTimeout = .seconds(idleTimeout)
        configuration.qemuBinary = qemu
        configuration.onShutdown = onShutdown
        if let startLimit {
            guard (1...1024).contains(startLimit) else { throw ValidationError("--start-limit takes 1...1024 starts.") }
            configuration.startLimit = startLimit
        }
        guard memoryReserve >= 0 else { throw ValidationError("--memory-reserve takes MiB, 0 or more.") }
        configuration.memoryReserveMiB = memoryReserve
        if let message = ksm.apply() { logger.notice("\(message)") }
        let driver = await QEMUGuestDriver(
            runtimeRoot: configuration.runtimeDirectory, logRoot: configuration.logDirectory, qemuOverride: qemu,
            accelOverride: accel, consoleLogCap: (max(consoleLogMax, 4096), 5),
            pvhKernels: PVHKernels(
                directory: configuration.bootDirectory + "/pvh", bootloader: BootPreparer.bootloaderBesideDaemon()))
        logger.info("accelerator: \(driver.acceleratorVerdict().chosen.rawValue) — \(driver.acceleratorVerdict().reason)")
        do {
            try await Daemon.run(
                configuration: configuration, driver: driver,
                bootPreparer: BootPreparer.fromGuestDisk(
                    directory: configuration.bootDirectory, bootloader: BootPreparer.bootloaderBesideDaemon()),
                logger: logger)
        } catch let error as BerthError {
            try? writeAll(2, Array("berthd: \(error.message)\n  \(error.remedy ?? "")\n".utf8))
            throw ExitCode(error.code.exitCode)
        }
    }
}

extension DaemonConfiguration.OnShutdown: ExpressibleByArgument {}

/// `berthd --ksm`: the host's kernel samepage merging, a host-wide switch.
enum KSMSetting: String, CaseIterable, ExpressibleByArgument {
    case leave, on, off

    static let control = "/sys/kernel/mm/ksm/run"

    /// Writes the setting; returns what happened, for the log (nil for `leave`).
    func apply() -> String? {
        guard self != .leave else { return nil }
        guard FileManager.default.fileExists(atPath: Self.control) else {
            return "--ksm \(rawValue): this kernel has no KSM (\(Self.control) is missing); nothing changed."
        }
        let fd = open(Self.control, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return "--ksm \(rawValue): cannot open \(Self.control) (berthd must run as root)." }
        defer { close(fd) }
        let value = Array((self == .on ? "1\n" : "0\n").utf8)
        guard write(fd, value, value.count) == value.count else {
            return "--ksm \(rawValue): the kernel refused \(Self.control): \(String(cString: strerror(errno)))"
        }
        return "KSM \(self == .on ? "on: identical guest pages are merged" : "off") (\(Self.control))."
    }
}

extension BerthDaemonCommand {
    /// `HOST:PORT` (`[::1]:PORT` for IPv6), or nil for `none`.
    static func address(_ text: String, option: String, example: String) throws -> (host: String, port: Int)? {
        if text == "none" { return nil }
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port)
        else {
            throw ValidationError("\(option) takes HOST:PORT (\(example)) or 'none'.")
        }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return (host, port)
    }

    /// Takes the listener settings from a xend-config.sxp, as xend did.
    func apply(_ path: String, to configuration: inout DaemonConfiguration, logger: Logger) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ValidationError("Cannot read --config \(path).")
        }
        let xend = try XendConfig.parse(bytes: [UInt8](data), source: path)
        for warning in xend.warnings { logger.warning("\(path): \(warning)") }
        if xend.httpServer {
            configuration.tcpHost = ["localhost", "127.0.0.1"].contains(xend.address) ? "127.0.0.1" : xend.bindAddress
            configuration.tcpPort = xend.port
            if xend.listensOnAllInterfaces {
                logger.warning(
                    "\(path): xend-address '' listens on every interface: berthd serves it only with TLS ('berth tls init'), each request with a client certificate or the API token."
                )
            }
        } else {
            configuration.tcpHost = nil
            logger.info("\(path): xend-http-server is off, so berthd listens on its unix socket only.")
        }
        if xend.unixServer { configuration.socketPath = xend.unixPath }
        if xend.relocationServer, !xend.relocationAddress.isEmpty { configuration.migrationHost = xend.relocationAddress }
        applyRelocation(xend, path: path, to: &configuration, logger: logger)
        logger.info("\(path): default network mode for imported guests: \(xend.defaultNetworkMode.rawValue).")
    }
}

extension BerthDaemonCommand {
    /// xend's relocation server becomes a second API listener: `berth migrate --to` on another
    /// host reaches this berthd there. `xend-relocation-address`/`-port` are where it listens
    /// (TLS off loopback, as for --listen), `xend-relocation-hosts-allow` which peer addresses it
    /// answers. xend's relocation protocol itself is not spoken: the peer is a berthd.
    func applyRelocation(_ xend: XendConfig, path: String, to configuration: inout DaemonConfiguration, logger: Logger) {
        guard xend.relocationServer else { return }
        configuration.relocation = DaemonConfiguration.Relocation(
            host: xend.relocationAddress, port: xend.relocationPort, hostsAllow: xend.relocationHostsAllow)
        let address = Daemon.display(xend.relocationAddress, xend.relocationPort)
        let allowed = xend.relocationHostsAllow.isEmpty ? "every host" : xend.relocationHostsAllow.joined(separator: " ")
        logger.info("\(path): xend-relocation-server: the API (TLS, client certificates) on \(address) for other hosts' berthd, open to \(allowed).")
    }
}

extension Accelerator: ExpressibleByArgument {}
