import BerthModel
import Foundation

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

    public init(node: String, path: String, overlayNode: String) {
        self.node = node
        self.path = path
        self.overlayNode = overlayNode
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
