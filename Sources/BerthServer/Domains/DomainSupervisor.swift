import BerthModel
import BerthQEMU
import BerthStore
import FoundationEssentials
import Glibc

/// Owns one domain's running guest. Every operation on the domain goes through
/// `serialized`, so two `start` calls start one QEMU and a `destroy` issued during a
/// `start` runs after it and leaves the guest off. Exit handling is not queued: it only
/// records what happened and, by policy, queues a restart.
actor DomainSupervisor {
    let name: String
    let catalog: Catalog
    let driver: any GuestDriver
    private let hub: EventHub
    let bootPreparer: BootPreparer
    /// Where managed saves go (`<state>/save`).
    let saveDirectory: String
    /// The unprivileged user this domain's processes run as (nil: berthd's own user).
    let identity: @Sendable () throws -> GuestIdentity?
    /// Called when an installer hands over to the installed system (its kickstart, which may
    /// hold a root password, is withdrawn from the media listener then).
    private let installFinished: @Sendable () -> Void
    /// Makes a tap on its bridge for each NIC that is not user-mode.
    let prepareTaps: @Sendable (DomainSpec) async throws -> [Int: TapDevice]
    /// The installer's own failure report from its console, when an install is being watched:
    /// then the guest's power-off must not hand over to a disk that holds nothing.
    private let installerFailure: @Sendable () -> String?
    /// Start slots and memory admission, shared by every domain of the host.
    let capacity: HostCapacity
    /// When berthd itself started the guest again without being asked (on_crash, on_reboot,
    /// on_poweroff, autostart), most recent last; see `RestartThrottle`.
    private var throttle = RestartThrottle()

    /// The guest's QEMU and what berthd knows of its life; see `GuestState`.
    var guestState = GuestState.off
    private var queueTail: Task<Void, Never>?

    init(
        name: String, catalog: Catalog, driver: any GuestDriver, hub: EventHub, bootPreparer: BootPreparer,
        saveDirectory: String, identity: @escaping @Sendable () throws -> GuestIdentity?,
        installFinished: @escaping @Sendable () -> Void = {},
        prepareTaps: @escaping @Sendable (DomainSpec) async throws -> [Int: TapDevice] = { _ in [:] },
        installerFailure: @escaping @Sendable () -> String? = { nil },
        capacity: HostCapacity = HostCapacity(startLimit: HostCapacity.defaultStartLimit)
    ) {
        self.capacity = capacity
        self.saveDirectory = saveDirectory
        self.installFinished = installFinished
        self.prepareTaps = prepareTaps
        self.installerFailure = installerFailure
        self.name = name
        self.catalog = catalog
        self.driver = driver
        self.hub = hub
        self.bootPreparer = bootPreparer
        self.identity = identity
    }

    var instance: (any GuestInstance)? { guestState.instance }
    var isRunning: Bool { instance != nil }
    /// The running guest, for read-only queries that need not wait for queued operations.
    var runningInstance: (any GuestInstance)? { instance }

    /// Runs `operation` after every operation queued before it.
    func serialized<T: Sendable>(_ operation: @escaping @Sendable () async throws -> T) async throws -> T {
        let previous = queueTail
        let task = Task {
            await previous?.value
            return try await operation()
        }
        queueTail = Task { _ = try? await task.value }
        // Cancelling the caller (an operation cancelled with `berth domjobabort`) reaches the
        // operation itself: a migration stops and the guest stays here.
        return try await withTaskCancellationHandler {
            try await task.value
        } onCancel: {
            task.cancel()
        }
    }

    // MARK: - Operations

    /// Grows the running guest's disk at `path` (QMP `block_resize` on its format node).
    /// - Returns: false when the guest is not running or has no such disk (the caller resizes
    ///   the file instead).
    func blockResize(path: String, bytes: UInt64) async throws -> Bool {
        try await serialized {
            guard let instance = await self.instance,
                let live = try self.catalog.liveDisks(self.name).first(where: { $0.disk.path == path })
            else { return false }
            try await instance.blockResize(node: live.node, bytes: bytes)
            return true
        }
    }

    /// Plugs `disk` into the running guest under a new node (`hotN`), recorded as its live disk.
    func attachDisk(_ disk: DiskSpec) async throws {
        try await serialized {
            guard let instance = await self.instance else { throw await self.notRunning() }
            let live = try self.catalog.liveDisks(self.name)
            let target = disk.target ?? ""
            if DiskSpec.targets(live.map(\.disk)).contains(target) {
                throw BerthError(
                    .alreadyExists, "The running domain '\(self.name)' already has a disk \(target).",
                    remedy: "Choose a free target; see 'berth domblklist \(self.name)'.")
            }
            if let same = live.first(where: { $0.disk.path == disk.path }) {
                throw BerthError(
                    .alreadyExists, "\(disk.path) is already a disk of the running domain '\(self.name)' (node \(same.node)).",
                    remedy: "Detach it first, or attach another disk.")
            }
            var number = 0
            while live.contains(where: { $0.node == "hot\(number)" }) { number += 1 }
            let entry = LiveDisk(node: "hot\(number)", disk: disk)
            // The claim first (another domain's writable disk is refused before QEMU sees it).
            try self.catalog.addLiveDisk(self.name, entry)
            do {
                try await instance.attachDisk(node: entry.node, disk: disk)
            } catch {
                try? self.catalog.removeLiveDisk(self.name, node: entry.node)
                throw error
            }
        }
        publish(.diskAttached, detail: disk.path)
    }

    /// Unplugs the running guest's disk whose target or path is `target`.
    /// - Returns: the disk unplugged.
    func detachDisk(_ target: String) async throws -> DiskSpec {
        let disk = try await serialized {
            guard let instance = await self.instance else { throw await self.notRunning() }
            let live = try self.catalog.liveDisks(self.name)
            let names = DiskSpec.targets(live.map(\.disk))
            guard let index = live.indices.first(where: { names[$0] == target || live[$0].disk.path == target }) else {
                throw BerthError(
                    .notFound, "The running domain '\(self.name)' has no disk \(target).",
                    remedy: "See its disks with 'berth domblklist \(self.name)'.")
            }
            try await instance.detachDisk(node: live[index].node, disk: live[index].disk)
            try self.catalog.removeLiveDisk(self.name, node: live[index].node)
            return live[index].disk
        }
        publish(.diskDetached, detail: disk.path)
        return disk
    }

    /// - Parameter note: told when the start waits for a slot (`HostCapacity`), for the
    ///   operation's messages.
    func start(note: @escaping @Sendable (String) -> Void = { _ in }) async throws {
        try await serialized {
            try await self.performStart(note: note)
            await self.resetThrottle()
        }
    }

    private func resetThrottle() { throttle = RestartThrottle() }

    func shutdown(timeout: Duration) async throws {
        try await serialized { try await self.performShutdown(timeout: timeout) }
    }

    func destroy() async throws {
        try await serialized { try await self.performDestroy() }
    }

    func reboot() async throws {
        try await serialized { try await self.performReboot() }
    }

    func suspend() async throws {
        try await serialized { try await self.performPause(true) }
    }

    func resume() async throws {
        try await serialized { try await self.performPause(false) }
    }

    /// Called once when the daemon starts: re-attach to a guest an earlier daemon left
    /// running, or record that it died while no daemon watched it.
    func recover() async {
        guard let record = try? catalog.domain(named: name) else { return }
        if [.running, .paused, .starting, .shuttingDown, .crashed].contains(record.state) {
            if let found = await driver.reattach(record.spec) {
                attach(found, spec: record.spec, state: record.state == .paused ? .paused : .running, fresh: false)
                publish(.reattached, detail: "pid \(found.pid)")
                return
            }
            report { try self.catalog.setLiveDisks(self.name, nil) }
            guard record.state != .crashed else { return }
            if record.state == .starting {
                // A start that never finished may be what ended the last berthd: settle it and
                // leave it off, never run it again blindly (not even for autostart).
                let reason =
                    "berthd stopped while this domain was starting; it was not started again. Start it with 'berth start \(name)' once the cause is fixed."
                report { try self.observe(.shutoff, lastError: reason) }
                report { try self.catalog.setDesiredState(self.name, .shutoff) }
                publish(.stopped, detail: reason)
                return
            }
            let reason = "QEMU (pid \(record.pid.map(String.init) ?? "?")) exited while berthd was not running."
            report { try self.observe(.crashed, lastError: reason) }
            publish(.crashed, detail: reason)
            if record.spec.onCrash == .restart {
                queueRestart()
                return
            }
        }
        // The catalog says off, yet a QEMU of this domain may run: a start (an installer's
        // among them) that the last berthd began but did not record. It holds the disks.
        if instance == nil, let pid = await driver.removeStray(record.spec) {
            publish(.stopped, detail: "stopped QEMU (pid \(pid)), left by a start the last berthd did not finish")
        }
        if instance == nil, record.spec.autostart || (try? catalog.managedSave(name))?.resumeAtDaemonStart == true {
            queueRestart()
        }
    }

    // MARK: - Implementation

    /// Starts the guest in a start slot, once its memory is admitted; a refusal leaves it off
    /// with the reason and nothing started.
    func performStart(note: @escaping @Sendable (String) -> Void = { _ in }) async throws {
        if instance != nil {
            throw BerthError(
                .wrongState, "Domain '\(name)' is already running.",
                remedy: "Stop it first with 'berth shutdown \(name)' or 'berth destroy \(name)'.")
        }
        let limit = capacity.startLimit
        let (hub, name) = (hub, name)
        let state = (try? catalog.domain(named: name).state) ?? .shutoff
        try await capacity.acquireStartSlot { ahead in
            let text =
                "Waiting for a start slot: \(ahead) start\(ahead == 1 ? "" : "s") ahead (berthd starts \(limit) guests at a time, --start-limit)."
            note(text)
            hub.publish(LifecycleEvent(domain: name, kind: .startWaiting, state: state, detail: text))
        }
        defer { capacity.releaseStartSlot() }
        let record = try catalog.domain(named: name)
        do {
            try capacity.admit(name, memoryMiB: record.spec.memory)
        } catch {
            report { try self.observe(.shutoff, lastError: "Start refused: \((error as? BerthError)?.description ?? "\(error)")") }
            report { try self.catalog.setDesiredState(self.name, .shutoff) }
            throw error
        }
        do {
            try await startAdmitted(record)
        } catch {
            capacity.released(name)
            throw error
        }
    }

    private func startAdmitted(_ record: DomainRecord) async throws {
        // A managed save is where the guest left off: resume it rather than boot afresh.
        if let managed = try catalog.managedSave(name) {
            try await resumeManagedSave(managed)
            return
        }
        try catalog.setDesiredState(name, .running)
        try observe(.starting)
        let spec = record.spec
        let started: any GuestInstance
        do {
            if let problem = spec.bootProblem {
                throw BerthError(
                    .invalidArgument, problem,
                    remedy:
                        "Give it a disk or CD-ROM, a kernel, or a boot order naming a device it has ('berth define --update \(name) FILE'); --pxe needs a NIC on a network that serves a boot file."
                )
            }
            started = try await launch(spec)
        } catch {
            let message = (error as? BerthError)?.description ?? "\(error)"
            report { try self.observe(.shutoff, lastError: "Start failed: \(message)") }
            report { try self.catalog.setDesiredState(self.name, .shutoff) }
            throw error
        }
        attach(started, spec: spec, state: .running)
        publish(.started, detail: "pid \(started.pid), \(started.accel.rawValue)")
    }

    /// Launches QEMU for `spec` as the guest's user: its boot files, its taps, then the driver;
    /// `paused` keeps the vCPUs stopped (`-S`), `incoming` waits for state (`-incoming defer`).
    func launch(_ spec: DomainSpec, paused: Bool = false, incoming: Bool = false) async throws -> any GuestInstance {
        let spec = try currentExtents(spec)
        let identity = try identity()
        let boot = try await bootPreparer.prepare(spec, identity)
        // berthd's copies of the taps are closed once QEMU holds its own (or failed to start:
        // then the taps vanish with them).
        let taps = try await prepareTaps(spec)
        defer { taps.values.forEach { $0.close() } }
        guard paused else { return try await driver.start(spec, boot: boot, taps: taps.mapValues(\.fd), identity: identity) }
        return try await driver.startPaused(spec, boot: boot, taps: taps.mapValues(\.fd), identity: identity, incoming: incoming)
    }

    /// Each disk on a logical volume gets the volume's range as the catalog has it now: an
    /// upload or a resize may have moved the LV since the domain was defined.
    private func currentExtents(_ spec: DomainSpec) throws -> DomainSpec {
        var spec = spec
        for index in spec.disks.indices where spec.disks[index].extent != nil {
            let parts = (spec.disks[index].volume ?? "").split(separator: "/", maxSplits: 1).map(String.init)
            guard parts.count == 2, let volume = try? catalog.volume(pool: parts[0], name: parts[1]) else { continue }
            guard let extent = volume.extent else {
                throw BerthError(
                    .invalidArgument,
                    "Logical volume \(volume.key) now has several segments; without device-mapper Berth can hand QEMU only a single-segment LV.",
                    remedy: "Copy its data to a new volume of the size needed and give the domain that one.")
            }
            spec.disks[index].extent = extent
        }
        return spec
    }

    private func performShutdown(timeout: Duration) async throws {
        guard let instance else { throw notRunning() }
        let spec = try catalog.domain(named: name).spec
        guard spec.acpi else {
            throw BerthError(
                .wrongState, "Domain '\(name)' has no ACPI, so it cannot see a power-button press.",
                remedy: "Stop it with 'berth destroy \(name)' (or 'berth shutdown --force \(name)').")
        }
        guestState = .stopping(instance, publishing: .stopped, detail: "requested")
        try catalog.setDesiredState(name, .shutoff)
        try observe(.shuttingDown, pid: instance.pid, accel: instance.accel)
        publish(.shutdownRequested)
        do {
            try await instance.powerdown()
        } catch {
            guestState.stopRequestWithdrawn(from: instance)
            try observe(.running, pid: instance.pid, accel: instance.accel)
            throw error
        }
        if await waitForExit(of: instance, timeout: timeout) { return }
        guestState.stopRequestWithdrawn(from: instance)
        try observe(.running, pid: instance.pid, accel: instance.accel)
        throw BerthError(
            .timeout,
            "Domain '\(name)' did not power off within \(timeout.components.seconds) s of the ACPI power button.",
            remedy:
                "A guest without ACPI power-button handling (no acpid, no 'button' driver) ignores it, a known trap with libvirt and Multipass too. Force it off with 'berth destroy \(name)', or wait longer with '--timeout'."
        )
    }

    private func performDestroy() async throws {
        guard let instance else { throw notRunning() }
        guestState = .stopping(instance, publishing: .stopped, detail: "requested")
        try catalog.setDesiredState(name, .shutoff)
        await instance.terminate()
        _ = await waitForExit(of: instance, timeout: .seconds(10))
        if self.instance?.pid == instance.pid {
            // The event stream did not report the exit in time; the process is gone, so settle here.
            finishExit(of: instance)
        }
    }

    private func performReboot() async throws {
        guard let instance else { throw notRunning() }
        let before = guestState
        guestState = .rebooting(instance)
        do {
            try await instance.reset()
        } catch {
            if guestState.instance?.pid == instance.pid { guestState = before }
            throw error
        }
        // With -no-reboot QEMU exits on reset; exit handling queues the new start after us.
        _ = await waitForExit(of: instance, timeout: .seconds(30))
    }

    private func performPause(_ pause: Bool) async throws {
        guard let instance else { throw notRunning() }
        if pause { try await instance.pause() } else { try await instance.resume() }
        try observe(pause ? .paused : .running, pid: instance.pid, accel: instance.accel)
        publish(pause ? .suspended : .resumed)
    }

    func notRunning() -> BerthError {
        BerthError(.wrongState, "Domain '\(name)' is not running.", remedy: "Start it with 'berth start \(name)'.")
    }

    // MARK: - Watching the guest

    /// - Parameter fresh: a QEMU berthd just started (its disks are the definition's, `diskN`);
    ///   false for one re-attached after a berthd restart (its recorded disks stay).
    func attach(_ started: any GuestInstance, spec: DomainSpec, state observed: DomainState, fresh: Bool = true) {
        guestState = .running(started, shutdown: nil)
        capacity.attached(name, memoryMiB: spec.memory, pid: started.pid)
        if fresh || (try? catalog.hasLiveDisks(name)) == false {
            let disks = spec.disks.enumerated().map { LiveDisk(node: "disk\($0.offset)", disk: $0.element) }
            report { try self.catalog.setLiveDisks(self.name, disks) }
        }
        report { try self.observe(observed, pid: started.pid, accel: started.accel, startedAt: Date()) }
        Task { [weak self] in
            for await event in started.events {
                await self?.handle(event, from: started)
            }
            await self?.handle(.exited, from: started)
        }
    }

    private func handle(_ event: GuestEvent, from source: any GuestInstance) async {
        guard let instance, instance.pid == source.pid else { return }
        switch event {
        case .paused:
            if !guestState.isPanicked { report { try self.observe(.paused, pid: instance.pid, accel: instance.accel) } }
        case .resumed:
            report { try self.observe(.running, pid: instance.pid, accel: instance.accel) }
        case .powerdownRequested, .reset:
            break
        case .panicked:
            guestState = .panicked(instance)
            let policy = (try? catalog.domain(named: name).spec.onCrash) ?? .destroy
            report { try self.observe(.crashed, pid: instance.pid, accel: instance.accel, lastError: "The guest kernel panicked.") }
            publish(.crashed, detail: "guest panic; on_crash=\(policy.rawValue)")
            if policy != .preserve { await instance.terminate() }
        case .shutdown(let reason):
            guestState.record(reason)
        case .consoleLogNotCapped(let reason):
            publish(.consoleLogError, detail: "The console log is not being capped: \(reason)")
        case .exited:
            finishExit(of: instance)
        }
    }

    /// Settles the catalog after QEMU exits and applies the domain's lifecycle policy.
    func finishExit(of gone: any GuestInstance) {
        guard instance?.pid == gone.pid else { return }
        let ended = guestState
        guestState = .off
        report { try self.catalog.setLiveDisks(self.name, nil) }
        capacity.released(name)
        let spec = try? catalog.domain(named: name).spec
        switch ended {
        case .off:
            return
        case .stopping(_, let kind, let detail):
            report { try self.observe(.shutoff) }
            publish(kind, detail: detail)
        case .panicked:
            report { try self.observe(.crashed, lastError: "The guest kernel panicked.") }
            if spec?.onCrash == .restart { queueRestart() }
        case .rebooting:
            publish(.rebooted)
            report { try self.observe(.starting) }
            queueRestart()
        case .running(_, let reason):
            if let reason, reason.isGuestsOwn, handOverToNextDefinition(after: reason) { return }
            applyExitPolicy(reason: reason, spec: spec)
        }
    }

    /// After an installer powers off or reboots, the installed definition takes over.
    /// - Returns: whether there was one.
    private func handOverToNextDefinition(after reason: ShutdownReason) -> Bool {
        guard (try? catalog.hasNextDefinition(name)) == true else { return false }
        if let words = installerFailure() {
            // The installed definition takes over, as after a good install, but is not started:
            // its disk holds nothing to boot. 'berth reinstall' runs the installer again.
            _ = reporting { try self.catalog.applyNextDefinition(self.name) }
            report { try self.observe(.shutoff, lastError: "The installer failed: \(words)") }
            installFinished()
            publish(.installFailed, detail: words)
            return true
        }
        guard let start = reporting({ try self.catalog.applyNextDefinition(self.name) }) ?? nil else { return false }
        report { try self.observe(.shutoff) }
        installFinished()
        publish(.redefined, detail: "the guest's next definition took over after \(reason)")
        if start { queueRestart() }
        return true
    }

    /// What the guest's own power-off, reboot or crash leads to (on_poweroff, on_reboot, on_crash).
    private func applyExitPolicy(reason: ShutdownReason?, spec: DomainSpec?) {
        switch reason {
        case .guestReset, .hostReset:
            if spec?.onReboot == .restart {
                publish(.rebooted)
                report { try self.observe(.starting) }
                queueRestart()
            } else {
                report { try self.observe(.shutoff) }
                publish(.stopped, detail: "guest rebooted; on_reboot=\(spec?.onReboot.rawValue ?? "destroy")")
            }
        case .guestPowerOff:
            if spec?.onPoweroff == .restart {
                publish(.restarting, detail: "guest powered off; on_poweroff=restart")
                queueRestart()
            } else {
                report { try self.observe(.shutoff) }
                publish(.stopped, detail: "guest powered off")
            }
        case .other, nil:
            let message =
                "QEMU exited unexpectedly (shutdown reason: \(reason?.description ?? "none")); see 'berth log \(name)'."
            report { try self.observe(.crashed, lastError: message) }
            publish(.crashed, detail: message)
            if spec?.onCrash == .restart { queueRestart() }
        }
    }

    /// Starts the guest again on berthd's own initiative, unless it has been restarted too
    /// often lately (a crash loop, or a start that keeps failing): then it stays off and says why.
    private func queueRestart() {
        guard throttle.allow(now: ContinuousClock.now) else {
            let reason =
                "Restarted \(RestartThrottle.limit) times within \(RestartThrottle.window.components.seconds) s; berthd stopped restarting it. Fix the cause (see 'berth log \(name)'), then start it with 'berth start \(name)'."
            let state = (try? catalog.domain(named: name).state) == .crashed ? DomainState.crashed : .shutoff
            report { try self.observe(state, lastError: reason) }
            report { try self.catalog.setDesiredState(self.name, .shutoff) }
            publish(.restartRefused, detail: reason)
            return
        }
        Task { [weak self] in
            guard let self else { return }
            do { try await self.serialized { try await self.performStart() } } catch {
                await self.publish(.startFailed, detail: "\(error)")
                // A guest refused for memory stays off with that reason; retrying at once
                // would find no more memory.
                if !HostCapacity.isRefusal(error) { await self.restartAfterFailedStart() }
            }
        }
    }

    /// An automatic start that failed is retried under the same throttle when the domain is
    /// meant to come back by itself (on_crash=restart or autostart).
    private func restartAfterFailedStart() {
        guard let spec = try? catalog.domain(named: name).spec, spec.onCrash == .restart || spec.autostart else { return }
        queueRestart()
    }

    /// Polls until `target` has exited and been settled, or `timeout` passes. After
    /// `terminate` the exit is settled a moment later: the poll starts at 2 ms and grows to
    /// 20 ms, so `berth save` (which waits for it) does not pay a whole 20 ms step and a long
    /// shutdown wait costs no more than before.
    func waitForExit(of target: any GuestInstance, timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        var step = Duration.milliseconds(2)
        while instance?.pid == target.pid {
            if ContinuousClock.now >= deadline { return false }
            try? await Task.sleep(for: step)
            step = min(step * 2, .milliseconds(20))
        }
        return true
    }

    // MARK: - Catalog and events

    /// Runs a catalog write that has no caller to throw to (exit handling, recovery): a failure
    /// is published as a `catalog-error` event, never dropped.
    func report(_ write: () throws -> Void) {
        _ = reporting(write)
    }

    func reporting<T>(_ write: () throws -> T) -> T? {
        do {
            return try write()
        } catch {
            hub.publish(
                LifecycleEvent(
                    domain: name, kind: .catalogError, state: .crashed,
                    detail: "berthd could not record this domain's state: \(error)"))
            return nil
        }
    }

    func observe(
        _ state: DomainState, pid: Int32? = nil, accel: Accelerator? = nil, lastError: String? = nil,
        startedAt: Date? = nil
    ) throws {
        let previous = try? catalog.domain(named: name)
        let observed = ObservedState(
            state: state, pid: pid, accel: accel,
            lastError: lastError ?? (state == .running ? nil : previous?.lastError),
            startedAt: startedAt ?? (pid == nil ? nil : previous?.startedAt))
        try catalog.setObserved(name, observed)
    }

    func publish(_ kind: LifecycleEvent.Kind, detail: String? = nil) {
        let state = (try? catalog.domain(named: name).state) ?? .shutoff
        hub.publish(LifecycleEvent(domain: name, kind: kind, state: state, detail: detail))
    }
}

