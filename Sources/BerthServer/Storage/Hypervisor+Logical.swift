import BerthModel
import BerthStore
import FoundationEssentials

#if canImport(Glibc)
    import Glibc
#endif

/// `logical` pools: an LVM volume group, each volume one logical volume, made, grown and
/// removed with lvm2's tools (`LVMTools`). Without device-mapper the LVs are never activated;
/// a linear single-segment LV reaches QEMU as its byte range of the physical volume (raw
/// `offset`/`size`), and one of several segments is refused with the reason. Their content
/// (clone, wipe, upload, download) is `Hypervisor+LogicalData`.
extension Hypervisor {
    /// `pool-start`: the volume group must exist; its LVs are read in.
    func startLogicalPool(_ pool: PoolRecord) async throws -> PoolInfo {
        _ = try await groupSpace(of: pool)
        try catalog.setPoolActive(pool.spec.name, true)
        return try await refreshLogicalPool(try catalog.pool(named: pool.spec.name))
    }

    /// `pool-build`: the volume group made on the pool's `--source-dev` with lvm2's tools
    /// (`pvcreate`, `vgcreate`). A device holding a filesystem or another volume group is
    /// refused by them (never wiped), and a failed vgcreate takes the new PV label back.
    func buildLogicalPool(_ pool: PoolRecord) async throws -> PoolInfo {
        let group = pool.spec.sourceName ?? ""
        if (try? await LVMTools.volumeGroup(group)) != nil { return try poolInfo(pool.spec.name) }
        guard let device = pool.spec.sourceDevice else {
            throw BerthError(
                .invalidArgument, "Pool '\(pool.spec.name)' names no device to make volume group \(group) on.",
                remedy:
                    "Define it with --source-dev DEVICE ('berth pool-define-as \(pool.spec.name) logical --source-name \(group) --source-dev /dev/sdX'), or \(LVMTools.remedy(group))"
            )
        }
        var info = stat()
        guard stat(device, &info) == 0, (info.st_mode & S_IFMT) == S_IFBLK else {
            throw BerthError(
                .invalidArgument, "\(device) is not a block device.",
                remedy: "Give a disk or partition (a file can be made one with 'losetup -f --show FILE').")
        }
        do {
            try await LVMTools.run("pvcreate", ["-q", device])
        } catch let error as BerthError where error.message.contains("signature detected") {
            throw BerthError(
                .wrongState, error.message,
                remedy:
                    "Berth never wipes a device that holds data. If nothing on \(device) is needed, wipe it yourself ('wipefs -a \(device)') and build again."
            )
        }
        do {
            try await LVMTools.run("vgcreate", ["-q", group, device])
        } catch {
            _ = try? await LVMTools.run("pvremove", ["-q", device])
            throw error
        }
        _ = try await groupSpace(of: pool)
        return try poolInfo(pool.spec.name)
    }

    /// `pool-refresh`: LVs made outside Berth appear as raw volumes; gone ones are forgotten.
    func refreshLogicalPool(_ pool: PoolRecord) async throws -> PoolInfo {
        let group = pool.spec.sourceName ?? ""
        let found = try await LVMTools.logicalVolumes(group).compactMap { volume -> VolumeRecord? in
            guard (try? PoolSpec.checkName(volume.name, what: "volume")) != nil else { return nil }
            return VolumeRecord(
                pool: pool.spec.name, name: volume.name, path: "/dev/\(group)/\(volume.name)", format: .raw,
                capacity: volume.size, extent: volume.extent)
        }
        _ = try catalog.syncVolumes(pool: pool.spec.name, found: found)
        for volume in found {
            try? catalog.setVolumeCapacity(pool: pool.spec.name, name: volume.name, capacity: volume.capacity, extent: volume.extent)
        }
        _ = try await groupSpace(of: pool)
        return try poolInfo(pool.spec.name)
    }

    /// `vol-create-as` in a logical pool: `lvcreate` (metadata only without device-mapper).
    func createLogicalVolume(_ pool: PoolRecord, _ request: VolumeCreateRequest) async throws -> VolumeInfo {
        guard request.format ?? .raw == .raw, request.backingVolume == nil else {
            throw BerthError(
                .invalidArgument, "A logical volume is raw: no qcow2, no backing volume.",
                remedy: "Leave --format and --backing-vol out, or use a dir pool for qcow2 overlays.")
        }
        guard request.capacity > 0 else {
            throw BerthError(.invalidArgument, "A volume needs a size above 0.", remedy: "Give a size such as 10G.")
        }
        try Self.checkCapacity(request.capacity)
        let space = try await groupSpace(of: pool)
        guard request.capacity <= space.free else {
            throw BerthError(
                .wrongState,
                "Volume group \(pool.spec.sourceName ?? "") has \(ByteSize.describe(space.free)) free; the volume needs \(ByteSize.describe(request.capacity)).",
                remedy: "Choose a smaller size, or extend the volume group (vgextend).")
        }
        let group = pool.spec.sourceName ?? ""
        try await LVMTools.run(
            "lvcreate", LVMTools.metadataOnly + ["-q", "-y", "-W", "n", "-Z", "n", "-n", request.name, "-L", "\(request.capacity)b", group])
        do {
            let record = try await logicalRecord(pool, request.name)
            try catalog.addVolume(record)
        } catch {
            _ = try? await LVMTools.run("lvremove", LVMTools.metadataOnly + ["-q", "-f", "\(group)/\(request.name)"])
            throw error
        }
        _ = try? await groupSpace(of: pool)
        hub.publish(LifecycleEvent(domain: "", kind: .volumeCreated, state: .shutoff, detail: "\(pool.spec.name)/\(request.name)"))
        return try volumeInfo(pool: pool.spec.name, name: request.name)
    }

