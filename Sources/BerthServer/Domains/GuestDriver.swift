import BerthModel
import BerthQEMU
import FoundationEssentials
import Glibc

/// What a running guest reports to its supervisor.
public enum GuestEvent: Sendable, Equatable {
    case paused
    case resumed
    case powerdownRequested
    case reset
    case panicked
    /// QEMU announced it is shutting down, and why.
    case shutdown(ShutdownReason)
    /// The console log could not be capped (rotation failed: the disk is full, a file is in the
    /// way); sent once for each new reason.
    case consoleLogNotCapped(String)
    /// The QEMU process is gone. Always the last event.
    case exited
}

/// Why QEMU is shutting down, from QMP's `SHUTDOWN` event. Under `-no-reboot` a reset ends
/// QEMU too, so the reason is what tells a reboot from a power-off from a crash.
public enum ShutdownReason: Sendable, Equatable, CustomStringConvertible {
    /// The guest powered itself off (`guest-shutdown`).
    case guestPowerOff
    /// The guest rebooted itself (`guest-reset`).
    case guestReset
    /// A reset came from outside the guest (`host-qmp-system-reset`: QMP `system_reset`).
    case hostReset
    /// Anything else (`host-signal`, `host-qmp-quit`, `guest-panic`, …): not the guest's doing.
    case other(String)

    public init(qmp reason: String) {
        switch reason {
        case "guest-shutdown": self = .guestPowerOff
        case "guest-reset": self = .guestReset
        case "host-qmp-system-reset": self = .hostReset
        default: self = .other(reason)
        }
    }

    /// QMP's own word for it, as users see it in events and logs.
    public var description: String {
        switch self {
        case .guestPowerOff: "guest-shutdown"
        case .guestReset: "guest-reset"
        case .hostReset: "host-qmp-system-reset"
        case .other(let reason): reason
        }
    }

    /// The guest itself asked to end (power-off or reboot), as an installer does when it finishes.
    var isGuestsOwn: Bool { self == .guestPowerOff || self == .guestReset }
}

/// Starts and re-attaches guests. The QEMU implementation is `QEMUGuestDriver`; the
/// seam exists so the supervisor's policy logic reads apart from process handling.
public protocol GuestDriver: Sendable {
    /// Launches the guest, as `identity`'s user when given, with `taps` (open tap descriptors
    /// by NIC index) for the NICs that are not user-mode; returns once QEMU runs and its
    /// control channel is connected.
    func start(_ spec: DomainSpec, boot: BootFiles?, taps: [Int: Int32], identity: GuestIdentity?) async throws
        -> any GuestInstance
    /// Finds a guest left running by an earlier daemon, checking that its PID still
    /// belongs to this domain's UUID.
    func reattach(_ spec: DomainSpec) async -> (any GuestInstance)?
    /// Stops a QEMU of this domain that berthd does not manage (a start the last berthd did
    /// not finish, unknown to the catalog): it would hold the domain's disks. Its PID, or nil.
    func removeStray(_ spec: DomainSpec) async -> Int32?
    /// Where the domain's serial console is logged.
    func consoleLogPath(_ spec: DomainSpec) -> String
    /// The live console socket of a running domain.
    func consoleSocketPath(_ spec: DomainSpec) -> String
    /// Launches the guest with its vCPUs stopped (`-S`); with `incoming`, waiting for its state
    /// (`-incoming defer`) for `GuestInstance.restore` to fill in.
    func startPaused(
        _ spec: DomainSpec, boot: BootFiles?, taps: [Int: Int32], identity: GuestIdentity?, incoming: Bool
    ) async throws -> any GuestInstance
    /// The default VNC display's unix socket of a running domain.
    func vncSocketPath(_ spec: DomainSpec) -> String
    /// The default SPICE display's unix socket of a running domain.
    func spiceSocketPath(_ spec: DomainSpec) -> String
    /// The accelerator verdict for this host.
    func acceleratorVerdict() -> AcceleratorVerdict
    /// QEMU's version, nil when QEMU is not installed.
    func qemuVersion() -> String?
    /// The CPU features this host can give a guest under `accel` (a migration's pre-check);
    /// nil when the driver cannot tell.
    func cpuFeatures(accel: Accelerator) async throws -> Set<String>?
}

extension GuestDriver {
    public func cpuFeatures(accel: Accelerator) async throws -> Set<String>? { nil }
}

