import BerthClient
import BerthModel
import Foundation

/// Phase 1 (the installer kernel, ended by its reboot or power-off) and phase 2 (the guest
/// booting from its own disk through Berth's bootloader), shared by install and reinstall.
/// A failure leaves the domain defined with the reason in its description (`berth dominfo`).
struct InstallPhases {
    let client: BerthClient
    let name: String
    let debug: Bool
    let autoconsole: Bool
    /// virt-install's --wait: minutes; negative waits forever.
    let waitMinutes: Int?
    let noReboot: Bool
    /// Disks this run created: removed if the installer never started (nothing written yet).
    let createdDisks: [String]
    /// The kickstart copied for the media listener: removed when the installer is over (here
    /// when the command waits for it; by berthd at the hand-over in the background case).
    var publishedKickstart: PublishedKickstart? = nil

    func step(_ text: String) {
        if debug { InstallOutput.err("[debug] \(text)") }
    }

    func run(installer: DomainSpec, installed: DomainSpec) async throws {
        var installerStarted = false
        do {
            step("PUT /v1/domains/\(name) (installer: kernel \(installer.kernel ?? "?"), on reboot destroy)")
            _ = try await client.update(installer)
            let started = Date()
            // virt-install's --noautoconsole without --wait returns once the installer runs; berthd
            // then hands over to the installed definition when the installer powers off.
            let background = !autoconsole && waitMinutes == nil
            if background {
                step("PUT /v1/domains/\(name)/next (installed: bootloader berth, start \(!noReboot))")
                try await client.setNextDefinition(installed, start: !noReboot)
            }
            step("POST /v1/domains/\(name)/start")
            do {
                _ = try await client.perform(.start, on: name)
            } catch {
                if background { try? await client.clearNextDefinition(name) }
                throw error
            }
            installerStarted = true
            if background {
                InstallOutput.err(
                    "Installer started in the background. When it powers off, '\(name)' boots from its own disk\(noReboot ? " at its next 'berth start'" : " by itself"). Follow it with 'berth log -f \(name)'; wait for it with --wait.")
                if publishedKickstart != nil {
                    // The installer fetches it after this command returns: berthd withdraws it
                    // when the installer hands over to the installed system.
                    InstallOutput.err("Its kickstart is served until the installer powers off.")
                }
                return
            }
            InstallOutput.err("Installer started; waiting for it to finish\(waitMinutes.map { $0 >= 0 ? " (at most \($0) min)" : "" } ?? "").")
            let follower = autoconsole ? followConsole() : nil
            defer { follower?.cancel() }
            let final = try await waitForShutoff(deadline: waitMinutes.flatMap { $0 >= 0 ? Date().addingTimeInterval(Double($0) * 60) : nil })
            follower?.cancel()
            publishedKickstart?.remove()
            if final.state == .crashed {
                throw BerthError(.wrongState, "The installer crashed\(final.lastError.map { ": \($0)" } ?? "").", remedy: "See its console with 'berth log \(name)'.")
            }
            InstallOutput.err(String(format: "Installer finished in %.1f s.", Date().timeIntervalSince(started)))
            step("PUT /v1/domains/\(name) (installed: bootloader berth)")
            _ = try await client.update(installed)
        } catch {
            await fail(error, installed: installed, removeDisks: !installerStarted)
            throw error
        }
        if noReboot {
            InstallOutput.err("Domain '\(name)' installed; not started (--noreboot). Start it with 'berth start \(name)'.")
            return
        }
        do {
            step("POST /v1/domains/\(name)/start (from its own disk)")
            _ = try await client.perform(.start, on: name)
        } catch {
            await fail(error, installed: installed, removeDisks: false)
            throw error
        }
        InstallOutput.err("Domain '\(name)' installed and started from its own disk.")
        if autoconsole {
            try? await client.consoleLog(name, tail: nil, follow: true) { buffer in
                try StandardOutput.write(Array(buffer.readableBytesView))
            }
        }
    }

    func followConsole() -> Task<Void, Never> {
        let client = client
        let name = name
        return Task {
            try? await client.consoleLog(name, tail: nil, follow: true) { buffer in
                try Task.checkCancellation()
                try StandardOutput.write(Array(buffer.readableBytesView))
            }
        }
    }

    func waitForShutoff(deadline: Date?) async throws -> DomainInfo {
        while true {
            let info = try await client.info(name)
            if info.state == .shutoff || info.state == .crashed { return info }
            if let deadline, Date() > deadline {
                throw BerthError(
                    .timeout, "The installer of '\(name)' was still running when --wait ran out.",
                    remedy: "Watch it with 'berth console \(name)'; when it has finished run 'berth reinstall \(name)' or undefine it.")
            }
            // A local API call costs about a millisecond; a short poll keeps phase 2 from starting late.
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Leaves the permanent definition with the reason in its description.
    func fail(_ error: Error, installed: DomainSpec, removeDisks: Bool) async {
        publishedKickstart?.remove()
        let reason = (error as? BerthError)?.message ?? "\(error)"
        step("install failed: \(reason)")
        if let info = try? await client.info(name), info.state != .shutoff {
            _ = try? await client.perform(.destroy, on: name)
        }
        var spec = installed
        let note = "berth install failed: \(reason)"
        spec.description = spec.description.map { $0 + " — " + note } ?? note
        do {
            _ = try await client.update(spec)
        } catch {
            InstallOutput.err("warning: could not record the failure in '\(name)': \((error as? BerthError)?.message ?? "\(error)")")
        }
        if removeDisks {
            // The definition keeps naming them, for inspection; 'berth reinstall' needs them back.
            for path in createdDisks {
                step("removing \(path): nothing was written to it")
                try? FileManager.default.removeItem(atPath: path)
            }
        }
        InstallOutput.err("Domain '\(name)' is left defined; 'berth dominfo \(name)' shows why the install failed.")
    }
}
