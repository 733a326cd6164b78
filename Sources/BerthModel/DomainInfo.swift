import FoundationEssentials
import Glibc

/// What a domain is doing, as virsh reports it.
public enum DomainState: String, Codable, Sendable, CaseIterable {
    case shutoff = "shut off"
    case starting
    case running
    case paused
    case shuttingDown = "in shutdown"
    case crashed
}

/// A domain as the API returns it: its definition plus what Berth observed.
public struct DomainInfo: Codable, Sendable, Equatable {
    public var spec: DomainSpec
    public var state: DomainState
    /// QEMU's PID while the domain runs.
    public var pid: Int32?
    /// Accelerator the running QEMU uses.
    public var accel: Accelerator?
    /// Why the domain last stopped or failed to start, for `dominfo`.
    public var lastError: String?
    /// Where the serial console log is written.
    public var consoleLog: String?
    /// The live console socket, while running.
    public var consoleSocket: String?
    public var startedAt: Date?
    /// A managed save waits for the next `start` (`berth managedsave`, `berthd --on-shutdown save`).
    public var managedSave: ManagedSaveInfo?
    /// The disks the running guest has now, in QEMU's order (hot-plugged ones included, ones
    /// detached live left out); nil while it is not running.
    public var liveDisks: [DiskSpec]?

    public init(
        spec: DomainSpec, state: DomainState, pid: Int32? = nil, accel: Accelerator? = nil,
        lastError: String? = nil, consoleLog: String? = nil, consoleSocket: String? = nil, startedAt: Date? = nil,
        managedSave: ManagedSaveInfo? = nil, liveDisks: [DiskSpec]? = nil
    ) {
        self.managedSave = managedSave
        self.liveDisks = liveDisks
        self.spec = spec
        self.state = state
        self.pid = pid
        self.accel = accel
        self.lastError = lastError
        self.consoleLog = consoleLog
        self.consoleSocket = consoleSocket
        self.startedAt = startedAt
    }
}

/// One row of `berth list`.
public struct DomainSummary: Codable, Sendable, Equatable {
    public var name: String
    public var uuid: UUID
    public var state: DomainState
    public var memory: Int
    public var vcpus: Int
    public var autostart: Bool

    public init(name: String, uuid: UUID, state: DomainState, memory: Int, vcpus: Int, autostart: Bool) {
        self.name = name
        self.uuid = uuid
        self.state = state
        self.memory = memory
        self.vcpus = vcpus
        self.autostart = autostart
    }
}

/// A lifecycle event on the event stream (`GET /v1/events`).
public struct LifecycleEvent: Codable, Sendable, Equatable {
    /// What happened; the JSON value is the raw string (`"shutdown-requested"`).
    public enum Kind: String, Codable, Sendable, CaseIterable {
        case defined, updated, undefined
        case started, stopped, crashed, rebooted, restarting, suspended, resumed
        case shutdownRequested = "shutdown-requested"
        /// A restarted berthd found the guest still running.
        case reattached
        /// An installer handed over to the installed system's definition.
        case redefined
        /// A start waits for a start slot (berthd's `--start-limit`); `detail` says how many
        /// starts are ahead. It starts when its turn comes, however long that takes.
        case startWaiting = "start-waiting"
        case startFailed = "start-failed"
        /// Restarted too often (`RestartThrottle`); left off.
        case restartRefused = "restart-refused"
        /// berthd could not record the domain's state in its catalog.
        case catalogError = "catalog-error"
        /// berthd could not cap the running guest's console log (`detail` says why); the log
        /// grows until the cause is fixed.
        case consoleLogError = "console-log-error"
        /// Storage (the event's `domain` is empty, `detail` names the pool or volume).
        case poolDefined = "pool-defined"
        case volumeCreated = "volume-created"
        case volumeDeleted = "volume-deleted"
        /// A `vol-clone` or `vol-wipe` reached another tenth (`detail`: which volume, how far).
        case volumeProgress = "volume-progress"
        /// A running guest's disk grew (`vol-resize` of an attached volume).
        case diskResized = "disk-resized"
        /// A disk was plugged into or out of a running guest (attach-disk/detach-disk --live).
        case diskAttached = "disk-attached"
        case diskDetached = "disk-detached"
        /// A step of `berth install` (`detail` says which: fetch, disk, installer running …).
        case installProgress = "install-progress"
        /// The installer said it failed (its words in `detail`); the install stopped.
        case installFailed = "install-failed"
        /// The guest's state went to a file (`detail`: the file) and its QEMU ended.
        case saved
        /// The guest came back from a saved file (`detail`: the file).
        case restored
        case snapshotCreated = "snapshot-created"
        case snapshotReverted = "snapshot-reverted"
        case snapshotDeleted = "snapshot-deleted"
        /// Source: the guest moved to another host (`detail`: where, total time and downtime).
        case migrated
        /// Destination: a guest arrived from another host and runs here.
        case migratedIn = "migrated-in"
        /// A step of a migration (`detail` says which); the guest still runs at the source.
        case migrationProgress = "migration-progress"
    }

