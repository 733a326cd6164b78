import BerthHost
import BerthModel
import FoundationEssentials
import Glibc
import Hummingbird

/// The install media server: `GET|HEAD /install/<name>/<path>` from trees and ISOs registered
/// with `berth media add`, and `/kickstarts/<file>` from `<state>/kickstarts/`. Read-only, served
/// without a token on a listener of its own (127.0.0.1:8001, 10.0.2.2:8001 to a guest on
/// user-mode networking): guests are hostile, and this port is the only one of the host's they
/// may reach. Paths never leave their root: see `MediaLibrary.components(ofRawPath:)` and
/// `MediaLibrary.hostItem(beneath:components:)`.
struct MediaController<Context: RequestContext> {
    let library: MediaLibrary
    /// Bytes read per chunk of a response body.
    static var chunkSize: Int { 1 << 20 }

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
        case .file(let file):
            // Every chunk from the one descriptor opened beneath the root, never the path again.
            return try ranged(request, size: file.size, contentType: MediaLibrary.contentType(for: fileName)) { offset, count in
                try file.read(at: offset, count: count)
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
        let text = header.trimmed()
        guard text.hasPrefix("bytes="), size > 0 else { return nil }
        let spec = text.dropFirst(6)
        guard !spec.contains(","), let dash = spec.firstIndex(of: "-") else { return nil }
        let a = spec[..<dash].trimmed()
        let b = spec[spec.index(after: dash)...].trimmed()
        if a.isEmpty {
            guard let suffix = UInt64(b), suffix > 0 else { return nil }
            return (size - min(suffix, size), size - 1)
        }
        guard let first = UInt64(a), first < size else { return nil }
        if b.isEmpty { return (first, size - 1) }
        guard let last = UInt64(b), last >= first else { return nil }
        return (first, min(last, size - 1))
    }
}

/// Answers media requests only for the names the media listener is reached by: a page on
/// `evil.example` that re-resolves its name to 127.0.0.1 (DNS rebinding) sends its own name in
/// `Host` and is refused, so a browser cannot be used to read install media (or kickstarts, which
/// hold root passwords) across origins.
struct HostCheckMiddleware<Context: RequestContext>: RouterMiddleware {
    /// Lower-case host names (IPv6 in brackets) the listener serves.
    let names: Set<String>
    let port: Int
    /// Listening on every interface, guests on bridged networks reach the host by one of its
    /// addresses: any IP literal is then served (DNS rebinding needs a name, never an address).
    let acceptsAddresses: Bool

    init(listenHost: String, port: Int) {
        var names: Set<String> = ["127.0.0.1", "localhost", "[::1]", "10.0.2.2"]
        let host = listenHost.lowercased()
        acceptsAddresses = host.isEmpty || host == "0.0.0.0" || host == "::"
        if !acceptsAddresses {
            names.insert(host.contains(":") ? "[\(host)]" : host)
        }
        self.names = names
        self.port = port
    }

    static func isAddress(_ name: String) -> Bool {
        var buffer = in6_addr()
        if name.hasPrefix("["), name.hasSuffix("]") { return inet_pton(AF_INET6, String(name.dropFirst().dropLast()), &buffer) == 1 }
        return inet_pton(AF_INET, name, &buffer) == 1
    }

    /// Whether `authority` (a Host header: `name`, `name:port`, `[v6]:port`) is one we serve.
    /// No port means the client did not say; a name of ours on another port is still refused.
    func accepts(_ authority: String) -> Bool {
        let value = authority.lowercased()
        var name = value
        var givenPort: Substring?
        if value.hasPrefix("[") {
            guard let close = value.firstIndex(of: "]") else { return false }
            name = String(value[...close])
            let rest = value[value.index(after: close)...]
            if !rest.isEmpty {
                guard rest.hasPrefix(":") else { return false }
                givenPort = rest.dropFirst()
            }
        } else if let colon = value.firstIndex(of: ":") {
            name = String(value[..<colon])
            givenPort = value[value.index(after: colon)...]
        }
        if let givenPort, Int(givenPort) != port { return false }
        return names.contains(name) || (acceptsAddresses && Self.isAddress(name))
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        // Host arrives as the request's authority; an HTTP/1.0 client may send none.
        if let authority = request.head.authority, !accepts(authority) {
            let error = BerthError(
                .invalidArgument,
                "This media server does not serve the host '\(authority)' (it answers to 127.0.0.1, localhost, [::1] and 10.0.2.2 on port \(port)).",
                remedy:
                    "Fetch install media by address, e.g. http://10.0.2.2:\(port)/install/NAME/ from a guest or http://127.0.0.1:\(port)/install/NAME/ on the host."
            )
            return try JSONResponse.make(ErrorBody(error: error), status: .misdirectedRequest)
        }
        return try await next(request, context)
    }
}
