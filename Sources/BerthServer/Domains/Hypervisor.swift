import BerthClient
import BerthModel
import BerthQEMU
import BerthStore
import FoundationEssentials
import Glibc
import Synchronization

/// The daemon's view of all domains: the catalog plus one supervisor per domain.
public final class Hypervisor: Sendable {
    public let catalog: Catalog
    let driver: any GuestDriver
    let hub = EventHub()
    let operations = OperationRegistry()
    private let bootPreparer: BootPreparer
    private let supervisors = Mutex<[String: DomainSupervisor]>([:])
    /// Volumes a storage operation is working on (`POOL/NAME`): a second one waits its turn by
    /// failing with a message, never interleaves its writes.
    let busyVolumes = Mutex<Set<String>>([])
    /// Logical pools' volume group size and free bytes, read with `vgs` at start, refresh and
    /// each volume change (pool-info is answered without running a tool).
    let groupSpace = Mutex<[String: (size: UInt64, free: UInt64)]>([:])
    /// Installs in progress: where each installer's console output began (`watchInstaller`).
    let installWatches = Mutex<[String: UInt64]>([:])
    /// The install operation that owns each domain's install now: `reinstall --force` takes it
    /// over, and the operation it replaced then ends without touching the domain.
    let installOwners = Mutex<[String: UUID]>([:])
    public let stateDirectory: String
    /// The first of this daemon's guest user IDs; nil when berthd cannot switch users (not root).
    let guestIDBlock: UInt32?
    /// Bridges, dnsmasq, nftables and taps.
    let networks: NetworkManager
    /// The address incoming migrations' one-time listeners bind (`--migration-listen`).
    let migrationHost: String
    /// How this berthd reaches a migration's destination (`--migration-tls-*`, `--migration-ssh-option`).
    let peerOptions: RemoteOptions
    /// Incoming migrations this host is the destination of.
    let incoming = Mutex<[String: IncomingMigration]>([:])
    /// Start slots and memory admission (`--start-limit`, `--memory-reserve`).
    let capacity: HostCapacity

    /// - Parameters:
    ///   - runtimeDirectory: where networks keep their dnsmasq files (default `<state>/run`).
    ///   - guestReachablePorts: host TCP ports guests on a network may reach (the media listener).
    ///   - migrationHost: where incoming migrations listen (an IPv4 address of this host).
    public init(
        catalog: Catalog, driver: any GuestDriver, bootPreparer: BootPreparer, stateDirectory: String,
        isolateGuests: Bool = GuestIdentity.canSwitch, runtimeDirectory: String? = nil, guestReachablePorts: [Int] = [],
        migrationHost: String = "127.0.0.1", peerOptions: RemoteOptions = RemoteOptions(),
        capacity: HostCapacity = HostCapacity(startLimit: HostCapacity.defaultStartLimit)
    ) throws {
        self.capacity = capacity
        self.catalog = catalog
        self.migrationHost = migrationHost
        self.peerOptions = peerOptions
        self.driver = driver
        self.bootPreparer = bootPreparer
        self.stateDirectory = stateDirectory
        let block = isolateGuests ? try catalog.guestIDBlock() : nil
        self.guestIDBlock = block
        self.networks = NetworkManager(
            catalog: catalog, runtimeDirectory: runtimeDirectory ?? stateDirectory + "/run", guestIDBlock: block,
            mediaPorts: guestReachablePorts, privileged: getuid() == 0)
    }

    /// Removes the kickstarts `berth install` published for `name` (`NAME-<32 hex>.ks`): they
    /// are served only while the install runs.
    static func withdrawKickstarts(of name: String, stateDirectory: String) {
        let directory = stateDirectory + "/kickstarts"
        let files = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        for file in files where file.hasPrefix(name + "-") && file.hasSuffix(".ks") {
            let token = file.dropFirst(name.count + 1).dropLast(3)
            guard token.count == 32, token.allSatisfy(\.isHexDigit) else { continue }
            unlink(directory + "/" + file)
        }
    }

    /// The user a domain's QEMU and bootloader run as.
    func identity(of name: String) throws -> GuestIdentity? {
        guard let guestIDBlock else { return nil }
        return GuestIdentity(block: guestIDBlock, domainID: try catalog.domainID(named: name))
    }

