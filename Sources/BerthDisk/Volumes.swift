/// Finds the filesystems on a guest disk in the order PyGRUB tries them: partitions in
/// table order (logical volumes in place of an LVM PV partition), or the whole disk when
/// there is no partition table; each opened by the first probe that recognizes it.
public enum Volumes {
    /// One row of the probe table: a cheap signature check and the reader's initializer.
    public typealias Probe = (
        kind: String,
        matches: @Sendable (any ByteSource) -> Bool,
        open: @Sendable (any ByteSource) throws -> any FileSystem
    )

    /// The filesystems Berth can read, tried in this order.
    public static let probes: [Probe] = [
        (kind: "ext", matches: { Ext4FileSystem.matches($0) }, open: { try Ext4FileSystem(source: $0) }),
        (kind: "xfs", matches: { XFSFileSystem.matches($0) }, open: { try XFSFileSystem(source: $0) }),
        (kind: "vfat", matches: { FATFileSystem.matches($0) }, open: { try FATFileSystem(source: $0) }),
        (kind: "iso9660", matches: { ISO9660FileSystem.matches($0) }, open: { try ISO9660FileSystem(source: $0) }),
    ]

    /// Where a candidate volume lies on the disk.
    public enum Location: Sendable, Equatable, CustomStringConvertible {
        case wholeDisk
        /// `--offset`: a filesystem at a byte offset given by the user.
        case offset(UInt64)
        case partition(number: Int)
        case logicalVolume(partition: Int?, group: String, name: String)

        public var description: String {
            switch self {
            case .wholeDisk: "whole disk"
            case .offset(let o): "offset \(o)"
            case .partition(let n): "partition \(n)"
            case .logicalVolume(let p, let vg, let lv): "logical volume \(vg)/\(lv)" + (p.map { " (partition \($0))" } ?? "")
            }
        }
    }

    /// A volume that may hold a filesystem.
    public struct Candidate: Sendable {
        public var location: Location
        public var source: any ByteSource
    }

    /// A candidate after probing: its filesystem, or why none was opened.
    public struct Volume: Sendable {
        public var location: Location
        public var source: any ByteSource
        public var filesystem: (any FileSystem)?
        /// Set when a probe matched but the reader failed, or when no probe matched.
        public var failure: String?
    }

    /// Candidate volumes in boot order.
    ///
    /// - Parameter offset: treat the disk as one filesystem at this byte offset (PyGRUB's `--offset`).
    /// - Returns: also the partition table's survivable problems and LVM failures, for messages.
    /// - Throws: only when the disk announces a table (protective MBR) that cannot be read at all.
    public static func candidates(in disk: any ByteSource, offset: UInt64? = nil) throws
        -> (candidates: [Candidate], problems: [String])
    {
        if let offset {
            guard offset < disk.size else { throw ByteSourceError.outOfBounds(offset: offset, count: 0, size: disk.size) }
            return ([Candidate(location: .offset(offset), source: try disk.slice(offset: offset, length: disk.size - offset))], [])
        }
        let table = try PartitionTable.read(from: disk)
        var problems = table.problems.map(\.description)
        guard table.scheme != .none else {
            return (try lvmCandidates(disk, partition: nil, problems: &problems) ?? [Candidate(location: .wholeDisk, source: disk)], problems)
        }
        var result: [Candidate] = []
        for p in table.partitions {
            let source = try p.source(in: disk)
            // An LVM partition is recognized by its label too: guests often leave type 0x83.
            if p.isLVM || LVM.hasLabel(source), let lvs = try lvmCandidates(source, partition: p.number, problems: &problems) {
                result += lvs
            } else {
                result.append(Candidate(location: .partition(number: p.number), source: source))
            }
        }
        return (result, problems)
    }

    /// The visible, readable logical volumes of a PV, or nil if it is not a PV.
    static func lvmCandidates(_ source: any ByteSource, partition: Int?, problems: inout [String]) throws -> [Candidate]? {
        guard LVM.hasLabel(source) else { return nil }
        do {
            let vg = try LVM.VolumeGroup(source: source)
            var result: [Candidate] = []
            for lv in vg.logicalVolumes where lv.visible {
                do {
                    result.append(
                        Candidate(
                            location: .logicalVolume(partition: partition, group: vg.name, name: lv.name),
                            source: try lv.source()))
                } catch {
                    problems.append("\(error)")
                }
            }
            return result
        } catch {
            problems.append("\(error)")
            return []
        }
    }

    /// Opens a source with the first matching probe; nil when none matches.
    /// - Throws: the reader's error when a probe matched but the filesystem is damaged.
    public static func open(_ source: any ByteSource, probes: [Probe] = Volumes.probes) throws -> (any FileSystem)? {
        for probe in probes where probe.matches(source) {
            return try probe.open(source)
        }
        return nil
    }

    /// Every candidate volume, probed, in boot order. A bootloader takes the first volume
    /// whose filesystem has a menu.
    public static func discover(
        _ disk: any ByteSource, offset: UInt64? = nil, probes: [Probe] = Volumes.probes
    ) throws -> (volumes: [Volume], problems: [String]) {
        let (candidates, problems) = try candidates(in: disk, offset: offset)
        var volumes: [Volume] = []
        for c in candidates {
            do {
                if let fs = try open(c.source, probes: probes) {
                    volumes.append(Volume(location: c.location, source: c.source, filesystem: fs, failure: nil))
                } else {
                    volumes.append(
                        Volume(location: c.location, source: c.source, filesystem: nil, failure: "no known filesystem"))
                }
            } catch {
                volumes.append(Volume(location: c.location, source: c.source, filesystem: nil, failure: "\(error)"))
            }
        }
        // A table whose partitions hold nothing readable may be a filesystem's own boot
        // sector that happens to look like an MBR (FAT, hybrid ISO): try the whole disk last.
        if offset == nil, !volumes.contains(where: { $0.filesystem != nil }),
            !candidates.contains(where: { $0.location == .wholeDisk }),
            let fs = try? open(disk, probes: probes)
        {
            volumes.append(Volume(location: .wholeDisk, source: disk, filesystem: fs, failure: nil))
        }
        return (volumes, problems)
    }
}
