import BerthModel
import FoundationEssentials

#if canImport(Glibc)
    import Glibc
#endif

/// A qcow2 overlay berthd made (with `qemu-img create`) for a running disk: QEMU gets it as a
/// descriptor and puts it on top of the disk's active node.
public struct DiskOverlay: Sendable, Equatable {
    /// The node the guest's device writes to now (`diskN`).
    public var node: String
    /// The overlay's file, opened by berthd.
    public var path: String
    /// The overlay's format node, which becomes the active one (`diskN-SNAP`).
    public var overlayNode: String
    /// The file under the overlay, when QEMU holds it read-only (a guest started on its
    /// overlay): merging hands QEMU a read-write descriptor of it first.
    public var basePath: String?

    public init(node: String, path: String, overlayNode: String, basePath: String? = nil) {
        self.node = node
        self.path = path
        self.overlayNode = overlayNode
        self.basePath = basePath
    }
}

/// External snapshots of a running guest: QEMU opens no host path, so each overlay arrives as a
/// descriptor (`add-fd`, `/dev/fdset/N`), its nodes are added with no backing, and one QMP
/// `transaction` of `blockdev-snapshot`s switches every disk at once.
extension QEMUProcess {
    /// Puts every overlay on top of its disk's node in one transaction.
    ///
    /// - Throws: `BerthError`; anything half-added is taken out again and the guest keeps
    ///   writing to its disks as before.
    public func addOverlays(_ overlays: [DiskOverlay]) async throws {
        var fdsets: [Int64] = []
        var nodes: [String] = []
        do {
            for overlay in overlays {
                let fdset = try await addFD(path: overlay.path, flags: O_RDWR, node: overlay.overlayNode)
                fdsets.append(fdset)
                for object in Self.overlayNodes(overlay, fdset: fdset) {
                    try await qmp.execute("blockdev-add", arguments: object, timeout: .seconds(30))
                    nodes.append(object["node-name"]?.string ?? "")
                }
            }
            let actions: [QMP.Value] = overlays.map { overlay in
                .object([
                    "type": .string("blockdev-snapshot"),
                    "data": .object(["node": .string(overlay.node), "overlay": .string(overlay.overlayNode)]),
                ])
            }
            try await qmp.execute("transaction", arguments: ["actions": .array(actions)], timeout: .seconds(60))
        } catch {
            await undoBlockAdds(nodes: nodes, fdsets: fdsets)
            if let error = error as? QMP.Error {
                throw BerthError(
                    .unavailable, "QEMU could not put the overlays on the guest's disks: \(error)",
                    remedy: "See the guest's QEMU log; the guest still writes to its disks as before.")
            }
            throw error
        }
    }

    /// The overlay's protocol node on its fdset and its qcow2 node with no backing yet
    /// (`blockdev-snapshot` attaches the disk's node as its backing).
    static func overlayNodes(_ overlay: DiskOverlay, fdset: Int64) -> [[String: QMP.Value]] {
        [
            [
                "driver": .string("file"), "filename": .string("/dev/fdset/\(fdset)"),
                "node-name": .string(overlay.overlayNode + "-file"), "read-only": .bool(false),
                "auto-read-only": .bool(false),
            ],
            [
                "driver": .string("qcow2"), "file": .string(overlay.overlayNode + "-file"),
                "node-name": .string(overlay.overlayNode), "read-only": .bool(false), "backing": .null,
            ],
        ]
    }
}

/// Merging overlays back while the guest runs: one active `block-commit` job per disk, all
/// completed together (the pivot) once every one is ready, then the overlays' nodes and
/// descriptors are taken out.
extension QEMUProcess {
    /// Commits each overlay into the node under it and switches the guest back to that node.
    ///
    /// - Returns: the overlays whose disk now writes to its own node again (all of them, unless
    ///   QEMU failed one at the very switch).
    /// - Throws: `BerthError`, when no disk switched: the guest keeps writing to its overlays.
    public func commitOverlays(_ overlays: [DiskOverlay]) async throws -> [DiskOverlay] {
        let jobs = overlays.map { "berth-commit-\($0.node)" }
        var started: [String] = []
        var overlaySets: [String: Int64] = [:]
        do {
            let graph = try await namedBlockNodes()
            for (overlay, job) in zip(overlays, jobs) {
                overlaySets[overlay.overlayNode] = graph[overlay.overlayNode + "-file"].flatMap(Self.fdset(of:))
                try await openBaseForWriting(overlay, graph: graph)
                try await qmp.execute(
                    "block-commit",
                    arguments: [
                        "job-id": .string(job), "device": .string(overlay.overlayNode), "base-node": .string(overlay.node),
                        "auto-dismiss": .bool(false),
                    ], timeout: .seconds(30))
                started.append(job)
            }
            try await waitForJobs(started, until: "ready")
        } catch {
            await cancelJobs(started)
            throw BerthError(
                .unavailable, "QEMU could not merge the overlays into the disks under them: \(Self.describe(error))",
                remedy: "The guest still writes to its overlays; see the guest's QEMU log, or shut it off and delete the snapshot then.")
        }
        for job in jobs {
            _ = try? await qmp.execute("job-complete", arguments: ["id": .string(job)], timeout: .seconds(30))
        }
        let failures = (try? await waitForJobs(jobs, until: "concluded")) ?? [:]
        var switched: [DiskOverlay] = []
        for (overlay, job) in zip(overlays, jobs) where failures[job] == nil {
            let sets = overlaySets[overlay.overlayNode].map { [$0] } ?? []
            await undoBlockAdds(nodes: [overlay.overlayNode + "-file", overlay.overlayNode], fdsets: sets)
            switched.append(overlay)
        }
        guard !switched.isEmpty else {
            throw BerthError(
                .unavailable, "QEMU could not switch the disks back: \(failures.values.sorted().joined(separator: "; "))",
                remedy: "The guest still writes to its overlays; see the guest's QEMU log.")
        }
        return switched
    }

