import BerthFormats
import BerthHost
import BerthModel
import BerthPOSIX
import BerthQEMU
import BerthStore
import FoundationEssentials
import Glibc
import Synchronization

/// `berth install` as berthd's operation (`POST /v1/domains/{name}/install`): recognise the tree,
/// fetch the installer, check and publish the kickstart, create the disks, define the guest,
/// boot the installer, and hand over to the installed definition — or end failed with the
/// installer's own words.
extension Hypervisor {
    /// The host as a guest on user-mode networking reaches it.
    static let guestHostAddress = "10.0.2.2"
    static let kernelLimit = 256 << 20
    static let initrdLimit = 2 << 30

    /// Everything that can refuse the install without reading the tree: nothing changes when
    /// this throws, and the API answers with the error at once (not as a failed operation).
    func checkInstall(_ plan: InstallPlan, name: String, mediaPort: Int?) throws {
        let spec = plan.domain
        guard spec.name == name else {
            throw BerthError(
                .invalidArgument, "The plan installs '\(spec.name)' but the path names '\(name)'.",
                remedy: "Send the plan to /v1/domains/\(spec.name)/install.")
        }
        try spec.validate()
        if (try? catalog.domain(named: name)) != nil {
            throw BerthError(
                .alreadyExists, "Guest name '\(name)' is already in use.",
                remedy: "Remove it with 'berth undefine \(name)', reinstall it with 'berth reinstall \(name)', or choose another --name.")
        }
        let others = try catalog.allDomains()
        for nic in spec.nics {
            guard let mac = nic.mac else { continue }
            if let owner = others.first(where: { $0.spec.nics.contains { $0.mac == mac } }) {
                throw BerthError(
                    .alreadyExists, "MAC \(mac) is already used by domain '\(owner.spec.name)'.",
                    remedy: "Give another --mac, or change '\(owner.spec.name)'.")
            }
        }
        let creating = Dictionary(plan.newDisks.map { ($0.index, $0) }, uniquingKeysWith: { first, _ in first })
        for (index, disk) in spec.disks.enumerated() {
            if let volume = disk.volume, disk.path.isEmpty {
                guard creating[index] != nil else {
                    _ = try lookupVolume(volume, defaultPool: nil)
                    continue
                }
                let parts = volume.split(separator: "/", maxSplits: 1).map(String.init)
                guard parts.count == 2 else {
                    throw BerthError(.invalidArgument, "'\(volume)' is not POOL/NAME.", remedy: "Give pool=POOL in --disk.")
                }
                let pool = try activePool(parts[0])
                let path = try volumePath(pool, parts[1])
                if (try? catalog.volume(pool: parts[0], name: parts[1])) != nil || access(path, F_OK) == 0 {
                    throw BerthError(
                        .alreadyExists, "Volume \(volume) already exists.",
                        remedy: "Remove it ('berth vol-delete \(volume)'), or give --disk path=… of your own.")
                }
                continue
            }
            if !disk.readOnly, let owner = others.first(where: { $0.spec.disks.contains { $0.path == disk.path && !$0.readOnly } }) {
                throw BerthError(
                    .alreadyExists, "Disk \(disk.path) is already in use by domain '\(owner.spec.name)'.",
                    remedy: "Give another --disk path, or 'berth reinstall \(owner.spec.name)' to reinstall that guest.")
            }
            if access(disk.path, F_OK) == 0 { continue }
            guard let new = creating[index] else {
                throw BerthError(
                    .invalidArgument, "Disk \(index + 1) (\(disk.path)) does not exist and has no size.",
                    remedy: "Add size=GiB to create it, e.g. --disk path=\(disk.path),size=8, or create it first.")
            }
            let parent = PathName.directory(of: disk.path)
            var isDirectory = false
            guard FileManager.default.fileExists(atPath: parent, isDirectory: &isDirectory), isDirectory else {
                throw BerthError(
                    .notFound, "The directory \(parent) for disk \(index + 1) does not exist on berthd's host.",
                    remedy: "Create it, or give another path.")
            }
            var fs = statvfs()
            if !plan.force, statvfs(parent, &fs) == 0 {
                let free = UInt64(fs.f_bavail) * UInt64(fs.f_frsize)
                if free < new.sizeBytes {
                    throw BerthError(
                        .unavailable,
                        "Disk \(index + 1) (\(disk.path)) would be \(new.sizeBytes >> 20) MiB but \(parent) has \(free >> 20) MiB free.",
                        remedy: "Free space, choose a smaller size=, or add --force (the file is sparse).")
                }
            }
        }
        switch plan.source {
        case .location(let url, _, _):
            if Self.isNetworkURL(url) {
                guard url.lowercased().hasPrefix("http") else {
                    throw BerthError(
                        .invalidArgument, "Only http:// and https:// install trees can be fetched, not \(url).",
                        remedy: "Serve the tree over HTTP, or give a directory or ISO on berthd's host.")
                }
            } else if access(url, R_OK) != 0 {
                throw BerthError(
                    .notFound, "The install location \(url) does not exist on berthd's host.",
                    remedy: "Give an install tree directory, an ISO file on that host, or an http:// URL.")
            }
        case .cdrom(let iso):
            var isDirectory = false
            guard FileManager.default.fileExists(atPath: iso, isDirectory: &isDirectory), !isDirectory, access(iso, R_OK) == 0
            else {
                throw BerthError(
                    .notFound, "The --cdrom ISO \(iso) is not a file berthd can read on its host.",
                    remedy: "Give the path of an ISO image on berthd's host (the daemon opens it, not the CLI).")
            }
            if plan.kickstart != nil || !plan.extraArgs.isEmpty {
                throw BerthError(
                    .invalidArgument, "--cdrom boots the ISO's own boot menu: -x/--extra-args (and ks=) cannot reach it.",
                    remedy: "Put the kickstart on the ISO (ks=cdrom:/ks.cfg in its menu), or use --location ISO to pass -x.")
            }
        case .network:
            try checkNetworkBoot(spec)
        case .importDisk:
            guard spec.disks.contains(where: { $0.device == .disk }) else {
                throw BerthError(.invalidArgument, "--import needs a disk that holds the system.", remedy: "Add --disk PATH.")
            }
        }
        if let kickstart = plan.kickstart {
            if let text = kickstart.text {
                guard text.utf8.count <= KickstartCheck.limit else {
                    throw BerthError(.invalidArgument, "The kickstart \(kickstart.origin) is over 1 MiB.", remedy: "Check ks=.")
                }
                guard mediaPort != nil else {
                    throw BerthError(
                        .unavailable, "berthd serves no install media (it runs with --media-listen none), so the guest cannot fetch the kickstart.",
                        remedy: "Restart berthd with --media-listen 127.0.0.1:8001, or give ks= as an http:// URL.")
                }
            } else if !Self.isNetworkURL(kickstart.origin) {
                throw BerthError(
                    .invalidArgument, "The kickstart \(kickstart.origin) is neither a URL nor sent with the plan.",
                    remedy: "Give ks= an http:// URL, or a file the CLI reads.")
            }
        }
    }

