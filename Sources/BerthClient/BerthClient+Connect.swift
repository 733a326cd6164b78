import BerthModel
import FoundationEssentials
import Glibc

/// How to reach a berthd on another host: the TLS files and ssh options a `--connect` URL
/// needs besides itself. Every field left nil comes from the environment, then the defaults.
public struct RemoteOptions: Sendable, Equatable {
    /// The CA certificate that signed berthd's certificate (`--tls-ca`, `BERTH_TLS_CA`).
    public var tlsCA: String?
    /// This client's certificate and key (`--tls-cert`/`--tls-key`, `BERTH_TLS_CERT`/`BERTH_TLS_KEY`).
    public var tlsCertificate: String?
    public var tlsKey: String?
    /// `ssh -o` options (`--ssh-option`), after those in `BERTH_SSH`.
    public var sshOptions: [String] = []
    /// The API token to send (http/https), instead of `BERTH_TOKEN` or the local one.
    public var token: String?
    /// false (berthd reaching another berthd): nothing of this host's own credentials is used
    /// unless named here — no `BERTH_*` variables, no local API token.
    public var localCredentials = true

    public init(
        tlsCA: String? = nil, tlsCertificate: String? = nil, tlsKey: String? = nil, sshOptions: [String] = [],
        token: String? = nil, localCredentials: Bool = true
    ) {
        self.tlsCA = tlsCA
        self.tlsCertificate = tlsCertificate
        self.tlsKey = tlsKey
        self.sshOptions = sshOptions
        self.token = token
        self.localCredentials = localCredentials
    }
}

extension BerthClient {
    /// The daemon named by `url`, or else the local one (its unix socket when present, then
    /// 127.0.0.1:8000 with the token from the state directory). The one place a `--connect`
    /// URL becomes a client, for the CLI and for berthd talking to another berthd:
    ///
    /// - `/path/berthd.sock`, `unix:///path/berthd.sock`: a local unix socket.
    /// - `http://HOST[:PORT]`: plain HTTP with the API token (meant for loopback).
    /// - `https://HOST[:PORT]` (port 8000 by default): TLS, berthd's certificate checked against
    ///   the CA, this client's certificate presented when there is one; `BERTH_TOKEN` is sent too
    ///   when set (the local token never goes to another host).
    /// - `ssh://[USER@]HOST[:PORT][/path/berthd.sock][?berth=/path/to/berth]`: `ssh` runs
    ///   `berth proxy-stdio` on HOST, which bridges to its berthd's unix socket.
    public static func resolve(url: String?, options: RemoteOptions = RemoteOptions()) throws -> BerthClient {
        let environment = options.localCredentials ? ProcessInfo.processInfo.environment : [:]
        let paths = DefaultPaths.current()
        let localToken =
            options.localCredentials
            ? (try? String(contentsOfFile: paths.tokenPath, encoding: .utf8))?.trimmed()
            : nil
        guard let url = url ?? environment["BERTH_CONNECT"] else {
            if FileManager.default.fileExists(atPath: paths.socketPath) {
                return BerthClient(endpoint: .unix(path: paths.socketPath))
            }
            return BerthClient(endpoint: .tcp(host: "127.0.0.1", port: 8000, token: localToken))
        }
        if url.hasPrefix("/") { return BerthClient(endpoint: .unix(path: url)) }
        if url.hasPrefix("unix://") { return BerthClient(endpoint: .unix(path: String(url.dropFirst(7)))) }
        guard let components = URLComponents(string: url), let host = components.host, !host.isEmpty else {
            throw invalidURL(url)
        }
        switch components.scheme {
        case "http":
            let token = options.token ?? environment["BERTH_TOKEN"] ?? localToken
            return BerthClient(endpoint: .tcp(host: host, port: components.port ?? 8000, token: token))
        case "https":
            let tls = try TLSSettings.resolve(options)
            let token = options.token ?? environment["BERTH_TOKEN"]
            return BerthClient(endpoint: .https(host: host, port: components.port ?? 8000, token: token, tls: tls))
        case "ssh":
            return BerthClient(endpoint: .ssh(try SSHTarget(components, options: options)))
        default:
            throw invalidURL(url)
        }
    }

    private static func invalidURL(_ url: String) -> BerthError {
        BerthError(
            .invalidArgument, "'\(url)' is not a daemon address.",
            remedy:
                "Give a unix socket path (/run/berth/berthd.sock), https://HOST:PORT, ssh://[USER@]HOST[/path/to/berthd.sock] or http://127.0.0.1:PORT."
        )
    }
}

/// The client's side of a TLS connection: the CA berthd's certificate must come from, and this
/// client's certificate and key when it has them (without, the token must authenticate).
public struct TLSSettings: Sendable, Equatable {
    public var ca: String
    public var certificate: String?
    public var key: String?