/// What a supervisor's guest is doing, as one value: everything berthd learns about one QEMU
/// (a stop it asked for, a panic, the reason QEMU gave for ending) lives in its case and goes
/// with it, so none of it can leak into the next start.
enum GuestState {
    /// No QEMU runs.
    case off
    /// QEMU runs and nobody asked it to end; `shutdown` is QEMU's announcement once it made one.
    case running(any GuestInstance, shutdown: ShutdownReason?)
    /// The guest kernel panicked; QEMU is ending, or kept for inspection (on_crash=preserve).
    case panicked(any GuestInstance)
    /// berthd asked QEMU to end (shutdown, destroy, save, a failed revert); its exit is not a
    /// crash and publishes `kind` (a save publishes `saved`, not `stopped`).
    case stopping(any GuestInstance, publishing: LifecycleEvent.Kind, detail: String)
    /// `berth reboot`: QEMU exits on the reset (-no-reboot) and is started again, whatever
    /// on_reboot says.
    case rebooting(any GuestInstance)

    var instance: (any GuestInstance)? {
        switch self {
        case .off: nil
        case .running(let guest, _), .panicked(let guest), .stopping(let guest, _, _), .rebooting(let guest): guest
        }
    }

    var isPanicked: Bool {
        if case .panicked = self { return true }
        return false
    }