    /// The install, run as an operation: `note` adds the lines `berth install` prints.
    func install(_ plan: InstallPlan, mediaPort: Int?, note: @escaping @Sendable (OperationMessage) -> Void) async throws {
        var run = InstallRun(hypervisor: self, plan: plan, mediaPort: mediaPort, note: note)
        try await run.go()
    }

    /// What can refuse a reinstall at once: an unknown or running domain, one berthd did not
    /// install, a kickstart the guest could not be given.
    func checkReinstall(_ name: String, _ request: ReinstallRequest, mediaPort: Int?) async throws -> InstallRecord {
        let record = try catalog.domain(named: name)
        guard let install = try catalog.install(name) else {
            throw BerthError(
                .invalidArgument, "Domain '\(name)' was not installed by 'berth install': there is no installer to run again.",
                remedy: "Install it with 'berth install' (after 'berth undefine \(name)').")
        }
        let running = try await supervisor(name).isRunning
        if running || record.state != .shutoff, !request.force {
            throw BerthError(
                .wrongState, "Domain '\(name)' is \(record.state.rawValue).",
                remedy: "Shut it down first ('berth shutdown \(name)'), or add --force to destroy it.")
        }
        if request.kickstart != nil, install.kernel.isEmpty {
            throw BerthError(
                .invalidArgument, "Domain '\(name)' was installed from a CD-ROM or the network, whose boot menu names its kickstart.",
                remedy: "Change the kickstart on the ISO or the network's boot file, then 'berth reinstall \(name)' without --kickstart.")
        }
        if let kickstart = request.kickstart {
            if kickstart.text != nil, mediaPort == nil {
                throw BerthError(
                    .unavailable, "berthd serves no install media (--media-listen none), so the guest cannot fetch the kickstart.",
                    remedy: "Restart berthd with --media-listen 127.0.0.1:8001, or give --kickstart an http:// URL.")
            }
            if kickstart.text == nil, !Self.isNetworkURL(kickstart.origin) {
                throw BerthError(
                    .invalidArgument, "The kickstart \(kickstart.origin) is neither a URL nor sent with the request.",
                    remedy: "Give an http:// URL or a file.")
            }
        }
        return install
    }

    /// `reinstall`, run as an operation.
    func reinstall(
        _ name: String, _ request: ReinstallRequest, record: InstallRecord, mediaPort: Int?,
        note: @escaping @Sendable (OperationMessage) -> Void
    ) async throws {
        var plan = record.plan
        plan.noReboot = request.noReboot
        plan.force = request.force
        var run = InstallRun(hypervisor: self, plan: plan, mediaPort: mediaPort, note: note)
        try await run.reinstall(record, kickstart: request.kickstart)
    }

    /// `--pxe` needs a NIC on a Berth network whose DHCP names a boot file.
    func checkNetworkBoot(_ spec: DomainSpec) throws {
        let names = spec.nics.filter { $0.mode == .network }.compactMap(\.network)
        let networks = names.compactMap { try? catalog.network(named: $0).spec }
        guard networks.contains(where: \.servesNetworkBoot) else {
            throw BerthError(
                .invalidArgument,
                names.isEmpty
                    ? "--pxe needs a NIC on a Berth network; '\(spec.name)' has none (user-mode networking cannot serve a boot file without QEMU opening a host directory)."
                    : "--pxe needs a network that serves a boot file; \(names.joined(separator: ", ")) names none.",
                remedy:
                    "Give the network a TFTP root and boot file (\"tftpRoot\"/\"bootFile\", or <tftp root=…/> and <bootp file=…/> in its XML; 'berth net-define'), then --network network=NAME."
            )
        }
    }

