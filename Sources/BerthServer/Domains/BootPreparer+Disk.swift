import BerthModel
import BerthQEMU

extension BootPreparer {
    /// Direct-kernel domains boot their spec's files; `bootloader` domains get the kernel
    /// extracted from their first disk into `directory/<uuid>/` at every start.
    static func fromGuestDisk(directory: String) -> BootPreparer {
        BootPreparer { spec in
            guard spec.bootloader != nil else { return nil }
            throw BerthError(
                .unavailable, "This build of berthd cannot read guest disks yet.",
                remedy: "Give the domain a kernel and initrd instead of a bootloader.")
        }
    }
}
