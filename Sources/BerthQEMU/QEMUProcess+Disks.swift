import BerthModel
import FoundationEssentials

#if canImport(Glibc)
    import Glibc
#endif

/// Disks plugged into and out of a running guest. QEMU opens no host path: berthd opens the
/// file and passes it with SCM_RIGHTS (`add-fd`), QEMU's nodes open `/dev/fdset/N`, exactly the
/// nodes a started guest gets on its command line (`QEMUCommandLine.blockNodes`).
extension QEMUProcess {
    /// The machine type QEMU was started with (`-machine`'s first value).
    public var machine: String {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return "pc" }
        let arguments = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        guard let index = arguments.firstIndex(of: "-machine"), index + 1 < arguments.count else { return "pc" }
        return arguments[index + 1].split(separator: ",").first.map(String.init) ?? "pc"
    }

    /// Plugs `disk` in as a virtio-blk PCI device whose format node is `node`. Only the `pc`
    /// machine (i440fx, ACPI hot-plug on its root bus) takes one.
    ///
    /// - Throws: `BerthError`; anything half-added is taken out again.
    public func hotplugDisk(node: String, disk: DiskSpec) async throws {
        try checkHotplug(disk)
        guard let format = disk.format else {
            throw BerthError(.internal, "The disk \(disk.path) reached QEMU without a recorded format.")
        }
        var fdsets: [Int64] = []
        var nodes: [String] = []
        do {
            let access = disk.readOnly ? O_RDONLY : O_RDWR
            let fdset = try await addFD(path: disk.extent?.device ?? disk.path, flags: access, node: node)
            fdsets.append(fdset)
            var backingSet: Int64?
            if format == .qcow2, let chain = disk.backing {
                backingSet = try await addFD(path: chain.path, flags: O_RDONLY, node: node)
                fdsets.append(backingSet ?? 0)
            }
            let objects = QEMUCommandLine.blockNodes(
                id: node, disk: disk, format: format, fdset: Int32(fdset), backingFDSet: backingSet.map { Int32($0) })
            for object in objects {
                let arguments = try JSONDecoder().decode(QMP.Value.self, from: Data(object.utf8))
                try await qmp.execute("blockdev-add", arguments: arguments.object, timeout: .seconds(30))
                nodes.append(arguments["node-name"]?.string ?? "")
            }
            try await qmp.execute(
                "device_add",
                arguments: ["driver": .string("virtio-blk-pci"), "drive": .string(node), "id": .string(node + "-device")],
                timeout: .seconds(30))
        } catch {
            await undoBlockAdds(nodes: nodes, fdsets: fdsets)
            if let error = error as? QMP.Error {
                throw BerthError(
                    .unavailable, "QEMU could not plug in \(disk.path): \(error)",
                    remedy: "See the guest's QEMU log; the guest was not changed.")
            }
            throw error
        }
    }

    /// Asks the guest to let go of the disk whose format node is `node` (`device_del`, ACPI
    /// eject), waits up to `timeout` for it to be gone, then removes its nodes and closes the
    /// descriptors QEMU held for it.
    public func unplugDisk(node: String, disk: DiskSpec, timeout: Duration) async throws {
        guard let device = try await deviceHolding(node: node) else {
            throw BerthError(
                .notFound, "The running guest has no device on node \(node).",
                remedy: "List its disks with 'berth domblklist'.")
        }
        do {
            try await qmp.execute("device_del", arguments: ["id": .string(device)], timeout: .seconds(30))
        } catch let error as QMP.Error {
            throw BerthError(
                .unavailable, "QEMU could not unplug \(disk.path): \(error)",
                remedy: "Only virtio disks on the pc machine can be unplugged live; change the definition with --config instead.")
        }
        let deadline = ContinuousClock.now + timeout
        while try await deviceHolding(node: node) != nil {
            guard ContinuousClock.now < deadline else {
                throw BerthError(
                    .unavailable,
                    "The guest did not release \(disk.path) within \(Int(timeout.components.seconds)) s; QEMU removes it when the guest acknowledges the unplug.",
                    remedy: "Check that the guest handles ACPI PCI hot-plug (Linux: acpiphp), or detach with --config and restart it.")
            }
            try await Task.sleep(for: .milliseconds(250))
        }
        var names = [node, node + "-file"]
        if disk.format == .qcow2, disk.backing != nil { names.insert(contentsOf: [node + "-backing", node + "-backing-file"], at: 1) }
        for name in names { await deleteNode(name) }
        await removeFDSets(holding: [disk.extent?.device ?? disk.path] + (disk.backing.map { [$0.path] } ?? []))
    }

    /// microvm has no PCI; q35's root bus has no hot-plug slots (it would need root ports
    /// reserved at start). The pc machine's PCI bus takes virtio disks.
    private func checkHotplug(_ disk: DiskSpec) throws {
        let machine = machine
        let family = QEMUCommandLine.MachineFamily(machine)
        guard family == .pc else {
            throw BerthError(
                .invalidArgument,
                family == .microvm
                    ? "This guest runs on the microvm machine, which has no PCI bus to plug a disk into."
                    : "This guest runs on the \(machine) machine; Berth hot-plugs disks only on the pc machine.",
                remedy:
                    "Attach it with --config (it appears at the next start), and set \"machine\": \"pc\" in the definition for live hot-plug later.")
        }
        guard disk.bus == .virtio, disk.device == .disk else {
            throw BerthError(
                .invalidArgument, "Only virtio disks (targets vdX) can be plugged in live.",
                remedy: "Give a vdX target, or attach with --config for the next start.")
        }
    }

    /// Passes `path` opened with `flags` to QEMU in a new fdset (labelled with the node).
    /// `blockdev-del`, retried for a while when QEMU says the node is still busy or in use: on
    /// a loaded host the unplugged device may let go of it a moment after it is gone, and a
    /// node left behind keeps the disk's descriptor open.
    private func deleteNode(_ name: String) async {
        let deadline = ContinuousClock.now + .seconds(15)
        while true {
            do {
                try await qmp.execute("blockdev-del", arguments: ["node-name": .string(name)], timeout: .seconds(10))
                return
            } catch let error as QMP.Error where "\(error)".contains("busy") || "\(error)".contains("in use") {
                guard ContinuousClock.now < deadline else { return }
                try? await Task.sleep(for: .milliseconds(100))
            } catch {
                return  // not there (a format without this node) or QEMU gone
            }
        }
    }

    /// Takes back what a failed hot-plug or overlay added: its block nodes (newest first), then
    /// the fdsets holding their descriptors.
    func undoBlockAdds(nodes: [String], fdsets: [Int64]) async {
        for added in nodes.reversed() {
            _ = try? await qmp.execute("blockdev-del", arguments: ["node-name": .string(added)], timeout: .seconds(10))
        }
        for set in fdsets {
            _ = try? await qmp.execute("remove-fd", arguments: ["fdset-id": .int(set)], timeout: .seconds(10))
        }
    }

    /// Opens `path` and hands QEMU the descriptor (tagged `berth:NODE`), in a new fdset or in
    /// fdset `set`; returns the fdset's id.
    func addFD(path: String, flags: Int32, node: String, into set: Int64? = nil) async throws -> Int64 {
        let fd = open(path, flags | O_CLOEXEC | O_NOCTTY)
        guard fd >= 0 else {
            let code = errno
            throw BerthError(
                code == ENOENT ? .notFound : .unavailable, "Cannot open \(path): \(String(cString: strerror(code)))",
                remedy: "Check that the disk exists and berthd may open it.")
        }
        defer { close(fd) }
        var arguments: [String: QMP.Value] = ["opaque": .string("berth:\(node)")]
        if let set { arguments["fdset-id"] = .int(set) }
        let reply = try await qmp.execute("add-fd", arguments: arguments, passing: fd, timeout: .seconds(10))
        guard let set = reply["fdset-id"]?.int else {
            throw BerthError(.unavailable, "QEMU answered add-fd without an fdset id.", remedy: "See the guest's QEMU log.")
        }
        return set
    }

    /// The QOM path of the device whose block backend is `node` (`query-block`'s `qdev`, the
    /// virtio proxy rather than its backend child), nil when none is.
    func deviceHolding(node: String) async throws -> String? {
        let blocks = try await qmp.execute("query-block", timeout: .seconds(10))
        for block in blocks.array ?? [] where block["inserted"]?["node-name"]?.string == node {
            guard let qdev = block["qdev"]?.string, !qdev.isEmpty else { continue }
            return qdev.hasSuffix("/virtio-backend") ? String(qdev.dropLast("/virtio-backend".count)) : qdev
        }
        return nil
    }

    /// Closes QEMU's copies of `paths` (the fdsets whose descriptors point at them), once no
    /// node uses them: a detached disk is no longer held open.
    private func removeFDSets(holding paths: [String]) async {
        guard let sets = try? await qmp.execute("query-fdsets", timeout: .seconds(10)) else { return }
        for set in sets.array ?? [] {
            guard let id = set["fdset-id"]?.int else { continue }
            let targets = (set["fds"]?.array ?? []).compactMap { $0["fd"]?.int }.compactMap { fd in
                try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(fd)")
            }
            if !targets.isEmpty, targets.allSatisfy(paths.contains) {
                _ = try? await qmp.execute("remove-fd", arguments: ["fdset-id": .int(id)], timeout: .seconds(10))
            }
        }
    }
}
