extension LVM {
    /// A volume group assembled from the physical volumes at hand.
    public struct VolumeGroup: Sendable {
        public let name: String
        public let uuid: String
        public let seqno: Int64
        /// Extent size in bytes.
        public let extentSize: UInt64
        /// In metadata order; volumes that cannot be read carry `unavailableReason`.
        public let logicalVolumes: [LogicalVolume]

        /// A VG on a single PV (the usual guest disk layout).
        public init(source: any ByteSource) throws {
            try self.init(physicalVolumes: [PhysicalVolume(source: source)])
        }

        /// - Throws: `LVM.Error.noMetadata` if no PV holds metadata, `.badMetadata` if it is inconsistent.
        public init(physicalVolumes: [PhysicalVolume]) throws {
            guard physicalVolumes.count <= Limits.maxPhysicalVolumes else {
                throw Error.badMetadata(reason: "more than \(Limits.maxPhysicalVolumes) physical volumes")
            }
            var best: ConfigValue?
            var bestSeq = Int64.min
            for pv in physicalVolumes {
                if let m = pv.metadata, let vg = volumeGroupSection(m) {
                    let seq = vg.value["seqno"]?.number ?? 0
                    if seq > bestSeq {
                        bestSeq = seq
                        best = m
                    }
                }
            }
            guard let best, let (vgName, vg) = volumeGroupSection(best) else { throw Error.noMetadata }
            func bad(_ reason: String) -> Error { .badMetadata(reason: "volume group \(vgName): \(reason)") }
            name = vgName
            uuid = vg["id"]?.string ?? ""
            seqno = bestSeq
            // LVM's own maximum extent size is 16 GiB (2^25 sectors).
            guard let extentSectors = vg["extent_size"]?.number, extentSectors > 0, extentSectors <= 1 << 25 else {
                throw bad("extent_size is missing or out of range")
            }
            extentSize = UInt64(extentSectors) * 512
            // PV names in the metadata ("pv0") to the sources we hold, matched by UUID.
            var pvs: [String: PVExtents] = [:]
            for (pvName, pv) in vg["physical_volumes"]?.sectionItems ?? [] {
                guard let id = pv["id"]?.string else { throw bad("\(pvName) has no id") }
                let plainID = id.filter { $0 != "-" }
                // Bounds keep every extent × extent-size product below 2^63: pe_count ≤ 2^28 at
                // ≤ 2^34-byte extents; pe_start ≤ 2^48 sectors.
                guard let peStart = pv["pe_start"]?.number, peStart >= 0, peStart <= 1 << 48,
                    let peCount = pv["pe_count"]?.number, peCount >= 0, peCount <= 1 << 28
                else { throw bad("\(pvName) has no valid pe_start/pe_count") }
                let source = physicalVolumes.first { $0.uuid == plainID }?.source
                pvs[pvName] = PVExtents(
                    source: source, start: UInt64(peStart) * 512, count: UInt64(peCount), extentSize: extentSize)
            }
            var volumes: [LogicalVolume] = []
            for (lvName, lv) in vg["logical_volumes"]?.sectionItems ?? [] {
                guard volumes.count < Limits.maxLogicalVolumes else { throw bad("too many logical volumes") }
                volumes.append(LogicalVolume(name: lvName, config: lv, pvs: pvs, extentSize: extentSize))
            }
            logicalVolumes = volumes
        }

        public func logicalVolume(named name: String) -> LogicalVolume? {
            logicalVolumes.first { $0.name == name }
        }
    }

    struct PVExtents {
        var source: (any ByteSource)?
        var start: UInt64
        var count: UInt64
        var extentSize: UInt64
    }

    /// One logical volume and where its bytes lie.
    public struct LogicalVolume: Sendable {
        public let name: String
        public let uuid: String
        /// `VISIBLE` in its status: user volumes, as opposed to internal ones (pool metadata).
        public let visible: Bool
        public let size: UInt64
        /// Why it cannot be read (missing PV, a segment type other than striped/linear), or nil.
        public let unavailableReason: String?
        let segments: [MappedSegment]

        struct MappedSegment: Sendable {
            var start: UInt64  // bytes, in the LV
            var length: UInt64
            var stripeSize: UInt64  // bytes; the whole per-stripe length when linear
            var stripes: [(source: any ByteSource, offset: UInt64)]
        }

