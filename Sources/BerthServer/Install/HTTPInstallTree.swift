import AsyncHTTPClient
import BerthHost
import BerthModel
import FoundationEssentials
import Glibc
import NIOCore
import NIOHTTP1

/// An install tree on an HTTP(S) mirror, as in the seed's `--location=http://…/install/6/x86_64/`.
/// The mirror is untrusted: every body has a size cap, enforced while it streams in.
struct HTTPInstallTree: InstallTreeSource {
    let location: String
    let base: URL

    init(location: String) throws {
        let text = location.hasSuffix("/") ? location : location + "/"
        guard let url = URL(string: text), let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https",
            url.host != nil
        else {
            throw InstallTreeError.cannotRead(path: location, reason: "not an http:// or https:// URL")
        }
        self.location = location
        self.base = url
    }

    func url(_ relativePath: String) throws -> URL {
        try InstallTree.checkRelativePath(relativePath, file: relativePath)
        let escaped = relativePath.split(separator: "/", omittingEmptySubsequences: false).map {
            Text.percentEncoded(String($0), alsoAllowed: "!$&'()*+,=:@")
        }.joined(separator: "/")
        guard let url = URL(string: escaped, relativeTo: base)?.absoluteURL else {
            throw InstallTreeError.unsafePath(path: relativePath, file: relativePath)
        }
        return url
    }

    func fetch(_ relativePath: String, limit: Int) async throws -> [UInt8]? {
        var bytes: [UInt8] = []
        let found = try await HTTPDownload.get(try url(relativePath), limit: limit, name: relativePath) {
            bytes += $0.readableBytesView
        }
        return found ? bytes : nil
    }

    func exists(_ relativePath: String) async throws -> Bool {
        try await HTTPDownload.head(try url(relativePath), name: relativePath)
    }

    /// Streams the file into `destination` (created or truncated), reporting bytes so far.
    func copy(
        _ file: String, to destination: String, limit: Int, progress: @escaping @Sendable (Int64, Int64?) -> Void
    ) async throws {
        guard let sink = FileSink(path: destination) else {
            throw InstallTreeError.cannotRead(path: destination, reason: "cannot create the file")
        }
        defer { sink.close() }
        let found = try await HTTPDownload.get(try url(file), limit: limit, name: file, progress: progress) { buffer in
            try buffer.withUnsafeReadableBytes { try sink.write($0) }
        }
        guard found else { throw InstallTreeError.cannotRead(path: file, reason: "the mirror answered 404") }
    }
}

/// GET and HEAD of untrusted mirrors and kickstart URLs over async-http-client: redirects
/// followed (5 at most), 30 s to connect, 60 s of silence ends a transfer, and a byte cap
/// checked against Content-Length and again while the body streams in.
enum HTTPDownload {
    /// One client for berthd's life; bodies arrive as sent (no decompression, so caps count
    /// what the mirror sends and a `.gz` initrd stays compressed).
    static let client = HTTPClient(
        eventLoopGroup: HTTPClient.defaultEventLoopGroup,
        configuration: HTTPClient.Configuration(
            redirectConfiguration: .follow(max: 5, allowCycles: false),
            timeout: .init(connect: .seconds(30), read: .seconds(60)),
            decompression: .disabled))

    /// - Returns: false on 404 (and 410); throws for other non-2xx statuses and transport errors.
    static func get(
        _ url: URL, limit: Int, name: String, progress: (@Sendable (Int64, Int64?) -> Void)? = nil,
        body: (ByteBuffer) throws -> Void
    ) async throws -> Bool {
        let response = try await execute(.GET, url, name: name)
        guard try accept(response.status, url: url, name: name) else { return false }
        let expected = response.headers.first(name: "content-length").flatMap { Int64($0) }
        if let expected, expected > Int64(limit) { throw InstallTreeError.fileTooLarge(path: name, limit: limit) }
        var received: Int64 = 0
        do {
            for try await buffer in response.body {
                received += Int64(buffer.readableBytes)
                guard received <= Int64(limit) else { throw InstallTreeError.fileTooLarge(path: name, limit: limit) }
                try body(buffer)
                progress?(received, expected)
            }
        } catch let error as InstallTreeError {
            throw error
        } catch {
            throw InstallTreeError.cannotRead(path: name, reason: "\(url.absoluteString): \(error)")
        }
        return true
    }

    static func head(_ url: URL, name: String) async throws -> Bool {
        try accept(try await execute(.HEAD, url, name: name).status, url: url, name: name)
    }

    private static func execute(_ method: HTTPMethod, _ url: URL, name: String) async throws -> HTTPClientResponse {
        var request = HTTPClientRequest(url: url.absoluteString)
        request.method = method
        do {
            // The overall deadline is generous: a large initrd from a slow mirror is fine while
            // bytes keep coming (the read timeout ends a stalled one).
            return try await client.execute(request, timeout: .hours(1))
        } catch {
            throw InstallTreeError.cannotRead(path: name, reason: "\(url.absoluteString): \(error)")
        }
    }

    private static func accept(_ status: HTTPResponseStatus, url: URL, name: String) throws -> Bool {
        if (200..<300).contains(status.code) { return true }
        if status == .notFound || status == .gone { return false }
        throw InstallTreeError.cannotRead(path: name, reason: "\(url.absoluteString) answered HTTP \(status.code)")
    }
}
