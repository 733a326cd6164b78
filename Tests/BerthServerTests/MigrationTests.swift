import BerthClient
import BerthModel
import Foundation
import Synchronization
import Testing

/// Live migration end to end: two real berthd with state directories of their own in one
/// network namespace the test makes (both on its 127.0.0.1, different ports), a real TCG guest
/// moving between their QEMUs over the streams the two berthd carry.
@Suite(.serialized, .bootsGuests) struct MigrationTests {
    /// A guest printing `tick N` every second and writing `diskN` to its disk (a raw volume in
    /// the default pool), so both its memory and its disk show where they came from.
    static func movingSpec(_ name: String, volume: String) throws -> DomainSpec {
        var spec = try GuestFixture.spec(name)
        spec.disks = [DiskSpec(path: "", format: .raw, volume: "default/\(volume)")]
        spec.cmdline =
            (spec.cmdline ?? "")
            + #" berth.run="i=0; while :; do echo tick $i; echo disk$i > /dev/vda; sync; i=$((i+1)); sleep 1; done""#
        return spec
    }

    static func twoHosts() async throws -> (TestNamespace, TestDaemon, TestDaemon) {
        let namespace = try TestNamespace("mig")
        let source = try await TestDaemon(namespace: namespace)
        let destination = try await TestDaemon(namespace: namespace)
        return (namespace, source, destination)
    }

    static func url(_ daemon: TestDaemon) -> String { "http://127.0.0.1:\(daemon.port)" }

    @Test func aRunningGuestMovesLiveWithItsDiskAndItsCounterGoesOn() async throws {
        let (namespace, source, destination) = try await Self.twoHosts()
        defer {
            source.tearDown()
            destination.tearDown()
            namespace.destroy()
        }
        _ = try await source.client.createVolume(pool: "default", VolumeCreateRequest(name: "mig.img", capacity: 16 << 20))
        _ = try await source.client.define(try Self.movingSpec("mig", volume: "mig.img"))
        let started = try await source.client.perform(.start, on: "mig")
        _ = try await source.waitForLog("mig", "tick 3")

        let run = try await BerthRun.run(
            ["migrate", "mig", "--to", Self.url(destination), "--live", "--copy-storage-all", "--persistent"],
            state: source.stateDirectory, environment: ["BERTH_TO_TOKEN": destination.token])
        #expect(run.status == 0, "\(run.stdout)\n\(run.stderr)")
        #expect(run.stdout.contains("downtime"), "\(run.stdout)")
        #expect(run.stdout.contains("migrated to"), "\(run.stdout)")
        #expect(run.stdout.contains("stays here too, shut off"), "\(run.stdout)")

        // One host has the guest: the destination runs it, the source's QEMU is gone.
        let there = try await destination.client.info("mig")
        #expect(there.state == .running)
        #expect(try await source.client.info("mig").state == .shutoff)
        #expect(!qemuProcesses(uuid: started.spec.uuid).contains(try #require(started.pid)))
        #expect(qemuProcesses(uuid: started.spec.uuid) == [try #require(there.pid)])

        // The console log moved along and goes on: the counter continues, never from zero.
        let moved = try await destination.log("mig")
        let before = try #require(SaveRestoreTests.lastTick(moved))
        let log = try await destination.waitForLog("mig", "tick \(before + 3)")
        let ticks = SaveRestoreTests.ticks(log)
        #expect(ticks.first == 0)
        #expect(ticks.count >= before + 3)
        #expect(Array(ticks) == Array(0..<ticks.count), "the counter restarted or skipped: \(ticks)")
        #expect(log.components(separatedBy: "BERTH-GUEST-READY").count - 1 == 1, "the guest booted again")

        // The disk came along and takes the guest's writes there: its own volume, a new file.
        let disk = try #require(there.spec.disks.first?.path)
        #expect(disk.hasPrefix(destination.stateDirectory))
        _ = try await destination.client.perform(.destroy, on: "mig")
        // The guest writes `diskN` just after printing `tick N`: the disk holds the last or the
        // one before, written there after the move.
        let written = String(decoding: (FileManager.default.contents(atPath: disk) ?? Data()).prefix(16), as: UTF8.self)
        let last = try #require(SaveRestoreTests.lastTick(try await destination.log("mig")))
        let onDisk = Int(written.dropFirst(4).prefix { $0.isNumber })
        #expect(written.hasPrefix("disk") && [last - 1, last].contains(onDisk ?? -1), "\(written.debugDescription) after tick \(last)")
        #expect((onDisk ?? 0) > before, "the disk did not follow the guest's writes after the move")
    }

