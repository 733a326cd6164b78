import BerthClient
import BerthModel
import FoundationEssentials
import Glibc

/// Where berthd keeps its state and where it listens.
public struct DaemonConfiguration: Sendable {
    /// Catalog, API token, console logs, bootloader output.
    public var stateDirectory: String
    /// Sockets and pidfiles (the daemon's and each guest's).
    public var runtimeDirectory: String
    public var socketPath: String
    /// TCP listener (xend's 127.0.0.1:8000); nil disables it.
    public var tcpHost: String?
    public var tcpPort: Int
    /// The install media listener (read-only `/install/…` and `/kickstarts/…`, no token), apart
    /// from the API so that guests, which reach the host's loopback as 10.0.2.2, are let through
    /// to this port only; nil disables it.
    public var mediaHost: String?
    public var mediaPort: Int
    /// Where incoming migrations' one-time listeners bind (xend's `xend-relocation-address`);
    /// nil: the TCP listener's address, else 127.0.0.1.
    public var migrationHost: String?
    /// How this berthd reaches migration destinations: TLS files and ssh options (paths and
    /// options only; no secret is kept in the catalog or logged).
    public var peerOptions = RemoteOptions()
    /// A connection that sends nothing for this long (no request in progress) is closed.
    public var idleTimeout: Duration
    /// The accelerator used when a domain says `auto`: nil probes the host.
    public var accelOverride: String?
    public var qemuBinary: String?
    /// The TCP listeners' TLS files given on the command line (`--tls-cert`, `--tls-key`,
    /// `--tls-ca`): every TCP API listener then speaks TLS. nil: a listener off loopback uses
    /// `berth tls init`'s files in `pkiDirectory`, one on loopback plain HTTP with the token.
    public var tls: TLSFiles?
    /// Where `berth tls init` wrote berthd's certificate (`TLSFiles.server(in:)`).
    public var pkiDirectory: String
    /// `xend-relocation-server`: a second API listener for other hosts (a migration source
    /// reaches this berthd's API there), limited to `xend-relocation-hosts-allow`.
    public var relocation: Relocation?

    public struct Relocation: Sendable, Equatable {
        public var host: String
        public var port: Int
        /// Regular expressions matched against the peer's address; empty means everyone.
        public var hostsAllow: [String]

        public init(host: String, port: Int, hostsAllow: [String]) {
            self.host = host
            self.port = port
            self.hostsAllow = hostsAllow
        }
    }

    /// One TCP API listener as berthd will open it.
    public struct APIListener: Sendable, Equatable {
        /// "API" (`--listen`, xend-port) or "relocation" (xend-relocation-port), for messages.
        public var role: String
        public var host: String
        public var port: Int
        /// nil: plain HTTP (loopback only).
        public var tls: TLSFiles?
        public var hostsAllow: [String] = []
    }

    /// The TCP API listeners, each with TLS where it needs it.
    /// - Throws: `BerthError` for a listener off loopback with no TLS files, naming the address
    ///   and the fix: plain HTTP would carry the token and every request readable on the network.
    public func apiListeners() throws -> [APIListener] {
        var listeners: [APIListener] = []
        if let tcpHost { listeners.append(try listener("API", tcpHost, tcpPort, hostsAllow: [], option: "--listen")) }
        if let relocation {
            listeners.append(
                try listener("relocation", relocation.host, relocation.port, hostsAllow: relocation.hostsAllow, option: "xend-relocation-address"))
        }
        return listeners
    }

    private func listener(_ role: String, _ host: String, _ port: Int, hostsAllow: [String], option: String) throws -> APIListener {
        if let tls { return APIListener(role: role, host: host, port: port, tls: tls, hostsAllow: hostsAllow) }
        if Self.isLoopback(host) { return APIListener(role: role, host: host, port: port, tls: nil, hostsAllow: hostsAllow) }
        let defaults = TLSFiles.server(in: pkiDirectory)
        if defaults.exist { return APIListener(role: role, host: host, port: port, tls: defaults, hostsAllow: hostsAllow) }
        let address = host.isEmpty ? "0.0.0.0:\(port)" : (host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)")
        throw BerthError(
            .invalidArgument,
            "berthd will not serve its \(role) listener on \(address) without TLS: the API token and every request would cross the network in clear text.",
            remedy:
                "Run 'berth tls init --server-name \(host.isEmpty || host == "0.0.0.0" ? "HOSTNAME" : host)' (berthd then uses \(defaults.certificate)), or give --tls-cert, --tls-key and --tls-ca; or keep \(option) on 127.0.0.1 and reach this host with 'berth --connect ssh://HOST'."
        )
    }

    /// 127.0.0.0/8, ::1 and `localhost`: addresses only this host reaches.
    public static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    /// What berthd does with running guests when it stops (SIGTERM/SIGINT).
    public var onShutdown: OnShutdown = .leave
    /// Guest starts that run at once (autostart, API starts, automatic restarts); the rest wait
    /// their turn. Default: two per core.
    public var startLimit: Int = HostCapacity.defaultStartLimit
    /// Memory (MiB) kept for the host: a guest whose memory would eat into it is refused.
    public var memoryReserveMiB: Int = 256

    /// libvirt-guests' ON_SHUTDOWN, for berthd.
    public enum OnShutdown: String, Sendable, CaseIterable {
        /// Guests keep running; the next berthd re-attaches to them.
        case leave
        /// Each running guest is saved (a managed save) and resumed when berthd starts again.
        case save
    }

    /// Host TCP ports guests may connect to (the install-media listener); nothing else on the
    /// host is reachable from a guest when berthd runs as root (`GuestFirewall`).
    public var guestReachablePorts: [Int] { mediaHost == nil ? [] : [mediaPort] }

    public var catalogPath: String { stateDirectory + "/catalog.sqlite" }
    public var tokenPath: String { stateDirectory + "/api-token" }
    public var logDirectory: String { stateDirectory + "/logs" }
    public var bootDirectory: String { stateDirectory + "/boot" }

    public init(
        stateDirectory: String, runtimeDirectory: String, socketPath: String? = nil, tcpHost: String? = "127.0.0.1",
        tcpPort: Int = 8000, mediaHost: String? = "127.0.0.1", mediaPort: Int = 8001, idleTimeout: Duration = .seconds(60),
        accelOverride: String? = nil, qemuBinary: String? = nil
    ) {
        self.stateDirectory = stateDirectory
        self.runtimeDirectory = runtimeDirectory
        self.socketPath = socketPath ?? runtimeDirectory + "/berthd.sock"
        self.tcpHost = tcpHost
        self.tcpPort = tcpPort
        self.mediaHost = mediaHost
        self.mediaPort = mediaPort
        self.idleTimeout = idleTimeout
        self.accelOverride = accelOverride
        self.qemuBinary = qemuBinary
        self.pkiDirectory = stateDirectory + "/pki"
    }

    /// `/var/lib/berth` and `/run/berth` as root; the XDG state and runtime directories otherwise.
    public static func defaults(stateDirectory: String? = nil) -> DaemonConfiguration {
        let paths = DefaultPaths.current()
        let state = stateDirectory ?? paths.stateDirectory
        // A custom state directory gets its own runtime directory, so two daemons never share sockets.
        let runtime = stateDirectory == nil ? paths.runtimeDirectory : state + "/run"
        var configuration = DaemonConfiguration(stateDirectory: state, runtimeDirectory: runtime)
        // A custom state directory keeps its certificates too; the default one uses the host's.
        if stateDirectory == nil { configuration.pkiDirectory = paths.pkiDirectory }
        return configuration
    }
}
