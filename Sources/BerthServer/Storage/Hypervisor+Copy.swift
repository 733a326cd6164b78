import BerthModel
import BerthQEMU
import BerthStore
import FoundationEssentials
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// `vol-clone` and `vol-wipe`, berthd operations with progress (bytes on the operation,
/// `volume-progress` events every tenth). A clone is written under a hidden temporary name
/// and linked to its final name only when whole; a berthd that died meanwhile removes the
/// temporaries at its next start (`removeLeftoverTemporaries`).
extension Hypervisor {
    /// `vol-wipe`: the volume's content becomes zeros (same size, same format, same backing): a
    /// new empty image renamed over it, so the old blocks go back to the filesystem at once.
    func wipeVolume(pool: String, name: String, progress: @escaping ProgressSink = { _, _ in }) async throws -> VolumeInfo {
        let record = try activePool(pool)
        let key = "\(pool)/\(name)"
        return try await claiming(key) {
            let volume = try catalog.volume(pool: pool, name: name)
            try refuseIfUsed(volume, action: "wiped")
            if let overlay = try overlays(of: volume).first {
                throw BerthError(
                    .wrongState, "Volume \(volume.key) is the backing volume of \(overlay.key); wiping it would corrupt that overlay.",
                    remedy: "Delete \(overlay.key) first, or clone \(volume.key) and wipe the clone.")
            }
            let report = publishingProgress("vol-wipe \(key)", progress)
            report(0, volume.capacity)
            if record.spec.type == .logical {
                try await wipeLogicalVolume(volume, progress: report)
                return try volumeInfo(of: volume)
            }
            try await placed(at: volume.path, replacing: true) { temporary in
                var arguments = ["create", "-q", "-f", volume.format.rawValue]
                if let backing = volume.backing { arguments += ["-b", backing.path, "-F", backing.format.rawValue] }
                try await QEMUImg.run(arguments + [temporary, String(volume.capacity)])
            } record: {
            }
            report(volume.capacity, volume.capacity)
            return try volumeInfo(of: volume)
        }
    }

    /// `vol-clone`: a full copy (an overlay's chain flattened) under a new name in the same
    /// pool. A raw volume is copied by the kernel extent by extent (`VolumeCopy`); a qcow2 one
    /// by `qemu-img convert`.
    func cloneVolume(
        pool: String, name: String, to newName: String, progress: @escaping ProgressSink = { _, _ in }
    ) async throws -> VolumeInfo {
        let record = try activePool(pool)
        try PoolSpec.checkName(newName, what: "volume")
        let source = try catalog.volume(pool: pool, name: name)
        let key = "\(pool)/\(newName)"
        for user in try catalog.domainsUsing(path: source.path) where try isRunning(user) {
            throw BerthError(
                .wrongState, "Volume \(source.key) is a disk of the running domain '\(user)'; a copy would be torn.",
                remedy: "Shut '\(user)' off first ('berth shutdown \(user)').")
        }
        return try await claiming(key) {
            let path = try volumePath(record, newName)
            if (try? catalog.volume(pool: pool, name: newName)) != nil || access(path, F_OK) == 0 {
                throw BerthError.volumeExists(key)
            }
            let report = publishingProgress("vol-clone \(source.key) to \(key)", progress)
            if record.spec.type == .logical {
                try await cloneLogicalVolume(record, source, to: newName, progress: report)
                hub.publish(LifecycleEvent(domain: "", kind: .volumeCreated, state: .shutoff, detail: key))
                return try volumeInfo(pool: pool, name: newName)
            }
            let used = allocation(of: source.path) + (source.backing.map { allocation(of: $0.path) } ?? 0)
            try checkSpace(record, needed: source.format == .raw ? source.capacity : used, what: "a copy of \(source.key)")
            try await placed(at: path) { temporary in
                if source.format == .raw {
                    try await VolumeCopy.copyRaw(from: source.path, to: temporary, progress: report)
                } else {
                    try await VolumeCopy.watching(temporary, expected: used, progress: report) {
                        _ = try await QEMUImg.run(
                            ["convert", "-q", "-f", source.format.rawValue, "-O", source.format.rawValue, source.path, temporary])
                    }
                }
            } record: {
                try catalog.addVolume(
                    VolumeRecord(pool: pool, name: newName, path: path, format: source.format, capacity: source.capacity))
            }
            hub.publish(LifecycleEvent(domain: "", kind: .volumeCreated, state: .shutoff, detail: key))
            return try volumeInfo(pool: pool, name: newName)
        }
    }

    /// At berthd's start: the hidden temporaries a killed berthd left in dir pools go. A
    /// temporary already linked to its final name whose volume was never recorded takes that
    /// name with it (the catalog never knew the volume, so it never existed).
    @discardableResult
    public func removeLeftoverTemporaries() -> [String] {
        var removed: [String] = []
        for pool in (try? catalog.pools()) ?? [] where pool.spec.type == .dir {
            let target = pool.spec.target ?? ""
            for entry in (try? FileManager.default.contentsOfDirectory(atPath: target)) ?? [] {
                guard let final = Self.finalName(ofTemporary: entry) else { continue }
                let temporary = target + "/" + entry
                let path = target + "/" + final
                var linked = stat()
                var placed = stat()
                if lstat(temporary, &linked) == 0, lstat(path, &placed) == 0, linked.st_ino == placed.st_ino,
                    linked.st_dev == placed.st_dev, (try? catalog.volume(path: path)) == nil
                {
                    unlink(path)
                }
                unlink(temporary)
                removed.append(temporary)
            }
        }
        return removed
    }

    /// `.NAME.berth-xxxxxxxx` (what `placed` writes) → `NAME`; nil for any other name.
    static func finalName(ofTemporary entry: String) -> String? {
        guard entry.hasPrefix("."), let marker = entry.ranges(of: ".berth-").last else { return nil }
        let suffix = entry[marker.upperBound...]
        guard suffix.count == 8, suffix.allSatisfy(\.isHexDigit) else { return nil }
        let name = String(entry[entry.index(after: entry.startIndex)..<marker.lowerBound])
        return name.isEmpty ? nil : name
    }

    /// Volumes in any pool whose backing volume is `volume`.
    func overlays(of volume: VolumeRecord) throws -> [VolumeRecord] {
        try catalog.pools().flatMap { (try? catalog.volumes(pool: $0.spec.name)) ?? [] }
            .filter { $0.backing?.path == volume.path }
    }

    /// `sink`, also publishing a `volume-progress` event at the start, at each tenth and at the end.
    func publishingProgress(_ what: String, _ sink: @escaping ProgressSink) -> ProgressSink {
        let published = Tenths()
        let hub = self.hub
        return { bytes, total in
            sink(bytes, total)
            let tenth = total == 0 ? 10 : Int(min(10, bytes * 10 / total))
            guard published.reach(tenth) else { return }
            hub.publish(
                LifecycleEvent(
                    domain: "", kind: .volumeProgress, state: .shutoff,
                    detail: "\(what): \(tenth * 10)% of \(ByteSize.describe(total))"))
        }
    }
}

/// The last tenth of a copy announced: each is published once, in order.
private final class Tenths: Sendable {
    private let last = Mutex(-1)

    /// Whether `tenth` is past the last one announced (and now is the last).
    func reach(_ tenth: Int) -> Bool {
        last.withLock { last in
            guard tenth > last else { return false }
            last = tenth
            return true
        }
    }
}