    @Test func refusedAndCancelledMigrationsLeaveTheGuestRunningOnTheSource() async throws {
        let (namespace, source, destination) = try await Self.twoHosts()
        defer {
            source.tearDown()
            destination.tearDown()
            namespace.destroy()
        }
        let client = source.client
        let to = MigrateRequest(destination: Self.url(destination), token: destination.token, copyStorageAll: true)

        // A guest on a network the destination lacks is refused before anything moves.
        _ = try await client.defineNetwork(try NetworkTests.networkSpec(#"{"name": "only-here", "mode": "isolated", "address": "10.91.0.1/24"}"#))
        _ = try await client.startNetwork("only-here")
        _ = try await client.createVolume(pool: "default", VolumeCreateRequest(name: "net.img", capacity: 16 << 20))
        var networked = try Self.movingSpec("net", volume: "net.img")
        networked.nics = [NICSpec(mode: .network, network: "only-here")]
        _ = try await client.define(networked)
        _ = try await client.perform(.start, on: "net")
        _ = try await source.waitForLog("net", "tick 2")
        let refused = await #expect(throws: BerthError.self) {
            try await client.finish(try await client.beginMigrate("net", to))
        }
        #expect(refused?.message.contains("only-here") == true, "\(refused?.message ?? "")")
        #expect(refused?.remedy?.contains("net-define") == true)
        #expect(try await client.info("net").state == .running)
        #expect(try await destination.client.list().isEmpty)
        #expect(try await destination.client.volumes(pool: "default").isEmpty)
        _ = try await client.perform(.destroy, on: "net")

        // So is a guest whose disk is a volume in a pool the destination lacks.
        _ = try await client.definePool(PoolSpec(name: "extra", type: .dir, target: source.stateDirectory + "/extra"))
        _ = try await client.perform(.build, pool: "extra")
        _ = try await client.perform(.start, pool: "extra")
        _ = try await client.createVolume(pool: "extra", VolumeCreateRequest(name: "pooled.img", capacity: 16 << 20))
        var pooled = try Self.movingSpec("pooled", volume: "unused")
        pooled.disks = [DiskSpec(path: "", format: .raw, volume: "extra/pooled.img")]
        _ = try await client.define(pooled)
        _ = try await client.perform(.start, on: "pooled")
        let noPool = await #expect(throws: BerthError.self) {
            try await client.finish(try await client.beginMigrate("pooled", to))
        }
        #expect(noPool?.message.contains("extra") == true, "\(noPool?.message ?? "")")
        #expect(try await client.info("pooled").state == .running)
        #expect(try await destination.client.list().isEmpty)
        _ = try await client.perform(.destroy, on: "pooled")

        // Cancelled part way (a slow link: 1 MiB/s): the guest runs on here, nothing is left there.
        _ = try await client.createVolume(pool: "default", VolumeCreateRequest(name: "stay.img", capacity: 16 << 20))
        _ = try await client.define(try Self.movingSpec("stay", volume: "stay.img"))
        let started = try await client.perform(.start, on: "stay")
        _ = try await source.waitForLog("stay", "tick 2")

        // A volume of that name already on the destination is never overwritten (nor removed).
        _ = try await destination.client.createVolume(pool: "default", VolumeCreateRequest(name: "stay.img", capacity: 1 << 20))
        let clash = await #expect(throws: BerthError.self) { try await client.finish(try await client.beginMigrate("stay", to)) }
        #expect(clash?.message.contains("already exists") == true, "\(clash?.message ?? "")")
        #expect(try await destination.client.volumes(pool: "default").map(\.name) == ["stay.img"])
        #expect(try await client.info("stay").state == .running)
        try await destination.client.deleteVolume(pool: "default", name: "stay.img")

        var slow = to
        slow.bandwidth = 1
        let operation = try await client.beginMigrate("stay", slow)
        let deadline = Date().addingTimeInterval(120)
        while try await client.operation(operation.id).messages?.contains(where: { $0.text.hasPrefix("disks copied") }) != true {
            #expect(Date() < deadline, "the migration never began moving memory")
            guard Date() < deadline else { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(try await destination.client.info("stay").state == .paused)
        let abort = try await BerthRun.run(["domjobabort", "stay"], state: source.stateDirectory)
        #expect(abort.status == 0, "\(abort.stderr)")
        let cancelled = await #expect(throws: BerthError.self) { try await client.finish(operation) }
        #expect(cancelled?.message.contains("cancelled") == true, "\(cancelled?.message ?? "")")

        let here = try await client.info("stay")
        #expect(here.state == .running)
        #expect(here.pid == started.pid)
        let at = try #require(SaveRestoreTests.lastTick(try await source.log("stay")))
        _ = try await source.waitForLog("stay", "tick \(at + 2)")
        #expect(qemuProcesses(uuid: started.spec.uuid) == [try #require(started.pid)])
        let gone = await #expect(throws: BerthError.self) { try await destination.client.info("stay") }
        #expect(gone?.code == .notFound)
        #expect(try await destination.client.volumes(pool: "default").isEmpty)
        _ = try await client.perform(.destroy, on: "stay")
    }

    @Test func aSourceBerthdKilledMidMigrationFindsTheGuestInOnePlace() async throws {
        let (namespace, source, destination) = try await Self.twoHosts()
        defer {
            source.tearDown()
            destination.tearDown()
            namespace.destroy()
        }
        _ = try await source.client.createVolume(pool: "default", VolumeCreateRequest(name: "kill.img", capacity: 16 << 20))
        _ = try await source.client.define(try Self.movingSpec("kill", volume: "kill.img"))
        let started = try await source.client.perform(.start, on: "kill")
        _ = try await source.waitForLog("kill", "tick 2")
        let slow = MigrateRequest(
            destination: Self.url(destination), token: destination.token, copyStorageAll: true, bandwidth: 1)
        let operation = try await source.client.beginMigrate("kill", slow)
        let deadline = Date().addingTimeInterval(120)
        while try await source.client.operation(operation.id).messages?.contains(where: { $0.text.hasPrefix("disks copied") })
            != true
        {
            guard Date() < deadline else { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(try await destination.client.info("kill").state == .paused)

        // berthd dies mid-copy; its guest's QEMU carries on. The next berthd settles it: the
        // destination was never told to run the guest, so it runs on here and goes from there.
        source.stop(signal: SIGKILL)
        try await source.start()
        let here = try await source.waitForState("kill", .running)
        #expect(here.pid == started.pid)
        let at = try #require(SaveRestoreTests.lastTick(try await source.log("kill")))
        _ = try await source.waitForLog("kill", "tick \(at + 2)")
        let end = Date().addingTimeInterval(60)
        while (try? await destination.client.info("kill")) != nil, Date() < end {
            try await Task.sleep(for: .milliseconds(200))
        }
        let gone = await #expect(throws: BerthError.self) { try await destination.client.info("kill") }
        #expect(gone?.code == .notFound)
        #expect(qemuProcesses(uuid: started.spec.uuid) == [try #require(started.pid)])
        _ = try await source.client.perform(.destroy, on: "kill")
    }

    @Test func aPausedForTheCopyMigrationWithUndefineSourceLeavesNothingHere() async throws {
        let (namespace, source, destination) = try await Self.twoHosts()
        defer {
            source.tearDown()
            destination.tearDown()
            namespace.destroy()
        }
        // Both hosts' event streams, followed from before the guest boots.
        let events = EventLines()
        let (sourceClient, destinationClient) = (source.client, destination.client)
        let hereEvents = Task(executorPreference: GuestSlots.current) {
            try? await sourceClient.events { event in events.lines.withLock { $0.append("source \(event.kind.rawValue) \(event.domain)") } }
        }
        let thereEvents = Task(executorPreference: GuestSlots.current) {
            try? await destinationClient.events { event in events.lines.withLock { $0.append("destination \(event.kind.rawValue) \(event.domain)") } }
        }
        defer {
            hereEvents.cancel()
            thereEvents.cancel()
        }
        // No disk to copy, no --live: the guest is paused for the copy and runs again there.
        _ = try await source.client.define(try SaveRestoreTests.counterSpec("offline"))
        let started = try await source.client.perform(.start, on: "offline")
        _ = try await source.waitForLog("offline", "tick 2")
        let run = try await BerthRun.run(
            ["migrate", "offline", "--to", Self.url(destination), "--undefine-source"], state: source.stateDirectory,
            environment: ["BERTH_TO_TOKEN": destination.token])
        #expect(run.status == 0, "\(run.stdout)\n\(run.stderr)")
        #expect(run.stdout.contains("paused for the copy"), "\(run.stdout)")
        let gone = await #expect(throws: BerthError.self) { try await source.client.info("offline") }
        #expect(gone?.code == .notFound)
        let there = try await destination.client.info("offline")
        #expect(there.state == .running)
        #expect(qemuProcesses(uuid: started.spec.uuid) == [try #require(there.pid)])
        let at = try #require(SaveRestoreTests.lastTick(try await destination.log("offline")))
        let log = try await destination.waitForLog("offline", "tick \(at + 2)")
        let ticks = SaveRestoreTests.ticks(log)
        #expect(ticks == Array(0..<ticks.count), "the counter restarted or skipped: \(ticks)")
        // Without --persistent too, the destination keeps the definition (no transient domain
        // vanishing when it stops), and nothing is said of a copy here.
        #expect(!run.stdout.contains("stays here too"), "\(run.stdout)")
        // The migration is told as events: its progress and its end here, its arrival there.
        let told = ["source migration-progress offline", "source migrated offline", "destination migrated-in offline"]
        let deadline = Date().addingTimeInterval(60)
        while !told.allSatisfy({ line in events.lines.withLock { $0.contains(line) } }), Date() < deadline {
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(told.allSatisfy { line in events.lines.withLock { $0.contains(line) } }, "\(events.lines.withLock { $0 })")
        _ = try await destination.client.perform(.destroy, on: "offline")
        #expect(try await destination.client.info("offline").state == .shutoff)
    }

    /// `--to https://…`: the destination's API speaks TLS only, and the source berthd presents
    /// the client certificate of `berth tls init --client` (its `--migration-tls-*` options),
    /// no token. Plain HTTP to that listener is refused before anything moves.
    @Test func migrationOverTLSWithTheSourcesClientCertificate() async throws {
        let namespace = try TestNamespace("mtls")
        let pki = try DaemonStartupTests.scratch() + "/pki"
        try RemoteHostTests.tlsInit(pki, ["--server-name", "127.0.0.1", "--client", "source"])
        let (server, client) = (TLSFiles.server(in: pki), TLSFiles.client(in: pki))
        let source = try await TestDaemon(
            extraArguments: ["--migration-tls-ca", client.ca, "--migration-tls-cert", client.certificate, "--migration-tls-key", client.key],
            namespace: namespace)
        let destination = try await TestDaemon(
            extraArguments: ["--tls-cert", server.certificate, "--tls-key", server.key, "--tls-ca", server.ca], namespace: namespace)
        defer {
            source.tearDown()
            destination.tearDown()
            namespace.destroy()
            try? FileManager.default.removeItem(atPath: (pki as NSString).deletingLastPathComponent)
        }
        _ = try await source.client.define(try SaveRestoreTests.counterSpec("sealed"))
        let started = try await source.client.perform(.start, on: "sealed")
        _ = try await source.waitForLog("sealed", "tick 2")

        // Plain HTTP to a TLS-only destination is refused before anything moves.
        let plain = try await BerthRun.run(
            ["migrate", "sealed", "--to", "http://127.0.0.1:\(destination.port)", "--live"], state: source.stateDirectory)
        #expect(plain.status != 0 && plain.stderr.contains("127.0.0.1:\(destination.port)"), "\(plain.stdout)\n\(plain.stderr)")
        #expect(try await source.client.info("sealed").state == .running)
        #expect(try await destination.client.list().isEmpty)

        let run = try await BerthRun.run(
            ["migrate", "sealed", "--to", "https://127.0.0.1:\(destination.port)", "--live"], state: source.stateDirectory)
        #expect(run.status == 0, "\(run.stdout)\n\(run.stderr)")
        let there = try await destination.client.info("sealed")
        #expect(there.state == .running)
        #expect(try await source.client.info("sealed").state == .shutoff)
        #expect(qemuProcesses(uuid: started.spec.uuid) == [try #require(there.pid)])
        let at = try #require(SaveRestoreTests.lastTick(try await destination.log("sealed")))
        let ticks = SaveRestoreTests.ticks(try await destination.waitForLog("sealed", "tick \(at + 2)"))
        #expect(ticks == Array(0..<ticks.count), "the counter restarted or skipped: \(ticks)")
        _ = try await destination.client.perform(.destroy, on: "sealed")
    }
}

/// Event lines (`SIDE KIND DOMAIN`) collected by a test's event listeners.
final class EventLines: Sendable {
    let lines = Mutex<[String]>([])
}
