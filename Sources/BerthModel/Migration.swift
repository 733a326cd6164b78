import FoundationEssentials
import Glibc

/// `POST /v1/domains/{name}/migrate` (`berth migrate NAME --to URL`): move a running guest to
/// another berthd. The source berthd talks to the destination's API itself.
public struct MigrateRequest: Codable, Sendable, Equatable {
    /// The destination berthd's API: `https://HOST:PORT`, `ssh://[USER@]HOST` or `http://HOST:PORT`.
    public var destination: String
    /// The destination's API token (its `<state>/api-token`).
    public var token: String?
    /// Keep the guest running while its memory is copied (virsh `--live`); otherwise it is
    /// paused for the whole copy.
    public var live: Bool
    /// Copy every writable disk to the destination while the guest runs (virsh
    /// `--copy-storage-all`); otherwise the disks must be on storage both hosts share.
    public var copyStorageAll: Bool
    /// virsh `--persistent`, accepted and ignored: Berth has no transient domains, so the
    /// destination always keeps the definition (docs/ARCHITECTURE.md says why).
    public var persistent: Bool
    /// Undefine the domain on the source once the guest runs on the destination (virsh
    /// `--undefine-source`); otherwise it stays defined here, shut off.
    public var undefineSource: Bool
    /// The most memory bytes per second, in MiB/s (virsh `--bandwidth`); nil: no limit.
    public var bandwidth: Int?

    public init(
        destination: String, token: String? = nil, live: Bool = true, copyStorageAll: Bool = false,
        persistent: Bool = false, undefineSource: Bool = false, bandwidth: Int? = nil
    ) {
        self.bandwidth = bandwidth
        self.destination = destination
        self.token = token
        self.live = live
        self.copyStorageAll = copyStorageAll
        self.persistent = persistent
        self.undefineSource = undefineSource
    }
}

/// `POST /v1/migrations` on the destination: the source berthd offers a guest. The destination
/// checks it can run it (networks, pools, accelerator, QEMU, CPU features) before anything moves, defines
/// it, starts its QEMU waiting for the state and answers with a `MigrationTicket`.
public struct IncomingMigrationRequest: Codable, Sendable, Equatable {
    public var spec: DomainSpec
    /// The accelerator the guest runs on at the source (TCG state does not load into KVM).
    public var accel: Accelerator
    /// The source's QEMU version: the destination's must not be older.
    public var qemuVersion: String?
    /// Disks the destination creates (same format and size) and receives over NBD.
    public var copies: [DiskCopy]
    /// The CPU features the guest sees at the source (its QEMU's static expansion of its
    /// `-cpu` model); the destination refuses a guest using one its CPU cannot give. Nil from
    /// a source that does not say (not compared).
    public var cpuFeatures: [String]?

    public init(
        spec: DomainSpec, accel: Accelerator, qemuVersion: String?, copies: [DiskCopy] = [], cpuFeatures: [String]? = nil
    ) {
        self.spec = spec
        self.accel = accel
        self.qemuVersion = qemuVersion
        self.copies = copies
        self.cpuFeatures = cpuFeatures
    }
}

/// One disk copied by `--copy-storage-all`: its index in the definition and its virtual size.
public struct DiskCopy: Codable, Sendable, Equatable {
    public var index: Int
    public var bytes: UInt64

    public init(index: Int, bytes: UInt64) {
        self.index = index
        self.bytes = bytes
    }
}

/// The destination's answer to an offer: where the source berthd connects its streams, and
/// the one-time secret each connection must begin with.
public struct MigrationTicket: Codable, Sendable, Equatable {
    public var id: String
    public var domain: String
    public var host: String
    public var port: Int
    public var secret: String

    public init(id: String, domain: String, host: String, port: Int, secret: String) {
        self.id = id
        self.domain = domain
        self.host = host
        self.port = port
        self.secret = secret
    }
}

/// `POST /v1/migrations/{id}/finish`: the source's memory migration completed; the
/// destination waits for its QEMU to have loaded it and lets the guest run (or stay paused).
public struct IncomingFinishRequest: Codable, Sendable, Equatable {
    public var running: Bool

    public init(running: Bool) { self.running = running }
}

/// An incoming migration as the destination sees it (`GET /v1/migrations/{id}`).
public struct IncomingMigrationInfo: Codable, Sendable, Equatable {
    public enum Phase: String, Codable, Sendable {
        /// QEMU waits for the state.
        case waiting
        /// The guest runs here: the migration is over.
        case finished
    }

    public var id: String
    public var domain: String
    public var phase: Phase

    public init(id: String, domain: String, phase: Phase) {
        self.id = id
        self.domain = domain
        self.phase = phase
    }
}
