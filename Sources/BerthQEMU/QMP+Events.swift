import FoundationEssentials
import Glibc

extension QMP {
    /// An asynchronous QMP event, such as `SHUTDOWN` when the guest powers off.
    public struct Event: Sendable, Equatable, CustomStringConvertible {
        /// What the daemon acts on; anything else is `.other` with the name kept in `name`.
        public enum Kind: Sendable, Equatable {
            /// QEMU is shutting down. `guest` is true when the guest asked for it; `reason` is
            /// QEMU's (`guest-shutdown`, `guest-reset` under `-no-reboot`, `guest-panic`,
            /// `host-qmp-quit`, `host-signal`, ...).
            case shutdown(guest: Bool, reason: String)
            /// The machine was reset (only seen without `-no-reboot`, or from `system_reset`).
            case reset(guest: Bool, reason: String)
            /// The VM stopped running (paused).
            case stop
            /// The VM resumed running.
            case resume
            /// ACPI power button pressed (`system_powerdown`).
            case powerdown
            /// The guest reported a panic through pvpanic; `action` is what QEMU did (`pause`,
            /// `poweroff`, `run`).
            case guestPanicked(action: String)
            case other
        }

        public var name: String
        public var data: Value
        /// When QEMU emitted it.
        public var time: Date?
        public var kind: Kind
        /// The line QEMU sent.
        public var raw: String

        init(name: String, data: Value, timestamp: Value?, raw: String) {
            self.name = name
            self.data = data
            self.raw = raw
            if let seconds = timestamp?["seconds"]?.int, let micros = timestamp?["microseconds"]?.int {
                time = Date(timeIntervalSince1970: Double(seconds) + Double(micros) / 1_000_000)
            }
            let guest = data["guest"]?.bool ?? false
            let reason = data["reason"]?.string ?? ""
            kind =
                switch name {
                case "SHUTDOWN": .shutdown(guest: guest, reason: reason)
                case "RESET": .reset(guest: guest, reason: reason)
                case "STOP": .stop
                case "RESUME": .resume
                case "POWERDOWN": .powerdown
                case "GUEST_PANICKED": .guestPanicked(action: data["action"]?.string ?? "")
                default: .other
                }
        }

        public var description: String { data == .null ? name : "\(name) \(data.json)" }
    }
}