    /// The supervisor of a defined domain (created on first use).
    func supervisor(_ name: String) throws -> DomainSupervisor {
        _ = try catalog.domain(named: name)
        return supervisors.withLock { table in
            if let existing = table[name] { return existing }
            let networks = networks
            let capacity = capacity
            let created = DomainSupervisor(
                name: name, catalog: catalog, driver: driver, hub: hub, bootPreparer: bootPreparer,
                saveDirectory: stateDirectory + "/save", identity: { [weak self] in try self?.identity(of: name) },
                installFinished: { [weak self] in self?.installEnded(name) },
                prepareTaps: { spec in try await networks.prepareTaps(for: spec) },
                installerFailure: { [weak self] in self?.installerFailure(name) }, capacity: capacity)
            table[name] = created
            return created
        }
    }

    /// `install`/`kickstart`: what `berth install` keeps of a domain it made, stored in the
    /// same transaction as the definition.
    public func define(_ spec: DomainSpec, install: InstallRecord? = nil, kickstart: String? = nil) throws -> DomainInfo {
        let spec = try recordedForCatalog(spec)
        try checkAgainstHost(spec)
        let stored = try catalog.define(spec, install: install, kickstart: kickstart)
        try makeNVRAM(stored)
        networks.refreshReservations(reservedOn(stored))
        hub.publish(LifecycleEvent(domain: stored.name, kind: .defined, state: .shutoff))
        return try info(stored.name)
    }

    /// `next`: the definition that replaces this one when its guest powers off by itself (an
    /// installer's, the installed one), stored in the same transaction.
    @discardableResult
    public func update(_ spec: DomainSpec, next: (spec: DomainSpec, start: Bool)? = nil) throws -> DomainInfo {
        let spec = try recordedForCatalog(spec)
        try checkAgainstHost(spec)
        let previous = try? catalog.domain(named: spec.name).spec
        let recordedNext = try next.map { try recordedForCatalog($0.spec) }
        let stored =
            if let recordedNext, let next {
                try catalog.update(spec, next: recordedNext, start: next.start)
            } else {
                try catalog.update(spec)
            }
        try makeNVRAM(stored)
        if let recordedNext { try makeNVRAM(recordedNext) }
        networks.refreshReservations(reservedOn(stored).union(previous.map { reservedOn($0) } ?? []))
        hub.publish(LifecycleEvent(domain: stored.name, kind: .updated, state: try catalog.domain(named: stored.name).state))
        return try info(stored.name)
    }

    /// Removes a shut-off domain; its console log goes too unless `keepLogs`.
    public func undefine(_ name: String, keepLogs: Bool) async throws {
        let record = try catalog.domain(named: name)
        if let supervisor = supervisors.withLock({ $0[name] }), await supervisor.isRunning {
            throw BerthError(
                .wrongState, "Domain '\(name)' is running.",
                remedy: "Stop it with 'berth shutdown \(name)' or 'berth destroy \(name)' before undefining it.")
        }
        let managed = try catalog.managedSave(name)
        try catalog.undefine(name)
        networks.refreshReservations(reservedOn(record.spec))
        supervisors.withLock { _ = $0.removeValue(forKey: name) }
        // Its saved state can never be restored without the definition (the catalog row went with it).
        if let managed { unlink(managed.path) }
        removeNVRAM(record.spec)
        // The installer `berth install` fetched for it (kept for `reinstall`).
        try? FileManager.default.removeItem(atPath: Self.installDirectory(stateDirectory, name))
        if !keepLogs {
            let log = driver.consoleLogPath(record.spec)
            for path in [log] + (1...9).map({ "\(log).\($0)" }) { unlink(path) }
        }
        hub.publish(LifecycleEvent(domain: name, kind: .undefined, state: .shutoff))
    }

    /// The networks on which a domain's NICs reserve addresses.
    func reservedOn(_ spec: DomainSpec) -> Set<String> {
        Set(
            spec.nics.filter { $0.ip != nil }.compactMap { nic in
                nic.network ?? (nic.mode == .route ? nic.ip.flatMap { try? catalog.routedNetwork(containing: $0) } : nil)
            })
    }

