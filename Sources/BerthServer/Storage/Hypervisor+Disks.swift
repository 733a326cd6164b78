import BerthModel
import BerthQEMU
import FoundationEssentials
import Glibc

/// `attach-disk` and `detach-disk`: a disk into or out of the running guest (hot-plug over
/// QMP, the file passed as a descriptor) and/or the stored definition, as virsh's `--live`,
/// `--config` and `--persistent` say. A disk is checked as `define` checks it: its format
/// recorded now, a backing file only the one its volume recorded.
extension Hypervisor {
    public func attachDisk(_ name: String, _ request: DiskAttachRequest) async throws -> DomainInfo {
        let record = try catalog.domain(named: name)
        let supervisor = try supervisor(name)
        let (live, config) = try await scope(request.scope, of: supervisor, name: name)
        let disk = try attachable(request)
        var next = record.spec
        if config {
            let target = request.target
            if DiskSpec.targets(next.disks).contains(target) || next.disks.contains(where: { $0.path == disk.path }) {
                throw BerthError(
                    .alreadyExists, "The definition of '\(name)' already has \(target) or \(disk.path).",
                    remedy: "See 'berth domblklist \(name) --inactive'; choose another target or disk.")
            }
            next.disks.append(disk)
            try next.validate()
        }
        if live { try await supervisor.attachDisk(disk) }
        if config {
            do {
                _ = try update(next)
            } catch {
                if live { _ = try? await supervisor.detachDisk(request.target) }
                throw error
            }
        }
        return try info(name)
    }

    /// - Parameter target: the disk's target (`vdb`) or its source path.
    public func detachDisk(_ name: String, target: String, scope: DiskChangeScope) async throws {
        let record = try catalog.domain(named: name)
        let supervisor = try supervisor(name)
        let (live, config) = try await self.scope(scope, of: supervisor, name: name)
        var next = record.spec
        if config {
            let names = DiskSpec.targets(next.disks)
            guard let index = next.disks.indices.first(where: { names[$0] == target || next.disks[$0].path == target }) else {
                throw BerthError(
                    .notFound, "The definition of '\(name)' has no disk \(target).",
                    remedy: "See its disks with 'berth domblklist \(name) --inactive'.")
            }
            next.disks.remove(at: index)
        }
        if live { _ = try await supervisor.detachDisk(target) }
        if config { _ = try update(next) }
    }

    /// Which of the running guest and the definition a change applies to.
    private func scope(_ scope: DiskChangeScope, of supervisor: DomainSupervisor, name: String) async throws -> (Bool, Bool) {
        let running = await supervisor.isRunning
        let (live, config) = scope.resolve(running: running)
        if live, !running {
            throw BerthError(
                .wrongState, "Domain '\(name)' is not running, so there is no live disk to change.",
                remedy: "Use --config to change its definition, or start it first.")
        }
        return (live, config)
    }

    /// The disk `request` names, its volume resolved and its format recorded (as `define` does).
    private func attachable(_ request: DiskAttachRequest) throws -> DiskSpec {
        let bus = try DiskSpec.bus(forTarget: request.target)
        let source = request.source
        var disk =
            source.hasPrefix("/")
            ? DiskSpec(path: source, bus: bus, readOnly: request.readOnly, target: request.target)
            : DiskSpec(path: "", bus: bus, readOnly: request.readOnly, target: request.target, volume: source)
        guard source.hasPrefix("/") || source.split(separator: "/").count == 2 else {
            throw BerthError(
                .invalidArgument, "'\(source)' is neither an absolute path nor a volume POOL/NAME.",
                remedy: "Give /path/to/disk.img or a volume such as default/data.")
        }
        disk = try resolveVolume(disk)
        do {
            return try DiskFormat.recorded(disk)
        } catch let error as BerthError where error.code == .notFound {
            throw BerthError(
                .notFound, "The disk \(disk.path) does not exist.",
                remedy: "Create it first ('berth vol-create-as default NAME 10G') and attach the volume.")
        }
    }
}
