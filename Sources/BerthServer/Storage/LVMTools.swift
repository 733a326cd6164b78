import BerthModel
import BerthQEMU
import FoundationEssentials
import Glibc

/// lvm2's tools (Debian `lvm2`) for `logical` pools, run through `Spawn`; never a hand-written
/// LVM writer. Without device-mapper (these test machines) LVs cannot be activated: lvm2's
/// `--driverloaded n` changes only the metadata, and a linear single-segment LV is handed to
/// QEMU as a byte range of its physical volume (`VolumeExtent`).
enum LVMTools {
    /// A logical volume as `lvs` reports it.
    struct LogicalVolume: Sendable, Equatable {
        var name: String
        var size: UInt64
        /// The single segment's place on its PV; nil for an LV of several segments.
        var extent: VolumeExtent?
    }

    /// Whether the kernel has device-mapper (then LVs are activated and `/dev/VG/LV` is used).
    static var hasDeviceMapper: Bool { DeviceMapper.present }

    /// `--driverloaded n` when there is no device-mapper: metadata only, no activation.
    static var metadataOnly: [String] { hasDeviceMapper ? [] : ["--driverloaded", "n"] }

    static func locate(_ tool: String) throws -> String {
        for directory in ["/usr/sbin", "/sbin"] where FileManager.default.isExecutableFile(atPath: "\(directory)/\(tool)") {
            return "\(directory)/\(tool)"
        }
        throw BerthError(
            .unavailable, "\(tool) is not installed on berthd's host.",
            remedy: "Install lvm2: 'apt-get install lvm2' (or scripts/install-host-deps).")
    }

    /// Runs an lvm2 tool; a failure is `.unavailable` with its own words.
    @discardableResult
    static func run(_ tool: String, _ arguments: [String]) async throws -> Spawn.Outcome {
        let outcome = try await Spawn.run([try locate(tool)] + arguments, timeout: .seconds(300))
        guard outcome.status == 0, !outcome.timedOut else {
            let words = outcome.output.split(separator: "\n").filter { !$0.contains("leaked on") }.joined(separator: " ")
            throw BerthError(
                .unavailable, "\(tool) failed: \(words.isEmpty ? "status \(outcome.status)" : words)",
                remedy: "Check the volume group with 'vgs' and 'lvs' on berthd's host.")
        }
        return outcome
    }

    /// `lvrename GROUP FROM TO` (metadata only without device-mapper); refused when TO exists.
    static func rename(_ group: String, _ from: String, to: String) async throws {
        try await run("lvrename", metadataOnly + ["-q", group, from, to])
    }

    /// The volume group's size and free bytes.
    /// - Throws: `.notFound` when there is no such volume group.
    static func volumeGroup(_ group: String) async throws -> (size: UInt64, free: UInt64) {
        let rows = try await report(
            "vgs", "vg", ["-o", "vg_name,vg_size,vg_free", group], missing: "The volume group \(group) does not exist.")
        guard let row = rows.first, let size = number(row["vg_size"]), let free = number(row["vg_free"]) else {
            throw BerthError(.notFound, "The volume group \(group) does not exist.", remedy: remedy(group))
        }
        return (size, free)
    }

    /// The group's LVs, with where a single-segment one lies on its PV.
    static func logicalVolumes(_ group: String) async throws -> [LogicalVolume] {
        let extentRows = try await report("vgs", "vg", ["-o", "vg_extent_size", group], missing: "")
        let extentSize = number(extentRows.first?["vg_extent_size"]) ?? 0
        let pvRows = try await report("pvs", "pv", ["-o", "pv_name,pe_start,vg_name"], missing: "")
        let peStart = Dictionary(
            pvRows.filter { $0["vg_name"] == group }.compactMap { row in row["pv_name"].map { ($0, number(row["pe_start"]) ?? 0) } },
            uniquingKeysWith: { a, _ in a })
        let rows = try await report(
            "lvs", "lv", ["-o", "lv_name,lv_size,seg_count,devices", group], missing: "The volume group \(group) does not exist.")
        var volumes: [String: LogicalVolume] = [:]
        var order: [String] = []
        for row in rows {
            guard let name = row["lv_name"], let size = number(row["lv_size"]) else { continue }
            let segments = Int(row["seg_count"] ?? "") ?? 0
            var extent: VolumeExtent?
            if segments == 1, let place = parseDevice(row["devices"] ?? ""), let start = peStart[place.device] {
                let (product, overflow) = place.extent.multipliedReportingOverflow(by: extentSize)
                if !overflow { extent = VolumeExtent(device: backingFile(of: place.device), offset: start + product, size: size) }
            }
            if volumes[name] == nil { order.append(name) }
            volumes[name] = LogicalVolume(name: name, size: size, extent: extent)
        }
        return order.compactMap { volumes[$0] }
    }

    /// `/dev/loop0(12)` → (`/dev/loop0`, 12).
    static func parseDevice(_ text: String) -> (device: String, extent: UInt64)? {
        guard text.hasSuffix(")"), let open = text.lastIndex(of: "("), !text.contains(",") else { return nil }
        guard let extent = UInt64(text[text.index(after: open)..<text.index(before: text.endIndex)]) else { return nil }
        return (String(text[..<open]), extent)
    }

    /// A loop device's backing file (stable across reboots, unlike the loop's number); else the device.
    static func backingFile(of device: String) -> String {
        guard device.hasPrefix("/dev/loop") else { return device }
        let name = String(device.dropFirst("/dev/".count))
        let file = (try? String(contentsOfFile: "/sys/block/\(name)/loop/backing_file", encoding: .utf8))?
            .trimmed()
        guard let file, file.hasPrefix("/"), !file.hasSuffix("(deleted)") else { return device }
        return file
    }

    static func remedy(_ group: String) -> String {
        "Create it on berthd's host ('pvcreate DEVICE; vgcreate \(group) DEVICE'), then start the pool."
    }

    /// One `--reportformat json` report's rows (sizes in bytes, no suffix).
    private static func report(_ tool: String, _ key: String, _ arguments: [String], missing: String) async throws
        -> [[String: String]]
    {
        let outcome: Spawn.Outcome
        do {
            outcome = try await run(tool, ["--reportformat", "json", "--units", "b", "--nosuffix"] + arguments)
        } catch let error as BerthError where !missing.isEmpty && error.message.contains("not found") {
            throw BerthError(.notFound, missing, remedy: remedy(arguments.last ?? ""))
        }
        struct Report: Decodable { var report: [[String: [[String: String]]]] }
        guard let decoded = try? JSONDecoder().decode(Report.self, from: Data(outcome.stdout)) else {
            throw BerthError(
                .internal, "\(tool) answered something Berth cannot read.", remedy: "Check the lvm2 version ('lvm version').")
        }
        return decoded.report.flatMap { $0[key] ?? [] }
    }

    private static func number(_ text: String?) -> UInt64? {
        text.flatMap { UInt64($0.trimmed()) }
    }
}
