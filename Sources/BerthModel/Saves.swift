import FoundationEssentials
import Glibc

/// How far a data-moving operation (save, restore) is.
public struct OperationProgress: Codable, Sendable, Equatable {
    public var bytes: UInt64
    /// The expected total; 0 when not known yet.
    public var total: UInt64

    public init(bytes: UInt64, total: UInt64) {
        self.bytes = bytes
        self.total = total
    }
}

/// The state a restored guest is left in (virsh's `--running`/`--paused`).
public enum SavedRunState: String, Codable, Sendable, CaseIterable {
    case running, paused
}

/// `POST /v1/domains/{name}/save`: the guest's memory and device state to `file` on the
/// daemon's host (which must not exist); its QEMU ends afterwards.
public struct SaveRequest: Codable, Sendable, Equatable {
    public var file: String
    /// The state to restore into; left out, the state the guest was in.
    public var state: SavedRunState?

    public init(file: String, state: SavedRunState? = nil) {
        self.file = file
        self.state = state
    }
}

/// `POST /v1/restore`: a file written by `save` starts its domain again where it stopped.
public struct RestoreRequest: Codable, Sendable, Equatable {
    public var file: String
    /// Overrides the state recorded in the file.
    public var state: SavedRunState?

    public init(file: String, state: SavedRunState? = nil) {
        self.file = file
        self.state = state
    }
}

/// What the Berth header of a saved file says.
public struct SavedImageInfo: Codable, Sendable, Equatable {
    public var domain: String
    public var uuid: UUID
    public var state: SavedRunState
    public var savedAt: Date
    /// Length of QEMU's migration stream.
    public var bytes: UInt64

    public init(domain: String, uuid: UUID, state: SavedRunState, savedAt: Date, bytes: UInt64) {
        self.domain = domain
        self.uuid = uuid
        self.state = state
        self.savedAt = savedAt
        self.bytes = bytes
    }
}

/// A domain's managed save (`dominfo`).
public struct ManagedSaveInfo: Codable, Sendable, Equatable {
    public var path: String
    public var savedAt: Date
    /// The state the next `start` resumes into.
    public var state: SavedRunState
    /// Saved by `berthd --on-shutdown save`: resumed when berthd starts again.
    public var resumeAtDaemonStart: Bool

    public init(path: String, savedAt: Date, state: SavedRunState, resumeAtDaemonStart: Bool) {
        self.path = path
        self.savedAt = savedAt
        self.state = state
        self.resumeAtDaemonStart = resumeAtDaemonStart
    }
}

/// `POST /v1/domains/{name}/snapshots`.
public struct SnapshotRequest: Codable, Sendable, Equatable {
    public var name: String
    public var description: String?
    /// An external snapshot (virsh's `--disk-only`): each writable disk's current file is kept
    /// as it is and a new qcow2 overlay next to it takes the guest's writes from now on.
    public var diskOnly: Bool?

    public init(name: String, description: String? = nil, diskOnly: Bool? = nil) {
        self.name = name
        self.description = description
        self.diskOnly = diskOnly
    }
}

/// One snapshot of a domain: internal (inside its qcow2 disks, with memory when taken while it
/// ran) or external (disks only: the files as they were, under overlays taking later writes).
public struct SnapshotInfo: Codable, Sendable, Equatable {
    public var name: String
    public var description: String?
    public var createdAt: Date
    /// The domain's state when taken: `running`, `paused` or `shut off`.
    public var state: DomainState
    /// Whether the guest's memory and devices were saved with the disks.
    public var memory: Bool
    /// The disks (host paths) it covers; for an external snapshot, the files it keeps.
    public var disks: [String]
    /// External snapshots only: the qcow2 overlays made on `disks` (same order), which the
    /// domain's definition now names.
    public var overlays: [String]?

    /// Whether the snapshot is a set of overlays rather than kept inside the images.
    public var external: Bool { overlays != nil }

    public init(
        name: String, description: String?, createdAt: Date, state: DomainState, memory: Bool, disks: [String],
        overlays: [String]? = nil
    ) {
        self.name = name
        self.description = description
        self.createdAt = createdAt
        self.state = state
        self.memory = memory
        self.disks = disks
        self.overlays = overlays
    }
}
