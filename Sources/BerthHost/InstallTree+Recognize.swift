import BerthModel

extension InstallTree {
    /// Recognises the tree behind `source`, trying what virt-install's `urldetect.py` tried, in its
    /// order: `.treeinfo` (or `treeinfo`) of Fedora, RHEL, CentOS/Scientific and SUSE; SUSE's
    /// `content`; Debian and Ubuntu `MANIFEST`s and `.disk/info`; Mageia's `VERSION`; any other
    /// `.treeinfo`. When none is there, known kernel layouts are probed.
    ///
    /// - Parameter arch: the guest architecture (`x86_64`), which picks kernels on ISOs and Mageia trees.
    /// - Throws: `InstallTreeError.unrecognized` listing every file looked for; `.malformed`,
    ///   `.unsafePath`, `.fileTooLarge` for hostile or broken metadata.
    public static func recognize(_ source: some InstallTreeSource, arch: String = "x86_64") async throws -> InstallTree {
        var reader = MetadataReader(source: source)
        let location = source.location

        // 1. .treeinfo families virt-install knows.
        let treeinfoFile =
            try await reader.text(".treeinfo") != nil
            ? ".treeinfo" : (try await reader.text("treeinfo") != nil ? "treeinfo" : nil)
        var treeinfo: TreeInfo?
        if let treeinfoFile, let text = try await reader.text(treeinfoFile) {
            treeinfo = try TreeInfo(text: text, file: treeinfoFile)
        }
        if let treeinfo, let treeinfoFile, let family = treeinfo.family,
            let tree = try fromTreeinfo(treeinfo, family: family, file: treeinfoFile, location: location)
        {
            return tree
        }

        // 2. SUSE `content`.
        if let text = try await reader.text("content") {
            let content = SUSEContent(text: text)
            if let tree = fromSUSEContent(content, location: location, arch: arch) { return tree }
        }

        // 3. Debian, then Ubuntu: MANIFESTs of netboot trees, .disk/info of CDs.
        for debname in ["debian", "ubuntu"] {
            if let tree = try await fromDebian(debname, reader: &reader, source: source, arch: arch) { return tree }
        }

        // 4. Mageia `VERSION`.
        if let text = try await reader.text("VERSION"), let tree = fromMageia(text, arch: arch) { return tree }

        // 5. Any other .treeinfo.
        if let treeinfo, let treeinfoFile {
            let family = treeinfo.family ?? "Unknown"
            return InstallTree(
                distro: .genericTreeinfo, name: treeinfo.name ?? family, version: treeinfo.version,
                arch: treeinfo.arch.map(normalizedArch), osVariant: nil,
                kernelCandidates: try treeinfoKernels(treeinfo, file: treeinfoFile), sourceArgument: nil,
                evidence: treeinfoFile)
        }

        // 6. No metadata: a kernel where installers keep one.
        let layouts = knownLayouts(arch: arch)
        for (pair, distroName) in layouts where try await source.hasPair(pair) {
            return InstallTree(
                distro: .unknown, name: distroName, version: nil, arch: nil, osVariant: nil, kernelCandidates: [pair],
                sourceArgument: nil, evidence: pair.kernel)
        }

        throw InstallTreeError.unrecognized(
            location: location, lookedFor: reader.asked + layouts.map(\.0.kernel))
    }

    /// The first candidate kernel/initrd pair that exists in the tree.
    /// - Throws: `InstallTreeError.noKernel` listing the pairs tried.
    public func resolveKernel(in source: some InstallTreeSource) async throws -> KernelPair {
        for pair in kernelCandidates where try await source.hasPair(pair) {
            return pair
        }
        throw InstallTreeError.noKernel(location: source.location, tried: kernelCandidates)
    }

    // MARK: - .treeinfo