    /// `vol-delete` in a logical pool: refused while used, then `lvremove`; the record follows.
    func removeLogicalVolume(_ pool: PoolRecord, _ name: String) async throws {
        let volume = try catalog.volume(pool: pool.spec.name, name: name)
        try refuseIfUsed(volume, action: "deleted")
        try await LVMTools.run("lvremove", LVMTools.metadataOnly + ["-q", "-f", "\(pool.spec.sourceName ?? "")/\(name)"])
        _ = try? await groupSpace(of: pool)
    }

    /// `vol-resize` in a logical pool: `lvresize`; refused while a running guest has the LV
    /// (QEMU's view of a physical volume's range cannot be moved under it).
    func resizeLogicalVolume(_ pool: PoolRecord, _ volume: VolumeRecord, _ size: UInt64) async throws -> VolumeInfo {
        for user in try catalog.domainsUsing(path: volume.path) where try isRunning(user) {
            throw BerthError(
                .wrongState, "\(volume.key) is a disk of the running domain '\(user)'; a logical volume is resized while its guest is off.",
                remedy: "Shut '\(user)' off, resize, and start it again.")
        }
        if size > volume.capacity {
            let space = try await groupSpace(of: pool)
            guard size - volume.capacity <= space.free else {
                throw BerthError(
                    .wrongState,
                    "Volume group \(pool.spec.sourceName ?? "") has \(ByteSize.describe(space.free)) free; growing \(volume.key) needs \(ByteSize.describe(size - volume.capacity)).",
                    remedy: "Choose a smaller size, or extend the volume group (vgextend).")
            }
        }
        try await LVMTools.run(
            "lvresize", LVMTools.metadataOnly + ["-q", "-f", "-L", "\(size)b", "\(pool.spec.sourceName ?? "")/\(volume.name)"])
        let record = try await logicalRecord(pool, volume.name)
        try catalog.setVolumeCapacity(pool: pool.spec.name, name: volume.name, capacity: record.capacity, extent: record.extent)
        _ = try? await groupSpace(of: pool)
        return try volumeInfo(pool: pool.spec.name, name: volume.name)
    }

    /// The extent a domain's disk on `volume` gets: nil for a file, or for any LV where
    /// device-mapper makes `/dev/VG/LV`; without it, the LV's single segment or a refusal.
    func logicalExtent(of volume: VolumeRecord) throws -> VolumeExtent? {
        guard try catalog.pool(named: volume.pool).spec.type == .logical, !LVMTools.hasDeviceMapper else { return nil }
        guard let extent = volume.extent else {
            throw BerthError(
                .invalidArgument,
                "Logical volume \(volume.key) has several segments; without device-mapper Berth can hand QEMU only a single-segment LV.",
                remedy:
                    "Make a new volume of the size needed ('berth vol-create-as \(volume.pool) NAME SIZE') and copy the data, or use a host with device-mapper."
            )
        }
        return extent
    }

    /// The volume's record as lvm2 reports it now.
    func logicalRecord(_ pool: PoolRecord, _ name: String) async throws -> VolumeRecord {
        let group = pool.spec.sourceName ?? ""
        guard let volume = try await LVMTools.logicalVolumes(group).first(where: { $0.name == name }) else {
            throw BerthError(.internal, "lvm2 made \(group)/\(name) but does not list it.", remedy: "Check 'lvs \(group)'.")
        }
        return VolumeRecord(
            pool: pool.spec.name, name: name, path: "/dev/\(group)/\(name)", format: .raw, capacity: volume.size,
            extent: volume.extent)
    }

    /// Reads the volume group's size and free space (and keeps them for pool-info).
    func groupSpace(of pool: PoolRecord) async throws -> (size: UInt64, free: UInt64) {
        let space = try await LVMTools.volumeGroup(pool.spec.sourceName ?? "")
        groupSpace.withLock { $0[pool.spec.name] = space }
        return space
    }
}
