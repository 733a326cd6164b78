import FoundationEssentials
import Glibc

/// A storage pool: where berthd makes, grows, copies and removes disks (libvirt's storage pools).
public struct PoolSpec: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable, CaseIterable {
        /// A directory of raw and qcow2 image files.
        case dir
        /// An LVM volume group; each volume is a logical volume.
        case logical
    }

    public var name: String
    public var type: Kind
    /// The directory (`dir`), or `/dev/VG` (`logical`, filled in by berthd).
    public var target: String?
    /// The volume group (`logical`).
    public var sourceName: String?
    /// The block device `pool-build` makes the volume group on (`logical`, `--source-dev`).
    public var sourceDevice: String?
    public var autostart: Bool

    public init(
        name: String, type: Kind, target: String? = nil, sourceName: String? = nil, sourceDevice: String? = nil,
        autostart: Bool = false
    ) {
        self.name = name
        self.type = type
        self.target = target
        self.sourceName = sourceName
        self.sourceDevice = sourceDevice
        self.autostart = autostart
    }

    enum CodingKeys: String, CodingKey { case name, type, target, sourceName, sourceDevice, autostart }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(name: try c.decode(String.self, forKey: .name), type: try c.decode(Kind.self, forKey: .type))
        target = try c.decodeIfPresent(String.self, forKey: .target)
        sourceName = try c.decodeIfPresent(String.self, forKey: .sourceName)
        sourceDevice = try c.decodeIfPresent(String.self, forKey: .sourceDevice)
        autostart = try c.decodeIfPresent(Bool.self, forKey: .autostart) ?? false
    }

    /// Pool and volume names: what a file name and an LVM name may both be.
    public static func checkName(_ name: String, what: String) throws {
        let allowed = name.utf8.allSatisfy { byte in
            (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte)
                || byte == 0x2E || byte == 0x5F || byte == 0x2D || byte == 0x2B
        }
        guard allowed, !name.isEmpty, name.utf8.count <= 64, !name.hasPrefix("."), !name.hasPrefix("-") else {
            throw BerthError(
                .invalidArgument, "'\(name)' is not a valid \(what) name.",
                remedy: "Use up to 64 letters, digits, '.', '_', '+' or '-', not starting with '.' or '-'.")
        }
    }
}

/// A pool as `pool-list` and `pool-info` show it.
public struct PoolInfo: Codable, Sendable, Equatable {
    public var spec: PoolSpec
    public var active: Bool
    /// Bytes: the filesystem's (dir) or the volume group's (logical) size, what is used, what is free.
    public var capacity: UInt64
    public var allocation: UInt64
    public var available: UInt64
    public var volumes: Int

    public init(spec: PoolSpec, active: Bool, capacity: UInt64, allocation: UInt64, available: UInt64, volumes: Int) {
        self.spec = spec
        self.active = active
        self.capacity = capacity
        self.allocation = allocation
        self.available = available
        self.volumes = volumes
    }
}

/// A volume as the catalog records it and `vol-info` shows it.
public struct VolumeInfo: Codable, Sendable, Equatable {
    public var pool: String
    public var name: String
    /// The host path QEMU is given a descriptor of.
    public var path: String
    public var format: DiskSpec.Format
    /// Virtual size in bytes (what the guest sees).
    public var capacity: UInt64
    /// Bytes used on the host.
    public var allocation: UInt64
    /// The backing volume of a qcow2 overlay, `POOL/NAME`.
    public var backingVolume: String?
    /// Domains whose disks are this volume.
    public var usedBy: [String]
    /// For an LV handed to QEMU without device-mapper: the physical volume holding it and the
    /// byte offset of its single segment (`-blockdev driver=raw,offset=…`).
    public var extent: VolumeExtent?

    public init(
        pool: String, name: String, path: String, format: DiskSpec.Format, capacity: UInt64, allocation: UInt64,
        backingVolume: String? = nil, usedBy: [String] = [], extent: VolumeExtent? = nil
    ) {
        self.pool = pool
        self.name = name
        self.path = path
        self.format = format
        self.capacity = capacity
        self.allocation = allocation
        self.backingVolume = backingVolume
        self.usedBy = usedBy
        self.extent = extent
    }

    /// `POOL/NAME`, as a domain's disk names it.
    public var key: String { "\(pool)/\(name)" }
}

/// Where a logical volume's bytes lie on its physical volume.
public struct VolumeExtent: Codable, Sendable, Equatable {
    public var device: String
    public var offset: UInt64
    public var size: UInt64

    public init(device: String, offset: UInt64, size: UInt64) {
        self.device = device
        self.offset = offset
        self.size = size
    }
}

/// `POST /v1/pools/{pool}/volumes`: `vol-create-as`.
public struct VolumeCreateRequest: Codable, Sendable, Equatable {
    public var name: String
    public var capacity: UInt64
    public var format: DiskSpec.Format?
    /// `POOL/NAME` or `NAME` in the same pool: makes a qcow2 overlay on that volume.
    public var backingVolume: String?

    public init(name: String, capacity: UInt64, format: DiskSpec.Format? = nil, backingVolume: String? = nil) {
        self.name = name
        self.capacity = capacity
        self.format = format
        self.backingVolume = backingVolume
    }
}