    public init(ca: String, certificate: String?, key: String?) {
        self.ca = ca
        self.certificate = certificate
        self.key = key
    }

    /// Options, then `BERTH_TLS_CA`/`_CERT`/`_KEY`, then `berth tls init`'s files in
    /// `DefaultPaths.pkiDirectory`. A certificate named explicitly must exist; the default
    /// client certificate is used when present.
    static func resolve(_ options: RemoteOptions) throws -> TLSSettings {
        let environment = options.localCredentials ? ProcessInfo.processInfo.environment : [:]
        let defaults = TLSFiles.client(in: DefaultPaths.current().pkiDirectory)
        let ca = options.tlsCA ?? environment["BERTH_TLS_CA"] ?? defaults.ca
        guard FileManager.default.fileExists(atPath: ca) else {
            throw BerthError(
                .notFound, "There is no CA certificate at \(ca) to check berthd's certificate against.",
                remedy:
                    "Copy ca-cert.pem from the host where 'berth tls init' ran to \(defaults.ca), or give --tls-ca FILE (BERTH_TLS_CA).")
        }
        let certificate = options.tlsCertificate ?? environment["BERTH_TLS_CERT"]
        let key = options.tlsKey ?? environment["BERTH_TLS_KEY"]
        switch (certificate, key) {
        case (nil, nil):
            guard FileManager.default.fileExists(atPath: defaults.certificate), FileManager.default.fileExists(atPath: defaults.key)
            else { return TLSSettings(ca: ca, certificate: nil, key: nil) }
            return TLSSettings(ca: ca, certificate: defaults.certificate, key: defaults.key)
        case (let certificate?, let key?):
            for path in [certificate, key] where !FileManager.default.fileExists(atPath: path) {
                throw BerthError(
                    .notFound, "\(path) does not exist.", remedy: "Give the files 'berth tls init' wrote (client-cert.pem, private/client-key.pem).")
            }
            return TLSSettings(ca: ca, certificate: certificate, key: key)
        default:
            throw BerthError(
                .invalidArgument, "A client certificate needs both --tls-cert and --tls-key (BERTH_TLS_CERT, BERTH_TLS_KEY).",
                remedy: "Give both, or neither to use \(defaults.certificate) when it exists.")
        }
    }
}

/// `ssh://[USER@]HOST[:PORT][/socket][?berth=PATH]`: the ssh command line that reaches the
/// remote berthd through `berth proxy-stdio`.
public struct SSHTarget: Sendable, Equatable, CustomStringConvertible {
    public var user: String?
    public var host: String
    public var port: Int?
    /// berthd's unix socket on the remote host; nil means that host's default.
    public var socket: String?
    /// The berth binary on the remote host.
    public var remoteBerth: String
    /// The local ssh command and options: `BERTH_SSH` (split at spaces) or `ssh`, then `-o` options.
    public var command: [String]

    init(_ components: URLComponents, options: RemoteOptions) throws {
        user = components.user
        host = components.host ?? ""
        port = components.port
        let path = Text.percentDecoded(components.percentEncodedPath) ?? components.path
        socket = path.isEmpty || path == "/" ? nil : path
        remoteBerth = components.queryItems?.first { $0.name == "berth" }?.value ?? "berth"
        let configured = ProcessInfo.processInfo.environment["BERTH_SSH"]?.split(separator: " ").map(String.init) ?? []
        command = (configured.isEmpty ? ["ssh"] : configured) + options.sshOptions.flatMap { ["-o", $0] }
        // ssh hands the remote command to a shell: only plain path characters may reach it.
        let plain = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._/-+@:=,")
        for word in [host, user ?? "", remoteBerth, socket ?? ""]
        where word.hasPrefix("-") || !word.allSatisfy({ plain.contains($0) }) {
            throw BerthError(
                .invalidArgument, "'\(word)' in an ssh:// address may not start with '-' or hold spaces or shell characters.",
                remedy: "Give ssh://[USER@]HOST[:PORT][/path/to/berthd.sock][?berth=/path/to/berth].")
        }
    }

    /// The whole argv: ssh, its options, the destination, and the remote command. `-T`: no
    /// terminal (binary-safe), `-e none`: no escape character, `-x`: no X11.
    public var argv: [String] {
        var argv = command + ["-T", "-x", "-e", "none"]
        if let port { argv += ["-p", String(port)] }
        if let user { argv += ["-l", user] }
        argv += ["--", host, remoteBerth, "proxy-stdio"]
        if let socket { argv += ["--socket", socket] }
        return argv
    }

    public var description: String {
        "ssh://\(user.map { $0 + "@" } ?? "")\(host)\(port.map { ":\($0)" } ?? "")\(socket ?? "")"
    }
}
