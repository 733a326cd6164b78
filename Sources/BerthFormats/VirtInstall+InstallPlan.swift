import FoundationEssentials
import Glibc

#if canImport(BerthModel)
    import BerthModel
#endif

extension VirtInstallRequest {
    /// The request as berthd's `POST /v1/domains/{name}/install` takes it. No I/O: the caller
    /// (the CLI) adds a kickstart file's text and `--initrd-inject` files it reads itself.
    ///
    /// - Parameter workingDirectory: relative `--location`/`--disk` paths are made absolute
    ///   against it (berthd does not share the CLI's working directory).
    /// - Throws: `VirtInstallError` for what berthd cannot do with this request.
    public func installPlan(workingDirectory: String) throws -> InstallPlan {
        guard let name else {
            throw VirtInstallError.missing("--name", remedy: "Add --name NAME.")
        }
        func absolute(_ path: String) -> String {
            path.hasPrefix("/") ? path : URL(fileURLWithPath: path, relativeTo: URL(fileURLWithPath: workingDirectory)).standardizedFileURL.path
        }
        let source: InstallPlan.Source
        switch method {
        case .location(let url, let kernel, let initrd):
            var location = url
            if !Self.isNetworkURL(url) {
                location = absolute(url.hasPrefix("file://") ? String(url.dropFirst(7)) : url)
            }
            source = .location(url: location, kernel: kernel, initrd: initrd)
        case .cdrom(let iso):
            source = .cdrom(path: absolute(iso))
        case .importDisk:
            source = .importDisk
        case .pxe:
            source = .network
        case .kernel:
            throw VirtInstallError.unsupportedOption(
                "--boot kernel=", remedy: "Define the domain with 'berth define' and a \"kernel\" instead.")
        case nil:
            throw VirtInstallError.missing(
                "An install method", remedy: "Give --location URL|DIR|ISO, --cdrom ISO or --import.")
        }
        var request = self
        var newDisks: [InstallPlan.NewDisk] = []
        var volumes: [Int: String] = [:]
        var placeholders: [Int: String] = [:]
        var disks = request.effectiveDisks
        for index in disks.indices {
            if let path = disks[index].path { disks[index].path = absolute(path) }
            if let volume = disks[index].volume {
                // An existing volume: berthd resolves it to its path and recorded format.
                volumes[index] = volume
                placeholders[index] = "/" + volume
                continue
            }
            guard disks[index].device == .disk, let size = disks[index].sizeGiB else { continue }
            let bytes = UInt64((size * 1024).rounded()) << 20
            // raw unless --disk format= says otherwise: Berth's bootloader reads the installed
            // system's boot menu from raw images only.
            let format = (request.disks.isEmpty ? nil : disks[index].format) ?? .raw
            disks[index].format = format
            newDisks.append(.init(index: index, sizeBytes: bytes, format: format))
            if disks[index].path == nil {
                // virt-install's `--disk size=N`: a volume in the pool (the default one), named
                // after the guest.
                let file = "\(name)\(index == 0 ? "" : "-\(index + 1)").\(format == .qcow2 ? "qcow2" : "img")"
                volumes[index] = "\(disks[index].pool ?? "default")/\(file)"
                placeholders[index] = "/\(file)"
            }
        }
        request.disks = disks
        // The installer's kernel is berthd's to fetch: the installed definition is what is sent.
        var domains = try request.domains(
            installerBoot: VirtInstallInstallerBoot(kernel: "/installer/vmlinuz", initrd: "/installer/initrd.img"),
            createdDiskPaths: placeholders)
        for (index, volume) in volumes {
            domains.installed.disks[index].path = ""
            domains.installed.disks[index].volume = volume
        }
        return InstallPlan(
            source: source, domain: domains.installed, newDisks: newDisks, extraArgs: extraArgs,
            sourceArgument: effectiveOSInfo.sourceArgument, serialConsole: isHeadless, kickstart: nil,
            initrdInjections: [], noReboot: noReboot, force: force)
    }

