import BerthModel
import FoundationEssentials
import Glibc
import Hummingbird

/// The web console at `/ui/` on the API's listener: Berth's own page (plain HTML/CSS/JS in
/// `Sources/BerthServer/UI`, no build step) and the JavaScript libraries it uses, read at run
/// time from Debian's packages (xterm.js, noVNC, spice-html5), never copied into the repository.
struct WebUI<Context: RequestContext> {
    let sessions: WebSessions
    /// The API token the login form is checked against; nil on the unix socket, which
    /// needs no login.
    let token: String?

    /// A library the page loads, where its Debian package puts it.
    struct Library: Sendable {
        var name: String
        var directory: String
        var package: String
    }

    static var libraries: [Library] {
        [
            // xterm.css; bookworm's xterm.js here is a stub that `require`s files it lacks.
            Library(name: "xterm", directory: "/usr/share/javascript/xterm", package: "libjs-xterm"),
            // xterm.js's compiled modules (CommonJS), bundled by `xtermBundle` at run time.
            Library(name: "xterm-lib", directory: "/usr/share/nodejs/xterm/lib", package: "node-xterm"),
            Library(
                name: "novnc", directory: ProcessInfo.processInfo.environment["BERTH_NOVNC_DIR"] ?? "/usr/share/novnc",
                package: "novnc"),
            Library(
                name: "spice-html5",
                directory: ProcessInfo.processInfo.environment["BERTH_SPICE_HTML5_DIR"] ?? "/usr/share/spice-html5",
                package: "spice-html5"),
        ]
    }

    func add(to router: Router<Context>) {
        router.get("ui/login") { _, _ in try Self.page("login.html", replacing: ["{{ERROR}}": ""]) }
        router.post("ui/login") { request, _ in try await login(request) }
        router.post("ui/logout") { request, _ in
            if let (id, _) = sessions.session(of: request) { sessions.remove(id) }
            var response = WebSessions.redirect(to: "/ui/login")
            response.headers[.setCookie] = WebSessions.cookie("", maxAge: 0)
            return response
        }
        router.get("ui/") { request, _ in
            // The CSRF value goes into the page: only a page of this origin can read it.
            let csrf = sessions.session(of: request)?.session.csrf ?? ""
            return try Self.page("index.html", replacing: ["{{CSRF}}": csrf])
        }
        for file in ["app.js", "style.css"] {
            router.get("ui/\(file)") { _, _ in try Self.page(file, replacing: [:]) }
        }
        router.get("ui/xterm-bundle.js") { _, _ in try Self.xtermBundle() }
        router.get("ui/lib/:library/**") { _, context in
            let name = try context.parameters.require("library")
            guard let library = Self.libraries.first(where: { $0.name == name }) else {
                throw BerthError(.notFound, "The web console has no library '\(name)'.")
            }
            return try Self.serve(library, relative: context.parameters.getCatchAll().joined(separator: "/"))
        }
    }

    private func login(_ request: Request) async throws -> Response {
        var request = request
        let body = try await request.collectBody(upTo: 4096)
        let form = URLComponents(string: "?" + String(decoding: body.readableBytesView, as: UTF8.self).replacing("+", with: " "))
        let given = form?.queryItems?.first(where: { $0.name == "token" })?.value?.trimmed() ?? ""
        guard token.map({ WebSessions.constantTimeEqual(given, $0) }) ?? true else {
            var response = try Self.page(
                "login.html",
                replacing: [
                    "{{ERROR}}":
                        "<p class=\"error\" id=\"login-error\">That is not this berthd's API token. It is in the state directory's api-token file.</p>"
                ])
            response.status = .unauthorized
            return response
        }
        let session = sessions.create()
        var response = WebSessions.redirect(to: "/ui/")
        response.headers[.setCookie] = WebSessions.cookie(session.id)
        return response
    }

