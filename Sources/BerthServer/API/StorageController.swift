import BerthModel
import FoundationEssentials
import Hummingbird

#if canImport(Glibc)
    import Glibc
#endif

/// A request context that can say which local user is on the other end of a unix socket.
protocol PeerIdentifying {
    func peerUID() async -> uid_t?
}

/// `/v1/pools…`: storage pools and their volumes. Every change goes through the `Hypervisor`.
struct StorageController<Context: RequestContext & PeerIdentifying> {
    let hypervisor: Hypervisor
    /// Serving berthd's unix socket, whose clients share its host: `…/upload` of a host file.
    var local = false

    func add(to group: RouterGroup<Context>) {
        group.get("pools") { _, _ in try JSONResponse.make(try hypervisor.pools()) }
        group.post("pools") { request, _ in
            let spec = try await JSONResponse.decode(PoolSpec.self, from: request)
            return try JSONResponse.make(try hypervisor.definePool(spec), status: .created)
        }
        group.get("pools/:pool") { _, context in
            try JSONResponse.make(try hypervisor.poolInfo(try context.parameters.require("pool")))
        }
        group.delete("pools/:pool") { _, context in
            try hypervisor.undefinePool(try context.parameters.require("pool"))
            return Response(status: .noContent)
        }
        group.post("pools/:pool/start") { _, context in
            try JSONResponse.make(try await hypervisor.startPool(try context.parameters.require("pool")))
        }
        group.post("pools/:pool/build") { _, context in
            try JSONResponse.make(try await hypervisor.buildPool(try context.parameters.require("pool")))
        }
        group.post("pools/:pool/destroy") { _, context in
            try JSONResponse.make(try hypervisor.destroyPool(try context.parameters.require("pool")))
        }
        group.post("pools/:pool/refresh") { _, context in
            try JSONResponse.make(try await hypervisor.refreshPool(try context.parameters.require("pool")))
        }
        group.put("pools/:pool/autostart") { request, context in
            let body = try await JSONResponse.decode(AutostartBody.self, from: request)
            return try JSONResponse.make(try hypervisor.setPoolAutostart(try context.parameters.require("pool"), body.autostart))
        }
        group.get("pools/:pool/volumes") { _, context in
            try JSONResponse.make(try hypervisor.volumes(pool: try context.parameters.require("pool")))
        }
        group.post("pools/:pool/volumes") { request, context in
            let body = try await JSONResponse.decode(VolumeCreateRequest.self, from: request)
            let info = try await hypervisor.createVolume(pool: try context.parameters.require("pool"), body)
            return try JSONResponse.make(info, status: .created)
        }
        group.get("pools/:pool/volumes/:volume") { _, context in
            try JSONResponse.make(
                try hypervisor.volumeInfo(pool: try context.parameters.require("pool"), name: try context.parameters.require("volume")))
        }
        group.delete("pools/:pool/volumes/:volume") { _, context in
            try await hypervisor.deleteVolume(
                pool: try context.parameters.require("pool"), name: try context.parameters.require("volume"))
            return Response(status: .noContent)
        }
        group.post("pools/:pool/volumes/:volume/wipe") { request, context in
            let pool = try context.parameters.require("pool")
            let name = try context.parameters.require("volume")
            return try await volumeOperation("vol-wipe", pool: pool, volume: name, request: request) {
                _ = try await hypervisor.wipeVolume(pool: pool, name: name, progress: $0)
            }
        }
        group.post("pools/:pool/volumes/:volume/clone") { request, context in
            let pool = try context.parameters.require("pool")
            let name = try context.parameters.require("volume")
            let body = try await JSONResponse.decode(VolumeCloneRequest.self, from: request)
            return try await volumeOperation("vol-clone", pool: pool, volume: body.name, request: request, status: .created) {
                _ = try await hypervisor.cloneVolume(pool: pool, name: name, to: body.name, progress: $0)
            }
        }
        group.post("pools/:pool/volumes/:volume/resize") { request, context in
            let body = try await JSONResponse.decode(VolumeResizeRequest.self, from: request)
            return try JSONResponse.make(
                try await hypervisor.resizeVolume(
                    pool: try context.parameters.require("pool"), name: try context.parameters.require("volume"), body))
        }
        if local {
            group.post("pools/:pool/volumes/:volume/upload") { request, context in
                let pool = try context.parameters.require("pool")
                let name = try context.parameters.require("volume")
                try await Self.requireRootPeer(context, for: "vol-upload")
                let body = try await JSONResponse.decode(VolumeUploadFileRequest.self, from: request)
                return try await volumeOperation("vol-upload", pool: pool, volume: name, request: request) {
                    _ = try await hypervisor.uploadVolume(pool: pool, name: name, file: body.file, progress: $0)
                }
            }
            group.post("pools/:pool/volumes/:volume/download") { request, context in
                let pool = try context.parameters.require("pool")
                let name = try context.parameters.require("volume")
                try await Self.requireRootPeer(context, for: "vol-download")
                let body = try await JSONResponse.decode(VolumeDownloadFileRequest.self, from: request)
                return try await volumeOperation("vol-download", pool: pool, volume: name, request: request) {
                    try await hypervisor.downloadVolume(pool: pool, name: name, file: body.file, progress: $0)
                }
            }
        }
        group.put("pools/:pool/volumes/:volume/content") { request, context in
            guard let header = request.headers[.contentLength], let length = UInt64(header) else {
                throw BerthError(
                    .invalidArgument, "An upload needs a Content-Length.", remedy: "Send the file's size in Content-Length.")
            }
            let body = request.body
            let info = try await hypervisor.uploadVolume(
                pool: try context.parameters.require("pool"), name: try context.parameters.require("volume"), length: length
            ) { fd in try await VolumeWriter.write(body, to: fd, limit: length) }
            return try JSONResponse.make(info)
        }
        group.get("pools/:pool/volumes/:volume/content") { _, context in
            let (fd, offset, length) = try hypervisor.openVolumeForDownload(
                pool: try context.parameters.require("pool"), name: try context.parameters.require("volume"))
            var headers = HTTPFields()
            headers[.contentType] = "application/octet-stream"
            headers[.contentLength] = String(length)
            let body = ResponseBody(contentLength: Int(length)) { writer in
                defer { close(fd) }
                try await VolumeReader.stream(fd, offset: offset, length: length) { try await writer.write($0) }
                try await writer.finish(nil)
            }
            return Response(status: .ok, headers: headers, body: body)
        }
        group.post("domains/:name/disks") { request, context in
            let body = try await JSONResponse.decode(DiskAttachRequest.self, from: request)
            return try JSONResponse.make(try await hypervisor.attachDisk(try context.parameters.require("name"), body))
        }
        group.delete("domains/:name/disks/:disk") { request, context in
            // A source path as target arrives percent-encoded ('/' as %2F).
            let raw = try context.parameters.require("disk")
            let target = Text.percentDecoded(raw) ?? raw
            let scope = DiskChangeScope(
                live: try request.query.bool("live"), config: try request.query.bool("config"),
                persistent: try request.query.bool("persistent"))
            try await hypervisor.detachDisk(try context.parameters.require("name"), target: target, scope: scope)
            return Response(status: .noContent)
        }
        group.get("volumes") { request, _ in
            guard let path = request.uri.queryParameters.get("path") else {
                throw BerthError(.invalidArgument, "GET /v1/volumes needs ?path=.", remedy: "Give the volume's host path.")
            }
            return try JSONResponse.make(try hypervisor.volumeInfo(path: path))
        }
    }