    /// The media name and the path under it of an `http://` loopback URL on `mediaPort`'s
    /// `/install/NAME/…`; nil for any other URL, or one whose path the media server would
    /// refuse (`.`, `..`, encoded separators: the same `MediaLibrary.components` rule).
    static func ownMediaPath(_ location: String, mediaPort: Int) -> (name: String, rest: [String])? {
        guard let url = URL(string: location), url.scheme == "http", url.port == mediaPort,
            let host = url.host, DaemonConfiguration.isLoopback(host),
            let parts = try? MediaLibrary.components(ofRawPath: url.path(percentEncoded: true)),
            parts.count >= 2, parts[0] == "install"
        else { return nil }
        return (parts[1], Array(parts.dropFirst(2)))
    }

    static func isNetworkURL(_ text: String) -> Bool {
        let lower = text.lowercased()
        return lower.hasPrefix("http://") || lower.hasPrefix("https://") || lower.hasPrefix("ftp://")
    }

    // MARK: - The installer's console

    /// Where each running install's installer started writing its console log: only what it
    /// wrote is searched for a failure report (an earlier run's is not this one's).
    /// Kept in the catalog too, so that a berthd restarted while the installer runs still
    /// notices its failure at the power-off.
    func watchInstaller(_ name: String, from offset: UInt64?) {
        installWatches.withLock { $0[name] = offset }
        try? catalog.setInstallLogOffset(name, offset)
    }

    /// The installer handed over (or failed): its kickstart is withdrawn, its console no longer watched.
    func installEnded(_ name: String) {
        Self.withdrawKickstarts(of: name, stateDirectory: stateDirectory)
        watchInstaller(name, from: nil)
    }

    /// The installer's failure report, if the console log written since the install began holds
    /// one (`InstallerConsole`); nil when no install of `name` is being watched.
    func installerFailure(_ name: String) -> String? {
        guard let offset = installWatches.withLock({ $0[name] }) ?? (try? catalog.installLogOffset(name)) ?? nil,
            let record = try? catalog.domain(named: name)
        else { return nil }
        let text = Self.readLog(driver.consoleLogPath(record.spec), from: offset, limit: 256 << 10)
        return InstallerConsole.failure(in: text)
    }

    /// The console log's last lines, for `dominfo`.
    func consoleTail(_ name: String, bytes: Int = 1500) -> String {
        guard let record = try? catalog.domain(named: name) else { return "" }
        let path = driver.consoleLogPath(record.spec)
        let size = FileBytes.size(path) ?? 0
        let text = Self.readLog(path, from: size > UInt64(bytes) ? size - UInt64(bytes) : 0, limit: bytes)
        // A serial console ends its lines with "\r\n", one Character in Swift: split on isNewline.
        return text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).dropFirst(size > UInt64(bytes) ? 1 : 0)
            .joined(separator: "\n").trimmed()
    }

    static func readLog(_ path: String, from offset: UInt64, limit: Int) -> String {
        guard let size = FileBytes.size(path) else { return "" }
        // A log rotated under the watch (--console-log-max) starts again at 0.
        let start = size < offset ? 0 : offset
        let from = size - start > UInt64(limit) ? size - UInt64(limit) : start
        return String(decoding: FileBytes.read(path, from: from, maxBytes: limit) ?? [], as: UTF8.self)
    }

}

/// One install's state while it runs: what it created, so a failure can take it back.
private struct InstallRun {
    let hypervisor: Hypervisor
    let plan: InstallPlan
    let mediaPort: Int?
    let note: @Sendable (OperationMessage) -> Void
    var name: String { plan.domain.name }
    var state: String { hypervisor.stateDirectory }

    var createdPaths: [String] = []
    var createdVolumes: [(pool: String, name: String)] = []
    var published: String?
    /// The installed definition once stored: what a failure leaves behind.
    var defined: DomainSpec?
    /// This operation's claim on the domain's install (`Hypervisor.installOwners`).
    let token = UUID()

    init(hypervisor: Hypervisor, plan: InstallPlan, mediaPort: Int?, note: @escaping @Sendable (OperationMessage) -> Void) {
        self.hypervisor = hypervisor
        self.plan = plan
        self.mediaPort = mediaPort
        self.note = note
        hypervisor.installOwners.withLock { [name = plan.domain.name, token] in $0[name] = token }
    }

    /// False once a later install or reinstall of the domain has taken it over.
    var ownsInstall: Bool { hypervisor.installOwners.withLock { $0[name] == token } }

    func say(_ text: String, _ phase: OperationMessage.Phase? = nil) {
        note(OperationMessage(text, phase: phase))
        let state = (try? hypervisor.catalog.domain(named: name).state) ?? .shutoff
        hypervisor.hub.publish(
            LifecycleEvent(domain: name, kind: .installProgress, state: state, detail: (phase.map { "\($0.rawValue): " } ?? "") + text))
    }

    func debug(_ text: String) { note(OperationMessage(text, level: .debug)) }
    func warn(_ text: String) { note(OperationMessage(text, level: .warning)) }

    /// The host as the installer reaches it through its first NIC that can: 10.0.2.2 under
    /// user-mode networking, the host's address on the bridge of a Berth network (where berthd
    /// serves media while the network runs); nil for a NIC on a host bridge (the LAN's own
    /// servers must then hold the media).
    var guestHost: (address: String, via: String)? {
        if plan.domain.nics.isEmpty { return (Hypervisor.guestHostAddress, "user-mode networking") }
        for nic in plan.domain.nics {
            if nic.mode == .user { return (Hypervisor.guestHostAddress, "user-mode networking") }
            let routed = nic.mode == .route ? nic.ip.flatMap { try? hypervisor.catalog.routedNetwork(containing: $0) } : nil
            guard let network = NetworkManager.networkName(of: nic) ?? routed,
                let host = (try? hypervisor.catalog.network(named: network))?.spec.subnet?.host
            else { continue }
            return (host.description, "network '\(network)'")
        }
        return nil
    }

