import FoundationEssentials
import Glibc

/// Where a running domain's graphical console is (`GET /v1/domains/{name}/display`,
/// `berth domdisplay`).
public struct DisplayInfo: Codable, Sendable, Equatable {
    public var kind: GraphicsSpec.Kind
    /// What a desktop viewer opens: `vnc+unix:///PATH` for the default unix socket (on
    /// berthd's host), `vnc://HOST:PORT` for a TCP display.
    public var uri: String
    /// The unix socket, for the default display.
    public var socket: String?
    public var host: String?
    public var port: Int?
    /// Set when the display has a password.
    public var password: String?
    /// The WebSocket path through berthd (noVNC's URL), reachable with the API's
    /// authentication only.
    public var webSocket: String

    public init(
        kind: GraphicsSpec.Kind, uri: String, socket: String? = nil, host: String? = nil, port: Int? = nil,
        password: String? = nil, webSocket: String
    ) {
        self.kind = kind
        self.uri = uri
        self.socket = socket
        self.host = host
        self.port = port
        self.password = password
        self.webSocket = webSocket
    }
}

/// One disk's I/O counters, from QMP `query-blockstats`.
public struct BlockStats: Codable, Sendable, Equatable {
    /// The disk's node (`disk0`, …).
    public var device: String
    public var readBytes: Int64
    public var writeBytes: Int64
    public var readOps: Int64
    public var writeOps: Int64

    public init(device: String, readBytes: Int64, writeBytes: Int64, readOps: Int64, writeOps: Int64) {
        self.device = device
        self.readBytes = readBytes
        self.writeBytes = writeBytes
        self.readOps = readOps
        self.writeOps = writeOps
    }
}

/// One NIC's traffic, seen from the guest (received = what the guest got). A tap NIC's
/// counters are the tap's own (`/sys/class/net/TAP/statistics`, swapped: the host's transmit
/// is the guest's receive, as libvirt reports them). A user-mode NIC has none: QEMU's slirp
/// keeps no counters, so they are nil.
public struct InterfaceStats: Codable, Sendable, Equatable {
    /// The NIC's index in the definition.
    public var index: Int
    /// `user`, `network`, `bridge` or `route` (the definition's mode).
    public var mode: String
    public var mac: String?
    /// The tap on berthd's host (`vnetN`), nil for user-mode.
    public var device: String?
    public var rxBytes: Int64?
    public var txBytes: Int64?
    public var rxPackets: Int64?
    public var txPackets: Int64?

    public init(
        index: Int, mode: String, mac: String? = nil, device: String? = nil, rxBytes: Int64? = nil, txBytes: Int64? = nil,
        rxPackets: Int64? = nil, txPackets: Int64? = nil
    ) {
        self.index = index
        self.mode = mode
        self.mac = mac
        self.device = device
        self.rxBytes = rxBytes
        self.txBytes = txBytes
        self.rxPackets = rxPackets
        self.txPackets = txPackets
    }
}

/// A running domain's counters at one moment (`GET /v1/domains/{name}/stats`, `berth
/// domstats`, `berth top`, `/metrics`). CPU time and resident memory are the QEMU process's
/// own accounting (`/proc/PID/stat`); disk I/O is QEMU's (`query-blockstats`); network
/// traffic is the taps' (user-mode NICs have none, see `InterfaceStats`). CPU % is the
/// difference of two samples' `cpuSeconds` over their `time` difference.
public struct DomainStats: Codable, Sendable, Equatable {
    public var name: String
    public var state: DomainState
    public var pid: Int32?
    /// User plus system CPU time of the QEMU process, in seconds.
    public var cpuSeconds: Double
    /// Resident memory of the QEMU process, in bytes.
    public var rssBytes: Int64
    /// Configured memory, in MiB.
    public var memory: Int
    public var vcpus: Int
    public var blocks: [BlockStats]
    public var interfaces: [InterfaceStats]
    public var time: Date

    public init(
        name: String, state: DomainState, pid: Int32?, cpuSeconds: Double, rssBytes: Int64, memory: Int, vcpus: Int,
        blocks: [BlockStats], interfaces: [InterfaceStats] = [], time: Date
    ) {
        self.name = name
        self.state = state
        self.pid = pid
        self.cpuSeconds = cpuSeconds
        self.rssBytes = rssBytes
        self.memory = memory
        self.vcpus = vcpus
        self.blocks = blocks
        self.interfaces = interfaces
        self.time = time
    }
}
