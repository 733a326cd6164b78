import BerthModel
import BerthQEMU
import FoundationEssentials
import Glibc
import Synchronization

/// Runs guests as daemonized QEMU processes (BerthQEMU), one runtime directory per domain.
public struct QEMUGuestDriver: GuestDriver {
    let runtimeRoot: String
    let logRoot: String
    let binary: String?
    let verdict: AcceleratorVerdict
    let version: String?
    /// The console log's size cap, enforced while the guest runs (a guest printing without
    /// end must not fill the state disk), and how many rotated logs are kept.
    let consoleLogCap: (maxBytes: UInt64, keep: Int)
    /// What `cpuFeatures(accel:)` found, per accelerator: probed once per berthd run.
    private let cpuCache = CPUFeatureCache()
    /// Unpacked kernels for microvm's PVH boot; nil boots every bzImage as it is.
    let pvhKernels: PVHKernels?

    /// Probes the host once: the accelerator verdict and QEMU's binary and version.
    public init(
        runtimeRoot: String, logRoot: String, qemuOverride: String? = nil, accelOverride: Accelerator? = nil,
        consoleLogCap: (maxBytes: UInt64, keep: Int) = (1 << 20, 5), pvhKernels: PVHKernels? = nil
    ) async {
        self.runtimeRoot = runtimeRoot
        self.pvhKernels = pvhKernels
        self.logRoot = logRoot
        self.consoleLogCap = consoleLogCap
        let (verdict, qemu) = await AcceleratorProbe.hostCheck(qemuOverride: qemuOverride)
        var chosen = verdict
        if let accelOverride, accelOverride != .auto {
            chosen.chosen = accelOverride
            chosen.reason = "set by berthd --accel \(accelOverride.rawValue) (probe said: \(verdict.reason))"
        }
        self.verdict = chosen
        self.binary = qemu?.path
        self.version = qemu?.version
    }

    func paths(_ spec: DomainSpec) -> RuntimePaths {
        RuntimePaths(runtimeRoot: runtimeRoot, logRoot: logRoot, name: spec.name, uuid: spec.uuid)
    }

    public func start(_ spec: DomainSpec, boot: BootFiles?, taps: [Int: Int32], identity: GuestIdentity?) async throws
        -> any GuestInstance
    {
        try await launch(spec, boot: boot, taps: taps, identity: identity, paused: false, incoming: false)
    }

    public func startPaused(
        _ spec: DomainSpec, boot: BootFiles?, taps: [Int: Int32], identity: GuestIdentity?, incoming: Bool
    ) async throws -> any GuestInstance {
        try await launch(spec, boot: boot, taps: taps, identity: identity, paused: true, incoming: incoming)
    }

    private func launch(
        _ spec: DomainSpec, boot: BootFiles?, taps: [Int: Int32], identity: GuestIdentity?, paused: Bool, incoming: Bool
    ) async throws
        -> any GuestInstance
    {
        let binary = try binary ?? QEMUBinary.locate()
        let accel = try AcceleratorProbe.resolve(spec.accel, verdict: verdict)
        let paths = paths(spec)
        var pvhKernel: String?
        if let pvhKernels, let kernel = spec.kernel, QEMUCommandLine.bootsPVH(spec: spec, boot: boot, accel: accel) {
            pvhKernel = await pvhKernels.elf(for: kernel, identity: identity)
        }
        var commandLine = try QEMUCommandLine(spec: spec, accel: accel, paths: paths, boot: boot, taps: taps, pvhKernel: pvhKernel)
        // vCPUs stopped (-S), and waiting for `migrate-incoming` with a descriptor berthd passes.
        if paused { commandLine.arguments.append("-S") }
        if incoming { commandLine.arguments += ["-incoming", "defer"] }
        let process = try await QEMUProcess.launch(
            commandLine, binary: binary, paths: paths, identity: identity,
            logRotation: (consoleLogCap.maxBytes, consoleLogCap.keep))
        return QEMUGuest(process: process, accel: accel, logCap: consoleLogCap)
    }

    public func reattach(_ spec: DomainSpec) async -> (any GuestInstance)? {
        let paths = paths(spec)
        guard QEMUProcess.runningPID(uuid: spec.uuid, paths: paths) != nil else { return nil }
        guard let process = try? await QEMUProcess.attach(uuid: spec.uuid, paths: paths) else {
            // Alive but not reachable: nothing could stop it later.
            _ = await removeStray(spec)
            return nil
        }
        let accel = Self.accelerator(ofPID: process.pid)
        return QEMUGuest(process: process, accel: accel, logCap: consoleLogCap)
    }

    public func removeStray(_ spec: DomainSpec) async -> Int32? {
        guard let pid = QEMUProcess.runningPID(uuid: spec.uuid, paths: paths(spec)) else { return nil }
        kill(pid, SIGKILL)
        // Not berthd's child any more (init reaps it): wait until it is gone.
        for _ in 0..<500 where QEMUProcess.isAlive(pid: pid, uuid: spec.uuid) {
            try? await Task.sleep(for: .milliseconds(10))
        }
        return pid
    }

    public func consoleLogPath(_ spec: DomainSpec) -> String { paths(spec).consoleLog }
    public func consoleSocketPath(_ spec: DomainSpec) -> String { paths(spec).consoleSocket }
    public func vncSocketPath(_ spec: DomainSpec) -> String { paths(spec).vncSocket }
    public func spiceSocketPath(_ spec: DomainSpec) -> String { paths(spec).spiceSocket }
    public func acceleratorVerdict() -> AcceleratorVerdict { verdict }
    public func qemuVersion() -> String? { version }

