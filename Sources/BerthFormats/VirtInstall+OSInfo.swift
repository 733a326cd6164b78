/// What Berth knows about an `--os-variant`: enough to boot its installer from a tree.
///
/// A small stand-in for libosinfo: the families virt-install's URL detection knows
/// (`virtinst/install/urldetect.py`) and the kernel arguments its installers take
/// (`virtinst/osdict.py`, `get_kernel_url_arg`): `method=` for RHEL/CentOS before 7 and
/// Fedora before 19, `inst.repo=` after, `install=` for SUSE, nothing for Debian, Ubuntu and
/// Mageia, whose netboot installers choose a mirror themselves.
public struct VirtInstallOSInfo: Sendable, Equatable, Hashable {
    public enum Family: String, Sendable, CaseIterable {
        /// Red Hat Enterprise Linux and its rebuilds (CentOS, Scientific, AlmaLinux, Rocky).
        case rhel
        case fedora
        /// openSUSE, SLES, SLED.
        case suse
        case debian
        case ubuntu
        case mageia
        case generic
    }

    /// The short id, as `--os-variant` takes it: `rhel6`, `centos6.10`, `fedora30`, `ubuntu18.04`.
    public var id: String
    public var name: String
    public var family: Family
    /// Major (and minor) version, `6`, `6.10`, `18.04`; nil for rolling or unknown releases.
    public var version: String?
    /// Kernel argument naming the install tree: `method`, `inst.repo`, `install`; nil when the
    /// installer finds its packages itself.
    public var sourceArgument: String?
    /// Kernel argument naming an answer file: `ks` (Anaconda before RHEL 7 / Fedora 19), `inst.ks`,
    /// `autoyast` (SUSE), `url` (Debian-installer's preseed, with `auto=true`), `auto_install` (Mageia).
    public var kickstartArgument: String?
    /// Memory to give when `--ram` is not: enough for the installer to run.
    public var defaultMemoryMiB: Int
    /// Size of the disk to create when `--disk` has no size.
    public var defaultDiskGiB: Int

    /// `method=http://…/` for this distribution, or nil when its installer takes no such argument.
    public func sourceKernelArgument(location: String) -> String? {
        sourceArgument.map { "\($0)=\(location)" }
    }

    /// `ks=http://…` (or `inst.ks=`, `autoyast=`, `auto=true url=`) for an answer file.
    public func kickstartKernelArgument(url: String) -> String? {
        guard let kickstartArgument else { return nil }
        if family == .debian || family == .ubuntu { return "auto=true priority=critical url=\(url)" }
        return "\(kickstartArgument)=\(url)"
    }

    /// The entry for an `--os-variant` value (case-insensitive), or nil when Berth does not know it.
    public static func lookup(_ id: String) -> VirtInstallOSInfo? {
        table[id.lowercased()]
    }

    /// Every known id, sorted, for `--os-variant list`.
    public static var knownIDs: [String] { table.keys.sorted() }

    /// The entry used when no variant is given or the given one is unknown.
    public static let generic = VirtInstallOSInfo(
        id: "generic", name: "Generic Linux", family: .generic, version: nil, sourceArgument: nil,
        kickstartArgument: nil, defaultMemoryMiB: 1024, defaultDiskGiB: 10)

    /// `http://redhat.com/rhel/6.0` (an `--os-variant id=` value) → `rhel6.0`.
    public static func shortID(fromOSInfoURL url: String) -> String {
        let parts = url.split(separator: "/").map(String.init)
        guard parts.count >= 2 else { return url }
        let product = parts[parts.count - 2]
        let version = parts[parts.count - 1]
        if product == "sles" || product == "sled" {
            let numbers = version.split(separator: ".")
            if numbers.count == 2, numbers[1] != "0" { return "\(product)\(numbers[0])sp\(numbers[1])" }
            return product + (numbers.first.map(String.init) ?? version)
        }
        return product + version
    }

    // MARK: - The table