    /// Lets QEMU write the file under `overlay` when its protocol node (`NODE-file`) is
    /// read-only, as in a guest started on its overlay: a read-write descriptor of the file
    /// joins that node's fdset, the read-only ones leave it (the lock they hold would keep the
    /// writer out; QEMU closes them once the node lets go, in a running guest), and the node is
    /// reopened read-write. `block-commit` then reopens the format node above it itself.
    func openBaseForWriting(_ overlay: DiskOverlay, graph: [String: QMP.Value]) async throws {
        let name = overlay.node + "-file"
        guard let path = overlay.basePath, let node = graph[name], node["ro"]?.bool == true else { return }
        guard let set = Self.fdset(of: node), let driver = node["drv"]?.string else {
            throw BerthError(.internal, "QEMU's node \(name) does not stand on a descriptor set.")
        }
        let opaque = "berth:\(overlay.node)"
        _ = try await addFD(path: path, flags: O_RDWR, node: overlay.node, into: set)
        let sets = try await qmp.execute("query-fdsets", timeout: .seconds(10))
        for entry in sets.array ?? [] where entry["fdset-id"]?.int == set {
            for fd in entry["fds"]?.array ?? [] where fd["opaque"]?.string != opaque {
                guard let number = fd["fd"]?.int else { continue }
                try await qmp.execute("remove-fd", arguments: ["fdset-id": .int(set), "fd": .int(number)], timeout: .seconds(10))
            }
        }
        let options: [String: QMP.Value] = [
            "driver": .string(driver), "node-name": .string(name), "filename": .string("/dev/fdset/\(set)"),
            "read-only": .bool(false), "auto-read-only": .bool(false),
        ]
        try await qmp.execute("blockdev-reopen", arguments: ["options": .array([.object(options)])], timeout: .seconds(30))
    }

    /// `query-named-block-nodes`, by node name.
    func namedBlockNodes() async throws -> [String: QMP.Value] {
        let nodes = try await qmp.execute("query-named-block-nodes", arguments: ["flat": .bool(true)], timeout: .seconds(10))
        var named: [String: QMP.Value] = [:]
        for node in nodes.array ?? [] {
            if let name = node["node-name"]?.string { named[name] = node }
        }
        return named
    }

    /// The fdset a protocol node reads (`/dev/fdset/N` as its file name).
    static func fdset(of node: QMP.Value) -> Int64? {
        guard let file = node["file"]?.string, file.hasPrefix("/dev/fdset/") else { return nil }
        return Int64(file.dropFirst("/dev/fdset/".count))
    }

    /// Polls `query-jobs` until every job reaches `status` (dismissing those that conclude);
    /// returns the errors of concluded jobs. Waiting for "ready", a job that concludes first
    /// is an error thrown.
    @discardableResult
    func waitForJobs(_ ids: [String], until status: String) async throws -> [String: String] {
        var errors: [String: String] = [:]
        var waiting = Set(ids)
        while !waiting.isEmpty {
            let jobs = try await qmp.execute("query-jobs", timeout: .seconds(30))
            for id in waiting {
                guard let job = jobs.array?.first(where: { $0["id"]?.string == id }) else {
                    // Already dismissed: it had concluded.
                    guard status == "concluded" else { throw BerthError(.internal, "QEMU's job \(id) disappeared.") }
                    waiting.remove(id)
                    continue
                }
                let now = job["status"]?.string ?? ""
                if now == "concluded" {
                    _ = try? await qmp.execute("job-dismiss", arguments: ["id": .string(id)], timeout: .seconds(10))
                    let error = job["error"]?.string
                    if status != "concluded" {
                        throw BerthError(.unavailable, error ?? "job \(id) ended before it was \(status)")
                    }
                    if let error { errors[id] = error }
                    waiting.remove(id)
                } else if now == status {
                    waiting.remove(id)
                }
            }
            if !waiting.isEmpty { try await Task.sleep(for: .milliseconds(50)) }
        }
        return errors
    }

    /// Cancels the jobs (a ready commit then ends without switching) and dismisses them.
    func cancelJobs(_ ids: [String]) async {
        for id in ids {
            _ = try? await qmp.execute("job-cancel", arguments: ["id": .string(id)], timeout: .seconds(10))
        }
        _ = try? await waitForJobs(ids, until: "concluded")
    }

    static func describe(_ error: any Error) -> String {
        (error as? BerthError)?.message ?? "\(error)"
    }
}