    static func page(_ file: String, replacing: [String: String]) throws -> Response {
        guard let bytes = webUIFiles[file] else {
            throw BerthError(.internal, "The web console's file \(file) is not compiled into berthd.", remedy: "Rebuild Berth.")
        }
        var text = String(decoding: bytes, as: UTF8.self)
        for (key, value) in replacing { text = text.replacing(key, with: value) }
        var headers = HTTPFields()
        headers[.contentType] = contentType(file)
        headers[.cacheControl] = "no-store"
        headers[.contentSecurityPolicy] = "default-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    /// A file of a Debian package. Every path component is checked (no `..`, no hidden
    /// names, a plain character set), so nothing outside the package's directory is reached
    /// except through symlinks the package itself installed.
    static func serve(_ library: Library, relative: String) throws -> Response {
        let components = relative.split(separator: "/", omittingEmptySubsequences: false)
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
        guard !components.isEmpty, components.count <= 12,
            components.allSatisfy({ !$0.isEmpty && !$0.hasPrefix(".") && $0.allSatisfy(allowed.contains) })
        else {
            throw BerthError(.invalidArgument, "'\(relative)' is not a file name the web console serves.")
        }
        guard FileManager.default.fileExists(atPath: library.directory) else { throw missing(library.name) }
        let path = library.directory + "/" + relative
        var info = stat()
        guard stat(path, &info) == 0, info.st_mode & S_IFMT == S_IFREG, info.st_size <= 16 << 20,
            let data = FileManager.default.contents(atPath: path)
        else {
            throw BerthError(
                .notFound, "\(path) is not in Debian's package \(library.package).",
                remedy: "Reinstall it: apt-get install --reinstall \(library.package).")
        }
        var headers = HTTPFields()
        headers[.contentType] = contentType(relative)
        headers[.cacheControl] = "max-age=3600"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// xterm.js as one script: node-xterm's CommonJS modules, each wrapped in a function and
    /// linked by a small `require`, ending with `window.Terminal`. Done in berthd so the page
    /// needs no eval (its Content-Security-Policy forbids it) and the repository no copy.
    static func xtermBundle() throws -> Response {
        guard let library = libraries.first(where: { $0.name == "xterm-lib" }),
            let walker = try? FileManager.default.subpathsOfDirectory(atPath: library.directory).sorted()
        else { throw missing("xterm-lib") }
        var modules: [String] = []
        var total = 0
        for relative in walker where relative.hasSuffix(".js") && !relative.hasSuffix(".test.js") {
            guard let data = FileManager.default.contents(atPath: library.directory + "/" + relative) else { continue }
            total += data.count
            guard total < 16 << 20 else { break }
            let source = String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
                .filter { !$0.hasPrefix("//# sourceMappingURL") }.joined(separator: "\n")
            let key = String(relative.dropLast(3)).replacing("\"", with: "")
            modules.append("defs[\"\(key)\"] = function (require, module, exports) {\n\(source)\n};")
        }
        guard !modules.isEmpty else { throw missing("xterm-lib") }
        let script = """
            // xterm.js from Debian's node-xterm (\(library.directory)), linked by berthd.
            (function () {
            var defs = {}, cache = {};
            function resolve(from, request) {
              var parts = from.split("/"); parts.pop();
              request.split("/").forEach(function (p) { if (p === "..") parts.pop(); else if (p !== ".") parts.push(p); });
              var id = parts.join("/");
              if (id.endsWith(".js")) id = id.slice(0, -3);
              return defs[id] ? id : id + "/index";
            }
            function load(id) {
              if (cache[id]) return cache[id].exports;
              if (!defs[id]) throw new Error("xterm.js module " + id + " is missing from node-xterm");
              var module = { exports: {} }; cache[id] = module;
              defs[id].call(module.exports, function (r) { return load(resolve(id, r)); }, module, module.exports);
              return module.exports;
            }
            \(modules.joined(separator: "\n"))
            window.Terminal = load("public/Terminal").Terminal;
            })();

            """
        var headers = HTTPFields()
        headers[.contentType] = "text/javascript; charset=utf-8"
        headers[.cacheControl] = "max-age=3600"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: script)))
    }

    static func missing(_ name: String) -> BerthError {
        let package = libraries.first(where: { $0.name == name })?.package ?? name
        return BerthError(
            .unavailable, "The web console needs Debian's package \(package), which is not installed.",
            remedy: "Run: apt-get install \(package) (or scripts/install-host-deps).")
    }

    static func contentType(_ file: String) -> String {
        switch PathName.extension(of: file) {
        case "html": "text/html; charset=utf-8"
        case "js": "text/javascript; charset=utf-8"
        case "css": "text/css; charset=utf-8"
        case "svg": "image/svg+xml"
        case "png": "image/png"
        case "json": "application/json"
        default: "application/octet-stream"
        }
    }
}

/// The web console's files (`Sources/BerthServer/UI`), compiled into berthd.
private let webUIFiles: [String: [UInt8]] = [
    "app.js": PackageResources.app_js, "index.html": PackageResources.index_html,
    "login.html": PackageResources.login_html, "style.css": PackageResources.style_css,
]