    /// berthd (root) opens the file a local upload or download names, so only a root client
    /// may name one: the socket's group may hold other users, who must not read or write
    /// root's files through berthd. They stream the bytes instead (`berth vol-upload` and
    /// `vol-download` do when not root), so the kernel checks their own permissions.
    static func requireRootPeer(_ context: Context, for action: String) async throws {
        let uid = await context.peerUID()
        guard uid == 0 else {
            throw BerthError(
                .unauthorized, "berthd opens a host file for \(action) only for root; this client is \(uid.map { "uid \($0)" } ?? "not local").",
                remedy: "Stream the bytes instead (…/content; 'berth \(action)' streams when it is not run as root).")
        }
    }

    /// A long volume action (wipe, clone, upload) as an operation with progress: 202 with the
    /// operation, or with `?wait=true` the volume `pool`/`volume` once it is done.
    private func volumeOperation(
        _ action: String, pool: String, volume: String, request: Request, status: HTTPResponse.Status = .ok,
        _ body: @escaping @Sendable (_ progress: @escaping @Sendable (UInt64, UInt64) -> Void) async throws -> Void
    ) async throws -> Response {
        let operation = hypervisor.operations.runWithProgress(domain: "", volume: "\(pool)/\(volume)", action: action, body)
        return try await hypervisor.operations.answer(operation, wait: try request.query.bool("wait")) {
            try JSONResponse.make(try hypervisor.volumeInfo(pool: pool, name: volume), status: status)
        }
    }

}
