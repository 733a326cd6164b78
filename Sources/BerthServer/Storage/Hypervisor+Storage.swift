import BerthModel
import BerthQEMU
import BerthStore
import FoundationEssentials

#if canImport(Glibc)
    import Glibc
#endif

/// Storage pools and volumes, owned by berthd: every volume is made, grown, copied and
/// removed here (qemu-img for files), and recorded in the catalog with its format and its one
/// backing volume. A failed operation leaves no file under the volume's name and no record:
/// new content is written under a hidden temporary name in the pool and linked into place
/// only when complete (`link` refuses to replace, so two creators never overwrite each other).
extension Hypervisor {
    // MARK: Pools

    /// The `default` dir pool under the state directory, made at the first run only.
    public func ensureDefaultPool() throws {
        let target = stateDirectory + "/images"
        try FileManager.default.createDirectory(
            atPath: target, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o711])
        if try catalog.createDefaultPoolOnce(target: target) {
            hub.publish(LifecycleEvent(domain: "", kind: .poolDefined, state: .shutoff, detail: "pool default"))
        }
    }

    /// Starts autostart pools whose target exists (at berthd's start).
    public func autostartPools() {
        for pool in (try? catalog.pools()) ?? [] where pool.spec.autostart && !pool.active {
            if pool.spec.type == .dir {
                _ = try? startDirPool(pool)
            } else {
                Task { _ = try? await startPool(pool.spec.name) }
            }
        }
    }

    public func definePool(_ spec: PoolSpec) throws -> PoolInfo {
        var spec = spec
        switch spec.type {
        case .dir:
            guard let target = spec.target, target.hasPrefix("/") else {
                throw BerthError(
                    .invalidArgument, "A dir pool needs an absolute --target directory.",
                    remedy: "berth pool-define-as \(spec.name) dir --target /var/lib/berth/images")
            }
            spec.target = URL(fileURLWithPath: target).standardizedFileURL.path
        case .logical:
            guard let group = spec.sourceName else {
                throw BerthError(
                    .invalidArgument, "A logical pool needs its volume group (--source-name VG).",
                    remedy: "berth pool-define-as \(spec.name) logical --source-name VG")
            }
            try PoolSpec.checkName(group, what: "volume group")
            spec.target = "/dev/" + group
            if let device = spec.sourceDevice {
                guard device.hasPrefix("/dev/"), !device.contains("/../"), !device.contains(",") else {
                    throw BerthError(
                        .invalidArgument, "--source-dev must be a block device under /dev (got '\(device)').",
                        remedy: "For example --source-dev /dev/sdb or /dev/loop0.")
                }
            }
        }
        if spec.type == .dir, spec.sourceDevice != nil {
            throw BerthError(
                .invalidArgument, "A dir pool has no source device.", remedy: "Leave --source-dev out, or define a logical pool.")
        }
        try catalog.definePool(spec)
        return try poolInfo(spec.name)
    }

    public func pools() throws -> [PoolInfo] {
        try catalog.pools().map { try info(of: $0) }
    }

    public func poolInfo(_ name: String) throws -> PoolInfo {
        try info(of: try catalog.pool(named: name))
    }

    /// `pool-start`: the target directory must exist (`pool-build` makes it).
    @discardableResult
    public func startPool(_ name: String) async throws -> PoolInfo {
        let pool = try catalog.pool(named: name)
        if pool.spec.type == .logical { return try await startLogicalPool(pool) }
        return try startDirPool(pool)
    }

    @discardableResult
    func startDirPool(_ pool: PoolRecord) throws -> PoolInfo {
        let name = pool.spec.name
        let target = pool.spec.target ?? ""
        var isDirectory = false
        guard FileManager.default.fileExists(atPath: target, isDirectory: &isDirectory), isDirectory else {
            throw BerthError(
                .notFound, "The target directory \(target) of pool '\(name)' does not exist.",
                remedy: "Create it with 'berth pool-build \(name)' (or mkdir -p \(target)), then start the pool.")
        }
        try catalog.setPoolActive(name, true)
        return try poolInfo(name)
    }

    /// `pool-build`: makes the target directory (0711, root's when berthd is root), or a
    /// logical pool's volume group on its `--source-dev`.
    public func buildPool(_ name: String) async throws -> PoolInfo {
        let pool = try catalog.pool(named: name)
        if pool.spec.type == .logical { return try await buildLogicalPool(pool) }
        let target = pool.spec.target ?? ""
        do {
            // Only the last component: a mistyped target must not grow a tree of directories.
            var isDirectory = false
            if !(FileManager.default.fileExists(atPath: target, isDirectory: &isDirectory) && isDirectory) {
                try FileManager.default.createDirectory(
                    atPath: target, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o711])
            }
        } catch {
            throw BerthError(
                .unavailable, "Cannot create \(target): \(BerthError.reason(error))",
                remedy: "Check that berthd may write to \(URL(fileURLWithPath: target).deletingLastPathComponent().path).")
        }
        return try poolInfo(name)
    }

    /// `pool-destroy`: the pool goes inactive; its volumes and files stay.
    public func destroyPool(_ name: String) throws -> PoolInfo {
        try catalog.setPoolActive(name, false)
        return try poolInfo(name)
    }

    public func setPoolAutostart(_ name: String, _ autostart: Bool) throws -> PoolInfo {
        try catalog.setPoolAutostart(name, autostart)
        return try poolInfo(name)
    }

    public func undefinePool(_ name: String) throws {
        try catalog.undefinePool(name)
    }

    /// `pool-refresh`: image files made outside Berth appear as volumes (their format read from
    /// their first bytes once, now, and recorded); records of files that are gone are dropped.
    /// A qcow2 file naming a backing file that is not one of the pool's volumes is skipped.
    public func refreshPool(_ name: String) async throws -> PoolInfo {
        let pool = try activePool(name)
        if pool.spec.type == .logical { return try await refreshLogicalPool(pool) }
        let target = pool.spec.target ?? ""
        let known = try catalog.volumes(pool: name)
        let knownPaths = Dictionary(known.map { ($0.path, $0) }, uniquingKeysWith: { a, _ in a })
        var found: [VolumeRecord] = []
        // A UEFI domain's variable store beside its disk is the domain's, not a volume.
        let stores = Set(try catalog.allDomains().compactMap { $0.spec.firmware?.nvram })
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: target)) ?? []
        for entry in entries.sorted() where !entry.hasPrefix(".") {
            let path = target + "/" + entry
            if stores.contains(path) { continue }
            var info = stat()
            guard lstat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { continue }
            if let record = knownPaths[path] {
                found.append(record)
                continue
            }
            guard (try? PoolSpec.checkName(entry, what: "volume")) != nil,
                let probe = try? DiskFormat.probe(path: path)
            else { continue }
            var backing: DiskBacking?
            if let backingFile = probe.backingFile {
                guard let backingVolume = try catalog.volume(path: backingFile), backingVolume.backing == nil else { continue }
                backing = DiskBacking(path: backingFile, format: backingVolume.format, volume: backingVolume.key)
            }
            guard let sizes = try? await QEMUImg.info(path: path, format: probe.format) else { continue }
            found.append(
                VolumeRecord(pool: name, name: entry, path: path, format: probe.format, capacity: sizes.virtualSize, backing: backing))
        }
        _ = try catalog.syncVolumes(pool: name, found: found)
        return try poolInfo(name)
    }

    // MARK: Volumes

    public func volumes(pool: String) throws -> [VolumeInfo] {
        try catalog.volumes(pool: pool).map(volumeInfo(of:))
    }

    public func volumeInfo(pool: String, name: String) throws -> VolumeInfo {
        try volumeInfo(of: try catalog.volume(pool: pool, name: name))
    }

    /// The volume at `path`, if a pool holds one.
    public func volumeInfo(path: String) throws -> VolumeInfo {
        guard let record = try catalog.volume(path: path) else {
            throw BerthError(.notFound, "No volume has the path \(path).", remedy: "List volumes with 'berth vol-list POOL'.")
        }
        return try volumeInfo(of: record)
    }

    /// `vol-create-as`: a raw or qcow2 file made by qemu-img; with a backing volume, a qcow2
    /// overlay whose one backing file the catalog records.
    public func createVolume(pool: String, _ request: VolumeCreateRequest) async throws -> VolumeInfo {
        let record = try activePool(pool)
        try PoolSpec.checkName(request.name, what: "volume")
        let key = "\(pool)/\(request.name)"
        return try await claiming(key) {
            let path = try volumePath(record, request.name)
            if (try? catalog.volume(pool: pool, name: request.name)) != nil || access(path, F_OK) == 0 {
                throw BerthError.volumeExists(key)
            }
            if record.spec.type == .logical { return try await createLogicalVolume(record, request) }
            var format = request.format ?? .raw
            var capacity = request.capacity
            var backing: DiskBacking?
            var arguments: [String] = []
            if let backingName = request.backingVolume {
                let base = try lookupVolume(backingName, defaultPool: pool)
                _ = try activePool(base.pool)
                guard base.backing == nil else {
                    throw BerthError(
                        .invalidArgument, "Volume \(base.key) is itself an overlay; Berth keeps backing chains one level deep.",
                        remedy: "Clone it to a full copy first ('berth vol-clone \(base.name) NEW --pool \(base.pool)') and use that.")
                }
                if request.format == .raw {
                    throw BerthError(
                        .invalidArgument, "An overlay on a backing volume is always qcow2.", remedy: "Leave --format out or give qcow2.")
                }
                format = .qcow2
                capacity = max(capacity, base.capacity)
                backing = DiskBacking(path: base.path, format: base.format, volume: base.key)
                arguments = ["-b", base.path, "-F", base.format.rawValue]
            }
            guard capacity > 0 else {
                throw BerthError(.invalidArgument, "A volume needs a size above 0.", remedy: "Give a size such as 10G.")
            }
            try Self.checkCapacity(capacity)
            if format == .raw { try checkSpace(record, needed: capacity, what: "a \(ByteSize.describe(capacity)) raw volume") }
            try await placed(at: path) { temporary in
                try await QEMUImg.run(["create", "-q", "-f", format.rawValue] + arguments + [temporary, String(capacity)])
            } record: {
                try catalog.addVolume(
                    VolumeRecord(pool: pool, name: request.name, path: path, format: format, capacity: capacity, backing: backing))
            }
            hub.publish(LifecycleEvent(domain: "", kind: .volumeCreated, state: .shutoff, detail: key))
            return try volumeInfo(pool: pool, name: request.name)
        }
    }

    /// `vol-delete`: refused while a domain's disk is the volume, or an overlay is on it.
    public func deleteVolume(pool: String, name: String) async throws {
        let record = try activePool(pool)
        try await claiming("\(pool)/\(name)") {
            if record.spec.type == .logical { try await removeLogicalVolume(record, name) }
            try catalog.removeVolume(pool: pool, name: name) { volume in
                // An LV is gone already (lvremove); a file goes with its record.
                guard record.spec.type == .logical || unlink(volume.path) == 0 || errno == ENOENT else {
                    throw BerthError(
                        .unavailable, "Cannot remove \(volume.path): \(String(cString: strerror(errno)))",
                        remedy: "Check the permissions of the pool's directory.")
                }
            }
        }
        hub.publish(LifecycleEvent(domain: "", kind: .volumeDeleted, state: .shutoff, detail: "\(pool)/\(name)"))
    }

    /// `vol-resize`: grows the volume (live, over QMP `block_resize`, when a running guest has it
    /// as a disk); shrinking needs `shrink` and a shut-off user, and says what it destroys.
    public func resizeVolume(pool: String, name: String, _ request: VolumeResizeRequest) async throws -> VolumeInfo {
        _ = try activePool(pool)
        return try await claiming("\(pool)/\(name)") {
            let volume = try catalog.volume(pool: pool, name: name)
            let size = request.capacity
            guard size > 0, size % 512 == 0 else {
                throw BerthError(
                    .invalidArgument, "\(size) bytes is not a whole number of 512-byte sectors.",
                    remedy: "Give a size such as 10G or 20480M.")
            }
            if size < volume.capacity, !request.shrink {
                throw BerthError(
                    .invalidArgument,
                    "\(ByteSize.describe(size)) is smaller than \(volume.key) (\(ByteSize.describe(volume.capacity))); shrinking destroys its last \(ByteSize.describe(volume.capacity - size)).",
                    remedy: "Shrink the guest's filesystem and partitions first, then run again with --shrink; or give a larger size.")
            }
            try Self.checkCapacity(size)
            if size == volume.capacity { return try volumeInfo(of: volume) }
            let record = try catalog.pool(named: pool)
            if record.spec.type == .logical { return try await resizeLogicalVolume(record, volume, size) }
            if volume.format == .raw, size > volume.capacity {
                try checkSpace(record, needed: size - volume.capacity, what: "growing \(volume.key)")
            }
            for name in try catalog.domainsUsing(path: volume.path) where try isRunning(name) {
                guard let disk = try catalog.liveDisks(name).first(where: { $0.disk.path == volume.path })?.disk else { continue }
                if disk.readOnly || disk.device == .cdrom {
                    throw BerthError(
                        .wrongState, "The running domain '\(name)' has \(volume.key) open read-only; QEMU cannot resize it.",
                        remedy: "Shut '\(name)' off and resize then, or attach the volume writable.")
                }
                if size < volume.capacity {
                    throw BerthError(
                        .wrongState, "\(volume.key) is a disk of the running domain '\(name)'; a live disk can only grow.",
                        remedy: "Shut '\(name)' off before shrinking it.")
                }
                // The guest's own QEMU resizes the image it holds open.
                if try await supervisor(name).blockResize(path: volume.path, bytes: size) {
                    try catalog.setVolumeCapacity(pool: pool, name: volume.name, capacity: size)
                    hub.publish(LifecycleEvent(domain: name, kind: .diskResized, state: .running, detail: "\(volume.key) \(size)"))
                    return try volumeInfo(pool: pool, name: volume.name)
                }
            }
            var arguments = ["resize", "-q", "-f", volume.format.rawValue]
            if size < volume.capacity { arguments.append("--shrink") }
            try await QEMUImg.run(arguments + [volume.path, String(size)])
            try catalog.setVolumeCapacity(pool: pool, name: volume.name, capacity: size)
            return try volumeInfo(pool: pool, name: volume.name)
        }
    }

    // MARK: Domain disks

    /// A disk naming a volume gets its path, format and backing from the volume's record; a
    /// disk naming a path that is a volume is tied to it the same way. A backing file is only
    /// ever what the catalog recorded, never taken from the definition.
    func resolveVolume(_ disk: DiskSpec) throws -> DiskSpec {
        var disk = disk
        let volume: VolumeRecord
        if let key = disk.volume {
            volume = try lookupVolume(key, defaultPool: nil)
            _ = try activePool(volume.pool)
            if !disk.path.isEmpty, disk.path != volume.path {
                throw BerthError(
                    .invalidArgument, "The disk names volume \(key) and the path \(disk.path), which is not that volume's (\(volume.path)).",
                    remedy: "Give only \"volume\" (or only \"path\").")
            }
        } else if let found = try catalog.volume(path: disk.path) {
            volume = found
        } else {
            disk.backing = nil
            disk.extent = nil
            return disk
        }
        if let format = disk.format, format != volume.format {
            throw BerthError(
                .invalidArgument, "The disk says format \(format.rawValue) but volume \(volume.key) is \(volume.format.rawValue).",
                remedy: "Leave \"format\" out; berthd takes it from the volume.")
        }
        disk.path = volume.path
        disk.volume = volume.key
        disk.format = volume.format
        disk.backing = volume.backing
        disk.extent = try logicalExtent(of: volume)
        return disk
    }

    // MARK: Helpers

    func lookupVolume(_ key: String, defaultPool: String?) throws -> VolumeRecord {
        let parts = key.split(separator: "/", maxSplits: 1).map(String.init)
        if key.hasPrefix("/") {
            guard let record = try catalog.volume(path: key) else {
                throw BerthError(.notFound, "No volume has the path \(key).", remedy: "List volumes with 'berth vol-list POOL'.")
            }
            return record
        }
        if parts.count == 2 { return try catalog.volume(pool: parts[0], name: parts[1]) }
        guard let defaultPool else {
            throw BerthError(
                .invalidArgument, "'\(key)' does not name a pool: give POOL/NAME.", remedy: "For example \"default/\(key)\".")
        }
        return try catalog.volume(pool: defaultPool, name: key)
    }

    @discardableResult
    func activePool(_ name: String) throws -> PoolRecord {
        let pool = try catalog.pool(named: name)
        guard pool.active else {
            throw BerthError(.wrongState, "Pool '\(name)' is not active.", remedy: "Start it with 'berth pool-start \(name)'.")
        }
        return pool
    }

    func isRunning(_ domain: String) throws -> Bool {
        [.running, .paused, .shuttingDown, .starting].contains(try catalog.domain(named: domain).state)
    }

    func refuseIfUsed(_ volume: VolumeRecord, action: String) throws {
        let users = try catalog.domainsUsing(path: volume.path)
        if let first = users.first {
            throw BerthError(
                .wrongState, "Volume \(volume.key) is a disk of domain \(users.map { "'\($0)'" }.joined(separator: ", ")); it cannot be \(action).",
                remedy: "Remove the disk from '\(first)' or undefine it first.")
        }
    }

    func volumePath(_ pool: PoolRecord, _ name: String) throws -> String {
        try PoolSpec.checkName(name, what: "volume")
        return (pool.spec.target ?? "") + "/" + name
    }

    /// Runs `body` with `key` marked busy; a second operation on it fails at once.
    func claiming<T>(_ key: String, _ body: () async throws -> T) async throws -> T {
        let claimed = busyVolumes.withLock { $0.insert(key).inserted }
        guard claimed else {
            throw BerthError(
                .wrongState, "Volume \(key) is busy with another operation.", remedy: "Wait for it to finish and try again.")
        }
        defer { _ = busyVolumes.withLock { $0.remove(key) } }
        return try await body()
    }

    /// Makes the file at `path` with `write` (given a temporary path beside it), then links it
    /// into place and runs `record`; any failure removes what was made, so neither a half file
    /// under the final name nor a record without its file is left. `replacing` swaps an
    /// existing file atomically (`rename`).
    func placed(
        at path: String, replacing: Bool = false, write: (String) async throws -> Void, record: () throws -> Void
    ) async throws {
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        let name = URL(fileURLWithPath: path).lastPathComponent
        let temporary = "\(directory)/.\(name).berth-\(UUID().uuidString.prefix(8).lowercased())"
        defer { unlink(temporary) }
        try await write(temporary)
        chmod(temporary, 0o600)
        if replacing {
            guard rename(temporary, path) == 0 else { throw placeError(path) }
            try record()
            return
        }
        guard link(temporary, path) == 0 else {
            if errno == EEXIST {
                throw BerthError(.alreadyExists, "\(path) already exists.", remedy: "Choose another volume name.")
            }
            throw placeError(path)
        }
        do {
            try record()
        } catch {
            unlink(path)
            throw error
        }
    }

    private func placeError(_ path: String) -> BerthError {
        BerthError(
            .unavailable, "Cannot put the volume at \(path): \(String(cString: strerror(errno)))",
            remedy: "Check the permissions of the pool's directory.")
    }

    /// The largest volume Berth makes (qcow2's practical limit is far above what a host holds).
    static let maxCapacity: UInt64 = 64 << 40

    static func checkCapacity(_ bytes: UInt64) throws {
        guard bytes <= maxCapacity else {
            throw BerthError(
                .invalidArgument, "\(ByteSize.describe(bytes)) is larger than Berth's volume limit of 64 TiB.",
                remedy: "Give a smaller size.")
        }
    }

    func checkSpace(_ pool: PoolRecord, needed: UInt64, what: String) throws {
        let free = space(of: pool).available
        guard needed <= free else {
            // 409: the request is fine, the pool's state (its free space) does not allow it.
            throw BerthError(
                .wrongState, "Pool '\(pool.spec.name)' has \(ByteSize.describe(free)) free; \(what) needs \(ByteSize.describe(needed)).",
                remedy: "Free space in \(pool.spec.target ?? "the pool"), choose a smaller size, or use qcow2 (allocated as the guest writes).")
        }
    }

    func space(of pool: PoolRecord) -> (capacity: UInt64, allocation: UInt64, available: UInt64) {
        if pool.spec.type == .logical {
            let group: (size: UInt64, free: UInt64) = groupSpace.withLock { $0[pool.spec.name] } ?? (0, 0)
            return (group.size, group.size - min(group.size, group.free), group.free)
        }
        var fs = statvfs()
        guard let target = pool.spec.target, statvfs(target, &fs) == 0 else { return (0, 0, 0) }
        let block = UInt64(fs.f_frsize)
        let capacity = UInt64(fs.f_blocks) * block
        return (capacity, capacity - UInt64(fs.f_bfree) * block, UInt64(fs.f_bavail) * block)
    }

    func allocation(of path: String) -> UInt64 {
        var info = stat()
        guard stat(path, &info) == 0 else { return 0 }
        return UInt64(max(0, info.st_blocks)) * 512
    }

    func info(of pool: PoolRecord) throws -> PoolInfo {
        let sizes = pool.active ? space(of: pool) : (0, 0, 0)
        return PoolInfo(
            spec: pool.spec, active: pool.active, capacity: sizes.0, allocation: sizes.1, available: sizes.2,
            volumes: try catalog.volumes(pool: pool.spec.name).count)
    }

    func volumeInfo(of record: VolumeRecord) throws -> VolumeInfo {
        VolumeInfo(
            pool: record.pool, name: record.name, path: record.path, format: record.format, capacity: record.capacity,
            allocation: allocation(of: record.path), backingVolume: record.backing?.volume,
            usedBy: try catalog.domainsUsing(path: record.path), extent: record.extent)
    }
}