    /// A URL naming this host, as the installer reaches it (`guestHost`).
    func guestURL(_ url: String, what: String) -> String {
        guard let guestHost, var components = URLComponents(string: url), let host = components.host?.lowercased(),
            Self.localNames.contains(host)
        else { return url }
        components.host = guestHost.address
        guard let rewritten = components.string, rewritten != url else { return url }
        say("\(what): \(url) -> \(rewritten) (this host as the guest sees it on \(guestHost.via))")
        return rewritten
    }

    func rewriteArguments(_ text: String) -> String {
        text.split(separator: " ", omittingEmptySubsequences: false).map { token -> String in
            guard let equals = token.firstIndex(of: "=") else { return String(token) }
            let key = token[..<equals]
            let value = String(token[token.index(after: equals)...])
            guard Hypervisor.isNetworkURL(value), key != "ks", key != "inst.ks" else { return String(token) }
            return "\(key)=\(guestURL(value, what: String(key) + "="))"
        }.joined(separator: " ")
    }

    static let localNames: Set<String> = {
        var names: Set<String> = ["localhost", "127.0.0.1", "::1", "[::1]", "0.0.0.0", "localhost.localdomain"]
        let host = ProcessInfo.processInfo.hostName.lowercased()
        if !host.isEmpty {
            names.insert(host)
            if let short = host.split(separator: ".").first { names.insert(String(short)) }
        }
        return names
    }()

    mutating func go() async throws {
        if case .importDisk = plan.source {
            try await importDisk()
            return
        }
        do {
            switch plan.source {
            case .location(let location, let kernelOverride, let initrdOverride):
                try await install(location: location, kernelOverride: kernelOverride, initrdOverride: initrdOverride)
            case .cdrom(let iso):
                try await install(cdrom: iso)
            case .network:
                try await installFromNetwork()
            case .importDisk:
                break
            }
        } catch {
            await fail(error)
            throw error
        }
    }

    /// `--import`: define from the existing disk and boot it through Berth's bootloader.
    mutating func importDisk() async throws {
        _ = try hypervisor.define(plan.domain)
        say("Domain '\(name)' defined from its disk (--import).", .defined)
        guard !plan.noReboot else { return }
        try await hypervisor.supervisor(name).start()
        say("Domain '\(name)' started from its own disk.", .firstBoot)
    }

    mutating func install(location: String, kernelOverride: String?, initrdOverride: String?) async throws {
        // 1. The tree, as berthd sees it (its network, its files).
        let arch = plan.domain.arch
        let source: any InstallTreeSource
        let tree: InstallTree
        let pair: InstallTree.KernelPair
        do {
            // Opening an ISO reads its directory: off the cooperative pool.
            let own = try ownMediaDirectory(location)
            source = try await BlockingIO.run { try own ?? Self.treeSource(location) }
            tree = try await InstallTree.recognize(source, arch: arch)
            pair =
                if let kernelOverride, let initrdOverride {
                    InstallTree.KernelPair(kernel: kernelOverride, initrd: initrdOverride)
                } else {
                    try await tree.resolveKernel(in: source)
                }
        } catch let error as InstallTreeError {
            if case .cannotRead = error, Hypervisor.isNetworkURL(location) {
                throw BerthError(
                    .unavailable, "berthd cannot read the install tree at \(location): \(error.description)",
                    remedy: "berthd fetches the tree over its own host's network, not the CLI's: check that URL from berthd's host.")
            }
            throw error.berthError
        }
        say("Install tree: \(tree.name) (\(tree.evidence)); installer \(pair.kernel) + \(pair.initrd)")
        let network = Hypervisor.isNetworkURL(location)
        let isISO = !network && FileBytes.size(location) != nil && !FileManager.default.isDirectory(location)

        // 2. The kickstart: fetched by berthd, checked once, kept in the catalog.
        var extraArgs = plan.extraArgs.map(rewriteArguments)
        var kickstartText: String?
        if let kickstart = plan.kickstart {
            let text = try await Self.kickstartText(kickstart)
            let diskBytes = plan.domain.disks.indices.reduce(UInt64(0)) { total, index in
                if let new = plan.newDisks.first(where: { $0.index == index }) { return total + new.sizeBytes }
                return total + (plan.domain.disks[index].device == .disk ? FileBytes.size(plan.domain.disks[index].path) ?? 0 : 0)
            }
            for line in try KickstartCheck.check(text, source: kickstart.origin, diskBytes: diskBytes, force: plan.force) {
                warn(line)
            }
            kickstartText = text
            let guestKickstart: String
            if kickstart.text != nil {
                guestKickstart = try publish(text)
                say("ks=: \(kickstart.origin) -> \(guestKickstart) (served by berthd from \(state)/kickstarts/)", .kickstart)
            } else {
                guestKickstart = guestURL(kickstart.origin, what: "ks=")
            }
            extraArgs = extraArgs.map { VirtInstallRequest.replacingArgument(key: "ks", in: $0, with: guestKickstart) }
        }

        // 3. The installer's kernel and initrd into <state>/install/<name>/.
        let directory = Hypervisor.installDirectory(state, name)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let kernelPath = directory + "/vmlinuz"
        let initrdPath = directory + "/initrd.img"
        try await fetch(source, pair.kernel, to: kernelPath, limit: Hypervisor.kernelLimit)
        try await fetch(source, pair.initrd, to: initrdPath, limit: Hypervisor.initrdLimit)
        if !plan.initrdInjections.isEmpty {
            let files = plan.initrdInjections.map { InitrdInjection.File(name: $0.name, contents: [UInt8]($0.contents)) }
            let appendix = try InitrdInjection.appendix(files)
            do { try FileBytes.append(appendix, to: initrdPath) } catch {
                throw BerthError(.internal, "Cannot append to \(initrdPath): \(error).")
            }
            debug("injected \(files.map(\.name).joined(separator: ", ")) into \(initrdPath)")
        }

        // 4. New disks: volumes in a pool, or files at the given paths.
        let installed = try await createDisks()

        // 5. The two definitions; the installed one is stored first.
        let cmdline = VirtInstallRequest.installerCommandLine(
            extraArgs: extraArgs, networkLocation: network ? guestURL(location, what: "--location") : nil,
            sourceArgument: tree.sourceArgument ?? plan.sourceArgument, serialConsole: plan.serialConsole)
        debug("installer cmdline: \(cmdline)")
        let record = InstallRecord(
            plan: plan, installerCmdline: cmdline, kernel: kernelPath, initrd: initrdPath, cdrom: isISO ? location : nil)
        let stored = try define(installed, record, kickstart: kickstartText)

        let installer = Self.installer(stored, kernel: kernelPath, initrd: initrdPath, cmdline: cmdline, cdrom: isISO ? location : nil)
        if isISO {
            say("The ISO \(location) is the installer's CD-ROM (read-only).")
        } else if !network {
            say(
                "note: the installer boots \(pair.kernel) from \(location); it must fetch packages itself (register the tree with 'berth media add' to serve it)."
            )
        }
        try await boot(installer: installer, installed: stored)
    }

