import BerthModel
import BerthQEMU
import BerthStore
import FoundationEssentials

#if canImport(Glibc)
    import Glibc
#endif

/// The content of logical volumes: `vol-clone`, `vol-wipe`, `vol-upload` and `vol-download`
/// work on the LV's byte range (`logicalRange`): its own node `/dev/VG/LV` where device-mapper
/// is, or, without it, its single segment's range of the physical volume, the same range a
/// guest gets. qemu-img copies and zeros ranges (`json:` raw `offset`/`size` images); berthd
/// itself only streams an upload's or a download's bytes. New content goes into a hidden LV
/// (`.NAME.berth-xxxxxxxx`) renamed into place when whole (`lvrename`), so a failed or killed
/// clone or upload leaves no half volume under the final name; `recoverLogicalPools` settles
/// what a killed berthd left.
extension Hypervisor {
    /// Where the LV's bytes are. Refused for an LV of several segments without device-mapper.
    func logicalRange(of volume: VolumeRecord) throws -> VolumeExtent {
        try logicalExtent(of: volume) ?? VolumeExtent(device: volume.path, offset: 0, size: volume.capacity)
    }

    /// `vol-wipe` of an LV: zeros over its whole range (holes punched in a PV that is a file).
    func wipeLogicalVolume(_ volume: VolumeRecord, progress: @escaping ProgressSink) async throws {
        try await zero(try logicalRange(of: volume), progress: progress)
    }

    /// `vol-clone` of an LV: a new hidden LV of the same size, the source's range copied into
    /// it by qemu-img, renamed to `newName` and recorded.
    func cloneLogicalVolume(
        _ pool: PoolRecord, _ source: VolumeRecord, to newName: String, progress: @escaping ProgressSink
    ) async throws {
        let from = try logicalRange(of: source)
        let capacity = source.capacity
        let group = pool.spec.sourceName ?? ""
        try await withHiddenVolume(pool, for: newName, size: source.capacity, what: "a copy of \(source.key)") { temporary in
            let to = try logicalRange(of: temporary)
            try await QEMUImg.convert(
                ["-n", "-f", "raw", "-O", "raw", rangeName(from), rangeName(to)],
                progress: { progress(UInt64($0 * Double(capacity)), capacity) })
            try await LVMTools.rename(group, temporary.name, to: newName)
            do {
                try catalog.addVolume(try await logicalRecord(pool, newName))
            } catch {
                _ = try? await LVMTools.run("lvremove", LVMTools.metadataOnly + ["-q", "-f", "\(group)/\(newName)"])
                throw error
            }
        }
        progress(capacity, capacity)
    }

    /// `vol-upload` into an LV: a new hidden LV zeroed, `receive` writes from its start, then
    /// it takes the volume's name (the old LV renamed aside first, then removed) and its
    /// record's range follows.
    func uploadLogicalVolume(
        _ pool: PoolRecord, _ volume: VolumeRecord, length: UInt64, receive: (Int32) async throws -> UInt64
    ) async throws {
        let group = pool.spec.sourceName ?? ""
        try await withHiddenVolume(pool, for: volume.name, size: volume.capacity, what: "an upload into \(volume.key)") {
            temporary in
            let range = try logicalRange(of: temporary)
            try await zero(range) { _, _ in }
            try await writeRange(range, length: length, volume: volume, receive: receive)
            let aside = Self.hiddenName(for: volume.name, displaced: true)
            try await LVMTools.rename(group, volume.name, to: aside)
            do {
                try await LVMTools.rename(group, temporary.name, to: volume.name)
            } catch {
                try? await LVMTools.rename(group, aside, to: volume.name)
                throw error
            }
            _ = try? await LVMTools.run("lvremove", LVMTools.metadataOnly + ["-q", "-f", "\(group)/\(aside)"])
            let record = try await logicalRecord(pool, volume.name)
            try catalog.setVolumeCapacity(pool: pool.spec.name, name: volume.name, capacity: record.capacity, extent: record.extent)
        }
    }

    /// An LV opened for `vol-download`: its descriptor, where its bytes start and how many.
    func openLogicalVolume(_ volume: VolumeRecord) throws -> (descriptor: Int32, offset: UInt64, length: UInt64) {
        let range = try logicalRange(of: volume)
        let fd = open(range.device, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw Self.transferError("open", range.device) }
        return (fd, range.offset, range.size)
    }