    public func info(_ name: String) throws -> DomainInfo {
        let record = try catalog.domain(named: name)
        let live = [.running, .paused, .shuttingDown].contains(record.state)
        return DomainInfo(
            spec: record.spec, state: record.state, pid: record.pid, accel: record.accel,
            lastError: record.lastError, consoleLog: driver.consoleLogPath(record.spec),
            consoleSocket: live ? driver.consoleSocketPath(record.spec) : nil, startedAt: record.startedAt,
            managedSave: try catalog.managedSave(name), liveDisks: live ? try catalog.liveDisks(name).map(\.disk) : nil)
    }

    public func hostInfo() throws -> HostInfo {
        let summaries = try catalog.summaries()
        return HostInfo(
            hostname: ProcessInfo.processInfo.hostName, cpus: ProcessInfo.processInfo.activeProcessorCount,
            memoryMiB: Int(ProcessInfo.processInfo.physicalMemory >> 20), qemuVersion: driver.qemuVersion(),
            accelerator: driver.acceleratorVerdict(), stateDirectory: stateDirectory, domains: summaries.count,
            running: summaries.filter { $0.state == .running || $0.state == .paused }.count)
    }

    /// The definition as the catalog keeps it: every disk's format decided now, from the disk's
    /// first bytes when the definition gives none, and never guessed again at a start
    /// (CVE-2008-2004); a VNC display on TCP gets a password when it has none.
    func recordedForCatalog(_ spec: DomainSpec) throws -> DomainSpec {
        try spec.validate()  // before any disk of it is opened
        var spec = spec
        // Backing files come only from berthd's own records: a volume's, or the one this
        // domain's definition already has for that path (an external snapshot's overlay).
        let recorded = ((try? catalog.domain(named: spec.name).spec.disks) ?? []).filter { $0.backing != nil }
        for index in spec.disks.indices {
            spec.disks[index] = try resolveVolume(spec.disks[index])
            if spec.disks[index].volume == nil, let kept = recorded.first(where: { $0.path == spec.disks[index].path }) {
                spec.disks[index].backing = kept.backing
            }
            do {
                spec.disks[index] = try DiskFormat.recorded(spec.disks[index])
            } catch let error as BerthError where error.code == .notFound {
                throw BerthError(
                    .notFound, "The disk \(spec.disks[index].path) does not exist.",
                    remedy:
                        "Create it first ('berth vol-create-as default NAME 10G' and name the volume, or qemu-img create), or let 'berth install --disk size=' create it."
                )
            }
        }
        // After the disks: a new variable store goes beside the first one's file.
        spec = try recordedFirmware(spec)
        if var graphics = spec.graphics, graphics.listen != nil || graphics.port != nil, graphics.password == nil {
            // An open TCP display on the host is reachable by anything on that address.
            var generator = SystemRandomNumberGenerator()
            let alphabet = Array("abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789")
            // VNC's own authentication uses at most 8 characters (SPICE takes them too).
            graphics.password = String((0..<8).map { _ in alphabet[Int.random(in: 0..<alphabet.count, using: &generator)] })
            spec.graphics = graphics
            spec.notes.append(
                "\(graphics.kind.rawValue.uppercased()) on TCP got a generated password (see 'berth dumpconfig \(spec.name) --format json').")
        }
        return spec
    }

    /// The stored next definition of an install, recorded as `define` records (formats decided).
    public func setNextDefinition(_ name: String, _ spec: DomainSpec?, start: Bool) throws {
        let recorded = try spec.map(recordedForCatalog)
        try catalog.setNextDefinition(name, recorded, start: start)
        if let recorded { try makeNVRAM(recorded) }
    }

    /// Catalogs written before formats were recorded: decide each disk's format once, from its
    /// content now, and say so in the domain's notes.
    func recordMissingFormats() {
        guard let records = try? catalog.allDomains() else { return }
        for record in records where record.spec.disks.contains(where: { $0.format == nil }) {
            var spec = record.spec
            for index in spec.disks.indices where spec.disks[index].format == nil {
                guard let format = try? DiskFormat.detect(path: spec.disks[index].path) else { continue }
                spec.disks[index].format = format
                spec.notes.append(
                    "Disk \(spec.disks[index].path): format \(format.rawValue) recorded from its content by berthd; set \"format\" if that is wrong.")
            }
            if spec != record.spec { _ = try? catalog.update(spec) }
        }
    }

