// Fuzz builds compile BerthModel's sources into this module (fuzz/targets/*.swift).
#if canImport(BerthModel)
    import BerthModel
#endif

/// The settings of xend's `/etc/xen/xend-config.sxp` that `berthd --config` honours.
///
/// Defaults are xend's own (Xen 4.4's `XendOptions.py`), so a file with everything
/// commented out means what it meant to xend.
public struct XendConfig: Sendable, Equatable {
    /// `xend-http-server`: serve the HTTP API on TCP (xend default: no).
    public var httpServer = false
    /// `xend-port` (8000).
    public var port = 8000
    /// `xend-address`; empty means every interface, as for xend.
    public var address = ""
    /// `xend-unix-server` (no).
    public var unixServer = false
    /// `xend-unix-path`.
    public var unixPath = "/var/lib/xend/xend-socket"
    /// `network-script` as written (`network-bridge`, `'network-bridge bridge=br1'`).
    public var networkScript: String?
    /// `vif-script` as written (`vif-bridge`, `vif-route`, `vif-nat`).
    public var vifScript: String?
    /// `logfile` (/var/log/xen/xend.log).
    public var logfile = "/var/log/xen/xend.log"
    /// `loglevel` (DEBUG).
    public var loglevel = "DEBUG"
    /// `vnc-listen` (127.0.0.1).
    public var vncListen = "127.0.0.1"
    /// `vncpasswd`: default VNC password; nil or empty means none.
    public var vncPassword: String?
    /// `console-limit` in KiB (1024).
    public var consoleLimitKiB = 1024
    public var relocationServer = false
    public var relocationPort = 8002
    public var relocationAddress = ""
    /// `xend-relocation-hosts-allow`: regular expressions, empty means everyone.
    public var relocationHostsAllow: [String] = []
    /// Settings xend had that Berth does not use, as `(key value)` text.
    public var notes: [String] = []
    /// What the daemon should log at start (ignored settings, all-interface listening).
    public var warnings: [FormatWarning] = []

    public init() {}

    /// True when the HTTP API would listen on every interface (`(xend-address '')`,
    /// `0.0.0.0`, `::`): the daemon must log it and require the API token on TCP.
    public var listensOnAllInterfaces: Bool { ["", "0.0.0.0", "::", "*"].contains(address) }

    /// The address to bind: `0.0.0.0` for all interfaces, else `address`.
    public var bindAddress: String { listensOnAllInterfaces ? "0.0.0.0" : address }

    /// The network mode `vif-script` implies for vifs that name none: bridge, route or nat.
    public var defaultNetworkMode: NICSpec.Mode {
        switch vifScript.map({ $0.split(separator: " ").first.map(String.init) ?? $0 }) {
        case "vif-route"?: .route
        case "vif-nat"?: .nat
        default: .bridge
        }
    }

    /// The bridge `network-script 'network-bridge bridge=NAME'` names, if any.
    public var networkBridge: String? {
        guard let script = networkScript else { return nil }
        for word in script.split(separator: " ") where word.hasPrefix("bridge=") {
            return String(word.dropFirst("bridge=".count))
        }
        return nil
    }

    /// The NIC a bare `vif = ['']` should get on this host, as xend would have made it.
    public var defaultNIC: NICSpec {
        switch defaultNetworkMode {
        case .bridge: NICSpec(mode: .bridge, bridge: networkBridge ?? "xenbr0")
        case let mode: NICSpec(mode: mode)
        }
    }

    /// Reads xend-config.sxp text.
    /// - Throws: `BerthError(.invalidArgument)` with `source:line:column` for bad syntax or values.
    public static func parse(_ text: String, source: String = "xend-config.sxp") throws -> XendConfig {
        try read(try SXP.parse(text, source: source), source: source)
    }

    public static func parse(bytes: [UInt8], source: String = "xend-config.sxp") throws -> XendConfig {
        try read(try SXP.parse(bytes: bytes, source: source), source: source)
    }

    static func read(_ expressions: [SExpression], source: String) throws -> XendConfig {
        var config = XendConfig()
        for expression in expressions {
            guard let key = expression.head else {
                throw BerthError.syntax(
                    source, expression.position, "expected a setting like (xend-port 8000).",
                    remedy: "Each setting is a parenthesised (name value) pair.")
            }
            let values = Array(expression.items.dropFirst())
            func single() throws -> String {
                guard values.count == 1, let text = values[0].text else {
                    throw BerthError.syntax(
                        source, expression.position, "(\(key) …) takes one value.",
                        remedy: "Write it as (\(key) VALUE); quote values with spaces.")
                }
                return text
            }
            func flag() throws -> Bool {
                let text = try single()
                switch text.lowercased() {
                case "yes", "true", "1", "on", "y": return true
                case "no", "false", "0", "off", "n": return false
                default:
                    throw BerthError.syntax(
                        source, values[0].position, "(\(key) \(text)): expected yes or no.", remedy: "Write (\(key) yes) or (\(key) no).")
                }
            }
            func number(_ range: ClosedRange<Int>) throws -> Int {
                let text = try single()
                guard let value = Int(text), range.contains(value) else {
                    throw BerthError.syntax(
                        source, values[0].position, "(\(key) \(text)): expected a number from \(range.lowerBound) to \(range.upperBound).",
                        remedy: "Give a whole number, like (xend-port 8000).")
                }
                return value
            }
            switch key {
            case "xend-http-server": config.httpServer = try flag()
            case "xend-port": config.port = try number(1...65535)
            case "xend-address": config.address = try single()
            case "xend-unix-server": config.unixServer = try flag()
            case "xend-unix-path": config.unixPath = try single()
            case "network-script": config.networkScript = try single()
            case "vif-script": config.vifScript = try single()
            case "logfile": config.logfile = try single()
            case "loglevel": config.loglevel = try single()
            case "vnc-listen": config.vncListen = try single()
            case "vncpasswd":
                let password = try single()
                config.vncPassword = password.isEmpty ? nil : password
            case "console-limit": config.consoleLimitKiB = try number(1...(1 << 20))
            case "xend-relocation-server": config.relocationServer = try flag()
            case "xend-relocation-port": config.relocationPort = try number(1...65535)
            case "xend-relocation-address": config.relocationAddress = try single()
            case "xend-relocation-hosts-allow":
                config.relocationHostsAllow = try single().split(separator: " ").map(String.init)
            default:
                let text = SXP.print(expression)
                config.notes.append(text)
                config.warnings.append(FormatWarning("\(text) is an xend setting Berth does not use; it is ignored.", at: expression.position))
            }
        }
        if config.httpServer && config.listensOnAllInterfaces {
            config.warnings.append(
                FormatWarning(
                    "xend-address '\(config.address)' listens on all interfaces: berthd serves it only with TLS ('berth tls init'), every client presenting a certificate or the API token. Set (xend-address localhost) to accept local clients only."
                ))
        }
        return config
    }
}
