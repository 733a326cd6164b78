import BerthClient
import BerthModel
import Foundation
import Testing

/// End to end: a real berthd saving and restoring a real QEMU guest on TCG.
@Suite(.serialized, .bootsGuests) struct SaveRestoreTests {
    /// The guest prints `tick N up=UPTIME` every second from a counter in its memory.
    static func counterSpec(_ name: String) throws -> DomainSpec {
        var spec = try GuestFixture.spec(name)
        spec.cmdline =
            (spec.cmdline ?? "")
            + #" berth.run="i=0; while :; do read up x </proc/uptime; echo tick $i up=$up; i=$((i+1)); sleep 1; done""#
        return spec
    }

    /// The last `tick N` the guest printed.
    static func lastTick(_ log: String) -> Int? {
        log.split(whereSeparator: \.isNewline).reversed().lazy.compactMap { line -> Int? in
            guard let range = line.range(of: "tick ") else { return nil }
            return Int(line[range.upperBound...].prefix { $0.isNumber })
        }.first
    }

    static func ticks(_ log: String) -> [Int] {
        // Console lines end in \r\n, one Character: split on newlines, not on "\n".
        log.split(whereSeparator: \.isNewline).compactMap { line -> Int? in
            guard let range = line.range(of: "tick ") else { return nil }
            return Int(line[range.upperBound...].prefix { $0.isNumber })
        }
    }

    @Test func saveAndRestoreContinueTheSameGuest() async throws {
        let daemon = try await TestDaemon()
        defer { daemon.tearDown() }
        let client = daemon.client
        _ = try await client.define(try Self.counterSpec("sr"))
        _ = try await client.perform(.start, on: "sr")
        _ = try await daemon.waitForLog("sr", "tick 3")
        let file = daemon.stateDirectory + "/sr.save"

        let operation = try await client.beginSave("sr", SaveRequest(file: file))
        let done = try await client.finish(operation)
        #expect(done.action == "save")
        #expect((done.progress?.bytes ?? 0) > 0)
        #expect(try await client.info("sr").state == .shutoff)
        let before = try #require(Self.lastTick(try await daemon.log("sr")))
        #expect(FileManager.default.fileExists(atPath: file))

        // A shut-off guest has nothing to save.
        let again = await #expect(throws: BerthError.self) {
            try await client.finish(try await client.beginSave("sr", SaveRequest(file: file)))
        }
        #expect(again?.code == .wrongState)

        let restored = try await client.finish(try await client.beginRestore(RestoreRequest(file: file)))
        #expect(restored.domain == "sr")
        #expect(try await client.info("sr").state == .running)
        // The counter goes on from where it stopped: the same guest, not a fresh boot.
        let log = try await daemon.waitForLog("sr", "tick \(before + 2)")
        let after = Self.ticks(log)
        #expect(!after.dropFirst(after.count - 3).contains(0))
        #expect(log.components(separatedBy: "BERTH-GUEST-READY").count - 1 == 1, "the guest booted again")