    /// QEMU said why it is ending; only an unrequested end needs the reason.
    mutating func record(_ reason: ShutdownReason) {
        if case .running(let guest, _) = self { self = .running(guest, shutdown: reason) }
    }

    /// A shutdown that failed or timed out: the guest runs on as if never asked.
    mutating func stopRequestWithdrawn(from guest: any GuestInstance) {
        if case .stopping(let stopping, _, _) = self, stopping.pid == guest.pid { self = .running(guest, shutdown: nil) }
    }
}

/// Turns a domain with `bootloader` into boot files extracted from its disk (as the guest's
/// user, when given); direct-kernel domains pass through unchanged (nil).
public struct BootPreparer: Sendable {
    public let prepare: @Sendable (DomainSpec, GuestIdentity?) async throws -> BootFiles?

    public init(prepare: @escaping @Sendable (DomainSpec, GuestIdentity?) async throws -> BootFiles?) {
        self.prepare = prepare
    }
}

/// xend refused to restart a domain again within 20 s of its last restart, and libvirt backs
/// off; Berth allows `limit` automatic restarts in any `window`, then leaves the domain off
/// with the reason. A start the user asks for resets it.
struct RestartThrottle {
    static let limit = 5
    static let window = Duration.seconds(60)
    private var recent: [ContinuousClock.Instant] = []

    mutating func allow(now: ContinuousClock.Instant) -> Bool {
        recent.removeAll { now - $0 > Self.window }
        guard recent.count < Self.limit else { return false }
        recent.append(now)
        return true
    }
}