    /// `--cdrom ISO`: the firmware boots the ISO (its El Torito image and boot menu), the disk
    /// after it; the installer's power-off hands over to the installed definition as with
    /// `--location`.
    mutating func install(cdrom iso: String) async throws {
        let installed = try await createDisks()
        let stored = try define(installed, InstallRecord(plan: plan, installerCmdline: "", kernel: "", initrd: "", cdrom: iso))
        let installer = VirtInstallRequest.cdromInstaller(stored, iso: iso)
        let firmware = stored.firmware?.kind == .uefi ? "UEFI (OVMF)" : "SeaBIOS"
        say("The installer boots from the CD-ROM \(iso) (read-only) through \(firmware); boot order cdrom, hd.")
        try await boot(installer: installer, installed: stored)
    }

    /// `--pxe`: the firmware boots from the NIC (iPXE: DHCP, then the network's boot file over
    /// TFTP); the installer's power-off hands over as with `--location`.
    mutating func installFromNetwork() async throws {
        let installed = try await createDisks()
        let stored = try define(installed, InstallRecord(plan: plan, installerCmdline: "", kernel: "", initrd: ""))
        let networks = stored.nics.compactMap(\.network).joined(separator: ", ")
        say("The installer boots from the network (\(networks): DHCP names its boot file, dnsmasq serves it over TFTP); boot order network, hd.")
        try await boot(installer: VirtInstallRequest.networkInstaller(stored), installed: stored)
    }

    /// Stores the installed definition with its install record and kickstart (one
    /// transaction): from here on the new disks are the domain's, and no longer journalled.
    mutating func define(_ installed: DomainSpec, _ record: InstallRecord, kickstart: String? = nil) throws -> DomainSpec {
        let stored = try hypervisor.define(installed, install: record, kickstart: kickstart).spec
        defined = stored
        unlink(Hypervisor.newDisksJournal(state, name))
        say("Domain '\(name)' defined.", .defined)
        return stored
    }

    /// The installer of a `--location` install: the installed definition booting the fetched
    /// kernel and initrd, with an ISO location as its CD-ROM too (as virt-install did).
    static func installer(_ installed: DomainSpec, kernel: String, initrd: String, cmdline: String, cdrom: String?) -> DomainSpec {
        var installer = installed
        installer.bootloader = nil
        installer.kernel = kernel
        installer.initrd = initrd
        installer.cmdline = cmdline
        installer.autostart = false
        // The installer's final reboot ends the install phase, never restarts the installer.
        installer.onReboot = .destroy
        if let cdrom {
            installer.disks.append(DiskSpec(path: cdrom, format: .raw, device: .cdrom, bus: .ide, readOnly: true))
        }
        return installer
    }