/// `POST …/resize`: `vol-resize`.
public struct VolumeResizeRequest: Codable, Sendable, Equatable {
    public var capacity: UInt64
    public var shrink: Bool

    public init(capacity: UInt64, shrink: Bool = false) {
        self.capacity = capacity
        self.shrink = shrink
    }
}

/// `POST …/upload` (berthd's unix socket only): `vol-upload` of a file on berthd's own host,
/// which berthd reads itself (the CLI's way when it talks to the local berthd).
public struct VolumeUploadFileRequest: Codable, Sendable, Equatable {
    /// An absolute path on berthd's host.
    public var file: String

    public init(file: String) { self.file = file }
}

/// `POST …/download` (berthd's unix socket only): `vol-download` into a file on berthd's own
/// host, which the client created empty and berthd fills (the kernel copies the bytes).
public struct VolumeDownloadFileRequest: Codable, Sendable, Equatable {
    /// An absolute path on berthd's host: an empty regular file.
    public var file: String

    public init(file: String) { self.file = file }
}

/// `POST …/clone`: `vol-clone`.
public struct VolumeCloneRequest: Codable, Sendable, Equatable {
    public var name: String

    public init(name: String) { self.name = name }
}

/// Sizes as virsh takes them: a number with an optional suffix (`10G`, `512M`, `1T`, `4096`
/// bytes); `K`/`KiB`, `M`/`MiB`, … are powers of 1024, `KB`, `MB`, … powers of 1000.
public enum ByteSize {
    public static func parse(_ text: String) throws -> UInt64 {
        let trimmed = text.trimmed()
        let digits = trimmed.prefix { $0.isNumber }
        let unit = trimmed.dropFirst(digits.count).lowercased()
        let multipliers: [String: UInt64] = [
            "": 1, "b": 1, "k": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mib": 1 << 20, "g": 1 << 30, "gib": 1 << 30,
            "t": 1 << 40, "tib": 1 << 40, "kb": 1_000, "mb": 1_000_000, "gb": 1_000_000_000, "tb": 1_000_000_000_000,
        ]
        guard let number = UInt64(digits), let multiplier = multipliers[unit] else {
            throw BerthError(
                .invalidArgument, "'\(text)' is not a size.", remedy: "Give bytes or a number with K, M, G or T (10G, 512M).")
        }
        let (bytes, overflow) = number.multipliedReportingOverflow(by: multiplier)
        guard !overflow, bytes <= UInt64(Int64.max) else {
            throw BerthError(.invalidArgument, "'\(text)' is too large.", remedy: "Give a size below 8 EiB.")
        }
        return bytes
    }

    /// `8.0 GiB`, `512.0 MiB`, `4096 B`.
    public static func describe(_ bytes: UInt64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
        var value = Double(bytes)
        var index = 0
        while value >= 1024, index < units.count - 1 {
            value /= 1024
            index += 1
        }
        return index == 0 ? "\(bytes) B" : "\(Text.fixed(value, places: 2)) \(units[index])"
    }
}

/// `POST /v1/domains/{name}/disks`: `attach-disk NAME SOURCE TARGET`.
public struct DiskAttachRequest: Codable, Sendable, Equatable {
    /// A host path, or a volume as `POOL/NAME`.
    public var source: String
    /// The guest's name for the disk (`vdb`, `sdb`, `hdb`); its prefix picks the bus.
    public var target: String
    public var readOnly: Bool
    /// What it changes (virsh's flags): see `DiskChangeScope`.
    public var scope: DiskChangeScope

    public init(source: String, target: String, readOnly: Bool = false, scope: DiskChangeScope = DiskChangeScope()) {
        self.source = source
        self.target = target
        self.readOnly = readOnly
        self.scope = scope
    }

    enum CodingKeys: String, CodingKey { case source, target, readOnly, live, config, persistent }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(source: try c.decode(String.self, forKey: .source), target: try c.decode(String.self, forKey: .target))
        readOnly = try c.decodeIfPresent(Bool.self, forKey: .readOnly) ?? false
        scope = DiskChangeScope(
            live: try c.decodeIfPresent(Bool.self, forKey: .live) ?? false,
            config: try c.decodeIfPresent(Bool.self, forKey: .config) ?? false,
            persistent: try c.decodeIfPresent(Bool.self, forKey: .persistent) ?? false)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(source, forKey: .source)
        try c.encode(target, forKey: .target)
        try c.encode(readOnly, forKey: .readOnly)
        try c.encode(scope.live, forKey: .live)
        try c.encode(scope.config, forKey: .config)
        try c.encode(scope.persistent, forKey: .persistent)
    }
}

/// virsh's `--live`, `--config` and `--persistent` for attach-disk and detach-disk. None given:
/// the running guest if it runs, else the definition ("current").
public struct DiskChangeScope: Codable, Sendable, Equatable {
    public var live: Bool
    public var config: Bool
    /// The definition, and the running guest too when it runs.
    public var persistent: Bool

    public init(live: Bool = false, config: Bool = false, persistent: Bool = false) {
        self.live = live
        self.config = config
        self.persistent = persistent
    }

    /// Whether to change the running guest and the stored definition, given whether it runs.
    public func resolve(running: Bool) -> (live: Bool, config: Bool) {
        if persistent { return (running || live, true) }
        if !live && !config { return (running, !running) }
        return (live, config)
    }
}
