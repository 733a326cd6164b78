import BerthModel

#if canImport(Glibc)
    import Glibc
#endif

/// The unprivileged user and group one guest's processes (its QEMU, its bootloader run) use
/// when berthd runs as root. Each guest has its own, so a guest that escapes into its QEMU
/// cannot read another guest's files or signal its processes, and the host firewall can tell
/// guest traffic from everything else by socket owner (`GuestFirewall`).
///
/// The IDs need no /etc/passwd entry: they come from a block of 65,536 that berthd chose for
/// itself at its first start (`Catalog.guestIDBlock`), as container runtimes use subordinate IDs.
public struct GuestIdentity: Sendable, Equatable {
    public var uid: UInt32
    public var gid: UInt32

    public init(uid: UInt32, gid: UInt32) {
        self.uid = uid
        self.gid = gid
    }

    /// IDs in a block: `block + 1 + (domainID mod 65,535)`; `block` itself is never a guest.
    public init(block: UInt32, domainID: Int64) {
        let offset = UInt32(1 + (domainID.magnitude % 65_535))
        self.init(uid: block + offset, gid: block + offset)
    }

    public static let blockSize: UInt32 = 65_536

    /// Whether this process may hand out other users' IDs (root).
    public static var canSwitch: Bool { geteuid() == 0 }

    /// util-linux's `setpriv`, which drops to the guest's IDs just before QEMU is executed.
    /// (QEMU's own `-runas` cannot be combined with `-sandbox elevateprivileges=deny`.)
    public static func setprivArguments(_ identity: GuestIdentity) throws -> [String] {
        [
            try Spawn.setprivPath(), "--reuid=\(identity.uid)", "--regid=\(identity.gid)", "--clear-groups", "--no-new-privs",
            "--bounding-set=-all", "--inh-caps=-all", "--",
        ]
    }
}