    public var domain: String
    public var kind: Kind
    public var state: DomainState
    public var detail: String?
    public var time: Date

    public init(domain: String, kind: Kind, state: DomainState, detail: String? = nil, time: Date = Date()) {
        self.domain = domain
        self.kind = kind
        self.state = state
        self.detail = detail
        self.time = time
    }
}

/// A long action (start, shutdown) the client can wait on.
public struct OperationInfo: Codable, Sendable, Equatable {
    public enum Status: String, Codable, Sendable { case running, succeeded, failed }
    public var id: String
    /// The domain it acts on; empty for a storage operation.
    public var domain: String
    /// `POOL/NAME` of the volume a storage operation makes or changes (`vol-clone`, `vol-wipe`).
    public var volume: String?
    public var action: String
    public var status: Status
    public var error: BerthError?
    /// What the operation has done so far (an install's fetch, disk, installer … lines).
    public var messages: [OperationMessage]?
    /// Bytes done so far, for operations that move data (save, restore).
    public var progress: OperationProgress?

    public init(
        id: String, domain: String, action: String, status: Status, error: BerthError? = nil,
        messages: [OperationMessage]? = nil, volume: String? = nil
    ) {
        self.id = id
        self.domain = domain
        self.volume = volume
        self.action = action
        self.status = status
        self.error = error
        self.messages = messages
    }
}

/// The host's accelerator verdict: which engine Berth uses and why.
public struct AcceleratorVerdict: Codable, Sendable, Equatable {
    public var chosen: Accelerator
    public var reason: String
    /// Each check as `host-check` prints it.
    public var checks: [HostCheck]

    public init(chosen: Accelerator, reason: String, checks: [HostCheck]) {
        self.chosen = chosen
        self.reason = reason
        self.checks = checks
    }
}

/// One line of `berth host-check`, like `virt-host-validate`.
public struct HostCheck: Codable, Sendable, Equatable {
    public enum Result: String, Codable, Sendable { case pass = "PASS", warn = "WARN", fail = "FAIL", info = "INFO" }
    public var name: String
    public var result: Result
    public var detail: String

    public init(name: String, result: Result, detail: String) {
        self.name = name
        self.result = result
        self.detail = detail
    }
}

public struct HostInfo: Codable, Sendable, Equatable {
    public var hostname: String
    public var cpus: Int
    public var memoryMiB: Int
    public var qemuVersion: String?
    public var accelerator: AcceleratorVerdict
    public var stateDirectory: String
    public var domains: Int
    public var running: Int
    /// The install media listener as `HOST:PORT` (`[::1]:8001` for IPv6); nil when berthd serves
    /// no media (`--media-listen none`).
    public var mediaAddress: String?
    /// Its port: guests on user-mode networking fetch media from `http://10.0.2.2:PORT/`.
    public var mediaPort: Int?

    public init(
        hostname: String, cpus: Int, memoryMiB: Int, qemuVersion: String?, accelerator: AcceleratorVerdict,
        stateDirectory: String, domains: Int, running: Int, mediaAddress: String? = nil, mediaPort: Int? = nil
    ) {
        self.hostname = hostname
        self.cpus = cpus
        self.memoryMiB = memoryMiB
        self.qemuVersion = qemuVersion
        self.accelerator = accelerator
        self.stateDirectory = stateDirectory
        self.domains = domains
        self.running = running
        self.mediaAddress = mediaAddress
        self.mediaPort = mediaPort
    }
}

/// A lifecycle action on a domain: `POST /v1/domains/{name}/{action}`, the same enum on both
/// sides of the API.
public enum DomainAction: String, Codable, Sendable, CaseIterable {
    case start, shutdown, destroy, reboot, suspend, resume
}
