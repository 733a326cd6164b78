import BerthModel
import FoundationEssentials
import Glibc
import Hummingbird
import Synchronization

/// The web console's logins: a browser that gave the API token once gets a session cookie
/// (`HttpOnly`, `SameSite=Strict`) instead of keeping the token in the page.
///
/// A cookie is sent by the browser on its own, so it alone must not authorise a change: a
/// request that changes something (any method but GET and HEAD) also carries `X-Berth-CSRF`
/// with the session's CSRF value, which only Berth's own page can read (it is written into
/// the page it is served). A WebSocket upgrade (a GET) from a page of another origin is
/// refused by its `Origin` header.
final class WebSessions: Sendable {
    struct Session: Sendable {
        var csrf: String
        var expires: Date
    }

    static let cookieName = "berth_session"
    // A constant, valid header name: HTTPTypes only offers a failable initializer.
    // swift-format-ignore: NeverForceUnwrap
    static let csrfHeader = HTTPFields.Element.Name("X-Berth-CSRF")!
    /// A login lasts this long; then the page shows the login form again.
    static let lifetime: TimeInterval = 12 * 3600
    /// Logins kept at once; the oldest goes first. Each is a token holder's browser, so this
    /// only bounds memory against a client that logs in in a loop.
    static let maximum = 256

    private let sessions = Mutex<[String: Session]>([:])

    /// A new session; returns its id (the cookie's value) and its CSRF value.
    func create(now: Date = Date()) -> (id: String, csrf: String) {
        let id = Self.randomHex()
        let csrf = Self.randomHex()
        sessions.withLock { sessions in
            sessions = sessions.filter { $0.value.expires > now }
            if sessions.count >= Self.maximum, let oldest = sessions.min(by: { $0.value.expires < $1.value.expires }) {
                sessions[oldest.key] = nil
            }
            sessions[id] = Session(csrf: csrf, expires: now.addingTimeInterval(Self.lifetime))
        }
        return (id, csrf)
    }

    func session(_ id: String, now: Date = Date()) -> Session? {
        sessions.withLock { sessions in
            guard let session = sessions[id] else { return nil }
            guard session.expires > now else {
                sessions[id] = nil
                return nil
            }
            return session
        }
    }

    func remove(_ id: String) { sessions.withLock { _ = $0.removeValue(forKey: id) } }

    /// The session a request's cookie names, if it is live.
    func session(of request: Request) -> (id: String, session: Session)? {
        guard let id = request.cookies[Self.cookieName]?.value, let session = session(id) else { return nil }
        return (id, session)
    }

    static func redirect(to location: String) -> Response {
        var headers = HTTPFields()
        headers[.location] = location
        headers[.cacheControl] = "no-store"
        return Response(status: .seeOther, headers: headers)
    }

    static func cookie(_ id: String, maxAge: Int = Int(lifetime)) -> String {
        "\(cookieName)=\(id); Path=/; HttpOnly; SameSite=Strict; Max-Age=\(maxAge)"
    }

    static func randomHex() -> String {
        return Text.randomHex(byteCount: 32)
    }

    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8)
        let y = Array(b.utf8)
        guard x.count == y.count else { return false }
        return zip(x, y).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } == 0
    }
}

/// Requires `Authorization: Bearer <token>` on the TCP listener (xend's port 8000), on every
/// path: install media are not served here but on the media listener. The unix socket relies
/// on its file permissions instead. The web console's session cookie stands for the token
/// (with the CSRF header on changes); `/ui/` without a session gets the login page, never
/// the API's JSON error.
struct TokenMiddleware<Context: RequestContext>: RouterMiddleware {
    let token: String
    var sessions: WebSessions?
    /// On a TLS listener: whether the connection presented a client certificate the CA signed,
    /// which stands for the token (as libvirt's TLS transport authenticates by certificate).
    var certified: (@Sendable (Context) async -> Bool)?

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        let path = request.uri.path
        if path == "/ui/login" || path == "/ui/style.css" {
            return try await next(request, context)  // the login page, its form's POST and its style
        }
        let given = request.headers[.authorization].flatMap { header in
            header.hasPrefix("Bearer ") ? String(header.dropFirst(7)) : nil
        }
        if let given, WebSessions.constantTimeEqual(given, token) {
            return try await next(request, context)
        }
        if given == nil, let certified, await certified(context) {
            return try await next(request, context)
        }
        if given == nil, let sessions, let (_, session) = sessions.session(of: request) {
            try Self.checkSessionRequest(request, session: session)
            return try await next(request, context)
        }
        if path == "/ui" || path.hasPrefix("/ui/") {
            return WebSessions.redirect(to: "/ui/login")
        }
        throw BerthError(
            .unauthorized, given == nil ? "This request carries no API token." : "The API token is wrong.",
            remedy: "Send 'Authorization: Bearer <token>' with the token in the state directory's api-token file (the berth CLI reads it by itself).")
    }

    /// A session's request that changes something must carry the CSRF header; a WebSocket
    /// opened by another site's page (cross-site WebSocket hijacking) is refused by its Origin.
    static func checkSessionRequest(_ request: Request, session: WebSessions.Session) throws {
        if request.method != .get, request.method != .head {
            guard let sent = request.headers[WebSessions.csrfHeader], WebSessions.constantTimeEqual(sent, session.csrf)
            else {
                throw BerthError(
                    .unauthorized, "This request from the web console lacks its CSRF header (X-Berth-CSRF).",
                    remedy: "Reload the web console's page; other pages cannot act with its session.")
            }
        }
        if let origin = request.headers[.origin], let host = request.head.authority {
            guard origin == "http://\(host)" || origin == "https://\(host)" else {
                throw BerthError(
                    .unauthorized, "Origin \(origin) may not use the web console's session.",
                    remedy: "Open the web console at http://\(host)/ui/.")
            }
        }
    }
}