    /// Creates the plan's new disks (volumes in a pool, or files at their paths) and returns the
    /// installed definition with their formats.
    mutating func createDisks() async throws -> DomainSpec {
        var installed = plan.domain
        try journalNewDisks()
        for new in plan.newDisks {
            guard new.index < installed.disks.count else { continue }
            let disk = installed.disks[new.index]
            if let volume = disk.volume, disk.path.isEmpty {
                let parts = volume.split(separator: "/", maxSplits: 1).map(String.init)
                debug("vol-create-as \(parts[0]) \(parts[1]) \(new.sizeBytes) --format \(new.format.rawValue)")
                let info = try await hypervisor.createVolume(
                    pool: parts[0], VolumeCreateRequest(name: parts[1], capacity: new.sizeBytes, format: new.format))
                createdVolumes.append((parts[0], parts[1]))
                say("Created disk \(info.path) (volume \(volume), \(new.sizeBytes >> 20) MiB \(new.format.rawValue)).", .disk)
            } else if access(disk.path, F_OK) != 0 {
                let arguments = ["create", "-q", "-f", new.format.rawValue, disk.path, "\(new.sizeBytes >> 20)M"]
                debug("qemu-img \(arguments.joined(separator: " "))")
                try await QEMUImg.run(arguments, timeout: .seconds(600))
                createdPaths.append(disk.path)
                installed.disks[new.index].format = new.format
                say("Created disk \(disk.path) (\(new.sizeBytes >> 20) MiB \(new.format.rawValue)).", .disk)
            }
        }
        return installed
    }

    /// Writes the disks this run is about to create, before it creates any: a berthd killed
    /// before the domain is defined removes them at its next start
    /// (`Hypervisor.sweepInterruptedInstalls`).
    func journalNewDisks() throws {
        var journal = Hypervisor.NewDisks()
        for new in plan.newDisks where new.index < plan.domain.disks.count {
            let disk = plan.domain.disks[new.index]
            if let volume = disk.volume, disk.path.isEmpty {
                journal.volumes.append(volume)
            } else if access(disk.path, F_OK) != 0 {
                journal.paths.append(disk.path)
            }
        }
        guard !journal.paths.isEmpty || !journal.volumes.isEmpty else { return }
        try Hypervisor.writeJournal(journal, state: state, name: name)
    }

    /// `reinstall`: the stored installer again, on the same disks, MAC and UUID, with the
    /// stored kickstart or another one (checked as `install` checks it).
    mutating func reinstall(_ record: InstallRecord, kickstart: InstallPlan.KickstartInput?) async throws {
        do {
            // While an installer runs (or was left by a berthd killed after storing it), the
            // current definition is the installer's and the installed one waits as the next.
            var installed = try hypervisor.catalog.nextDefinition(name) ?? hypervisor.catalog.domain(named: name).spec
            if let description = installed.description, let range = description.firstRange(of: "berth install failed: ") {
                let kept = String(description[..<range.lowerBound]).replacing(" — ", with: "")
                    .trimmed()
                installed.description = kept.isEmpty ? nil : kept
            }
            defined = installed
            let supervisor = try hypervisor.supervisor(name)
            if await supervisor.isRunning {
                say("Destroying the running guest first (--force).")
                try await supervisor.destroy()
            }
            try hypervisor.setNextDefinition(name, nil, start: false)
            if case .network = record.plan.source {
                try hypervisor.checkNetworkBoot(installed)
                _ = try hypervisor.update(installed)
                var updated = record
                updated.plan.noReboot = plan.noReboot
                try hypervisor.catalog.setInstall(name, updated)
                try await boot(installer: VirtInstallRequest.networkInstaller(installed), installed: installed)
                return
            }
            if case .cdrom(let iso) = record.plan.source {
                guard access(iso, R_OK) == 0 else {
                    throw BerthError(
                        .notFound, "The installer's ISO \(iso) is gone.",
                        remedy: "Put it back, or run 'berth undefine \(name)' and 'berth install' again.")
                }
                _ = try hypervisor.update(installed)
                var updated = record
                updated.plan.noReboot = plan.noReboot
                try hypervisor.catalog.setInstall(name, updated)
                try await boot(installer: VirtInstallRequest.cdromInstaller(installed, iso: iso), installed: installed)
                return
            }
            var cmdline = record.installerCmdline
            let stored = try hypervisor.catalog.kickstart(name)
            let input =
                kickstart
                ?? record.plan.kickstart.map { old in
                    // A kickstart file published for the first install is gone: publish it again.
                    old.text == nil ? old : InstallPlan.KickstartInput(origin: old.origin, text: stored ?? old.text)
                }
            if let input {
                let text = try await Self.kickstartText(input)
                let diskBytes = installed.disks.filter { $0.device == .disk }.reduce(UInt64(0)) {
                    $0 + (FileBytes.size($1.path) ?? 0)
                }
                for line in try KickstartCheck.check(text, source: input.origin, diskBytes: diskBytes, force: plan.force) {
                    warn(line)
                }
                let guestKickstart: String
                if input.text != nil {
                    guestKickstart = try publish(text)
                    say("ks=: \(input.origin) -> \(guestKickstart) (served by berthd from \(state)/kickstarts/)", .kickstart)
                } else {
                    guestKickstart = guestURL(input.origin, what: "ks=")
                }
                cmdline = VirtInstallRequest.replacingArgument(key: "ks", in: cmdline, with: guestKickstart, appendIfMissing: true)
                try hypervisor.catalog.setKickstart(name, text)
            }
            for path in [record.kernel, record.initrd] where access(path, R_OK) != 0 {
                throw BerthError(
                    .notFound, "The installer's \(path) is gone.", remedy: "Run 'berth undefine \(name)' and 'berth install' again.")
            }
            debug("installer cmdline: \(cmdline)")
            _ = try hypervisor.update(installed)
            var updated = record
            updated.installerCmdline = cmdline
            updated.plan.noReboot = plan.noReboot
            if let kickstart { updated.plan.kickstart = kickstart }
            try hypervisor.catalog.setInstall(name, updated)
            let installer = Self.installer(installed, kernel: record.kernel, initrd: record.initrd, cmdline: cmdline, cdrom: record.cdrom)
            try await boot(installer: installer, installed: installed)
        } catch {
            await fail(error)
            throw error
        }
    }

