import BerthClient
import BerthModel
import Foundation
import Testing

/// Issue 12's "destination dies mid-migration": the destination host (its berthd and the
/// QEMU waiting for the guest) killed while the disk is being copied. The migration fails
/// with what happened, and the guest runs on at the source, where it was.
@Suite(.serialized, .bootsGuests) struct MigrationFailureTests {
    @Test func aDestinationKilledMidMigrationLeavesTheGuestRunningOnTheSource() async throws {
        let (namespace, source, destination) = try await MigrationTests.twoHosts()
        defer {
            source.tearDown()
            destination.tearDown()
            namespace.destroy()
        }
        _ = try await source.client.createVolume(pool: "default", VolumeCreateRequest(name: "far.img", capacity: 16 << 20))
        _ = try await source.client.define(try MigrationTests.movingSpec("far", volume: "far.img"))
        let started = try await source.client.perform(.start, on: "far")
        _ = try await source.waitForLog("far", "tick 2", timeout: 180)
        let slow = MigrateRequest(
            destination: MigrationTests.url(destination), token: destination.token, copyStorageAll: true, bandwidth: 1)
        let operation = try await source.client.beginMigrate("far", slow)

        // The destination's QEMU is taking the disk (the copy has begun) when the host goes.
        let deadline = Date().addingTimeInterval(120)
        while (try await source.client.operation(operation.id).progress?.bytes ?? 0) == 0, Date() < deadline {
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect((try await source.client.operation(operation.id).progress?.bytes ?? 0) > 0, "the disk copy never began")
        let destinationQEMU = try #require(try await destination.client.info("far").pid, "the destination has no QEMU")
        destination.stop(signal: SIGKILL)
        kill(destinationQEMU, SIGKILL)

        // The source's operation ends in an error that names the destination; the guest runs on.
        let end = Date().addingTimeInterval(180)
        var state = try await source.client.operation(operation.id)
        while state.status == .running, Date() < end {
            state = try await source.client.operation(operation.id, wait: 5)
        }
        #expect(state.status == .failed && state.error != nil, "the migration did not fail: \(state)")
        #expect(state.error?.message.contains("the guest runs on here") == true && state.error?.remedy != nil, "\(state)")
        print("the source's operation: \(state.error?.message ?? "-") — \(state.error?.remedy ?? "-")")
        let here = try await source.waitForState("far", .running)
        #expect(here.pid == started.pid)
        let at = try #require(SaveRestoreTests.lastTick(try await source.log("far")))
        _ = try await source.waitForLog("far", "tick \(at + 2)", timeout: 180)
        #expect(qemuProcesses(uuid: started.spec.uuid) == [try #require(started.pid)])

        // The destination, back, does not run the guest: it belongs to the source alone.
        try await destination.start()
        if let there = try? await destination.client.info("far") {
            #expect(there.state != .running && there.state != .paused, "the destination runs the guest too: \(there.state)")
        }
        _ = try await source.client.perform(.destroy, on: "far")
    }
}