        // Restore onto a running domain is refused; so is a file whose definition changed.
        await #expect(throws: BerthError.self) {
            try await client.finish(try await client.beginRestore(RestoreRequest(file: file)))
        }
        let second = daemon.stateDirectory + "/sr2.save"
        _ = try await client.finish(try await client.beginSave("sr", SaveRequest(file: second, state: .paused)))
        var changed = try await client.info("sr").spec
        changed.memory = 320
        _ = try await client.update(changed)
        let refused = await #expect(throws: BerthError.self) {
            try await client.finish(try await client.beginRestore(RestoreRequest(file: second)))
        }
        #expect(refused?.message.contains("memory") == true)
        #expect(try await client.info("sr").state == .shutoff)
        changed.memory = 256
        _ = try await client.update(changed)
        _ = try await client.finish(try await client.beginRestore(RestoreRequest(file: second)))
        #expect(try await client.info("sr").state == .paused)
        _ = try await client.perform(.destroy, on: "sr")
    }

    @Test func managedSaveSurvivesADaemonRestartAndOnShutdownSaveResumes() async throws {
        let daemon = try await TestDaemon(extraArguments: ["--on-shutdown", "save"])
        defer { daemon.tearDown() }
        let client = daemon.client
        _ = try await client.define(try Self.counterSpec("ms"))
        _ = try await client.perform(.start, on: "ms")
        _ = try await daemon.waitForLog("ms", "tick 2")

        _ = try await client.finish(try await client.beginManagedSave("ms"))
        let saved = try await client.info("ms")
        #expect(saved.state == .shutoff)
        let managed = try #require(saved.managedSave)
        #expect(!managed.resumeAtDaemonStart)
        let before = try #require(Self.lastTick(try await daemon.log("ms")))

        daemon.stop()
        try await daemon.start()
        #expect(try await daemon.client.info("ms").managedSave != nil)
        _ = try await daemon.client.perform(.start, on: "ms")
        let resumed = try await daemon.client.info("ms")
        #expect(resumed.managedSave == nil)
        #expect(!FileManager.default.fileExists(atPath: managed.path))
        _ = try await daemon.waitForLog("ms", "tick \(before + 2)")

        // berthd --on-shutdown save: SIGTERM saves the guest; the next berthd resumes it.
        daemon.stop()
        #expect(qemuProcesses(uuid: resumed.spec.uuid).isEmpty)
        let afterStop = try #require(Self.lastTick(try String(contentsOfFile: resumed.consoleLog ?? "", encoding: .utf8)))
        try await daemon.start()
        _ = try await daemon.waitForState("ms", .running)
        let log = try await daemon.waitForLog("ms", "tick \(afterStop + 2)")
        #expect(log.components(separatedBy: "BERTH-GUEST-READY").count - 1 == 1, "the guest booted again")
    }

    @Test func snapshotsRevertMemoryAndDisk() async throws {
        let daemon = try await TestDaemon()
        defer { daemon.tearDown() }
        let client = daemon.client
        let disk = daemon.stateDirectory + "/snap.qcow2"
        let raw = daemon.stateDirectory + "/raw.img"
        for (path, format) in [(disk, "qcow2"), (raw, "raw")] {
            let make = Process()
            make.executableURL = URL(fileURLWithPath: "/usr/bin/qemu-img")
            make.arguments = ["create", "-q", "-f", format, path, "16M"]
            try make.run()
            make.waitUntilExit()
        }
        // The raw-disk domain is told why not and what to do.
        var rawSpec = try GuestFixture.spec("rawsnap")
        rawSpec.disks = [DiskSpec(path: raw)]
        _ = try await client.define(rawSpec)
        let refused = await #expect(throws: BerthError.self) {
            try await client.createSnapshot("rawsnap", SnapshotRequest(name: "s1"))
        }
        #expect(refused?.message.contains("raw") == true)
        #expect(refused?.remedy?.contains("qemu-img convert") == true)

        var spec = try Self.counterSpec("snap")
        spec.disks = [DiskSpec(path: disk)]
        // Each tick is also written to the disk (reverted with the memory).
        spec.cmdline =
            (try GuestFixture.spec("snap").cmdline ?? "")
            + #" berth.run="i=0; while :; do echo tick $i; echo disk$i > /dev/vda; sync; i=$((i+1)); sleep 1; done""#
        _ = try await client.define(spec)
        _ = try await client.perform(.start, on: "snap")
        _ = try await daemon.waitForLog("snap", "tick 3")
        let taken = try await client.createSnapshot("snap", SnapshotRequest(name: "s1", description: "after tick 3"))
        #expect(taken.memory)
        let atSnapshot = try #require(Self.lastTick(try await daemon.log("snap")))
        _ = try await daemon.waitForLog("snap", "tick \(atSnapshot + 4)")
        #expect(try await client.snapshots("snap").map(\.name) == ["s1"])

        let reverted = try await client.revertSnapshot("snap", "s1")
        #expect(reverted.state == .running)
        // The counter goes back to the snapshot's and counts on from there.
        let marker = try await daemon.log("snap").count
        try await Task.sleep(for: .seconds(3))
        let newer = Self.ticks(String(try await daemon.log("snap").dropFirst(marker)))
        #expect(newer.first.map { $0 <= atSnapshot + 2 } == true, "ticks after revert: \(newer)")

        _ = try await client.perform(.destroy, on: "snap")
        try await client.deleteSnapshot("snap", "s1")
        #expect(try await client.snapshots("snap").isEmpty)
    }
}
