import BerthModel
import BerthQEMU
import Foundation

/// What a running guest reports to its supervisor.
public enum GuestEvent: Sendable, Equatable {
    case paused
    case resumed
    case powerdownRequested
    case reset
    case panicked
    /// QEMU announced it is shutting down; `reason` is QMP's (`guest-shutdown`, `guest-reset`,
    /// `guest-panic`, `host-qmp-quit`, `host-signal`, `host-qmp-system-reset`).
    case shutdown(reason: String)
    /// The QEMU process is gone. Always the last event.
    case exited
}

/// Starts and re-attaches guests. The QEMU implementation is `QEMUGuestDriver`; the
/// seam exists so the supervisor's policy logic reads apart from process handling.
public protocol GuestDriver: Sendable {
    /// Launches the guest, as `identity`'s user when given; returns once QEMU runs and its
    /// control channel is connected.
    func start(_ spec: DomainSpec, boot: BootFiles?, identity: GuestIdentity?) async throws -> any GuestInstance
    /// Finds a guest left running by an earlier daemon, checking that its PID still
    /// belongs to this domain's UUID.
    func reattach(_ spec: DomainSpec) async -> (any GuestInstance)?
    /// Where the domain's serial console is logged.
    func consoleLogPath(_ spec: DomainSpec) -> String
    /// The live console socket of a running domain.
    func consoleSocketPath(_ spec: DomainSpec) -> String
    /// The default VNC display's unix socket of a running domain.
    func vncSocketPath(_ spec: DomainSpec) -> String
    /// The accelerator verdict for this host.
    func acceleratorVerdict() -> AcceleratorVerdict
    /// QEMU's version, nil when QEMU is not installed.
    func qemuVersion() -> String?
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
    /// A read-only QMP query (`query-blockstats`, `query-vnc`), answered while other
    /// operations run.
    func query(_ command: String) async throws -> QMP.Value
}

extension GuestDriver {
    public func vncSocketPath(_ spec: DomainSpec) -> String {
        (consoleSocketPath(spec) as NSString).deletingLastPathComponent + "/display/" + RuntimePaths.vncSocketName
    }
}

extension GuestInstance {
    public func query(_ command: String) async throws -> QMP.Value {
        throw BerthError(.unavailable, "This guest driver has no QMP.", remedy: "Use the QEMU driver.")
    }

    public func blockResize(node: String, bytes: UInt64) async throws {
        throw BerthError(.unavailable, "This guest driver cannot resize disks live.", remedy: "Shut the domain off and resize then.")
    }
}