    /// At berthd's start, for each active logical pool: a hidden LV being written is removed;
    /// an LV an upload had renamed aside takes its name back if the new one never got it (else
    /// it goes); then the pool is read again so each record's range is lvm2's.
    public func recoverLogicalPools() async -> [String] {
        var settled: [String] = []
        for pool in (try? catalog.pools()) ?? [] where pool.spec.type == .logical && pool.active {
            let group = pool.spec.sourceName ?? ""
            guard let volumes = try? await LVMTools.logicalVolumes(group) else { continue }
            let names = Set(volumes.map(\.name))
            for volume in volumes {
                guard let hidden = Self.parseHiddenName(volume.name) else { continue }
                let restored = hidden.displaced && !names.contains(hidden.name)
                if restored, (try? await LVMTools.rename(group, volume.name, to: hidden.name)) != nil {
                    settled.append("\(group)/\(volume.name) renamed back to \(hidden.name)")
                } else if (try? await LVMTools.run("lvremove", LVMTools.metadataOnly + ["-q", "-f", "\(group)/\(volume.name)"])) != nil {
                    settled.append("\(group)/\(volume.name)")
                }
            }
            _ = try? await refreshLogicalPool(pool)
        }
        return settled
    }

    /// `.NAME.berth-xxxxxxxx` (being written) or `.NAME.berth-old-xxxxxxxx` (renamed aside).
    static func hiddenName(for name: String, displaced: Bool) -> String {
        ".\(name).berth-\(displaced ? "old-" : "")\(UUID().uuidString.prefix(8).lowercased())"
    }

    /// The final name a hidden LV is for, and whether it was renamed aside; nil for any other name.
    static func parseHiddenName(_ entry: String) -> (name: String, displaced: Bool)? {
        if let final = finalName(ofTemporary: entry) { return (final, false) }
        guard let marker = entry.ranges(of: ".berth-old-").last else { return nil }
        guard let final = finalName(ofTemporary: String(entry[..<marker.lowerBound]) + ".berth-" + entry[marker.upperBound...])
        else { return nil }
        return (final, true)
    }

    /// Makes a hidden LV of `size` (after checking the group has room), runs `body` with its
    /// record, and removes it if `body` fails (a renamed one is gone from under that name).
    private func withHiddenVolume(
        _ pool: PoolRecord, for name: String, size: UInt64, what: String, _ body: (VolumeRecord) async throws -> Void
    ) async throws {
        let space = try await groupSpace(of: pool)
        let group = pool.spec.sourceName ?? ""
        guard size <= space.free else {
            throw BerthError(
                .wrongState,
                "Volume group \(group) has \(ByteSize.describe(space.free)) free; \(what) needs \(ByteSize.describe(size)) (written beside the volume, then renamed into place).",
                remedy: "Free space in the volume group (vgextend, or delete a volume), then try again.")
        }
        let hidden = Self.hiddenName(for: name, displaced: false)
        try await LVMTools.run(
            "lvcreate", LVMTools.metadataOnly + ["-q", "-y", "-W", "n", "-Z", "n", "-n", hidden, "-L", "\(size)b", group])
        do {
            try await body(try await logicalRecord(pool, hidden))
        } catch {
            _ = try? await LVMTools.run("lvremove", LVMTools.metadataOnly + ["-q", "-f", "\(group)/\(hidden)"])
            _ = try? await groupSpace(of: pool)
            throw error
        }
        _ = try? await groupSpace(of: pool)
    }

    /// Zeros over `range` by qemu-img (write-zeroes: holes punched in a file, BLKZEROOUT on a device).
    private func zero(_ range: VolumeExtent, progress: @escaping ProgressSink) async throws {
        let size = range.size
        progress(0, size)
        try await QEMUImg.convert(
            ["-n", "-O", "raw", QEMUImg.zerosImage(size: size), rangeName(range)],
            progress: { progress(UInt64($0 * Double(size)), size) })
        progress(size, size)
    }

    /// Opens the range's device at its start for `receive`, which must write exactly `length` bytes.
    private func writeRange(
        _ range: VolumeExtent, length: UInt64, volume: VolumeRecord, receive: (Int32) async throws -> UInt64
    ) async throws {
        let fd = open(range.device, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw Self.transferError("open", range.device) }
        defer { close(fd) }
        guard length <= range.size, lseek(fd, off_t(range.offset), SEEK_SET) == off_t(range.offset) else {
            throw Self.transferError("seek in", range.device)
        }
        let received = try await receive(fd)
        guard received == length else {
            throw BerthError(
                .invalidArgument, "The upload ended after \(received) of \(length) bytes; \(volume.key) was not changed.",
                remedy: "Send it again.")
        }
        guard fsync(fd) == 0 else { throw Self.transferError("write", range.device) }
    }

    private func rangeName(_ range: VolumeExtent) -> String {
        QEMUImg.rangeImage(device: range.device, offset: range.offset, size: range.size)
    }
}
