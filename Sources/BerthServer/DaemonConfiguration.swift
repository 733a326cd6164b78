import BerthModel
import Foundation

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
    /// A connection that sends nothing for this long (no request in progress) is closed.
    public var idleTimeout: Duration
    /// The accelerator used when a domain says `auto`: nil probes the host.
    public var accelOverride: String?
    public var qemuBinary: String?
    /// What berthd does with running guests when it stops (SIGTERM/SIGINT).
    public var onShutdown: OnShutdown = .leave
    /// Guest starts that run at once (autostart, API starts, automatic restarts); the rest wait
    /// their turn. Default: one per core, at least two.
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
    }

    /// `/var/lib/berth` and `/run/berth` as root; the XDG state and runtime directories otherwise.
    public static func defaults(stateDirectory: String? = nil) -> DaemonConfiguration {
        let paths = DefaultPaths.current()
        let state = stateDirectory ?? paths.stateDirectory
        // A custom state directory gets its own runtime directory, so two daemons never share sockets.
        let runtime = stateDirectory == nil ? paths.runtimeDirectory : state + "/run"
        return DaemonConfiguration(stateDirectory: state, runtimeDirectory: runtime)
    }
}
