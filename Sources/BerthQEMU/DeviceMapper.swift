import BerthModel
import FoundationEssentials
import Glibc

/// Whether the kernel has device-mapper. With it, logical volumes are activated and used as
/// `/dev/VG/LV`; without it (these test machines) lvm2 changes only the metadata and Berth
/// reaches a single-segment LV as its byte range of the physical volume.
public enum DeviceMapper {
    public static var present: Bool {
        ((try? String(contentsOfFile: "/proc/misc", encoding: .utf8)) ?? "").contains("device-mapper")
    }

    /// `host-check`'s line on logical pools: lvm2 installed, and which way LVs are used.
    public static func hostCheck() -> HostCheck {
        guard ["/usr/sbin/lvcreate", "/sbin/lvcreate"].contains(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            return HostCheck(name: "LVM", result: .warn, detail: "lvm2 is not installed: logical pools need it (apt-get install lvm2)")
        }
        guard present else {
            return HostCheck(
                name: "LVM", result: .info,
                detail: "no device-mapper: a logical volume is used as its byte range of the physical volume (single-segment LVs only)")
        }
        return HostCheck(name: "LVM", result: .info, detail: "device-mapper present: logical volumes are used as /dev/VG/LV")
    }
}
