import BerthModel
import FoundationEssentials
import Glibc
import Hummingbird

/// `/v1/media…`: the media library in berthd's catalog (`berth media`, the web console's
/// new-guest form). The files themselves are served by the media listener (`MediaController`).
struct MediaLibraryController<Context: RequestContext> {
    let hypervisor: Hypervisor
    /// The media listener as `HOST:PORT`; nil with `--media-listen none`.
    var mediaAddress: String?

    func add(to group: RouterGroup<Context>) {
        group.get("media") { _, _ in try JSONResponse.make(try hypervisor.mediaEntries().map(info)) }
        group.post("media") { request, _ in
            let body = try await JSONResponse.decode(MediaAddRequest.self, from: request)
            return try JSONResponse.make(info(try await hypervisor.addMedia(body)), status: .created)
        }
        group.get("media/:name") { _, context in
            try JSONResponse.make(info(try hypervisor.mediaEntry(named: try context.parameters.require("name"))))
        }
        group.delete("media/:name") { _, context in
            try hypervisor.removeMedia(named: try context.parameters.require("name"))
            return Response(status: .noContent)
        }
    }

    func info(_ entry: MediaEntry) -> MediaInfo {
        MediaInfo(
            name: entry.name, kind: entry.kind.rawValue, path: entry.path,
            location: mediaAddress.map { "http://\($0)/install/\(entry.name)/" })
    }
}