    /// `KEY=…` (or `inst.KEY=…`) given `value` in an installer command line; added in front
    /// when absent and `appendIfMissing`.
    public static func replacingArgument(key: String, in text: String, with value: String, appendIfMissing: Bool = false) -> String {
        var found = false
        var tokens = text.split(separator: " ", omittingEmptySubsequences: false).map { token -> String in
            for candidate in [key + "=", "inst." + key + "="] where token.hasPrefix(candidate) {
                found = true
                return candidate + value
            }
            return String(token)
        }
        if !found, appendIfMissing { tokens.insert(key + "=" + value, at: 0) }
        return tokens.joined(separator: " ")
    }

    /// The `ks=` (or `inst.ks=`) value in installer arguments.
    public static func kickstartArgument(in extraArgs: [String]) -> String? {
        for token in extraArgs.flatMap({ $0.split(separator: " ") }) {
            for key in ["ks=", "inst.ks="] where token.hasPrefix(key) {
                return String(token.dropFirst(key.count))
            }
        }
        return nil
    }
}

/// The one kickstart check `berth install` and `berth reinstall` use (in berthd): it parses,
/// reports every problem, refuses errors and a disk too small for its partitions unless forced.
public enum KickstartCheck {
    /// The largest kickstart accepted.
    public static let limit = 1 << 20

    /// - Parameters:
    ///   - text: the kickstart.
    ///   - source: where it came from, for messages.
    ///   - diskBytes: the guest's disks together; 0 when not known (the size check is skipped).
    ///   - force: `--force`: go on despite errors and a small disk.
    /// - Returns: lines to show the user (problems, warnings).
    /// - Throws: `BerthError` `.invalidArgument` saying what to fix.
    public static func check(_ text: String, source: String, diskBytes: UInt64, force: Bool) throws -> [String] {
        guard text.utf8.count <= limit else {
            throw BerthError(
                .invalidArgument, "The kickstart \(source) is over \(limit >> 20) MiB.", remedy: "Check ks=: that is not a kickstart.")
        }
        let kickstart: Kickstart
        do {
            kickstart = try Kickstart.parse(text, source: source)
        } catch {
            throw BerthError(
                .invalidArgument, "The kickstart \(source) cannot be parsed: \(error)",
                remedy: "Check it with 'berth kickstart validate FILE'.")
        }
        let problems = kickstart.validate()
        var lines = problems.map { "kickstart \(source): \($0)" }
        let errors = problems.filter { $0.severity == .error }
        if !errors.isEmpty, !force {
            throw BerthError(
                .invalidArgument,
                "The kickstart \(source) has \(errors.count) error(s); the install would fail:\n"
                    + errors.map { "  \($0)" }.joined(separator: "\n"),
                remedy: "Fix them, or add --force to install anyway.")
        }
        let needed = UInt64(max(kickstart.minimumDiskMiB, 0)) << 20
        if needed > 0, diskBytes > 0, diskBytes < needed {
            let message = "The kickstart needs at least \(needed >> 20) MiB of disk but the disks hold \(diskBytes >> 20) MiB."
            guard force else {
                throw BerthError(.invalidArgument, message, remedy: "Give a larger size=, or add --force.")
            }
            lines.append("warning: \(message)")
        }
        return lines
    }
}

/// What installers print on their serial console when they give up, so that berthd ends the
/// install with the installer's own words instead of booting a disk that holds nothing.
public enum InstallerConsole {
    /// Lines that start an installer's failure report: anaconda's exception dialog and its text
    /// mode stop messages, debian-installer's error screens, and the test installer's line.
    public static let failureMarkers = [
        "An unknown error has occurred",
        "Traceback (most recent call last):",
        "The installation was stopped due to",
        "Installation failed",
        "There was an error running the kickstart script",
        "[!!] ",
        "BERTH-INSTALLER-FAILED",
    ]

    /// The installer's failure report in the console text (the first marker line and what
    /// follows it, up to `lines` lines), or nil when it reported none.
    public static func failure(in text: String, lines: Int = 8) -> String? {
        let all = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline)
        guard let first = all.firstIndex(where: { line in failureMarkers.contains { line.contains($0) } }) else { return nil }
        let report = all[first..<min(all.count, first + lines)]
            .map { $0.trimmed() }
            .filter { !$0.isEmpty }
        return report.joined(separator: "\n")
    }
}