    /// Re-attaches to guests left running, settles those that died, starts autostart domains.
    public func recoverAll() async {
        recordMissingFormats()
        guard let records = try? catalog.allDomains() else { return }
        // Only domains with something to do: a shut-off domain that neither autostarts nor
        // resumes a save needs no supervisor yet (a catalog of 10,000 starts in no time).
        let resuming = try? catalog.domainsResumingAtDaemonStart()
        await withTaskGroup(of: Void.self) { group in
            for record in records
            where record.state != .shutoff || record.spec.autostart || resuming?.contains(record.spec.name) != false {
                guard let supervisor = try? supervisor(record.spec.name) else { continue }
                group.addTask { await supervisor.recover() }
            }
        }
    }

    func events() -> AsyncStream<LifecycleEvent> { hub.subscribe() }

    /// Restores a file written by `save` onto the domain it names (by name and UUID).
    func restore(_ path: String, state: SavedRunState?, progress: @escaping ProgressSink) async throws -> String {
        let opened = try SaveImage.open(path)
        let header = opened.header
        let supervisor: DomainSupervisor
        do {
            let record = try catalog.domain(named: header.domain)
            guard record.spec.uuid == header.uuid else {
                throw BerthError(
                    .wrongState,
                    "\(path) was saved from another domain named '\(header.domain)' (UUID \(header.uuid.uuidString.lowercased())); this one was defined since.",
                    remedy: "Start '\(header.domain)' afresh with 'berth start', or define the saved guest under its old UUID.")
            }
            supervisor = try self.supervisor(header.domain)
        } catch {
            close(opened.descriptor)
            if let error = error as? BerthError, error.code == .notFound {
                throw BerthError(
                    .notFound, "\(path) belongs to domain '\(header.domain)', which is not defined.",
                    remedy: "Define '\(header.domain)' again with the definition it was saved with, then restore.")
            }
            throw error
        }
        try await supervisor.restore(opened, path: path, state: state, progress: progress)
        return header.domain
    }

    /// The domain a save file belongs to, for the operation's name (nil when unreadable).
    func savedDomain(_ path: String) -> String? {
        guard let opened = try? SaveImage.open(path) else { return nil }
        close(opened.descriptor)
        return opened.header.domain
    }

    /// `berthd --on-shutdown save`: every running guest to a managed save, resumed when berthd
    /// starts again (libvirt-guests' ON_SHUTDOWN=suspend). One at a time: they share the disk.
    public func saveRunningGuests(log: @Sendable (String) -> Void) async {
        let all = supervisors.withLock { Array($0.values) }
        for supervisor in all where await supervisor.isRunning {
            do {
                try await supervisor.managedSave(resumeAtDaemonStart: true) { _, _ in }
                log("saved '\(supervisor.name)' for the next start")
            } catch {
                log("could not save '\(supervisor.name)' (it keeps running): \(error)")
            }
        }
    }

    /// What only the host can tell: the kernel and initrd exist and are readable, and the
    /// domain does not ask for more memory than the host has. (Disks were checked when their
    /// formats were recorded.)
    func checkAgainstHost(_ spec: DomainSpec) throws {
        try spec.validate()
        for (role, path) in [("kernel", spec.kernel), ("initrd", spec.initrd)] {
            guard let path else { continue }
            guard access(path, R_OK) == 0 else {
                let why = access(path, F_OK) == 0 ? "is not readable" : "does not exist"
                throw BerthError(
                    .notFound, "The \(role) \(path) \(why).",
                    remedy: "Give the path of a \(role) file on the daemon's host (berthd runs as \(getuid() == 0 ? "root" : "user \(getuid())")).")
            }
        }
        let hostMiB = Int(ProcessInfo.processInfo.physicalMemory >> 20)
        if spec.memory > hostMiB {
            throw BerthError(
                .invalidArgument, "Domain '\(spec.name)' asks for \(spec.memory) MiB but this host has \(hostMiB) MiB.",
                remedy: "Lower \"memory\".")
        }
    }
}