public protocol GuestInstance: Sendable {
    var pid: Int32 { get }
    var accel: Accelerator { get }
    /// Lifecycle events; finishes after `.exited`.
    var events: AsyncStream<GuestEvent> { get }
    /// ACPI power button.
    func powerdown() async throws
    /// Hard reset; with `-no-reboot` QEMU exits and the supervisor starts it again.
    func reset() async throws
    func pause() async throws
    func resume() async throws
    /// Ends the process: SIGTERM, then SIGKILL after a grace period. Returns when it is gone.
    func terminate() async
    /// Grows a disk while the guest runs (QMP `block_resize` on the disk's format node
    /// `diskN`); the guest sees the new size at once.
    func blockResize(node: String, bytes: UInt64) async throws
    /// Plugs a disk in (its format node named `node`); refuses machines without PCI hot-plug.
    func attachDisk(node: String, disk: DiskSpec) async throws
    /// Unplugs the disk on `node`, waiting for the guest to let go of it.
    func detachDisk(node: String, disk: DiskSpec) async throws
    /// A read-only QMP query (`query-blockstats`, `query-vnc`), answered while other
    /// operations run.
    func query(_ command: String) async throws -> QMP.Value
    /// Writes the (paused) guest's memory and device state to `descriptor`, from its offset.
    func save(to descriptor: Int32, progress: @escaping @Sendable (UInt64, UInt64) -> Void) async throws
    /// Loads state written by `save` from `descriptor` into a guest from `startIncoming`; the
    /// guest stays paused.
    func restore(from descriptor: Int32, length: UInt64, progress: @escaping @Sendable (UInt64, UInt64) -> Void)
        async throws
    /// Runs an internal snapshot job: `snapshot-save`, `snapshot-load` or `snapshot-delete`
    /// on format nodes `devices`, with the memory state in `vmstate`.
    func snapshot(_ command: String, tag: String, vmstate: String?, devices: [String]) async throws
    /// Puts berthd-made qcow2 overlays on top of running disks, all at once (an external
    /// snapshot); on failure nothing of them stays in the guest.
    func addOverlays(_ overlays: [DiskOverlay]) async throws
    /// Merges overlays back into the disks under them while the guest runs (active commit)
    /// and switches the guest back to those disks; returns the overlays that switched.
    func commitOverlays(_ overlays: [DiskOverlay]) async throws -> [DiskOverlay]
    /// The QEMU process behind the guest, for live migration (nil for other drivers).
    var qemuProcess: QEMUProcess? { get }
}

extension GuestDriver {
    public func vncSocketPath(_ spec: DomainSpec) -> String {
        PathName.directory(of: consoleSocketPath(spec)) + "/display/" + RuntimePaths.vncSocketName
    }

    public func spiceSocketPath(_ spec: DomainSpec) -> String {
        PathName.directory(of: consoleSocketPath(spec)) + "/display/" + RuntimePaths.spiceSocketName
    }

    public func startPaused(
        _ spec: DomainSpec, boot: BootFiles?, taps: [Int: Int32], identity: GuestIdentity?, incoming: Bool
    ) async throws -> any GuestInstance {
        throw BerthError(.unavailable, "This guest driver cannot restore saved guests.")
    }
}

extension GuestInstance {
    public var qemuProcess: QEMUProcess? { nil }

    public func query(_ command: String) async throws -> QMP.Value {
        throw BerthError(.unavailable, "This guest driver has no QMP.", remedy: "Use the QEMU driver.")
    }

    public func save(to descriptor: Int32, progress: @escaping @Sendable (UInt64, UInt64) -> Void) async throws {
        throw BerthError(.unavailable, "This guest driver cannot save guests.")
    }

    public func restore(
        from descriptor: Int32, length: UInt64, progress: @escaping @Sendable (UInt64, UInt64) -> Void
    ) async throws {
        throw BerthError(.unavailable, "This guest driver cannot restore saved guests.")
    }

    public func snapshot(_ command: String, tag: String, vmstate: String?, devices: [String]) async throws {
        throw BerthError(.unavailable, "This guest driver cannot take snapshots.")
    }

    public func addOverlays(_ overlays: [DiskOverlay]) async throws {
        throw BerthError(.unavailable, "This guest driver cannot take external snapshots while the guest runs.")
    }

    public func commitOverlays(_ overlays: [DiskOverlay]) async throws -> [DiskOverlay] {
        throw BerthError(.unavailable, "This guest driver cannot merge external snapshots while the guest runs.")
    }

    public func blockResize(node: String, bytes: UInt64) async throws {
        throw BerthError(.unavailable, "This guest driver cannot resize disks live.", remedy: "Shut the domain off and resize then.")
    }

    public func attachDisk(node: String, disk: DiskSpec) async throws {
        throw BerthError(.unavailable, "This guest driver cannot plug disks in live.", remedy: "Attach the disk with --config.")
    }

    public func detachDisk(node: String, disk: DiskSpec) async throws {
        throw BerthError(.unavailable, "This guest driver cannot unplug disks live.", remedy: "Detach the disk with --config.")
    }
}