    /// Boots the installer with the installed definition waiting as the next one, and follows
    /// it to the hand-over and the first boot.
    mutating func boot(installer: DomainSpec, installed: DomainSpec) async throws {
        // One transaction: a kill never leaves the installer's definition without the installed one waiting.
        try hypervisor.update(installer, next: (installed, !plan.noReboot))

        // 6. The installer runs; berthd hands over when it powers off.
        let events = hypervisor.hub.subscribe()
        let log = hypervisor.driver.consoleLogPath(installer)
        hypervisor.watchInstaller(name, from: FileBytes.size(log) ?? 0)
        let started = Date()
        try await hypervisor.supervisor(name).start()
        createdPaths = []  // the installer writes them now: they stay for inspection
        createdVolumes = []
        say("Installer started (its console: 'berth console \(name)', 'berth log -f \(name)').", .installerRunning)
        try await follow(events, started: started)
    }

    /// Waits for the hand-over and the first boot, or the installer's failure.
    func follow(_ events: AsyncStream<LifecycleEvent>, started: Date) async throws {
        let seen = Mutex<[LifecycleEvent]>([])
        let consumer = Task {
            for await event in events where event.domain == name {
                seen.withLock { $0.append(event) }
            }
        }
        defer { consumer.cancel() }
        var finished = false
        // A stop seen before this installer's own start is the guest `reinstall --force` destroyed.
        var installerStarted = false
        var failureSince: Date?
        while true {
            try await Task.sleep(for: .milliseconds(200))
            let batch = seen.withLock { events -> [LifecycleEvent] in
                defer { events = [] }
                return events
            }
            for event in batch {
                switch event.kind {
                case .redefined where !finished:
                    finished = true
                    hypervisor.watchInstaller(name, from: nil)
                    say("Installer finished in \(Text.fixed(Date().timeIntervalSince(started), places: 1)) s.", .installerFinished)
                    if plan.noReboot {
                        say("Domain '\(name)' installed; not started (--noreboot). Start it with 'berth start \(name)'.")
                        return
                    }
                case .started where finished:
                    say("Domain '\(name)' installed and started from its own disk.", .firstBoot)
                    return
                case .started:
                    installerStarted = true
                case .startFailed where finished:
                    throw BerthError(
                        .unavailable, "The installed system did not start: \(event.detail ?? "?")",
                        remedy: "See 'berth dominfo \(name)' and 'berth log \(name)'; the installer may not have installed a boot menu.")
                case .installFailed:
                    throw installerFailed(event.detail ?? "the installer reported a failure")
                case .stopped, .crashed:
                    if !finished, installerStarted, !ownsInstall {
                        throw BerthError(
                            .wrongState, "A reinstall of '\(name)' took over this install (it stopped this installer).",
                            remedy: "Follow the reinstall instead ('berth operations', 'berth log -f \(name)').")
                    }
                    if !finished, installerStarted {
                        let info = try? hypervisor.info(name)
                        throw BerthError(
                            .unavailable,
                            "The installer stopped before it finished (\(event.detail ?? event.kind.rawValue))\(info?.lastError.map { ": \($0)" } ?? ".")",
                            remedy: "See its console with 'berth log \(name)'; then 'berth reinstall \(name)' or 'berth undefine \(name)'.")
                    }
                default:
                    break
                }
            }
            // An installer that reports failure and then sits (anaconda's exception dialog,
            // debian-installer's error screen) never powers off: stop it after a short grace.
            if !finished, let words = hypervisor.installerFailure(name) {
                let since = failureSince ?? Date()
                failureSince = since
                if Date().timeIntervalSince(since) > 3 {
                    try? hypervisor.setNextDefinition(name, nil, start: false)
                    try? await hypervisor.supervisor(name).destroy()
                    throw installerFailed(words)
                }
            }
        }
    }

    func installerFailed(_ words: String) -> BerthError {
        BerthError(
            .unavailable, "The installer of '\(name)' failed:\n\(words)",
            remedy: "Fix the cause (the kickstart, the tree), then 'berth reinstall \(name)'; 'berth dominfo \(name)' shows the console's last lines."
        )
    }

    /// Takes back what this run did: created disks (nothing was written to them yet), the
    /// published kickstart; a defined domain stays, with the reason in its description and
    /// `lastError` (`berth dominfo`).
    func fail(_ error: Error) async {
        if let published { unlink(published) }
        // Taken over by a reinstall: the domain, its disks and its kickstarts are the new
        // operation's now.
        guard ownsInstall else { return }
        hypervisor.watchInstaller(name, from: nil)
        Hypervisor.withdrawKickstarts(of: name, stateDirectory: state)
        for path in createdPaths { unlink(path) }
        for volume in createdVolumes { try? await hypervisor.deleteVolume(pool: volume.pool, name: volume.name) }
        guard var spec = defined else {
            // Nothing was defined: the fetched installer and the journal go too.
            try? FileManager.default.removeItem(atPath: Hypervisor.installDirectory(state, name))
            return
        }
        let reason = (error as? BerthError)?.message ?? "\(error)"
        if let supervisor = try? hypervisor.supervisor(name), await supervisor.isRunning {
            try? hypervisor.setNextDefinition(name, nil, start: false)
            try? await supervisor.destroy()
        }
        try? hypervisor.setNextDefinition(name, nil, start: false)
        // The installed definition is what stays ('berth reinstall' runs the installer again).
        let failure = "berth install failed: \(reason.split(separator: "\n").first.map(String.init) ?? reason)"
        spec.description = spec.description.map { $0 + " — " + failure } ?? failure
        _ = try? hypervisor.catalog.update(spec)
        let tail = hypervisor.consoleTail(name)
        let lastError = "berth install failed: \(reason)" + (tail.isEmpty ? "" : "\nConsole log, last lines:\n\(tail)")
        try? hypervisor.catalog.setObserved(name, ObservedState(state: .shutoff, pid: nil, accel: nil, lastError: lastError, startedAt: nil))
        note(OperationMessage("Domain '\(name)' is left defined; 'berth dominfo \(name)' shows why the install failed.", level: .warning))
    }

