import BerthModel
import FoundationEssentials
import Glibc

/// UEFI domains: OVMF's code is shared and read-only; each domain has its own variable store,
/// copied from the template when the domain is defined and removed when it is undefined. QEMU
/// gets both as descriptors (`QEMUCommandLine`).
///
/// Where a new store goes is chosen once, when it is first made, and recorded in the definition
/// (`firmware.nvram`), so it never moves: beside the domain's first disk when that is a file (a
/// path, or a volume in a dir pool) as `<name>_VARS.fd`, as libvirt names it, so that it travels
/// with the disks; otherwise (an LV, a block device, no disk) `<state>/nvram/<name>_VARS.fd`.
/// Stores made by older berths (`<state>/nvram/UUID_VARS.fd`) stay where they are recorded.
extension Hypervisor {
    var nvramDirectory: String { stateDirectory + "/nvram" }

    /// Where berthd makes `spec`'s variable store (the disks' paths resolved).
    func newNVRAMPath(_ spec: DomainSpec) -> String {
        let file = "\(spec.name)_VARS.fd"
        guard let disk = spec.disks.first(where: { $0.device == .disk }), Self.isRegularFile(disk.path) else {
            return nvramDirectory + "/" + file
        }
        return PathName.directory(of: disk.path) + "/" + file
    }

    static func isRegularFile(_ path: String) -> Bool {
        var st = stat()
        return !path.isEmpty && stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG
    }

    /// Whether berthd made (or would make) `nvram` for `spec`: in its own directory, or as
    /// `<name>_VARS.fd` beside one of the domain's disks.
    func madeByBerthd(_ nvram: String, for spec: DomainSpec) -> Bool {
        let parent = PathName.directory(of: nvram)
        let file = PathName.lastComponent(of: nvram)
        if parent == nvramDirectory { return !file.hasPrefix(".") }
        return file == "\(spec.name)_VARS.fd" && spec.disks.contains { PathName.directory(of: $0.path) == parent }
    }

    /// The firmware as the catalog keeps it: the loader and the variable store's path decided
    /// now, OVMF's presence checked (nothing is written here: `makeNVRAM` does that once the
    /// definition is stored).
    func recordedFirmware(_ spec: DomainSpec) throws -> DomainSpec {
        guard var firmware = spec.firmware, firmware.kind == .uefi else { return spec }
        let loader = firmware.loader ?? FirmwareSpec.defaultLoader
        guard access(loader, R_OK) == 0 else {
            throw BerthError(
                .notFound, "The UEFI firmware \(loader) is not on berthd's host.",
                remedy: loader == FirmwareSpec.defaultLoader
                    ? "Install OVMF there: apt-get install ovmf." : "Give a loader= that exists there, or install ovmf and leave loader out.")
        }
        firmware.loader = loader
        if firmware.nvram == nil {
            // Chosen once: a definition sent again without it keeps the recorded store.
            let recorded = (try? catalog.domain(named: spec.name))?.spec.firmware?.nvram
            firmware.nvram = recorded ?? newNVRAMPath(spec)
        }
        if let nvram = firmware.nvram, access(nvram, F_OK) != 0 {
            // berthd makes variable stores only where it chooses to; one named elsewhere must exist.
            guard madeByBerthd(nvram, for: spec) else {
                throw BerthError(
                    .notFound,
                    "The UEFI variable store \(nvram) does not exist, and berthd makes new ones only as NAME_VARS.fd beside the first disk or in \(nvramDirectory).",
                    remedy: "Leave \"nvram\" out (berthd makes \(newNVRAMPath(spec))), or copy OVMF_VARS_4M.fd to \(nvram) first.")
            }
            let template = firmware.varsTemplate ?? FirmwareSpec.varsTemplate(for: loader)
            guard access(template, R_OK) == 0 else {
                throw BerthError(
                    .notFound, "The UEFI variable store template \(template) is not on berthd's host.",
                    remedy: "Install OVMF (apt-get install ovmf), or give the template with \"varsTemplate\".")
            }
            firmware.varsTemplate = template
        }
        var recorded = spec
        recorded.firmware = firmware
        return recorded
    }

    /// Copies the template to the domain's variable store when the store does not exist yet.
    func makeNVRAM(_ spec: DomainSpec) throws {
        guard let firmware = spec.firmware, firmware.kind == .uefi, let nvram = firmware.nvram, access(nvram, F_OK) != 0 else { return }
        let template = firmware.varsTemplate ?? FirmwareSpec.varsTemplate(for: firmware.loader ?? FirmwareSpec.defaultLoader)
        let directory = PathName.directory(of: nvram)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        guard let data = FileManager.default.contents(atPath: template) else {
            throw BerthError(.notFound, "Cannot read the UEFI variable store template \(template).", remedy: "Install OVMF: apt-get install ovmf.")
        }
        // Written under a hidden name and linked into place: a store is whole or absent.
        let temporary = directory + "/.\(PathName.lastComponent(of: nvram)).berth-\(UInt32.random(in: 0...UInt32.max))"
        guard FileManager.default.createFile(atPath: temporary, contents: data, attributes: [.posixPermissions: 0o600]) else {
            throw BerthError(
                .unavailable, "Cannot write the UEFI variable store \(nvram).", remedy: "Check the state directory's space and permissions.")
        }
        defer { unlink(temporary) }
        if link(temporary, nvram) != 0, errno != EEXIST {
            throw BerthError(.unavailable, "Cannot create the UEFI variable store \(nvram): \(String(cString: strerror(errno))).")
        }
    }

    /// Removes a domain's variable store if berthd made it (`madeByBerthd`), wherever it is.
    func removeNVRAM(_ spec: DomainSpec) {
        guard let nvram = spec.firmware?.nvram, madeByBerthd(nvram, for: spec) else { return }
        unlink(nvram)
    }
}