    static func fromTreeinfo(_ treeinfo: TreeInfo, family: String, file: String, location: String) throws
        -> InstallTree?
    {
        let version = treeinfo.version
        let name = treeinfo.name ?? [family, version].compactMap { $0 }.joined(separator: " ")
        let distro: Distro
        let variant: String?
        if family.contains("Fedora") {
            distro = .fedora
            variant = KnownVariants.fedora(version: version)
        } else if family.contains("Red Hat Enterprise Linux") || family.contains("RHEL") {
            distro = .rhel
            variant = KnownVariants.redHat(prefix: "rhel", version: version, table: KnownVariants.rhel)
        } else if family.contains("CentOS") || family.contains("Scientific") || family.contains("AlmaLinux")
            || family.contains("Rocky")
        {
            distro = .centos
            let major = version.map { KnownVariants.split($0).0 } ?? 0
            if family.contains("Stream") {
                variant = major >= 8 ? "centos-stream\(major)" : nil
            } else if family.contains("AlmaLinux") {
                variant = major >= 8 ? "almalinux\(major)" : nil
            } else if family.contains("Rocky") {
                variant = major >= 8 ? "rocky\(major)" : nil
            } else if major >= 8 {
                variant = "centos\(major)"
            } else {
                variant = KnownVariants.redHat(prefix: "centos", version: version, table: KnownVariants.centos)
            }
        } else if family.contains("SUSE Linux Enterprise") {
            distro = family.contains("Desktop") ? .sled : .sles
            variant = version.flatMap { KnownVariants.sle(prefix: distro.rawValue, version: $0) }
        } else if family.contains("openSUSE") {
            distro = .opensuse
            if name.contains("openSUSE Tumbleweed") || family.contains("Tumbleweed") {
                variant = "opensusetumbleweed"
            } else if let version {
                // Walk back from 15.9 to the newest 15.x Berth knows, as urldetect does.
                let (major, minor) = KnownVariants.split(version)
                variant = stride(from: minor, through: 0, by: -1).map { "\(major).\($0)" }
                    .first(where: KnownVariants.isKnownOpenSUSE).map { "opensuse\($0)" }
            } else {
                variant = openSUSEFromURL(location)
            }
        } else {
            return nil
        }
        return InstallTree(
            distro: distro, name: name, version: version, arch: treeinfo.arch.map(normalizedArch), osVariant: variant,
            kernelCandidates: try treeinfoKernels(treeinfo, file: file),
            sourceArgument: KnownVariants.sourceArgument(distro: distro, osVariant: variant), evidence: file)
    }

    /// `[images-<arch>] kernel`/`initrd`, checked to stay inside the tree.
    static func treeinfoKernels(_ treeinfo: TreeInfo, file: String) throws -> [KernelPair] {
        guard let arch = treeinfo.arch else {
            throw InstallTreeError.malformed(file: file, reason: "no arch in [general] or [tree]")
        }
        let section = "images-\(arch)"
        guard let kernel = treeinfo.nonEmpty(section, "kernel"), let initrd = treeinfo.nonEmpty(section, "initrd") else {
            throw InstallTreeError.malformed(file: file, reason: "no kernel and initrd in [\(section)]")
        }
        try checkRelativePath(kernel, file: file)
        try checkRelativePath(initrd, file: file)
        return [KernelPair(kernel: kernel, initrd: initrd)]
    }

    // MARK: - SUSE content