    func fetch(_ source: any InstallTreeSource, _ file: String, to destination: String, limit: Int) async throws {
        debug("fetch \(file) -> \(destination)")
        let started = Date()
        let note = note
        let label = PathName.lastComponent(of: file)
        let meter = Mutex<Int64>(-1)
        do {
            try await source.copy(file, to: destination, limit: limit) { done, total in
                // About ten progress lines per file.
                let step = max((total ?? 0) / 10, 8 << 20)
                let due = meter.withLock { last -> Bool in
                    guard done - last >= step || done == total else { return false }
                    last = done
                    return true
                }
                guard due else { return }
                note(
                    OperationMessage(
                        "  \(label): \(Text.fixed(Double(done) / 1_048_576, places: 1))"
                            + (total.map { " of \(Text.fixed(Double($0) / 1_048_576, places: 1)) MiB" } ?? " MiB"),
                        level: .debug, phase: .fetch))
            }
        } catch let error as InstallTreeError {
            throw error.berthError
        }
        let size = FileBytes.size(destination) ?? 0
        say(
            "Fetched \(file) (\(Text.fixed(Double(size) / 1_048_576, places: 1)) MiB) in "
                + "\(Text.fixed(Date().timeIntervalSince(started), places: 1)) s", .fetch)
    }

    /// Copies the kickstart to `<state>/kickstarts/NAME-<32 random hex>.ks` (0600): the media
    /// listener serves it without a token, so the unguessable name is what keeps other guests
    /// from fetching it (kickstarts hold root passwords). Withdrawn at the hand-over.
    mutating func publish(_ text: String) throws -> String {
        guard let mediaPort else {
            throw BerthError(.unavailable, "berthd serves no install media.", remedy: "Restart berthd with --media-listen 127.0.0.1:8001.")
        }
        let directory = state + "/kickstarts"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let secret = Text.randomHex(byteCount: 16)
        let file = "\(name)-\(secret).ks"
        let path = directory + "/" + file
        guard FileManager.default.createFile(atPath: path, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600]) else {
            throw BerthError(.unavailable, "Cannot write the kickstart to \(path).", remedy: "Check the state directory's permissions.")
        }
        published = path
        return "http://\(guestHost?.address ?? Hypervisor.guestHostAddress):\(mediaPort)/kickstarts/\(file)"
    }

    static func kickstartText(_ input: InstallPlan.KickstartInput) async throws -> String {
        if let text = input.text { return text }
        guard let url = URL(string: input.origin) else {
            throw BerthError(.invalidArgument, "'\(input.origin)' is not a URL.", remedy: "Check ks=.")
        }
        let origin = input.origin
        var bytes: [UInt8] = []
        do {
            let found = try await HTTPDownload.get(url, limit: KickstartCheck.limit, name: origin) {
                bytes += $0.readableBytesView
            }
            guard found else {
                throw BerthError(.notFound, "The kickstart \(origin) does not exist (HTTP 404).", remedy: "Check ks= in -x/--extra-args.")
            }
        } catch let error as InstallTreeError {
            throw BerthError(
                .unavailable, "berthd cannot fetch the kickstart: \(error.description)",
                remedy: "berthd fetches it over its own host's network: check ks= from there, or give a file.")
        }
        guard let text = String(bytes: bytes, encoding: .utf8) else {
            throw BerthError(.invalidArgument, "The kickstart \(origin) is not UTF-8 text.", remedy: "Check ks=.")
        }
        return text
    }

    /// A `--location` on berthd's own media server (`http://127.0.0.1:PORT/install/NAME/…`
    /// for a directory registered with `berth media add`) is read from that directory: the
    /// installer's kernel and initrd need not make a round trip through berthd's own HTTP
    /// server and client. The guest still fetches the tree over HTTP. Anything else: nil.
    func ownMediaDirectory(_ location: String) throws -> (any InstallTreeSource)? {
        guard let mediaPort, let (name, rest) = Hypervisor.ownMediaPath(location, mediaPort: mediaPort),
            let entry = try hypervisor.catalog.mediaEntry(named: name), entry.kind == .directory
        else { return nil }
        return LocalDirectoryInstallTree(root: ([entry.path] + rest).joined(separator: "/"), location: location)
    }

    static func treeSource(_ location: String) throws -> any InstallTreeSource {
        if Hypervisor.isNetworkURL(location) { return try HTTPInstallTree(location: location) }
        if FileManager.default.isDirectory(location) { return LocalDirectoryInstallTree(root: location, location: location) }
        return try ISOInstallTree(path: location, location: location)
    }
}

extension FileManager {
    fileprivate func isDirectory(_ path: String) -> Bool {
        var isDirectory = false
        return fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory
    }
}
