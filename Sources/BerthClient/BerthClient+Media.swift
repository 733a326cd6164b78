import BerthModel
import FoundationEssentials
import Glibc

/// The media library (`/v1/media`): install trees and ISOs on berthd's host.
extension BerthClient {
    public func media() async throws -> [MediaInfo] {
        try await call(.GET, "/v1/media", as: [MediaInfo].self)
    }

    public func media(_ name: String) async throws -> MediaInfo {
        try await call(.GET, "/v1/media/\(Self.escape(name))", as: MediaInfo.self)
    }

    public func addMedia(_ request: MediaAddRequest) async throws -> MediaInfo {
        try await call(.POST, "/v1/media", body: request, as: MediaInfo.self)
    }

    public func removeMedia(_ name: String) async throws {
        try check(try await transport.send(method: .DELETE, path: "/v1/media/\(Self.escape(name))"))
    }
}