    static func fromSUSEContent(_ content: SUSEContent, location: String, arch: String) -> InstallTree? {
        guard let product = content.productName else { return nil }
        let distro: Distro
        if product.contains("SUSE Linux Enterprise Serve") || product.contains("SUSE SLES") {
            distro = .sles
        } else if product.contains("SUSE Linux Enterprise Desktop") {
            distro = .sled
        } else if product.contains("openSUSE") {
            distro = .opensuse
        } else {
            return nil
        }
        let version = content.productVersion
        var variant: String?
        if distro == .opensuse {
            variant = openSUSEFromURL(location)
            if variant == nil, let version, KnownVariants.isKnownOpenSUSE(version) { variant = "opensuse\(version)" }
        } else if let version {
            // SLE from `content` names its exact release; unknown releases stay unknown.
            let (major, sp) = KnownVariants.split(version)
            if let last = KnownVariants.sle[major], sp <= last {
                variant = sp > 0 ? "\(distro.rawValue)\(major)sp\(sp)" : "\(distro.rawValue)\(major)"
            }
        }

        var treeArch = content.treeArch ?? "x86_64"
        // `BASEARCHS i586 x86_64`: virt-install took the first (and booted a 32-bit installer);
        // the guest's own architecture is the better choice when the tree has it.
        let listed = treeArch.split(separator: " ").map(String.init)
        if listed.count > 1, listed.contains(arch) { treeArch = arch }
        if let first = treeArch.split(separator: " ").first, first.count == 4, first.hasPrefix("i"),
            first.hasSuffix("86"), let digit = first.dropFirst().first, ("4"..."9").contains(digit)
        {
            treeArch = "i386"
        }
        var pairs: [KernelPair] = []
        if (variant ?? "").hasPrefix("sles11") || (variant ?? "").hasPrefix("sled11") {
            if treeArch == "s390x" { pairs.append(KernelPair(kernel: "boot/s390x/vmrdr.ikr", initrd: "boot/s390x/initrd")) }
            if treeArch == "ppc64" { pairs.append(KernelPair(kernel: "suseboot/linux64", initrd: "suseboot/initrd64")) }
        }
        let suffix = treeArch == "x86_64" ? "64" : ""
        pairs += [
            KernelPair(kernel: "boot/\(treeArch)/linux", initrd: "boot/\(treeArch)/initrd"),
            KernelPair(kernel: "boot/loader/linux\(suffix)", initrd: "boot/loader/initrd\(suffix)"),
            KernelPair(kernel: "boot/\(treeArch)/loader/linux", initrd: "boot/\(treeArch)/loader/initrd"),
        ]
        return InstallTree(
            distro: distro, name: product, version: version, arch: normalizedArch(treeArch), osVariant: variant,
            kernelCandidates: pairs, sourceArgument: KnownVariants.sourceArgument(distro: distro, osVariant: variant),
            evidence: "content")
    }

    /// openSUSE release named in the URL (`…/distribution/leap/42.3/repo/oss/`).
    static func openSUSEFromURL(_ location: String) -> String? {
        if location.contains("/tumbleweed/") { return "opensusetumbleweed" }
        return KnownVariants.opensuse.sorted().first { location.contains("/\($0)/") }.map { "opensuse\($0)" }
    }

    // MARK: - Debian and Ubuntu

    enum DebianMedia: String { case url, legacyURL, daily, disk, mountedISO }

