import BerthModel
import BerthQEMU
import BerthStore
import FoundationEssentials
import Glibc

/// Live migration, the parts that change this domain's guest: the source's end (its QEMU goes
/// once the destination runs the guest) and the destination's QEMU waiting for the state. The
/// streams and the conversation with the other berthd are in `Hypervisor+Migration.swift`.
extension DomainSupervisor {
    /// Runs `move` while no other operation runs on this domain. `move` returns once the guest
    /// runs on the destination (then this guest's QEMU ends and the domain is shut off here),
    /// or throws with the guest running here as before.
    func migrateOut(
        _ move: @escaping @Sendable (any GuestInstance, DomainRecord) async throws -> String
    ) async throws {
        try await serialized { try await self.performMigrateOut(move) }
    }

    private func performMigrateOut(_ move: @Sendable (any GuestInstance, DomainRecord) async throws -> String) async throws {
        guard let instance else { throw notRunning() }
        let record = try catalog.domain(named: name)
        guard [.running, .paused].contains(record.state), !guestState.isPanicked else {
            throw BerthError(
                .wrongState, "Domain '\(name)' is \(record.state.rawValue); only a running or paused guest can be migrated.",
                remedy: "Start it first ('berth start \(name)'), or copy its definition and disks instead.")
        }
        let detail = try await move(instance, record)
        await endMigratedSource(instance, detail: detail)
    }

    /// The guest runs elsewhere now: this QEMU (paused in `postmigrate`) ends, and the domain
    /// is shut off here with the event `migrated`.
    func endMigratedSource(_ instance: any GuestInstance, detail: String) async {
        guestState = .stopping(instance, publishing: .migrated, detail: detail)
        report { try self.catalog.setDesiredState(self.name, .shutoff) }
        await instance.terminate()
        _ = await waitForExit(of: instance, timeout: .seconds(10))
        if self.instance?.pid == instance.pid { finishExit(of: instance) }
    }

    /// Destination: starts this (just defined) domain's QEMU paused, waiting for incoming state.
    /// Until `finishIncoming`, its exit is a stop, never a crash to restart.
    func startIncoming() async throws -> any GuestInstance {
        try await serialized { try await self.performStartIncoming() }
    }

    private func performStartIncoming() async throws -> any GuestInstance {
        if let instance { return instance }
        let spec = try catalog.domain(named: name).spec
        try catalog.setDesiredState(name, .running)
        try observe(.starting)
        do {
            let guest = try await launch(spec, paused: true, incoming: true)
            attachIncoming(guest, spec: spec)
            return guest
        } catch {
            report { try self.observe(.shutoff, lastError: "Incoming migration failed: \(error)") }
            report { try self.catalog.setDesiredState(self.name, .shutoff) }
            throw error
        }
    }

    /// What an incoming guest's QEMU ending before `finishIncoming` publishes.
    static let incomplete = "the incoming migration did not complete"

    private func attachIncoming(_ guest: any GuestInstance, spec: DomainSpec) {
        attach(guest, spec: spec, state: .paused)
        guestState = .stopping(guest, publishing: .stopped, detail: Self.incomplete)
    }

    /// Destination: the state has arrived; the guest runs here from now on (or stays paused).
    func finishIncoming(running: Bool, detail: String) async throws {
        try await serialized { try await self.performFinishIncoming(running: running, detail: detail) }
    }

    private func performFinishIncoming(running: Bool, detail: String) async throws {
        guard let instance else {
            throw BerthError(.unavailable, "The incoming guest's QEMU is gone.", remedy: "See 'berth log' on the destination.")
        }
        if running { try await instance.resume() }
        settleIncoming(instance, running: running, detail: detail)
    }

    private func settleIncoming(_ instance: any GuestInstance, running: Bool, detail: String) {
        guestState = .running(instance, shutdown: nil)
        report { try self.observe(running ? .running : .paused, pid: instance.pid, accel: instance.accel) }
        publish(.migratedIn, detail: detail)
    }

    /// Destination: ends the half-made guest's QEMU, if any.
    func abortIncoming() async {
        _ = try? await serialized { await self.stopIncoming() }
    }

    private func stopIncoming() async {
        guard let instance else { return }
        guestState = .stopping(instance, publishing: .stopped, detail: Self.incomplete)
        report { try self.catalog.setDesiredState(self.name, .shutoff) }
        await instance.terminate()
        _ = await waitForExit(of: instance, timeout: .seconds(10))
        if self.instance?.pid == instance.pid { finishExit(of: instance) }
    }

    /// Source, after a failed or cancelled migration: the guest runs on here (`cont` works from
    /// `postmigrate` too: QEMU takes its disks back).
    func resumeAfterFailedMigration(_ instance: any GuestInstance, wasRunning: Bool) async {
        guard wasRunning else { return }
        do {
            try await instance.resume()
        } catch {
            report { try self.observe(.paused, pid: instance.pid, accel: instance.accel, lastError: "\(error)") }
        }
    }

    /// Used by a restarted berthd: the guest's running instance, if re-attached.
    var attachedInstance: (any GuestInstance)? { instance }
}

extension DomainSupervisor {
    /// A restarted source that cannot tell where the guest runs: it stays paused here, saying why.
    func recordMigrationLimbo(_ reason: String) {
        guard let instance else { return }
        report { try self.observe(.paused, pid: instance.pid, accel: instance.accel, lastError: reason) }
        publish(.migrationProgress, detail: reason)
    }
}