    static let table: [String: VirtInstallOSInfo] = {
        var entries: [VirtInstallOSInfo] = []

        // Anaconda: RHEL/CentOS before 7 took `method=` and `ks=`; 7 and later `inst.repo=`, `inst.ks=`.
        func anaconda(_ id: String, _ name: String, family: Family, major: Int, version: String?, newAfter: Int) {
            let new = major >= newAfter
            // Anaconda's own minimums grew: ~512 MiB for RHEL 5, 1 GiB for 6, 1.5 GiB for 7, 2 GiB after.
            let large = family == .fedora ? major >= 30 : major >= 8
            let memory =
                large ? 2048 : family == .fedora ? (major >= 19 ? 1536 : 1024) : major >= 7 ? 1536 : major >= 6 ? 1024 : 512
            entries.append(
                VirtInstallOSInfo(
                    id: id, name: name, family: family, version: version,
                    sourceArgument: new ? "inst.repo" : "method", kickstartArgument: new ? "inst.ks" : "ks",
                    defaultMemoryMiB: memory, defaultDiskGiB: large ? 20 : 10))
        }
        let rhelMinors = [2: 9, 3: 9, 4: 9, 5: 11, 6: 10, 7: 9, 8: 10, 9: 6, 10: 0]
        for (major, lastMinor) in rhelMinors {
            anaconda(
                "rhel\(major)", "Red Hat Enterprise Linux \(major)", family: .rhel, major: major,
                version: "\(major)", newAfter: 7)
            for minor in 0...lastMinor {
                anaconda(
                    "rhel\(major).\(minor)", "Red Hat Enterprise Linux \(major).\(minor)", family: .rhel,
                    major: major, version: "\(major).\(minor)", newAfter: 7)
            }
        }
        // libosinfo knows CentOS 5.x and 6.x releases, but only "centos7.0" for all of 7.
        for (major, lastMinor) in [5: 11, 6: 10, 7: 0] {
            anaconda("centos\(major)", "CentOS \(major)", family: .rhel, major: major, version: "\(major)", newAfter: 7)
            for minor in 0...lastMinor {
                anaconda(
                    "centos\(major).\(minor)", "CentOS \(major).\(minor)", family: .rhel, major: major,
                    version: "\(major).\(minor)", newAfter: 7)
            }
        }
        anaconda("centos8", "CentOS 8", family: .rhel, major: 8, version: "8", newAfter: 7)
        for major in [8, 9, 10] {
            anaconda(
                "centos-stream\(major)", "CentOS Stream \(major)", family: .rhel, major: major,
                version: "\(major)", newAfter: 7)
            for (prefix, name) in [("almalinux", "AlmaLinux"), ("rocky", "Rocky Linux")] {
                anaconda(
                    "\(prefix)\(major)", "\(name) \(major)", family: .rhel, major: major, version: "\(major)",
                    newAfter: 7)
            }
        }
        for major in 1...45 {
            anaconda(
                "fedora\(major)", "Fedora \(major)", family: .fedora, major: major, version: "\(major)",
                newAfter: 19)
        }
        for id in ["fedora-unknown", "fedora-rawhide"] {
            anaconda(id, "Fedora Rawhide", family: .fedora, major: 99, version: nil, newAfter: 19)
        }

        func suse(_ id: String, _ name: String, version: String?, memory: Int) {
            entries.append(
                VirtInstallOSInfo(
                    id: id, name: name, family: .suse, version: version, sourceArgument: "install",
                    kickstartArgument: "autoyast", defaultMemoryMiB: memory, defaultDiskGiB: memory >= 2048 ? 20 : 10))
        }
        let opensuse = [
            "10.2", "10.3", "11.0", "11.1", "11.2", "11.3", "11.4", "12.1", "12.2", "12.3", "13.1", "13.2",
            "42.1", "42.2", "42.3", "15.0", "15.1", "15.2", "15.3", "15.4", "15.5", "15.6", "16.0",
        ]
        for version in opensuse {
            let major = Int(version.split(separator: ".")[0]) ?? 0
            suse("opensuse\(version)", "openSUSE \(version)", version: version, memory: major >= 15 ? 2048 : 1024)
        }
        suse("opensusetumbleweed", "openSUSE Tumbleweed", version: nil, memory: 2048)
        suse("opensuse-unknown", "openSUSE", version: nil, memory: 2048)
        for (product, label) in [("sles", "SUSE Linux Enterprise Server"), ("sled", "SUSE Linux Enterprise Desktop")] {
            for (major, lastSP) in [9: 4, 10: 4, 11: 4, 12: 5, 15: 6] {
                let memory = major >= 12 ? 2048 : 1024
                suse("\(product)\(major)", "\(label) \(major)", version: "\(major)", memory: memory)
                for sp in 1...lastSP {
                    suse("\(product)\(major)sp\(sp)", "\(label) \(major) SP\(sp)", version: "\(major).\(sp)", memory: memory)
                }
            }
        }

        // Debian-installer finds its own mirror; a preseed file is `url=` with `auto=true`.
        func debianInstaller(_ id: String, _ name: String, family: Family, version: String?, memory: Int) {
            entries.append(
                VirtInstallOSInfo(
                    id: id, name: name, family: family, version: version, sourceArgument: nil,
                    kickstartArgument: "url", defaultMemoryMiB: memory, defaultDiskGiB: memory >= 2048 ? 20 : 10))
        }
        for (major, codename) in VirtInstallOSInfo.debianCodenames {
            debianInstaller(
                "debian\(major)", "Debian \(major) (\(codename))", family: .debian, version: "\(major)",
                memory: 1024)
        }
        debianInstaller("debiantesting", "Debian testing", family: .debian, version: nil, memory: 1024)
        for (version, codename) in VirtInstallOSInfo.ubuntuCodenames {
            let year = Int(version.prefix(2)) ?? 0
            debianInstaller(
                "ubuntu\(version)", "Ubuntu \(version) (\(codename))", family: .ubuntu, version: version,
                memory: year >= 20 ? 2048 : 1024)
        }

        for major in 1...9 {
            entries.append(
                VirtInstallOSInfo(
                    id: "mageia\(major)", name: "Mageia \(major)", family: .mageia, version: "\(major)",
                    sourceArgument: nil, kickstartArgument: "auto_install", defaultMemoryMiB: 1024, defaultDiskGiB: 10))
        }
        entries.append(
            VirtInstallOSInfo(
                id: "mageiacauldron", name: "Mageia Cauldron", family: .mageia, version: nil, sourceArgument: nil,
                kickstartArgument: "auto_install", defaultMemoryMiB: 2048, defaultDiskGiB: 20))

        for id in ["generic", "linux", "none", "linux2016", "linux2018", "linux2020", "linux2022", "linux2024"] {
            var entry = generic
            entry.id = id
            entries.append(entry)
        }
        return Dictionary(entries.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
    }()

    /// Debian releases by number, with the codename found in install-tree URLs (`dists/buster/`).
    public static let debianCodenames: [(Int, String)] = [
        (4, "etch"), (5, "lenny"), (6, "squeeze"), (7, "wheezy"), (8, "jessie"), (9, "stretch"), (10, "buster"),
        (11, "bullseye"), (12, "bookworm"), (13, "trixie"), (14, "forky"),
    ]

    /// Ubuntu releases with the codename found in install-tree URLs (`dists/bionic/`).
    public static let ubuntuCodenames: [(String, String)] = [
        ("6.06", "dapper"), ("8.04", "hardy"), ("8.10", "intrepid"), ("9.04", "jaunty"), ("9.10", "karmic"),
        ("10.04", "lucid"), ("10.10", "maverick"), ("11.04", "natty"), ("11.10", "oneiric"), ("12.04", "precise"),
        ("12.10", "quantal"), ("13.04", "raring"), ("13.10", "saucy"), ("14.04", "trusty"), ("14.10", "utopic"),
        ("15.04", "vivid"), ("15.10", "wily"), ("16.04", "xenial"), ("16.10", "yakkety"), ("17.04", "zesty"),
        ("17.10", "artful"), ("18.04", "bionic"), ("18.10", "cosmic"), ("19.04", "disco"), ("19.10", "eoan"),
        ("20.04", "focal"), ("20.10", "groovy"), ("21.04", "hirsute"), ("21.10", "impish"), ("22.04", "jammy"),
        ("22.10", "kinetic"), ("23.04", "lunar"), ("23.10", "mantic"), ("24.04", "noble"), ("24.10", "oracular"),
        ("25.04", "plucky"), ("25.10", "questing"),
    ]
}