    static func fromDebian(
        _ debname: String, reader: inout MetadataReader<some InstallTreeSource>, source: some InstallTreeSource,
        arch: String
    ) async throws -> InstallTree? {
        let isUbuntu = debname == "ubuntu"
        func manifestMatches(_ file: String) async throws -> Bool {
            guard let text = try await reader.text(file) else { return false }
            let lower = text.lowercased()
            if lower.contains("ubuntu") { return isUbuntu }
            return lower.contains("debian")
        }
        var media: DebianMedia?
        var evidence = ""
        var diskInfo: String?
        if try await manifestMatches("current/images/MANIFEST") {
            (media, evidence) = (.url, "current/images/MANIFEST")
        } else if try await manifestMatches("current/legacy-images/MANIFEST") {
            (media, evidence) = (.legacyURL, "current/legacy-images/MANIFEST")
        } else if try await manifestMatches("daily/MANIFEST") {
            (media, evidence) = (.daily, "daily/MANIFEST")
        } else if let info = try await reader.text(".disk/info"),
            info.split(separator: "\n").contains(where: { $0.hasPrefix(debname.capitalized) })
        {
            (media, evidence) = (source.isISO ? .disk : .mountedISO, ".disk/info")
            diskInfo = info.split(separator: "\n").first.map { String($0).trimmingBlanks() }
        }
        guard let media else { return nil }
        let location = source.location

        // Release: the codename in the URL (`dists/buster/`), else the number on the CD's label.
        var version: String?
        var variant: String?
        if media == .daily {
            variant = debname == "debian" ? "debiantesting" : nil
        } else if isUbuntu {
            if let (number, _) = KnownVariants.ubuntu.first(where: { location.contains("/\($0.1)/") }) {
                (version, variant) = (number, "ubuntu\(number)")
            }
        } else if let (number, _) = KnownVariants.debian.first(where: { location.contains("/\($0.1)/") }) {
            (version, variant) = (String(number), "debian\(number)")
        }
        if variant == nil, let diskInfo {
            let words = diskInfo.split(whereSeparator: { $0 == " " || $0 == "-" })
            if let number = words.first(where: { $0.first?.isNumber == true }) {
                if isUbuntu, KnownVariants.ubuntu.contains(where: { $0.0 == number }) {
                    (version, variant) = (String(number), "ubuntu\(number)")
                } else if !isUbuntu, let major = Int(number.split(separator: ".")[0]),
                    KnownVariants.debian.contains(where: { $0.0 == major })
                {
                    (version, variant) = (String(number), "debian\(major)")
                }
            }
        }

        let treeArch = debianTreeArch(location: location, diskInfo: diskInfo)
        var pairs: [KernelPair] = []
        if media == .disk {
            pairs.append(installCDKernel(isUbuntu: isUbuntu, arch: arch))
        } else {
            let prefix =
                switch media {
                case .daily: "daily"
                case .mountedISO: "install"
                case .legacyURL: "current/legacy-images"
                default: "current/images"
                }
            if treeArch == "s390x" {
                let root = "\(prefix)/generic/"
                pairs.append(KernelPair(kernel: root + "kernel.\(debname)", initrd: root + "initrd.\(debname)"))
            } else {
                let root = "\(prefix)/netboot/\(debname)-installer/\(treeArch)/"
                pairs.append(
                    KernelPair(kernel: root + (treeArch == "ppc64el" ? "vmlinux" : "linux"), initrd: root + "initrd.gz"))
            }
            if media == .mountedISO {
                // A loop-mounted CD holds the CD kernel too; try it after virt-install's choice.
                pairs.append(installCDKernel(isUbuntu: isUbuntu, arch: arch))
            }
        }
        let pretty = debname == "debian" ? "Debian" : "Ubuntu"
        let name = diskInfo ?? (media == .daily ? "Debian testing (daily)" : [pretty, version].compactMap { $0 }.joined(separator: " "))
        return InstallTree(
            distro: isUbuntu ? .ubuntu : .debian, name: name, version: version, arch: normalizedArch(treeArch),
            osVariant: variant, kernelCandidates: pairs, sourceArgument: nil, evidence: evidence)
    }

    /// The Debian architecture of the tree: `installer-<arch>/` or `daily-images/<arch>/` in the URL,
    /// the word after "Official"/"Alpha" on the CD label, an architecture named in the URL, else i386.
    static func debianTreeArch(location: String, diskInfo: String?) -> String {
        let trimmed = location.hasSuffix("/") ? String(location.dropLast()) : location
        let components = trimmed.split(separator: "/")
        if let last = components.last {
            if last.hasPrefix("installer-") { return String(last.dropFirst("installer-".count)) }
            if components.count >= 2, components[components.count - 2] == "daily-images" { return String(last) }
        }
        if let diskInfo {
            let words = diskInfo.split(separator: " ")
            let known: Set<Substring> = ["amd64", "i386", "arm64", "armhf", "ppc64el", "s390x", "mips64el", "riscv64"]
            if let word = words.first(where: { known.contains($0) }) { return String(word) }
        }
        for arch in ["i386", "amd64", "x86_64", "arm64"] where location.contains(arch) {
            return arch == "x86_64" ? "amd64" : arch
        }
        return "i386"
    }

    /// The kernel on a Debian or Ubuntu CD for the guest's architecture.
    static func installCDKernel(isUbuntu: Bool, arch: String) -> KernelPair {
        if isUbuntu {
            return arch == "s390x"
                ? KernelPair(kernel: "boot/kernel.ubuntu", initrd: "boot/initrd.ubuntu")
                : KernelPair(kernel: "install/vmlinuz", initrd: "install/initrd.gz")
        }
        switch arch {
        case "x86_64": return KernelPair(kernel: "install.amd/vmlinuz", initrd: "install.amd/initrd.gz")
        case "i686", "i386": return KernelPair(kernel: "install.386/vmlinuz", initrd: "install.386/initrd.gz")
        case "aarch64": return KernelPair(kernel: "install.a64/vmlinuz", initrd: "install.a64/initrd.gz")
        case "ppc64le": return KernelPair(kernel: "install/vmlinux", initrd: "install/initrd.gz")
        case "s390x": return KernelPair(kernel: "boot/linux_vm", initrd: "boot/root.bin")
        default: return KernelPair(kernel: "install/vmlinuz", initrd: "install/initrd.gz")
        }
    }