        init(name: String, config: ConfigValue, pvs: [String: PVExtents], extentSize: UInt64) {
            self.name = name
            uuid = config["id"]?.string ?? ""
            let status = config["status"]?.array?.compactMap(\.string) ?? []
            visible = status.contains("VISIBLE")
            var mapped: [MappedSegment] = []
            var reason: String?
            var nextExtent: UInt64 = 0
            do {
                var segs: [ConfigValue] = []
                for (key, value) in config.sectionItems ?? [] where key.hasPrefix("segment") {
                    if case .section = value { segs.append(value) }
                }
                guard segs.count <= Limits.maxSegmentsPerVolume else { throw Fail("too many segments") }
                let ordered = try segs.map { seg -> (UInt64, ConfigValue) in
                    guard let s = seg["start_extent"]?.number, s >= 0 else { throw Fail("segment without start_extent") }
                    return (UInt64(s), seg)
                }.sorted { $0.0 < $1.0 }
                for (start, seg) in ordered {
                    guard start == nextExtent else { throw Fail("segments leave a gap or overlap at extent \(start)") }
                    let m = try Self.map(seg, pvs: pvs, extentSize: extentSize, startExtent: start)
                    mapped.append(m.segment)
                    nextExtent += m.extents
                    // The whole LV within 2^28 extents keeps its byte size below 2^62.
                    guard nextExtent <= 1 << 28 else { throw Fail("more than 2^28 extents") }
                }
            } catch let fail as Fail {
                reason = fail.reason
            } catch {
                reason = "\(error)"
            }
            segments = reason == nil ? mapped : []
            unavailableReason = reason
            size = reason == nil ? nextExtent * extentSize : 0
        }

        struct Fail: Swift.Error {
            var reason: String
            init(_ reason: String) { self.reason = reason }
        }

        static func map(_ seg: ConfigValue, pvs: [String: PVExtents], extentSize: UInt64, startExtent: UInt64) throws
            -> (segment: MappedSegment, extents: UInt64)
        {
            guard let type = seg["type"]?.string else { throw Fail("segment without a type") }
            guard type == "striped" else { throw Fail("segment type '\(type)' is not supported (only linear and striped)") }
            guard let count = seg["extent_count"]?.number, count > 0, count <= 1 << 28 else {
                throw Fail("bad extent_count")
            }
            guard let n = seg["stripe_count"]?.number, n >= 1, n <= Int64(Limits.maxStripes) else {
                throw Fail("bad stripe_count")
            }
            guard count % n == 0 else { throw Fail("extent_count \(count) is not a multiple of stripe_count \(n)") }
            let perStripe = UInt64(count / n)
            guard let list = seg["stripes"]?.array, list.count == 2 * Int(n) else {
                throw Fail("stripes list does not have \(n) (pv, extent) pairs")
            }
            var stripes: [(source: any ByteSource, offset: UInt64)] = []
            for i in 0..<Int(n) {
                guard let pvName = list[2 * i].string, let pe = list[2 * i + 1].number, pe >= 0, pe <= 1 << 28 else {
                    throw Fail("bad stripe entry \(i)")
                }
                guard let pv = pvs[pvName] else { throw Fail("stripe names unknown PV '\(pvName)'") }
                guard let source = pv.source else { throw Fail("physical volume \(pvName) is not present") }
                let (endExtent, o1) = UInt64(pe).addingReportingOverflow(perStripe)
                guard !o1, endExtent <= pv.count else {
                    throw Fail("extents \(pe)…\(pe)+\(perStripe) are past the \(pv.count) extents of \(pvName)")
                }
                let offset = pv.start + UInt64(pe) * extentSize
                let (end, o2) = offset.addingReportingOverflow(perStripe * extentSize)
                guard !o2, end <= source.size else {
                    throw Fail("extents of \(pvName) end at byte \(end), past the end of the PV (\(source.size))")
                }
                stripes.append((source, offset))
            }
            var stripeSize = perStripe * extentSize
            if n > 1 {
                guard let ss = seg["stripe_size"]?.number, ss > 0, ss <= 1 << 25, UInt64(ss) * 512 <= extentSize,
                    extentSize % (UInt64(ss) * 512) == 0
                else { throw Fail("bad stripe_size") }
                stripeSize = UInt64(ss) * 512
            }
            let length = UInt64(count) * extentSize
            return (MappedSegment(start: startExtent * extentSize, length: length, stripeSize: stripeSize, stripes: stripes), UInt64(count))
        }

        /// The volume's bytes.
        /// - Throws: `LVM.Error.volumeUnavailable` when it cannot be mapped.
        public func source() throws -> LogicalVolumeSource {
            if let unavailableReason { throw Error.volumeUnavailable(name: name, reason: unavailableReason) }
            return LogicalVolumeSource(name: name, size: size, segments: segments)
        }
    }

    /// A logical volume's bytes, mapping each read across segments and stripes.
    public struct LogicalVolumeSource: ByteSource {
        public let name: String
        public let size: UInt64
        let segments: [LogicalVolume.MappedSegment]

        public func read(at offset: UInt64, count: Int) throws -> [UInt8] {
            try checkRange(offset, count)
            var out: [UInt8] = []
            out.reserveCapacity(count)
            var pos = offset
            let end = offset + UInt64(count)
            while pos < end {
                guard let seg = segments.first(where: { pos >= $0.start && pos - $0.start < $0.length }) else {
                    throw Error.readOutsideVolume(name: name, offset: pos, count: count, size: size)
                }
                let o = pos - seg.start
                let n = UInt64(seg.stripes.count)
                let chunk = o / seg.stripeSize
                let within = o % seg.stripeSize
                let stripe = seg.stripes[Int(chunk % n)]
                let row = chunk / n
                let take = min(end - pos, seg.stripeSize - within, seg.length - o)
                out += try stripe.source.read(at: stripe.offset + row * seg.stripeSize + within, count: Int(take))
                pos += take
            }
            return out
        }
    }
}
