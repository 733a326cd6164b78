import BerthClient
import BerthModel
import Foundation
import Synchronization
import Testing

/// Storage pools and volumes end to end: a real berthd, real qemu-img, real QEMU guests.
@Suite(.serialized, .bootsGuests) struct StorageTests {
    /// qemu-img must be there (Debian qemu-utils); its absence fails with the install command.
    static func requireQEMUImg() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/qemu-img") else {
            Issue.record("qemu-img is missing: run scripts/install-host-deps (apt-get install qemu-utils).")
            throw BerthError(.unavailable, "qemu-img missing")
        }
    }

    static func expectError(_ code: BerthError.Code, containing text: String, _ body: () async throws -> Void) async {
        do {
            try await body()
            Issue.record("expected a \(code.rawValue) error containing '\(text)'")
        } catch let error as BerthError {
            #expect(error.code == code, "\(error)")
            #expect(error.message.contains(text), "\(error.message)")
            #expect(error.remedy?.isEmpty == false, "every error says what to do next: \(error)")
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }

    /// Nothing half-made: no hidden temporary files left in a pool's directory.
    static func leftovers(_ directory: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasPrefix(".") }
    }

    static func virtualSize(_ path: String, format: String) throws -> UInt64 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/qemu-img")
        process.arguments = ["info", "-U", "-f", format, "--output=json", path]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let object = try JSONSerialization.jsonObject(with: data) as? [String: Any]
        return (object?["virtual-size"] as? NSNumber)?.uint64Value ?? 0
    }

    /// Pools and volumes as a user drives them: the default pool from the first run, virsh's
    /// pool and volume life cycle, qemu-img's view agreeing with the catalog's, and every
    /// refusal saying what to do, with nothing left behind.
    @Test func poolAndVolumeLifecycle() async throws {
        try Self.requireQEMUImg()
        let daemon = try await TestDaemon()
        defer { daemon.tearDown() }
        let client = daemon.client
        let images = daemon.stateDirectory + "/images"

        // The default dir pool exists, active and autostarted, from the first run.
        let pools = try await client.pools()
        let pool = try #require(pools.first { $0.spec.name == "default" })
        #expect(pool.active && pool.spec.autostart && pool.spec.target == images && pool.capacity > 0)

        // A pool whose directory is missing says how to make it; pool-build does.
        let extra = daemon.stateDirectory + "/extra"
        _ = try await client.definePool(PoolSpec(name: "extra", type: .dir, target: extra))
        await Self.expectError(.notFound, containing: "does not exist") { _ = try await client.perform(.start, pool: "extra") }
        _ = try await client.perform(.build, pool: "extra")
        #expect(try await client.perform(.start, pool: "extra").active)
        await Self.expectError(.alreadyExists, containing: "already exists") {
            _ = try await client.definePool(PoolSpec(name: "extra", type: .dir, target: "/tmp/other"))
        }
        await Self.expectError(.wrongState, containing: "active") { try await client.undefinePool("extra") }

        // Volumes: raw and qcow2 by qemu-img, sizes as qemu-img sees them.
        let raw = try await client.createVolume(pool: "default", VolumeCreateRequest(name: "r1", capacity: 64 << 20))
        #expect(raw.format == .raw && raw.path == images + "/r1")
        #expect(try Self.virtualSize(raw.path, format: "raw") == 64 << 20)
        let q = try await client.createVolume(pool: "default", VolumeCreateRequest(name: "q1", capacity: 1 << 30, format: .qcow2))
        #expect(try Self.virtualSize(q.path, format: "qcow2") == 1 << 30)
        await Self.expectError(.alreadyExists, containing: "already exists") {
            _ = try await client.createVolume(pool: "default", VolumeCreateRequest(name: "r1", capacity: 1 << 20))
        }
        await Self.expectError(.wrongState, containing: "free") {
            _ = try await client.createVolume(pool: "default", VolumeCreateRequest(name: "huge", capacity: 60 << 40))
        }
        await Self.expectError(.invalidArgument, containing: "64 TiB") {
            _ = try await client.createVolume(pool: "default", VolumeCreateRequest(name: "huge", capacity: 1 << 60, format: .qcow2))
        }
        #expect(!FileManager.default.fileExists(atPath: images + "/huge"))

        // Resize: growing is plain, shrinking needs the flag and says what it destroys.
        #expect(try await client.resizeVolume(pool: "default", name: "q1", VolumeResizeRequest(capacity: 2 << 30)).capacity == 2 << 30)
        #expect(try Self.virtualSize(q.path, format: "qcow2") == 2 << 30)
        await Self.expectError(.invalidArgument, containing: "destroys its last") {
            _ = try await client.resizeVolume(pool: "default", name: "r1", VolumeResizeRequest(capacity: 32 << 20))
        }
        _ = try await client.resizeVolume(pool: "default", name: "r1", VolumeResizeRequest(capacity: 32 << 20, shrink: true))
        #expect(try Self.virtualSize(raw.path, format: "raw") == 32 << 20)

        // Clone is a full copy with the same content; wipe zeroes it.
        let marker = Data("BERTH-CLONE-MARK".utf8)
        let handle = try #require(FileHandle(forWritingAtPath: raw.path))
        try handle.write(contentsOf: marker)
        try handle.close()
        let copy = try await client.cloneVolume(pool: "default", name: "r1", to: "r1-copy")
        #expect(try Data(contentsOf: URL(fileURLWithPath: copy.path)).prefix(marker.count) == marker)
        _ = try await client.wipeVolume(pool: "default", name: "r1-copy")
        #expect(try Data(contentsOf: URL(fileURLWithPath: copy.path)).prefix(marker.count) == Data(count: marker.count))
        #expect(try Self.virtualSize(copy.path, format: "raw") == 32 << 20)

        // pool-refresh: a file made outside Berth appears, with its format read once.
        let outside = Process()
        outside.executableURL = URL(fileURLWithPath: "/usr/bin/qemu-img")
        outside.arguments = ["create", "-q", "-f", "qcow2", images + "/outside", "128M"]
        try outside.run()
        outside.waitUntilExit()
        _ = try await client.perform(.refresh, pool: "default")
        let found = try await client.volume(pool: "default", name: "outside")
        #expect(found.format == .qcow2 && found.capacity == 128 << 20)
        #expect(try await client.volume(path: images + "/outside").name == "outside")

        // Delete: file and record go together.
        try await client.deleteVolume(pool: "default", name: "r1-copy")
        #expect(!FileManager.default.fileExists(atPath: copy.path))
        await Self.expectError(.notFound, containing: "No volume") { _ = try await client.volume(pool: "default", name: "r1-copy") }
        // The virsh listing commands through the CLI: inactive pools only with --all.
        let state = daemon.stateDirectory
        _ = try await client.createVolume(pool: "extra", VolumeCreateRequest(name: "base", capacity: 1 << 20))
        _ = try await client.perform(.destroy, pool: "extra")
        let listedPools = try await BerthRun.run(["pool-list"], state: state)
        #expect(listedPools.status == 0 && listedPools.stdout.contains("default") && !listedPools.stdout.contains("extra"))
        let allPools = try await BerthRun.run(["pool-list", "--all", "--details"], state: state)
        #expect(allPools.stdout.contains("extra") && allPools.stdout.contains("inactive"), "\(allPools.stdout)")
        let poolInfo = try await BerthRun.run(["pool-info", "default"], state: state)
        #expect(poolInfo.status == 0 && poolInfo.stdout.contains(images), "\(poolInfo.stdout)")
        let details = try await BerthRun.run(["vol-list", "default", "--details"], state: state)
        #expect(details.stdout.contains("q1") && details.stdout.contains("qcow2") && details.stdout.contains("outside"), "\(details.stdout)")
        let volPath = try await BerthRun.run(["vol-path", "r1", "--pool", "default"], state: state)
        #expect(volPath.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == raw.path, "\(volPath.stdout)")
        let volInfo = try await BerthRun.run(["vol-info", "default/q1"], state: state)
        #expect(volInfo.status == 0 && volInfo.stdout.contains("qcow2"), "\(volInfo.stdout)")

        // An inactive pool refuses volume work and says how to start it, also as a backing pool.
        await Self.expectError(.wrongState, containing: "not active") {
            _ = try await client.createVolume(pool: "extra", VolumeCreateRequest(name: "v", capacity: 1 << 20))
        }
        await Self.expectError(.wrongState, containing: "'extra' is not active") {
            _ = try await client.createVolume(
                pool: "default", VolumeCreateRequest(name: "over", capacity: 1 << 20, backingVolume: "extra/base"))
        }
        #expect(!FileManager.default.fileExists(atPath: images + "/over"))
        _ = try await client.perform(.start, pool: "extra")
        try await client.deleteVolume(pool: "extra", name: "base")
        _ = try await client.perform(.destroy, pool: "extra")
        try await client.undefinePool("extra")
        #expect(Self.leftovers(images).isEmpty, "temporary files left: \(Self.leftovers(images))")
    }

    /// A qcow2 overlay made with --backing-vol boots with exactly the backing file the catalog
    /// recorded (passed as a descriptor, referenced by node name), the domain's disk names its
    /// volume, the volume grows live with QMP block_resize and the guest sees the new size,
    /// and volumes in use cannot be deleted (the message names the domain).
    @Test func overlayVolumeBootsAndGrowsLive() async throws {
        try Self.requireQEMUImg()
        let daemon = try await TestDaemon()
        defer { daemon.tearDown() }
        let client = daemon.client

        let base = try await client.createVolume(pool: "default", VolumeCreateRequest(name: "base", capacity: 64 << 20))
        let handle = try #require(FileHandle(forWritingAtPath: base.path))
        try handle.write(contentsOf: Data("BERTH-BACKING-MARK".utf8))
        try handle.close()
        let overlay = try await client.createVolume(
            pool: "default", VolumeCreateRequest(name: "ov", capacity: 0, backingVolume: "base"))
        #expect(overlay.format == .qcow2 && overlay.backingVolume == "default/base" && overlay.capacity == 64 << 20)

        var spec = try GuestFixture.spec("stor")
        spec.disks = [DiskSpec(path: "", volume: "default/ov")]
        // The guest prints its disk's size (in 512-byte sectors) every second, after the bytes
        // it reads through the overlay from the backing volume.
        spec.cmdline =
            (spec.cmdline ?? "")
            + #" berth.run="head -c 18 /dev/vda; echo; i=0; while [ $i -lt 90 ]; do echo size=$(cat /sys/block/vda/size); sleep 1; i=$((i+1)); done""#
        let defined = try await client.define(spec)
        let disk = try #require(defined.spec.disks.first)
        #expect(disk.path == overlay.path && disk.volume == "default/ov" && disk.format == .qcow2)
        #expect(disk.backing == DiskBacking(path: base.path, format: .raw, volume: "default/base"))

        let started = try await client.perform(.start, on: "stor")
        let pid = try #require(started.pid)
        let argv = try String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8).split(separator: "\0").map(String.init)
        #expect(argv.contains { $0.contains(#""node-name":"disk0","read-only":false,"backing":"disk0-backing""#) })
        #expect(argv.contains { $0.contains(#""node-name":"disk0-backing-file""#) && $0.contains("/dev/fdset/") })
        #expect(!argv.contains { $0.contains(daemon.stateDirectory + "/images") }, "QEMU is given no host path")

        _ = try await daemon.waitForLog("stor", "size=131072")
        #expect(try await daemon.log("stor").contains("BERTH-BACKING-MARK"))

        // Live growth: QEMU resizes the image it holds; the guest sees it without a restart.
        let grown = try await client.resizeVolume(pool: "default", name: "ov", VolumeResizeRequest(capacity: 96 << 20))
        #expect(grown.capacity == 96 << 20)
        _ = try await daemon.waitForLog("stor", "size=196608")
        #expect(try await client.info("stor").pid == pid, "the same QEMU, not a restart")
        await Self.expectError(.wrongState, containing: "can only grow") {
            _ = try await client.resizeVolume(pool: "default", name: "ov", VolumeResizeRequest(capacity: 32 << 20, shrink: true))
        }

        // In use: refused, naming the domain; the backing volume is held by its overlay.
        await Self.expectError(.wrongState, containing: "'stor'") { try await client.deleteVolume(pool: "default", name: "ov") }
        await Self.expectError(.wrongState, containing: "backing volume") { try await client.deleteVolume(pool: "default", name: "base") }
        await Self.expectError(.wrongState, containing: "'stor'") { _ = try await client.wipeVolume(pool: "default", name: "ov") }

        _ = try await client.perform(.destroy, on: "stor")
        #expect(try Self.virtualSize(overlay.path, format: "qcow2") == 96 << 20)

        // A qcow2 naming a backing file the catalog did not record is still refused at define.
        let foreign = daemon.stateDirectory + "/foreign.qcow2"
        let make = Process()
        make.executableURL = URL(fileURLWithPath: "/usr/bin/qemu-img")
        make.arguments = ["create", "-q", "-f", "qcow2", "-b", base.path, "-F", "raw", foreign]
        try make.run()
        make.waitUntilExit()
        var other = try GuestFixture.spec("foreign")
        other.disks = [DiskSpec(path: foreign, backing: DiskBacking(path: base.path, format: .raw))]
        await Self.expectError(.invalidArgument, containing: "backing file") { _ = try await client.define(other) }
    }

    /// attach-disk and detach-disk as virsh spells them (through the real CLI): a volume plugged
    /// into a running pc guest appears as /sys/block/vdb with its content, goes away again on
    /// detach (and QEMU no longer holds the file); --config changes only the definition; a
    /// microvm guest, a shut-off guest's --live and an unrecorded backing file are refused.
    @Test func diskHotplugAndConfig() async throws {
        try Self.requireQEMUImg()
        let daemon = try await TestDaemon()
        defer { daemon.tearDown() }
        let client = daemon.client
        let data = try await client.createVolume(pool: "default", VolumeCreateRequest(name: "data", capacity: 32 << 20))
        let handle = try #require(FileHandle(forWritingAtPath: data.path))
        try handle.write(contentsOf: Data("BERTH-HOTPLUG-MARK".utf8))
        try handle.close()
        _ = try await client.createVolume(pool: "default", VolumeCreateRequest(name: "cfg", capacity: 16 << 20, format: .qcow2))

        // The guest reports each change of /sys/block/vdb, and what the new disk holds.
        _ = try await client.createVolume(pool: "default", VolumeCreateRequest(name: "root", capacity: 8 << 20))
        var spec = try GuestFixture.spec("hot")
        spec.machine = "pc"
        spec.disks = [DiskSpec(path: "", volume: "default/root")]
        spec.cmdline =
            (spec.cmdline ?? "")
            + #" berth.run="echo hotplug-watch-ready; was=absent; n=0; i=0; while [ $i -lt 900 ]; do now=absent; [ -e /sys/block/vdb ] && now=present; if [ $now != $was ]; then n=$((n+1)); echo vdb-change$n-$now; [ $now = present ] && echo vdb-data=$(head -c 18 /dev/vdb); was=$now; fi; sleep 1; i=$((i+1)); done""#
        _ = try await client.define(spec)
        // A microvm guest (the default for a host kernel) boots alongside.
        var micro = try GuestFixture.spec("micro")
        micro.machine = "microvm"
        _ = try await client.define(micro)
        let state = daemon.stateDirectory
        let offline = try await BerthRun.run(["attach-disk", "hot", "default/data", "vdb", "--live"], state: state)
        #expect(offline.status != 0 && offline.stderr.contains("not running"), "\(offline.stderr)")

        let started = try await client.perform(.start, on: "hot")
        let pid = try #require(started.pid)
        _ = try await client.perform(.start, on: "micro")
        _ = try await daemon.waitForLog("hot", "hotplug-watch-ready", timeout: 300)

        let attached = try await BerthRun.run(["attach-disk", "hot", "default/data", "vdb", "--live"], state: state)
        #expect(attached.status == 0, "\(attached.stderr)")
        _ = try await daemon.waitForLog("hot", "vdb-change1-present", timeout: 120)
        _ = try await daemon.waitForLog("hot", "vdb-data=BERTH-HOTPLUG-MARK")
        var info = try await client.info("hot")
        #expect(info.pid == pid && info.liveDisks?.last?.path == data.path && info.liveDisks?.last?.format == .raw)
        #expect(!info.spec.disks.contains { $0.path == data.path }, "--live leaves the definition alone")
        let listed = try await BerthRun.run(["domblklist", "hot"], state: state)
        #expect(listed.stdout.contains("vdb") && listed.stdout.contains(data.path), "\(listed.stdout)")
        await Self.expectError(.wrongState, containing: "'hot'") { try await client.deleteVolume(pool: "default", name: "data") }
        let saved = try await BerthRun.run(["save", "hot", daemon.stateDirectory + "/hot.save"], state: state)
        #expect(saved.status != 0 && saved.stderr.contains("plugged in or out live"), "\(saved.stderr)")
        let twice = try await BerthRun.run(["attach-disk", "hot", "default/data", "vdc", "--live"], state: state)
        #expect(twice.status != 0 && twice.stderr.contains("already"), "\(twice.stderr)")

        // --config: the definition only; the running guest keeps its disks.
        let configured = try await BerthRun.run(["attach-disk", "hot", "default/cfg", "vdc", "--config"], state: state)
        #expect(configured.status == 0, "\(configured.stderr)")
        info = try await client.info("hot")
        #expect(info.spec.disks.last?.volume == "default/cfg" && info.spec.disks.last?.format == .qcow2)
        #expect(info.liveDisks?.contains { $0.volume == "default/cfg" } == false)
        let inactive = try await BerthRun.run(["domblklist", "hot", "--inactive"], state: state)
        #expect(inactive.stdout.contains("vdc"), "\(inactive.stdout)")
        let unconfigured = try await BerthRun.run(["detach-disk", "hot", "vdc", "--config"], state: state)
        #expect(unconfigured.status == 0, "\(unconfigured.stderr)")
        #expect(try await client.info("hot").spec.disks.map(\.volume) == ["default/root"])

        // Live unplug: the guest lets go of it; QEMU closes its descriptor.
        let detached = try await BerthRun.run(["detach-disk", "hot", "vdb", "--live"], state: state)
        #expect(detached.status == 0, "\(detached.stderr)")
        _ = try await daemon.waitForLog("hot", "vdb-change2-absent", timeout: 120)
        #expect(try await client.info("hot").liveDisks?.map(\.volume) == ["default/root"])
        let held = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []).compactMap {
            try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\($0)")
        }
        #expect(!held.contains(data.path), "QEMU still holds \(data.path)")
        try await client.deleteVolume(pool: "default", name: "data")

        // microvm has no PCI to plug into; a backing file the catalog did not record is refused.
        _ = try await daemon.waitForLog("micro", "BERTH-GUEST-READY", timeout: 300)
        let onMicrovm = try await BerthRun.run(["attach-disk", "micro", "default/cfg", "vdb"], state: state)
        #expect(onMicrovm.status != 0 && onMicrovm.stderr.contains("microvm"), "\(onMicrovm.stderr)")
        let foreign = daemon.stateDirectory + "/foreign.qcow2"
        let base = try await client.createVolume(pool: "default", VolumeCreateRequest(name: "base", capacity: 1 << 20))
        let make = Process()
        make.executableURL = URL(fileURLWithPath: "/usr/bin/qemu-img")
        make.arguments = ["create", "-q", "-f", "qcow2", "-b", base.path, "-F", "raw", foreign]
        try make.run()
        make.waitUntilExit()
        let unrecorded = try await BerthRun.run(["attach-disk", "hot", foreign, "vdb"], state: state)
        #expect(unrecorded.status != 0 && unrecorded.stderr.contains("backing file"), "\(unrecorded.stderr)")
        #expect(try await client.info("hot").liveDisks?.map(\.volume) == ["default/root"])

        // A volume the running guest has read-only: QEMU cannot resize it; the size stays.
        _ = try await client.createVolume(pool: "default", VolumeCreateRequest(name: "ro", capacity: 8 << 20))
        let readOnly = try await BerthRun.run(["attach-disk", "hot", "default/ro", "vdb", "--live", "--mode", "readonly"], state: state)
        #expect(readOnly.status == 0, "\(readOnly.stderr)")
        let resized = try await BerthRun.run(["vol-resize", "ro", "16M", "--pool", "default"], state: state)
        #expect(resized.status != 0 && resized.stderr.contains("read-only"), "\(resized.stderr)")
        #expect(try await client.volume(pool: "default", name: "ro").capacity == 8 << 20)
    }

    /// A volume group on a loop device over a sparse file of `size` in `directory`.
    struct LoopVolumeGroup {
        let name: String
        let loop: String
        let file: String

        /// Takes the group, its physical volume and the loop device away again.
        func remove() {
            for argv in [["/usr/sbin/vgremove", "-q", "-f", name], ["/usr/sbin/pvremove", "-q", loop], ["/usr/sbin/losetup", "-d", loop]] {
                _ = try? BerthRun.execute(argv[0], Array(argv.dropFirst()), timeout: 60)
            }
        }
    }

    static func loopVolumeGroup(_ prefix: String, size: String, in directory: String) async throws -> LoopVolumeGroup {
        let name = prefix + "\(UInt32.random(in: 0...UInt32.max))"
        let file = directory + "/pv.img"
        try await host(["/usr/bin/truncate", "-s", size, file])
        let loop = try await host(["/usr/sbin/losetup", "-f", "--show", file])
        try await host(["/usr/sbin/pvcreate", "-q", loop])
        try await host(["/usr/sbin/vgcreate", "-q", name, loop])
        return LoopVolumeGroup(name: name, loop: loop, file: file)
    }

    /// Polls a clone operation until it has copied bytes and `also` holds, for up to 120 s:
    /// whether it got there still running (the moment to SIGKILL berthd in the middle).
    static func cloneUnderWay(_ id: String, _ client: BerthClient, also: () -> Bool = { true }) async throws -> Bool {
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline {
            let now = try await client.operation(id)
            #expect(now.status == .running, "the clone ended before berthd was killed: \(now)")
            guard now.status == .running else { return false }
            if (now.progress?.bytes ?? 0) > 0, also() { return true }
        }
        return false
    }

    /// A host tool run on a thread of its own; its output (a failure records an issue).
    @discardableResult
    static func host(_ argv: [String]) async throws -> String {
        let run = try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Result { try BerthRun.execute(argv[0], Array(argv.dropFirst()), timeout: 120) }) }
                .start()
        }
        #expect(run.status == 0, "\(argv.joined(separator: " ")): \(run.stderr)")
        return run.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A logical pool on a volume group whose physical volume is a loop device over a scratch
    /// file: lvcreate/lvresize/lvremove through berthd (metadata only, this host has no
    /// device-mapper); vol-upload (local and streamed), vol-download, vol-clone and vol-wipe
    /// move exactly the bytes of the LV's range of the PV; a guest booted with the LV as its disk
    /// reads and writes that range (raw offset/size), and an LV of two segments is refused.
    @Test func logicalPoolOnALoopDevice() async throws {
        for tool in ["/usr/sbin/lvcreate", "/usr/sbin/losetup"] where !FileManager.default.isExecutableFile(atPath: tool) {
            Issue.record("\(tool) is missing: run scripts/install-host-deps (apt-get install lvm2 mount).")
            return
        }
        let daemon = try await TestDaemon()
        defer { daemon.tearDown() }
        let client = daemon.client
        let volumeGroup = try await Self.loopVolumeGroup("berthtest", size: "64M", in: daemon.stateDirectory)
        defer { volumeGroup.remove() }
        let (group, file) = (volumeGroup.name, volumeGroup.file)

        _ = try await client.definePool(PoolSpec(name: "nolvm", type: .logical, sourceName: group + "missing"))
        await Self.expectError(.notFound, containing: "does not exist") { _ = try await client.perform(.start, pool: "nolvm") }
        let defined = try await client.definePool(PoolSpec(name: "lvm", type: .logical, sourceName: group))
        #expect(defined.spec.target == "/dev/" + group)
        let pool = try await client.perform(.start, pool: "lvm")
        #expect(pool.active && pool.capacity == 60 << 20 && pool.available == 60 << 20, "\(pool)")

        let volume = try await client.createVolume(pool: "lvm", VolumeCreateRequest(name: "lv1", capacity: 16 << 20))
        #expect(volume.path == "/dev/\(group)/lv1" && volume.format == .raw && volume.capacity == 16 << 20)
        let extent = try #require(volume.extent)
        #expect(extent.device == file && extent.size == 16 << 20 && extent.offset >= 1 << 20, "\(extent)")
        #expect(try await Self.host(["/usr/sbin/lvs", "--noheadings", "-o", "lv_name", group]).contains("lv1"))
        await Self.expectError(.invalidArgument, containing: "raw") {
            _ = try await client.createVolume(pool: "lvm", VolumeCreateRequest(name: "q", capacity: 1 << 20, format: .qcow2))
        }
        await Self.expectError(.wrongState, containing: "free") {
            _ = try await client.createVolume(pool: "lvm", VolumeCreateRequest(name: "big", capacity: 1 << 30))
        }

        // Defined on lv1, then lv1's content uploaded (through the CLI, berthd reading the file):
        // the upload lands in a new LV renamed into place, and the guest started afterwards
        // reads and writes exactly that LV's range of the PV.
        var spec = try GuestFixture.spec("onlv")
        spec.disks = [DiskSpec(path: "", volume: "lvm/lv1")]
        spec.cmdline =
            (spec.cmdline ?? "")
            + #" berth.run="head -c 13 /dev/vda; echo; echo BERTH-LV-WRITE | dd of=/dev/vda bs=512 seek=1 conv=fsync 2>/dev/null; echo size=$(cat /sys/block/vda/size); echo lv-$((1+1))-done""#
        _ = try await client.define(spec)
        let mark = daemon.stateDirectory + "/mark.bin"
        try Data("BERTH-LV-MARK".utf8).write(to: URL(fileURLWithPath: mark))
        let upload = try await BerthRun.run(["vol-upload", "lv1", mark, "--pool", "lvm"], state: daemon.stateDirectory)
        #expect(upload.status == 0, "\(upload.stderr)")
        let moved = try #require(try await client.volume(pool: "lvm", name: "lv1").extent)
        #expect(moved.device == file && moved.size == 16 << 20 && moved.offset != extent.offset, "a new LV: \(moved)")
        #expect(Self.readPV(file, at: moved.offset, count: 13) == Data("BERTH-LV-MARK".utf8))
        let started = try await client.perform(.start, on: "onlv")
        let pid = try #require(started.pid)
        let argv = try String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)
        #expect(argv.contains(#""offset":\#(moved.offset),"size":\#(moved.size)"#), "a raw node over the LV's new range")
        _ = try await daemon.waitForLog("onlv", "lv-2-done", timeout: 300)
        let log = try await daemon.log("onlv")
        // The kernel's command line is in the log too: the mark is looked for on its own line.
        #expect(log.contains("\nBERTH-LV-MARK") && log.contains("size=32768"), "\(log.suffix(500))")
        _ = try await client.perform(.destroy, on: "onlv")
        #expect(Self.readPV(file, at: moved.offset + 512, count: 14) == Data("BERTH-LV-WRITE".utf8))

        // Downloaded: the whole LV's range, the guest's write included, zeros past it.
        let back = daemon.stateDirectory + "/back.bin"
        let download = try await BerthRun.run(["vol-download", "lvm/lv1", back], state: daemon.stateDirectory)
        #expect(download.status == 0, "\(download.stderr)")
        let downloaded = try Data(contentsOf: URL(fileURLWithPath: back))
        #expect(downloaded.count == 16 << 20 && downloaded.prefix(13) == Data("BERTH-LV-MARK".utf8))
        #expect(downloaded.dropFirst(512).prefix(14) == Data("BERTH-LV-WRITE".utf8))
        #expect(downloaded.dropFirst(1024).allSatisfy { $0 == 0 })

        // Streamed (what a remote client does), then cloned: the clone's range holds the bytes.
        var generator = SystemRandomNumberGenerator()
        let content = Data((0..<(3 << 20) + 123).map { _ in UInt8.random(in: 0...255, using: &generator) })
        let streamed = daemon.stateDirectory + "/streamed.bin"
        try content.write(to: URL(fileURLWithPath: streamed))
        let fd = open(streamed, O_RDONLY)
        defer { close(fd) }
        let afterStream = try await client.uploadVolume(pool: "lvm", name: "lv1", from: fd, length: UInt64(content.count)) { _ in }
        let range = try #require(afterStream.extent)
        #expect(Self.readPV(file, at: range.offset, count: content.count) == content)
        #expect(Self.readPV(file, at: range.offset + UInt64(content.count), count: 1 << 20).allSatisfy { $0 == 0 }, "the rest is zeros")
        let clone = try await client.cloneVolume(pool: "lvm", name: "lv1", to: "lv9")
        let cloneRange = try #require(clone.extent)
        #expect(clone.capacity == 16 << 20 && cloneRange.offset != range.offset)
        #expect(Self.readPV(file, at: cloneRange.offset, count: 16 << 20) == Self.readPV(file, at: range.offset, count: 16 << 20))
        let names = try await Self.host(["/usr/sbin/lvs", "--noheadings", "-o", "lv_name", group])
        #expect(names.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.sorted() == ["lv1", "lv9"], "\(names)")

        // Not enough room beside the volume: refused before anything is written, saying how much is free.
        _ = try await client.createVolume(pool: "lvm", VolumeCreateRequest(name: "fill", capacity: 20 << 20))
        await Self.expectError(.wrongState, containing: "has 8.00 MiB free") {
            _ = try await client.cloneVolume(pool: "lvm", name: "lv1", to: "lv10")
        }
        await Self.expectError(.wrongState, containing: "has 8.00 MiB free") {
            _ = try await client.uploadVolume(pool: "lvm", name: "lv1", file: streamed)
        }
        #expect(try await client.volume(pool: "lvm", name: "lv1").extent == range, "the volume is as it was")
        try await client.deleteVolume(pool: "lvm", name: "fill")

        // Wiped: zeros over the clone's range (its data went), the source untouched.
        let wiped = try await client.wipeVolume(pool: "lvm", name: "lv9")
        #expect(wiped.extent == cloneRange)
        #expect(Self.readPV(file, at: cloneRange.offset, count: 16 << 20).allSatisfy { $0 == 0 })
        #expect(Self.readPV(file, at: range.offset, count: content.count) == content)
        try await client.deleteVolume(pool: "lvm", name: "lv9")

        // Grown with lvresize while its guest is off; in use, not deleted.
        let grown = try await client.resizeVolume(pool: "lvm", name: "lv1", VolumeResizeRequest(capacity: 24 << 20))
        #expect(grown.capacity == 24 << 20 && grown.extent?.offset == range.offset)
        await Self.expectError(.wrongState, containing: "'onlv'") { try await client.deleteVolume(pool: "lvm", name: "lv1") }

        // Two segments (lv2 grown past lv3): no single range to give QEMU, refused at define.
        _ = try await client.createVolume(pool: "lvm", VolumeCreateRequest(name: "lv2", capacity: 4 << 20))
        _ = try await client.createVolume(pool: "lvm", VolumeCreateRequest(name: "lv3", capacity: 4 << 20))
        let split = try await client.resizeVolume(pool: "lvm", name: "lv2", VolumeResizeRequest(capacity: 12 << 20))
        #expect(split.extent == nil)
        var other = try GuestFixture.spec("split")
        other.disks = [DiskSpec(path: "", volume: "lvm/lv2")]
        await Self.expectError(.invalidArgument, containing: "several segments") { _ = try await client.define(other) }

        try await client.undefine("onlv", keepLogs: false)
        for name in ["lv1", "lv2", "lv3"] { try await client.deleteVolume(pool: "lvm", name: name) }
        #expect(try await Self.host(["/usr/sbin/lvs", "--noheadings", "-o", "lv_name", group]).isEmpty)
        #expect(try await client.pool("lvm").available == 60 << 20)
    }

    /// `count` bytes of the physical volume's file at `offset`.
    static func readPV(_ file: String, at offset: UInt64, count: Int) -> Data {
        guard let reader = FileHandle(forReadingAtPath: file) else { return Data() }
        defer { try? reader.close() }
        try? reader.seek(toOffset: offset)
        return (try? reader.read(upToCount: count)) ?? Data()
    }

    /// pool-build of a logical pool defined with --source-dev: pvcreate and vgcreate on a loop
    /// device (made and removed here), then volumes as in any logical pool; a device holding a
    /// filesystem is refused and left as it was, and so are a non-block device and a pool
    /// without a device.
    @Test func poolBuildMakesTheVolumeGroupOnItsDevice() async throws {
        for tool in ["/usr/sbin/vgcreate", "/usr/sbin/losetup", "/usr/sbin/mkfs.ext4"]
        where !FileManager.default.isExecutableFile(atPath: tool) {
            Issue.record("\(tool) is missing: run scripts/install-host-deps (apt-get install lvm2 mount e2fsprogs).")
            return
        }
        let daemon = try await TestDaemon()
        defer { daemon.tearDown() }
        let client = daemon.client
        let state = daemon.stateDirectory
        let group = "berthbuild\(UInt32.random(in: 0...UInt32.max))"
        try await Self.host(["/usr/bin/truncate", "-s", "64M", state + "/pv.img"])
        try await Self.host(["/usr/bin/truncate", "-s", "32M", state + "/fs.img"])
        try await Self.host(["/usr/sbin/mkfs.ext4", "-q", state + "/fs.img"])
        let loop = try await Self.host(["/usr/sbin/losetup", "-f", "--show", state + "/pv.img"])
        let withFS = try await Self.host(["/usr/sbin/losetup", "-f", "--show", state + "/fs.img"])
        defer {
            for argv in [
                ["/usr/sbin/vgremove", "-q", "-f", group], ["/usr/sbin/pvremove", "-q", loop], ["/usr/sbin/losetup", "-d", loop],
                ["/usr/sbin/losetup", "-d", withFS],
            ] {
                _ = try? BerthRun.execute(argv[0], Array(argv.dropFirst()), timeout: 60)
            }
        }

        // Through the CLI as a user types it: define, build, start, a volume.
        for argv in [
            ["pool-define-as", "built", "logical", "--source-name", group, "--source-dev", loop], ["pool-build", "built"],
            ["pool-start", "built"], ["vol-create-as", "built", "lv1", "8M"],
        ] {
            let result = try await BerthRun.run(argv, state: state)
            #expect(result.status == 0, "\(argv): \(result.stderr)")
        }
        let pool = try await client.pool("built")
        #expect(pool.active && pool.capacity == 60 << 20 && pool.available == 52 << 20, "\(pool)")
        #expect(pool.spec.sourceDevice == loop)
        #expect(try await Self.host(["/usr/sbin/pvs", "--noheadings", "-o", "vg_name", loop]) == group)
        #expect(try await client.perform(.build, pool: "built").capacity == 60 << 20, "building again changes nothing")
        try await client.deleteVolume(pool: "built", name: "lv1")

        // A filesystem on the device: lvm2 refuses to wipe it, Berth says so, the data stays.
        _ = try await client.definePool(PoolSpec(name: "hasfs", type: .logical, sourceName: group + "fs", sourceDevice: withFS))
        await Self.expectError(.wrongState, containing: "ext4 signature") { _ = try await client.perform(.build, pool: "hasfs") }
        #expect(try await Self.host(["/usr/sbin/blkid", "-o", "value", "-s", "TYPE", withFS]) == "ext4")
        _ = try await client.definePool(PoolSpec(name: "notblock", type: .logical, sourceName: group + "nb", sourceDevice: "/dev/null"))
        await Self.expectError(.invalidArgument, containing: "not a block device") {
            _ = try await client.perform(.build, pool: "notblock")
        }
        _ = try await client.definePool(PoolSpec(name: "nodev", type: .logical, sourceName: group + "nd"))
        await Self.expectError(.invalidArgument, containing: "names no device") { _ = try await client.perform(.build, pool: "nodev") }
        await Self.expectError(.invalidArgument, containing: "under /dev") {
            _ = try await client.definePool(PoolSpec(name: "bad", type: .logical, sourceName: group, sourceDevice: "disk.img"))
        }
        #expect(try await Self.host(["/usr/sbin/vgs", "--noheadings", "-o", "vg_name"]).split(separator: "\n").count { $0.contains(group) } == 1)
    }

    /// vol-clone and vol-wipe are operations with progress (on the operation, to the client,
    /// and as volume-progress events); a berthd SIGKILLed in the middle of a clone of a large
    /// sparse volume leaves, once started again, no volume under the new name, no temporary
    /// file, and the source as it was.
    @Test func cloneKilledMidwayLeavesNoHalfVolume() async throws {
        try Self.requireQEMUImg()
        let daemon = try await TestDaemon()
        defer { daemon.tearDown() }
        let client = daemon.client
        let images = daemon.stateDirectory + "/images"
        let events = Mutex<[LifecycleEvent]>([])
        let listener = Task(executorPreference: GuestSlots.current) { try? await client.events { event in events.withLock { $0.append(event) } } }
        defer { listener.cancel() }

        // Sparse but slow to copy: 2 GiB, every other MiB written (1 GiB of data in 1024 extents).
        let source = try await client.createVolume(pool: "default", VolumeCreateRequest(name: "big", capacity: 2 << 30))
        let handle = try #require(FileHandle(forWritingAtPath: source.path))
        for index in 0..<1024 {
            try handle.seek(toOffset: UInt64(index) << 21)
            try handle.write(contentsOf: Data(repeating: UInt8(truncatingIfNeeded: index | 1), count: 1 << 20))
        }
        try handle.close()
        // What 1 GiB of data takes (plus a few blocks of extent tree).
        let dataOnly = { (bytes: UInt64) in bytes >= 1 << 30 && bytes < (1 << 30) + (1 << 20) }
        #expect(dataOnly(try await client.volume(pool: "default", name: "big").allocation))

        // A whole clone: progress reaches the client, the operation names the volume, events tell.
        let seen = Mutex<[OperationProgress]>([])
        let copy = try await client.cloneVolume(pool: "default", name: "big", to: "whole") { progress in
            seen.withLock { $0.append(progress) }
        }
        #expect(seen.withLock { $0.last } == OperationProgress(bytes: 2 << 30, total: 2 << 30), "\(seen.withLock { $0 })")
        #expect(copy.capacity == 2 << 30 && dataOnly(copy.allocation), "holes stay holes: \(copy.allocation)")
        let reader = try #require(FileHandle(forReadingAtPath: copy.path))
        try reader.seek(toOffset: 1023 << 21)
        #expect(try reader.read(upToCount: 4) == Data(repeating: 0xFF, count: 4))
        try reader.seek(toOffset: (1023 << 21) + (1 << 20))
        #expect(try reader.read(upToCount: 4) == Data(count: 4), "a hole stays zeros")
        try reader.close()
        let wipe = try await client.beginWipeVolume(pool: "default", name: "whole")
        #expect(wipe.volume == "default/whole" && wipe.action == "vol-wipe")
        #expect(try await client.finish(wipe).progress?.bytes == 2 << 30)
        #expect(try await client.volume(pool: "default", name: "whole").allocation < 1 << 20, "the data blocks went back")
        try await client.deleteVolume(pool: "default", name: "whole")
        let deadline = Date().addingTimeInterval(60)
        while events.withLock({ $0.filter { $0.kind == .volumeProgress }.count }) < 22, Date() < deadline {
            try await Task.sleep(for: .milliseconds(100))
        }
        let progressEvents = events.withLock { $0.filter { $0.kind == .volumeProgress }.compactMap(\.detail) }
        #expect(progressEvents.contains("vol-clone default/big to default/whole: 50% of 2.00 GiB"), "\(progressEvents)")
        #expect(progressEvents.contains("vol-wipe default/whole: 100% of 2.00 GiB"), "\(progressEvents)")

        // Killed in the middle: the copy exists only under its hidden name.
        var before = stat()
        #expect(stat(source.path, &before) == 0)
        let operation = try await client.beginCloneVolume(pool: "default", name: "big", to: "half")
        let midway = try await Self.cloneUnderWay(operation.id, client)
        daemon.stop(signal: SIGKILL)
        #expect(midway)
        #expect(Self.leftovers(images).count == 1, "the half copy under a hidden name: \(Self.leftovers(images))")
        #expect(!FileManager.default.fileExists(atPath: images + "/half"))

        try await daemon.start()
        await Self.expectError(.notFound, containing: "half") { _ = try await client.volume(pool: "default", name: "half") }
        #expect(!FileManager.default.fileExists(atPath: images + "/half"))
        #expect(Self.leftovers(images).isEmpty, "temporary files left: \(Self.leftovers(images))")
        var after = stat()
        #expect(stat(source.path, &after) == 0)
        #expect(after.st_size == before.st_size && after.st_blocks == before.st_blocks)
        #expect(after.st_mtim.tv_sec == before.st_mtim.tv_sec && after.st_mtim.tv_nsec == before.st_mtim.tv_nsec)
        #expect(try await client.volumes(pool: "default").map(\.name) == ["big"])
        // The restarted berthd clones it whole.
        #expect(dataOnly(try await client.cloneVolume(pool: "default", name: "big", to: "half").allocation))

        // A qcow2 clone is qemu-img's work: it dies with berthd rather than writing on into a
        // temporary file the next start removes.
        let convert = Process()
        convert.executableURL = URL(fileURLWithPath: "/usr/bin/qemu-img")
        convert.arguments = ["convert", "-q", "-f", "raw", "-O", "qcow2", source.path, images + "/bigq"]
        try convert.run()
        convert.waitUntilExit()
        _ = try await client.perform(.refresh, pool: "default")
        #expect(try await client.volume(pool: "default", name: "bigq").format == .qcow2)
        let qcow2Clone = try await client.beginCloneVolume(pool: "default", name: "bigq", to: "halfq")
        let converting = try await Self.cloneUnderWay(qcow2Clone.id, client) { !Self.qemuImgs(naming: images).isEmpty }
        daemon.stop(signal: SIGKILL)
        #expect(converting)
        let goneDeadline = Date().addingTimeInterval(60)
        while !Self.qemuImgs(naming: images).isEmpty, Date() < goneDeadline { try await Task.sleep(for: .milliseconds(100)) }
        #expect(Self.qemuImgs(naming: images).isEmpty, "qemu-img outlived berthd: \(Self.qemuImgs(naming: images))")
        try await daemon.start()
        await Self.expectError(.notFound, containing: "halfq") { _ = try await client.volume(pool: "default", name: "halfq") }
        #expect(Self.leftovers(images).isEmpty, "temporary files left: \(Self.leftovers(images))")
    }

    /// A logical volume's clone is qemu-img's copy into a hidden LV: berthd SIGKILLed in the
    /// middle leaves, once started again, no LV under the new name nor a hidden one, and the
    /// catalog agrees. An upload killed between its two renames (the old LV set aside, the new
    /// one not yet in its place) gets the old one back under its name.
    @Test func logicalCloneKilledMidwayLeavesNoHalfVolume() async throws {
        for tool in ["/usr/sbin/lvcreate", "/usr/sbin/losetup"] where !FileManager.default.isExecutableFile(atPath: tool) {
            Issue.record("\(tool) is missing: run scripts/install-host-deps (apt-get install lvm2 mount).")
            return
        }
        try Self.requireQEMUImg()
        let daemon = try await TestDaemon()
        defer { daemon.tearDown() }
        let client = daemon.client
        let volumeGroup = try await Self.loopVolumeGroup("berthkill", size: "1100M", in: daemon.stateDirectory)
        defer { volumeGroup.remove() }
        let (group, file) = (volumeGroup.name, volumeGroup.file)
        _ = try await client.definePool(PoolSpec(name: "lvm", type: .logical, sourceName: group))
        _ = try await client.perform(.start, pool: "lvm")
        let source = try await client.createVolume(pool: "lvm", VolumeCreateRequest(name: "src", capacity: 512 << 20))
        let extent = try #require(source.extent)
        // Data all through (zeros would be skipped), so the copy takes a while.
        let handle = try #require(FileHandle(forWritingAtPath: file))
        try handle.seek(toOffset: extent.offset)
        for index in 0..<512 { try handle.write(contentsOf: Data(repeating: UInt8(truncatingIfNeeded: index | 1), count: 1 << 20)) }
        try handle.close()
        let lvs = {
            try await Self.host(["/usr/sbin/lvs", "--noheadings", "-o", "lv_name", group]).split(separator: "\n")
                .map { $0.trimmingCharacters(in: .whitespaces) }.sorted()
        }

        let operation = try await client.beginCloneVolume(pool: "lvm", name: "src", to: "half")
        let midway = try await Self.cloneUnderWay(operation.id, client)
        daemon.stop(signal: SIGKILL)
        #expect(midway)
        let hidden = try await lvs()
        #expect(hidden.count == 2 && hidden.contains("src") && hidden.contains { $0.hasPrefix(".half.berth-") }, "\(hidden)")
        let goneDeadline = Date().addingTimeInterval(60)
        while !Self.qemuImgs(naming: file).isEmpty, Date() < goneDeadline { try await Task.sleep(for: .milliseconds(100)) }
        #expect(Self.qemuImgs(naming: file).isEmpty, "qemu-img outlived berthd")

        // As an upload killed between its renames leaves it: src set aside, the new LV hidden.
        let deviceMapper = (try? String(contentsOfFile: "/proc/misc", encoding: .utf8))?.contains("device-mapper") ?? false
        let metadataOnly = deviceMapper ? [] : ["--driverloaded", "n"]
        try await Self.host(["/usr/sbin/lvrename"] + metadataOnly + ["-q", group, "src", ".src.berth-old-0000abcd"])
        try await Self.host(
            ["/usr/sbin/lvcreate"] + metadataOnly + ["-q", "-y", "-W", "n", "-Z", "n", "-n", ".src.berth-1234abcd", "-L", "8m", group])

        try await daemon.start()
        #expect(try await lvs() == ["src"])
        #expect(try await client.volumes(pool: "lvm").map(\.name) == ["src"])
        let after = try await client.volume(pool: "lvm", name: "src")
        #expect(after.extent == extent && after.capacity == 512 << 20)
        #expect(Self.readPV(file, at: extent.offset + (511 << 20), count: 4) == Data(repeating: 0xFF, count: 4))
        // The restarted berthd clones it whole.
        let whole = try await client.cloneVolume(pool: "lvm", name: "src", to: "half")
        let copied = try #require(whole.extent)
        #expect(Self.readPV(file, at: copied.offset + (511 << 20), count: 1 << 20) == Data(repeating: 0xFF, count: 1 << 20))
        #expect(try await lvs() == ["half", "src"])
    }

    /// Command lines of the qemu-img processes naming `directory` (or a file in it) in an argument.
    static func qemuImgs(naming directory: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { pid in
            guard Int(pid) != nil, let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return nil }
            let arguments = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            guard arguments.first?.hasSuffix("qemu-img") == true, arguments.contains(where: { $0.contains(directory) }) else {
                return nil
            }
            return arguments.joined(separator: " ")
        }
    }

    /// vol-upload and vol-download through the real CLI: the bytes come back exactly, the rest
    /// of the volume is zeros, and an upload bigger than the volume or into a qcow2 volume is
    /// refused with the volume unchanged.
    @Test func uploadAndDownloadStreamTheBytes() async throws {
        try Self.requireQEMUImg()
        let daemon = try await TestDaemon()
        defer { daemon.tearDown() }
        let client = daemon.client
        let state = daemon.stateDirectory
        let volume = try await client.createVolume(pool: "default", VolumeCreateRequest(name: "up", capacity: 24 << 20))
        var generator = SystemRandomNumberGenerator()
        let content = Data((0..<(9 << 20) + 123).map { _ in UInt8.random(in: 0...255, using: &generator) })
        let source = state + "/source.bin"
        try content.write(to: URL(fileURLWithPath: source))

        let upload = try await BerthRun.run(["vol-upload", "up", source, "--pool", "default"], state: state)
        #expect(upload.status == 0, "\(upload.stderr)")
        let target = state + "/back.bin"
        let download = try await BerthRun.run(["vol-download", "default/up", target], state: state)
        #expect(download.status == 0, "\(download.stderr)")
        let back = try Data(contentsOf: URL(fileURLWithPath: target))
        #expect(back.count == 24 << 20)
        #expect(back.prefix(content.count) == content, "the uploaded bytes come back")
        #expect(back.dropFirst(content.count).allSatisfy { $0 == 0 }, "the rest is zeros")
        #expect(try await client.volume(pool: "default", name: "up").capacity == 24 << 20)
        // Root's CLI had berthd fill the file: the volume's holes stay holes.
        var written = stat()
        #expect(stat(target, &written) == 0 && Int(written.st_blocks) * 512 < 16 << 20, "blocks: \(written.st_blocks)")
        // Streamed from the API (what a remote client does): the same bytes.
        let streamedBack = state + "/streamed-back.bin"
        let out = open(streamedBack, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        try await client.downloadVolume(pool: "default", name: "up", to: out) { _ in }
        close(out)
        #expect(try Data(contentsOf: URL(fileURLWithPath: streamedBack)) == back)

        // Streamed over the API (what a remote client does): the same bytes arrive.
        let reversed = Data(content.reversed())
        let streamed = state + "/streamed.bin"
        try reversed.write(to: URL(fileURLWithPath: streamed))
        let fd = open(streamed, O_RDONLY)
        defer { close(fd) }
        _ = try await client.uploadVolume(pool: "default", name: "up", from: fd, length: UInt64(reversed.count)) { _ in }
        let afterStream = try Data(contentsOf: URL(fileURLWithPath: volume.path))
        #expect(afterStream.count == 24 << 20 && afterStream.prefix(reversed.count) == reversed)
        #expect(afterStream.dropFirst(reversed.count).allSatisfy { $0 == 0 })
        // A local file berthd reads itself keeps its holes.
        let sparse = state + "/sparse.bin"
        try await Self.host(["/usr/bin/truncate", "-s", "20M", sparse])
        let marker = try #require(FileHandle(forWritingAtPath: sparse))
        try marker.seek(toOffset: 10 << 20)
        try marker.write(contentsOf: Data("BERTH-SPARSE".utf8))
        try marker.close()
        _ = try await client.uploadVolume(pool: "default", name: "up", file: sparse)
        let afterSparse = try Data(contentsOf: URL(fileURLWithPath: volume.path))
        #expect(afterSparse.count == 24 << 20 && afterSparse.dropFirst(10 << 20).prefix(12) == Data("BERTH-SPARSE".utf8))
        #expect(try await client.volume(pool: "default", name: "up").allocation < 1 << 20, "holes stay holes")
        await Self.expectError(.invalidArgument, containing: "absolute") {
            _ = try await client.uploadVolume(pool: "default", name: "up", file: "relative.bin")
        }
        _ = try await client.uploadVolume(pool: "default", name: "up", file: source)

        // Too big: refused, the volume keeps what it had; a qcow2 volume takes no upload.
        let big = state + "/big.bin"
        try Data(count: 25 << 20).write(to: URL(fileURLWithPath: big))
        let tooBig = try await BerthRun.run(["vol-upload", "up", big, "--pool", "default"], state: state)
        #expect(tooBig.status != 0 && tooBig.stderr.contains("bigger than"), "\(tooBig.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: volume.path)).prefix(content.count) == content)
        _ = try await client.createVolume(pool: "default", VolumeCreateRequest(name: "q", capacity: 1 << 20, format: .qcow2))
        let qcow = try await BerthRun.run(["vol-upload", "default/q", source], state: state)
        #expect(qcow.status != 0 && qcow.stderr.contains("raw volumes only"), "\(qcow.stderr)")
        let exists = try await BerthRun.run(["vol-download", "default/up", target], state: state)
        #expect(exists.status != 0, "an existing file is not overwritten")
        #expect(Self.leftovers(state + "/images").isEmpty, "temporary files left: \(Self.leftovers(state + "/images"))")
    }

    /// berthd opens the file a local vol-upload or vol-download names only for a root client:
    /// a user in the socket's group cannot have berthd read (or write) a root-only file for
    /// them, and their `berth vol-upload` streams what they can read themselves.
    @Test func localUploadReadsFilesOnlyForRoot() async throws {
        try Self.requireQEMUImg()
        let daemon = try await TestDaemon()
        defer { daemon.tearDown() }
        let client = daemon.client
        let state = daemon.stateDirectory
        let volume = try await client.createVolume(pool: "default", VolumeCreateRequest(name: "up", capacity: 4 << 20))
        let secret = state + "/secret.bin"
        try Data("ROOT-ONLY".utf8).write(to: URL(fileURLWithPath: secret))
        chmod(secret, 0o600)
        let shared = state + "/shared.bin"
        try Data("ANYONE-MAY-READ".utf8).write(to: URL(fileURLWithPath: shared))
        chmod(shared, 0o644)
        // nobody (uid 65534) in the socket's group, nogroup.
        chmod(state, 0o755)
        chmod(state + "/run", 0o711)
        #expect(chown(daemon.socketPath, 0, 65534) == 0)

        // nobody names a file for berthd to open: refused either way.
        func requestAsNobody(_ action: String, file: String) async throws -> String {
            try await Self.host(
                Self.asNobody + [
                    "/usr/bin/curl", "-s", "-w", "\n%{http_code}", "--unix-socket", daemon.socketPath, "-H",
                    "Content-Type: application/json", "-d", "{\"file\": \"\(file)\"}",
                    "http://localhost/v1/pools/default/volumes/up/\(action)?wait=true",
                ])
        }
        let request = try await requestAsNobody("upload", file: secret)
        #expect(request.hasSuffix("401") && request.contains("only for root"), "\(request)")
        let download = try await requestAsNobody("download", file: shared)
        #expect(download.hasSuffix("401") && download.contains("vol-download only for root"), "\(download)")
        let cli = try await Self.uploadAsNobody(secret, state: state)
        #expect(cli.status != 0 && cli.stderr.contains("Permission denied"), "\(cli.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: volume.path)).prefix(9) == Data(count: 9), "the volume is unchanged")

        // What nobody may read, nobody's CLI streams.
        let streamed = try await Self.uploadAsNobody(shared, state: state)
        #expect(streamed.status == 0, "\(streamed.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: volume.path)).prefix(15) == Data("ANYONE-MAY-READ".utf8))
        // Root's CLI has berthd read the file.
        _ = try await client.uploadVolume(pool: "default", name: "up", file: secret)
        #expect(try Data(contentsOf: URL(fileURLWithPath: volume.path)).prefix(9) == Data("ROOT-ONLY".utf8))
    }

    static let asNobody = ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]

    /// `berth vol-upload up FILE --pool default` run by nobody, on a thread of its own.
    static func uploadAsNobody(_ file: String, state: String) async throws -> BerthRun {
        let argv = asNobody + [TestDaemon.berthBinary, "vol-upload", "up", file, "--pool", "default"]
        let environment = ["PATH": "/usr/bin:/bin", "HOME": "/tmp", "BERTH_STATE_DIR": state]
        return try await withCheckedThrowingContinuation { continuation in
            Thread {
                continuation.resume(
                    with: Result { try BerthRun.execute(argv[0], Array(argv.dropFirst()), environment: environment, timeout: 120) })
            }.start()
        }
    }
}
