import BerthModel

/// The QMP commands the daemon's lifecycle needs, with failures as `BerthError`.
extension QEMUProcess {
    /// QEMU's run state: `running`, `paused`, `shutdown`, `guest-panicked`, `inmigrate`, ...
    public func status() async throws -> String {
        try await control("query-status")["status"]?.string ?? "unknown"
    }

    /// Presses the ACPI power button; the guest decides whether to shut down (a `SHUTDOWN`
    /// event with `guest: true` follows if it does).
    public func powerdown() async throws { try await control("system_powerdown") }

    /// Pauses the vCPUs (`STOP` event).
    public func pause() async throws { try await control("stop") }

    /// Resumes the vCPUs (`RESUME` event).
    public func resume() async throws { try await control("cont") }

    /// Hard reset of the machine (under `-no-reboot`, QEMU exits instead).
    public func reset() async throws { try await control("system_reset") }

    @discardableResult
    private func control(_ command: String) async throws -> QMP.Value {
        do {
            return try await qmp.execute(command, timeout: .seconds(10))
        } catch let error as QMP.Error {
            throw error.berthError
        }
    }
}
