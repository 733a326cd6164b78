import BerthFormats

/// The releases Berth knows, for resolving a tree's version to an `--os-variant` id.
///
/// The codename tables are `VirtInstallOSInfo`'s; virt-install resolved the same way against libosinfo: RHEL 7.20 → the latest
/// known 7.x, Fedora 99 → `fedora-unknown`, CentOS 7.8 → `centos7.0`.
enum KnownVariants {
    /// RHEL major → last minor known.
    static let rhel: [Int: Int] = [2: 9, 3: 9, 4: 9, 5: 11, 6: 10, 7: 9, 8: 10, 9: 6, 10: 0]
    /// CentOS major → last minor known; libosinfo names all of CentOS 7 `centos7.0`.
    static let centos: [Int: Int] = [5: 11, 6: 10, 7: 0]
    static let fedora = 1...45
    static let opensuse: Set<String> = [
        "10.2", "10.3", "11.0", "11.1", "11.2", "11.3", "11.4", "12.1", "12.2", "12.3", "13.1", "13.2",
        "42.1", "42.2", "42.3", "15.0", "15.1", "15.2", "15.3", "15.4", "15.5", "15.6", "16.0",
    ]
    /// SLES/SLED major → last service pack known.
    static let sle: [Int: Int] = [9: 4, 10: 4, 11: 4, 12: 5, 15: 6]
    static let mageia = 1...9
    static var debian: [(Int, String)] { VirtInstallOSInfo.debianCodenames }
    static var ubuntu: [(String, String)] { VirtInstallOSInfo.ubuntuCodenames }

    /// `6.10` → (6, 10); `7` → (7, 0); non-numbers count as 0, as urldetect's `split_version`.
    static func split(_ version: String) -> (Int, Int) {
        let parts = version.split(separator: ".", omittingEmptySubsequences: false)
        let major = parts.first.flatMap { Int($0) } ?? 0
        let minor = parts.count > 1 ? Int(parts[1]) ?? 0 : 0
        return (major, minor)
    }

    /// RHEL or CentOS: the latest known `<prefix><major>.<minor>` not newer than the tree.
    static func redHat(prefix: String, version: String?, table: [Int: Int]) -> String? {
        guard let version else { return nil }
        let (major, minor) = split(version)
        guard let last = table[major] else { return nil }
        let known = min(minor, last)
        return "\(prefix)\(major).\(known)"
    }

    static func fedora(version: String?) -> String {
        guard let version, !["development", "rawhide"].contains(version.lowercased()), let number = Int(version),
            fedora.contains(number)
        else { return "fedora-unknown" }
        return "fedora\(number)"
    }

    static func isKnownOpenSUSE(_ version: String) -> Bool { opensuse.contains(version) }

    /// `sles` + major + `spN` (SLE writes no `.0` for the first release), walking back as virt-install did.
    static func sle(prefix: String, version: String) -> String? {
        let (major, sp) = split(version)
        guard let last = sle[major] else { return nil }
        let known = min(sp, last)
        return known > 0 ? "\(prefix)\(major)sp\(known)" : "\(prefix)\(major)"
    }

    /// The RHEL family's kernel argument for the tree, as virt-install's `get_kernel_url_arg`.
    static func sourceArgument(distro: InstallTree.Distro, osVariant: String?) -> String? {
        guard let osVariant else { return nil }
        switch distro {
        case .sles, .sled, .opensuse:
            return "install"
        case .rhel, .centos:
            let digits = osVariant.drop { !$0.isNumber }
            return split(String(digits)).0 < 7 ? "method" : "inst.repo"
        case .fedora:
            if osVariant == "fedora-unknown" { return "inst.repo" }
            return (Int(osVariant.dropFirst("fedora".count)) ?? 99) < 19 ? "method" : "inst.repo"
        default:
            return nil
        }
    }
}