    public func cpuFeatures(accel: Accelerator) async throws -> Set<String>? {
        if let known = cpuCache.features.withLock({ $0[accel] }) { return known }
        let binary = try binary ?? QEMUBinary.locate()
        let features = try await CPUFeatures.probe(binary: binary, accel: accel)
        cpuCache.features.withLock { $0[accel] = features }
        return features
    }

    /// Reads `-accel` back from a running QEMU's command line.
    static func accelerator(ofPID pid: Int32) -> Accelerator {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return .tcg }
        let arguments = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        if let index = arguments.firstIndex(of: "-accel"), index + 1 < arguments.count,
            arguments[index + 1].hasPrefix("kvm")
        {
            return .kvm
        }
        return .tcg
    }
}

/// The host's CPU features per accelerator, shared by the driver's copies.
final class CPUFeatureCache: Sendable {
    let features = Mutex<[Accelerator: Set<String>]>([:])
}

/// One running QEMU seen through the `GuestInstance` seam.
struct QEMUGuest: GuestInstance {
    let process: QEMUProcess
    let accel: Accelerator
    let events: AsyncStream<GuestEvent>

    init(process: QEMUProcess, accel: Accelerator, logCap: (maxBytes: UInt64, keep: Int)) {
        self.process = process
        self.accel = accel
        let (stream, continuation) = AsyncStream<GuestEvent>.makeStream()
        self.events = stream
        let qmpEvents = process.qmp.events
        // The console log is capped while the guest runs, not only at its next start.
        let watcher = Task {
            var lastFailure: String?
            while !Task.isCancelled {
                do {
                    _ = try process.paths.capConsoleLog(maxBytes: logCap.maxBytes, keep: logCap.keep)
                    lastFailure = nil
                } catch {
                    let failure = "\(error)"
                    if failure != lastFailure { continuation.yield(.consoleLogNotCapped(failure)) }
                    lastFailure = failure
                }
                try? await Task.sleep(for: .seconds(1))
            }
        }
        Task {
            for await event in qmpEvents {
                switch event.kind {
                case .shutdown(_, let reason): continuation.yield(.shutdown(ShutdownReason(qmp: reason)))
                case .reset: continuation.yield(.reset)
                case .stop: continuation.yield(.paused)
                case .resume: continuation.yield(.resumed)
                case .powerdown: continuation.yield(.powerdownRequested)
                case .guestPanicked: continuation.yield(.panicked)
                case .other: break
                }
            }
            // The QMP stream ends when the socket closes; the process may linger a moment.
            await process.waitForExit()
            watcher.cancel()
            process.paths.removeRuntimeFiles(includingDirectory: true)
            continuation.yield(.exited)
            continuation.finish()
        }
    }

    var pid: Int32 { process.pid }
    var qemuProcess: QEMUProcess? { process }

    func powerdown() async throws { try await execute("system_powerdown") }
    func reset() async throws { try await execute("system_reset") }
    func pause() async throws { try await execute("stop") }
    func resume() async throws { try await execute("cont") }
    func terminate() async { await process.stop(grace: .seconds(3)) }

    func blockResize(node: String, bytes: UInt64) async throws {
        guard bytes <= UInt64(Int64.max) else { throw BerthError(.invalidArgument, "\(bytes) bytes is too large.") }
        do {
            try await process.qmp.execute(
                "block_resize", arguments: ["node-name": .string(node), "size": .int(Int64(bytes))], timeout: .seconds(60))
        } catch let error as QMP.Error {
            throw BerthError(
                .unavailable, "QEMU could not resize \(node): \(error)",
                remedy: "The size must be a multiple of 512 bytes and not below the current size; see 'berth log' for the guest's side.")
        }
    }

    func attachDisk(node: String, disk: DiskSpec) async throws {
        try await process.hotplugDisk(node: node, disk: disk)
    }

    /// A guest under TCG on a loaded host may take long to answer the ACPI eject.
    func detachDisk(node: String, disk: DiskSpec) async throws {
        try await process.unplugDisk(node: node, disk: disk, timeout: .seconds(120))
    }

    func query(_ command: String) async throws -> QMP.Value {
        do {
            return try await process.qmp.execute(command, timeout: .seconds(5))
        } catch {
            throw BerthError(.unavailable, "QEMU did not answer \(command): \(error)", remedy: "See 'berth log' and the domain's QEMU log.")
        }
    }

    func save(to descriptor: Int32, progress: @escaping @Sendable (UInt64, UInt64) -> Void) async throws {
        try await process.migrateOut(to: descriptor, progress: progress)
    }

    func restore(from descriptor: Int32, length: UInt64, progress: @escaping @Sendable (UInt64, UInt64) -> Void)
        async throws
    {
        try await process.migrateIn(from: descriptor, total: length, progress: progress)
    }

    func snapshot(_ command: String, tag: String, vmstate: String?, devices: [String]) async throws {
        try await process.snapshotJob(command, tag: tag, vmstate: vmstate, devices: devices)
    }

    func addOverlays(_ overlays: [DiskOverlay]) async throws {
        try await process.addOverlays(overlays)
    }

    func commitOverlays(_ overlays: [DiskOverlay]) async throws -> [DiskOverlay] {
        try await process.commitOverlays(overlays)
    }

    private func execute(_ command: String) async throws {
        do {
            try await process.qmp.execute(command, timeout: .seconds(10))
        } catch {
            throw BerthError(
                .unavailable, "QEMU did not accept '\(command)': \(error)",
                remedy: "The guest's QEMU may have exited; see 'berth dominfo' and 'berth log'.")
        }
    }
}
