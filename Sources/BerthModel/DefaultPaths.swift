import FoundationEssentials
import Glibc

/// The default locations, shared with the CLI so it finds the daemon by itself.
public struct DefaultPaths: Sendable {
    public var stateDirectory: String
    public var runtimeDirectory: String
    public var socketPath: String { runtimeDirectory + "/berthd.sock" }
    public var tokenPath: String { stateDirectory + "/api-token" }
    /// Where `berth tls init` writes, and berthd and the CLI look for, TLS certificates and keys
    /// (`TLSFiles`): `BERTH_PKI_DIR`; else `<state>/pki` when `BERTH_STATE_DIR` is set;
    /// else `/etc/berth/pki` as root and `$XDG_CONFIG_HOME/berth/pki` (`~/.config/berth/pki`) otherwise.
    public var pkiDirectory: String {
        let environment = ProcessInfo.processInfo.environment
        if let directory = environment["BERTH_PKI_DIR"] { return directory }
        if environment["BERTH_STATE_DIR"] != nil { return stateDirectory + "/pki" }
        if getuid() == 0 { return "/etc/berth/pki" }
        return (environment["XDG_CONFIG_HOME"] ?? (environment["HOME"] ?? "/tmp") + "/.config") + "/berth/pki"
    }

    public static func current() -> DefaultPaths {
        let environment = ProcessInfo.processInfo.environment
        if let state = environment["BERTH_STATE_DIR"] {
            return DefaultPaths(stateDirectory: state, runtimeDirectory: state + "/run")
        }
        if getuid() == 0 {
            return DefaultPaths(stateDirectory: "/var/lib/berth", runtimeDirectory: "/run/berth")
        }
        let home = environment["HOME"] ?? "/tmp"
        let state = (environment["XDG_STATE_HOME"] ?? home + "/.local/state") + "/berth"
        let runtime = environment["XDG_RUNTIME_DIR"].map { $0 + "/berth" } ?? state + "/run"
        return DefaultPaths(stateDirectory: state, runtimeDirectory: runtime)
    }
}