    // MARK: - Mageia

    static func fromMageia(_ text: String, arch: String) -> InstallTree? {
        let firstLine = text.split(separator: "\n").first.map(String.init) ?? ""
        let words = firstLine.split(separator: " ")
        guard words.count >= 3, words[0] == "Mageia", let number = Int(words[1]) else { return nil }
        let variant = KnownVariants.mageia.contains(number) ? "mageia\(number)" : nil
        var treeArch: String?
        for word in words where word.contains("-") {
            let parts = word.split(separator: "-")
            if parts.count >= 2 { treeArch = String(parts[1]) }
        }
        return InstallTree(
            distro: .mageia, name: firstLine.trimmingBlanks(), version: String(number),
            arch: treeArch.map(normalizedArch), osVariant: variant,
            kernelCandidates: [KernelPair(kernel: "isolinux/\(arch)/vmlinuz", initrd: "isolinux/\(arch)/all.rdz")],
            sourceArgument: nil, evidence: "VERSION")
    }

    // MARK: - Known layouts

    static func knownLayouts(arch: String) -> [(KernelPair, String)] {
        let debianArch =
            switch arch {
            case "x86_64": "amd64"
            case "i686": "i386"
            case "aarch64": "arm64"
            case "ppc64le": "ppc64el"
            default: arch
            }
        return [
            (KernelPair(kernel: "images/pxeboot/vmlinuz", initrd: "images/pxeboot/initrd.img"), "Red Hat-style tree"),
            (installCDKernel(isUbuntu: false, arch: arch), "Debian CD"),
            (KernelPair(kernel: "install/vmlinuz", initrd: "install/initrd.gz"), "Debian or Ubuntu CD"),
            (
                KernelPair(
                    kernel: "current/images/netboot/debian-installer/\(debianArch)/linux",
                    initrd: "current/images/netboot/debian-installer/\(debianArch)/initrd.gz"), "Debian netboot tree"
            ),
            (
                KernelPair(
                    kernel: "netboot/debian-installer/\(debianArch)/linux",
                    initrd: "netboot/debian-installer/\(debianArch)/initrd.gz"), "Debian netboot tree"
            ),
            (KernelPair(kernel: "boot/\(arch)/loader/linux", initrd: "boot/\(arch)/loader/initrd"), "SUSE tree"),
            (KernelPair(kernel: "isolinux/\(arch)/vmlinuz", initrd: "isolinux/\(arch)/all.rdz"), "Mageia tree"),
            (KernelPair(kernel: "casper/vmlinuz", initrd: "casper/initrd"), "Ubuntu live CD"),
        ]
    }

    /// Distribution spellings to Berth's: amd64 → x86_64, i386/i586 → i686, arm64 → aarch64, ppc64el → ppc64le.
    static func normalizedArch(_ arch: String) -> String {
        switch arch.lowercased() {
        case "amd64", "x86_64": "x86_64"
        case "i386", "i486", "i586", "i686": "i686"
        case "arm64", "aarch64": "aarch64"
        case "ppc64el", "ppc64le": "ppc64le"
        default: arch
        }
    }
}

extension InstallTreeError {
    /// The error as it reaches a user through the API or CLI.
    public var berthError: BerthError {
        let code: BerthError.Code =
            switch self {
            case .unrecognized, .noKernel: .notFound
            case .cannotRead: .unavailable
            default: .invalidArgument
            }
        return BerthError(code, description, remedy: remedy)
    }
}

/// Fetches each metadata file once and remembers what was asked for, for the error message.
struct MetadataReader<Source: InstallTreeSource> {
    let source: Source
    var cache: [String: String?] = [:]
    var asked: [String] = []

    init(source: Source) { self.source = source }

    mutating func text(_ path: String) async throws -> String? {
        if let cached = cache[path] { return cached }
        asked.append(path)
        let text = try await source.fetch(path, limit: InstallTree.metadataLimit).map { String(decoding: $0, as: UTF8.self) }
        cache[path] = .some(text)
        return text
    }
}
