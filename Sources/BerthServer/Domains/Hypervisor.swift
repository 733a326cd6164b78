import BerthModel
import BerthStore
import Foundation
import Synchronization

/// The daemon's view of all domains: the catalog plus one supervisor per domain.
public final class Hypervisor: Sendable {
    public let catalog: Catalog
    let driver: any GuestDriver
    let hub = EventHub()
    let operations = OperationRegistry()
    private let bootPreparer: BootPreparer
    private let supervisors = Mutex<[String: DomainSupervisor]>([:])
    public let stateDirectory: String

    public init(catalog: Catalog, driver: any GuestDriver, bootPreparer: BootPreparer, stateDirectory: String) {
        self.catalog = catalog
        self.driver = driver
        self.bootPreparer = bootPreparer
        self.stateDirectory = stateDirectory
    }

    /// The supervisor of a defined domain (created on first use).
    func supervisor(_ name: String) throws -> DomainSupervisor {
        _ = try catalog.domain(named: name)
        return supervisors.withLock { table in
            if let existing = table[name] { return existing }
            let created = DomainSupervisor(
                name: name, catalog: catalog, driver: driver, hub: hub, bootPreparer: bootPreparer)
            table[name] = created
            return created
        }
    }

    public func define(_ spec: DomainSpec) throws -> DomainInfo {
        try checkAgainstHost(spec)
        let stored = try catalog.define(spec)
        hub.publish(LifecycleEvent(domain: stored.name, kind: "defined", state: .shutoff))
        return try info(stored.name)
    }

    public func update(_ spec: DomainSpec) throws -> DomainInfo {
        try checkAgainstHost(spec)
        let stored = try catalog.update(spec)
        hub.publish(LifecycleEvent(domain: stored.name, kind: "updated", state: try catalog.domain(named: stored.name).state))
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
        try catalog.undefine(name)
        supervisors.withLock { _ = $0.removeValue(forKey: name) }
        if !keepLogs {
            let log = driver.consoleLogPath(record.spec)
            for path in [log] + (1...9).map({ "\(log).\($0)" }) { unlink(path) }
        }
        hub.publish(LifecycleEvent(domain: name, kind: "undefined", state: .shutoff))
    }

    public func info(_ name: String) throws -> DomainInfo {
        let record = try catalog.domain(named: name)
        let live = [.running, .paused, .shuttingDown].contains(record.state)
        return DomainInfo(
            spec: record.spec, state: record.state, pid: record.pid, accel: record.accel,
            lastError: record.lastError, consoleLog: driver.consoleLogPath(record.spec),
            consoleSocket: live ? driver.consoleSocketPath(record.spec) : nil, startedAt: record.startedAt)
    }

    public func hostInfo() throws -> HostInfo {
        let summaries = try catalog.summaries()
        return HostInfo(
            hostname: ProcessInfo.processInfo.hostName, cpus: ProcessInfo.processInfo.activeProcessorCount,
            memoryMiB: Int(ProcessInfo.processInfo.physicalMemory >> 20), qemuVersion: driver.qemuVersion(),
            accelerator: driver.acceleratorVerdict(), stateDirectory: stateDirectory, domains: summaries.count,
            running: summaries.filter { $0.state == .running || $0.state == .paused }.count)
    }

    /// Re-attaches to guests left running, settles those that died, starts autostart domains.
    public func recoverAll() async {
        guard let records = try? catalog.allDomains() else { return }
        await withTaskGroup(of: Void.self) { group in
            for record in records {
                guard let supervisor = try? supervisor(record.spec.name) else { continue }
                group.addTask { await supervisor.recover() }
            }
        }
    }

    func events() -> AsyncStream<LifecycleEvent> { hub.subscribe() }

    /// What only the host can tell: files the domain names exist and are readable, and it
    /// does not ask for more memory than the host has.
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
        for disk in spec.disks where access(disk.path, F_OK) != 0 {
            throw BerthError(
                .notFound, "The disk \(disk.path) does not exist.",
                remedy: "Create it first (qemu-img create -f qcow2 \(disk.path) 10G), or let 'berth install --disk size=' create it.")
        }
        let hostMiB = Int(ProcessInfo.processInfo.physicalMemory >> 20)
        if spec.memory > hostMiB {
            throw BerthError(
                .invalidArgument, "Domain '\(spec.name)' asks for \(spec.memory) MiB but this host has \(hostMiB) MiB.",
                remedy: "Lower \"memory\".")
        }
    }
}
