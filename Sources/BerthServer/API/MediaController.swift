import BerthHost
import BerthModel
import Foundation
import Hummingbird

/// The install media server: `GET|HEAD /install/<name>/<path>` from trees and ISOs registered
/// with `berth media add`, and `/kickstarts/<file>` from `<state>/kickstarts/`. Read-only and
/// served without the API token, because guests fetch from it (10.0.2.2:8000 under user-mode
/// networking). Paths never leave their root: see `MediaLibrary.components(ofRawPath:)`.
struct MediaController<Context: RequestContext> {
    let library: MediaLibrary
    /// Bytes read per chunk of a response body.
    static var chunkSize: Int { 1 << 20 }

    /// Paths that `TokenMiddleware` lets through: read-only install media.
    /// Defence in depth: a path with `..`, `.` or an encoded separator is never exempt, whatever
    /// the router would make of it.
    static func isPublic(_ path: String, method: HTTPRequest.Method) -> Bool {
        (method == .get || method == .head) && (path.hasPrefix("/install/") || path.hasPrefix("/kickstarts/"))
            && !path.contains("?") && (try? MediaLibrary.components(ofRawPath: path)) != nil
    }

    func add(to router: Router<Context>) {
        for method in [HTTPRequest.Method.get, .head] {
            router.on("install/:name/**", method: method) { request, _ in try serve(request, prefix: "/install/") }
            router.on("kickstarts/:file", method: method) { request, _ in try serve(request, prefix: "/kickstarts/") }
        }
    }

    func serve(_ request: Request, prefix: String) throws -> Response {
        let raw = String(request.uri.path.dropFirst(prefix.count))
        let components: [String]
        do {
            components = try MediaLibrary.components(ofRawPath: raw)
        } catch {
            throw BerthError(.invalidArgument, "\(request.uri.path): the path leaves its media root.", remedy: "Request paths inside the tree only.")
        }
        let item: MediaLibrary.Item
        do {
            if prefix == "/install/" {
                guard let name = components.first else { return listing(try library.entries().map { $0.name + "/" }, request: request) }
                item = try library.item(media: name, components: Array(components.dropFirst()))
            } else {
                item = try library.kickstart(components: components)
            }
        } catch let error as MediaError {
            switch error {
            case .unsafePath: throw BerthError(.invalidArgument, error.description, remedy: error.remedy)
            default: throw BerthError(.notFound, "\(request.uri.path): not found.", remedy: error.remedy)
            }
        }
        let fileName = components.last ?? ""
        switch item {
        case .directory(let names):
            return listing(names, request: request)
        case .file(let path, let size):
            return try ranged(request, size: size, contentType: MediaLibrary.contentType(for: fileName)) { offset, count in
                try Self.readHostFile(path, offset: offset, count: count)
            }
        case .isoFile(let file):
            return try ranged(request, size: file.size, contentType: MediaLibrary.contentType(for: fileName)) { offset, count in
                try file.read(at: offset, count: count)
            }
        }
    }

    func listing(_ names: [String], request: Request) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "text/plain; charset=utf-8"
        let text = names.map { $0 + "\n" }.joined()
        headers[.contentLength] = String(text.utf8.count)
        return Response(status: .ok, headers: headers, body: request.method == .head ? .init() : .init(byteBuffer: ByteBuffer(string: text)))
    }

    /// A whole file or one `Range: bytes=` range of it (206), streamed in chunks.
    func ranged(
        _ request: Request, size: UInt64, contentType: String,
        read: @escaping @Sendable (UInt64, Int) throws -> [UInt8]
    ) throws -> Response {
        var headers = HTTPFields()
        headers[.contentType] = contentType
        headers[.acceptRanges] = "bytes"
        var start: UInt64 = 0
        var end: UInt64 = size  // exclusive
        var status = HTTPResponse.Status.ok
        if let range = request.headers[.range] {
            guard let (first, last) = Self.parseRange(range, size: size) else {
                headers[.contentRange] = "bytes */\(size)"
                return Response(status: .rangeNotSatisfiable, headers: headers)
            }
            start = first
            end = last + 1
            status = .partialContent
            headers[.contentRange] = "bytes \(first)-\(last)/\(size)"
        }
        let length = end - start
        headers[.contentLength] = String(length)
        if request.method == .head { return Response(status: status, headers: headers) }
        let chunk = Self.chunkSize
        let (first, stop) = (start, end)
        let body = ResponseBody(contentLength: Int(length)) { writer in
            var offset = first
            while offset < stop {
                let bytes = try read(offset, Int(min(UInt64(chunk), stop - offset)))
                guard !bytes.isEmpty else { break }
                try await writer.write(ByteBuffer(bytes: bytes))
                offset += UInt64(bytes.count)
            }
            try await writer.finish(nil)
        }
        return Response(status: status, headers: headers, body: body)
    }

    /// `bytes=a-b`, `bytes=a-`, `bytes=-n`; one range only (installers ask for one).
    /// - Returns: inclusive bounds, or nil when unsatisfiable or malformed.
    static func parseRange(_ header: String, size: UInt64) -> (UInt64, UInt64)? {
        let text = header.trimmingCharacters(in: .whitespaces)
        guard text.hasPrefix("bytes="), size > 0 else { return nil }
        let spec = text.dropFirst(6)
        guard !spec.contains(","), let dash = spec.firstIndex(of: "-") else { return nil }
        let a = spec[..<dash].trimmingCharacters(in: .whitespaces)
        let b = spec[spec.index(after: dash)...].trimmingCharacters(in: .whitespaces)
        if a.isEmpty {
            guard let suffix = UInt64(b), suffix > 0 else { return nil }
            return (size - min(suffix, size), size - 1)
        }
        guard let first = UInt64(a), first < size else { return nil }
        if b.isEmpty { return (first, size - 1) }
        guard let last = UInt64(b), last >= first else { return nil }
        return (first, min(last, size - 1))
    }

    static func readHostFile(_ path: String, offset: UInt64, count: Int) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw BerthError(.notFound, "\(path) is gone.") }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = bytes.withUnsafeMutableBytes { buffer -> Int in
                guard let base = buffer.baseAddress else { return 0 }
                return pread(fd, base + done, count - done, off_t(offset) + off_t(done))
            }
            if n < 0, errno == EINTR { continue }
            if n <= 0 { break }
            done += n
        }
        return Array(bytes[..<done])
    }
}
