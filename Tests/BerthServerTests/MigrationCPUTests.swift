import BerthClient
import BerthModel
import BerthQEMU
import Foundation
import Testing

/// A migration to a host whose CPU lacks a feature the guest uses is refused before anything
/// moves: by the destination's pre-check (`POST /v1/migrations`) and through `berth migrate`.
@Suite(.serialized, .bootsGuests) struct MigrationCPUTests {
    /// A `qemu-system-x86_64` whose CPU models lack AVX (QEMU's own `-global` property): the
    /// QEMU of a host with an older CPU, as berthd's `--qemu` would name it.
    static func qemuWithoutAVX() throws -> String {
        let path = try DaemonStartupTests.scratch() + "/qemu-without-avx"
        try "#!/bin/sh\nexec \(try QEMUBinary.locate()) -global max-x86_64-cpu.avx=off \"$@\"\n".write(
            toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o755)
        return path
    }

    @Test func theDestinationRefusesAFeatureItsCPUCannotGive() async throws {
        let destination = try await TestDaemon()
        defer { destination.tearDown() }
        let offer = IncomingMigrationRequest(
            spec: try GuestFixture.spec("cpu"), accel: .tcg, qemuVersion: nil,
            cpuFeatures: ["sse2", "berth-made-up-feature", "lm"])
        let refused = await #expect(throws: BerthError.self) { try await destination.client.prepareIncoming(offer) }
        #expect(refused?.code == .wrongState)
        #expect(refused?.message.contains("berth-made-up-feature") == true, "\(refused?.message ?? "")")
        #expect(refused?.message.contains("sse2") == false, "\(refused?.message ?? "")")
        #expect(refused?.remedy?.contains("host whose CPU has") == true, "\(refused?.remedy ?? "")")
        // Nothing was made: no definition, no QEMU.
        #expect(try await destination.client.list().isEmpty)
    }

    @Test func aMigrateToAHostWithoutAVXIsRefusedAndTheGuestRunsOn() async throws {
        let namespace = try TestNamespace("mcpu")
        let source = try await TestDaemon(namespace: namespace)
        let destination = try await TestDaemon(extraArguments: ["--qemu", try Self.qemuWithoutAVX()], namespace: namespace)
        defer {
            source.tearDown()
            destination.tearDown()
            namespace.destroy()
        }
        _ = try await source.client.define(try SaveRestoreTests.counterSpec("avx"))
        let started = try await source.client.perform(.start, on: "avx")
        _ = try await source.waitForLog("avx", "tick 2")

        let run = try await BerthRun.run(
            ["migrate", "avx", "--to", MigrationTests.url(destination), "--live"], state: source.stateDirectory,
            environment: ["BERTH_TO_TOKEN": destination.token])
        #expect(run.status != 0, "\(run.stdout)\n\(run.stderr)")
        #expect(run.stderr.contains("avx"), "\(run.stderr)")
        #expect(run.stderr.contains("CPU feature"), "\(run.stderr)")

        // The guest runs on here, the same QEMU; nothing was made there.
        let here = try await source.client.info("avx")
        #expect(here.state == .running)
        #expect(here.pid == started.pid)
        #expect(qemuProcesses(uuid: started.spec.uuid) == [try #require(started.pid)])
        let at = try #require(SaveRestoreTests.lastTick(try await source.log("avx")))
        _ = try await source.waitForLog("avx", "tick \(at + 2)")
        #expect(try await destination.client.list().isEmpty)
        _ = try await source.client.perform(.destroy, on: "avx")
    }
}
