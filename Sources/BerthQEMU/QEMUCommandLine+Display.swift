import BerthModel
import FoundationEssentials
import Glibc

/// The graphical console's options: VNC (`-vnc`) or SPICE (`-spice`), on a unix socket in
/// QEMU's working directory (`RuntimePaths.displayDirectory`) unless a listen address or port
/// is given.
extension QEMUCommandLine {
    static func displayArguments(_ graphics: GraphicsSpec, freePort: (String) -> Int?) throws -> [String] {
        switch graphics.kind {
        case .vnc: ["-vnc", try vncOption(graphics)]
        case .spice: ["-spice", try spiceOption(graphics, freePort: freePort)]
        }
    }

    static func vncOption(_ graphics: GraphicsSpec) throws -> String {
        var vnc: String
        if graphics.listen == nil, graphics.port == nil {
            // A unix socket in QEMU's working directory (RuntimePaths.displayDirectory): no
            // TCP port that a guest reaching the host's loopback could connect to.
            vnc = "unix:\(RuntimePaths.vncSocketName)"
        } else if let port = graphics.port {
            try checkPort(port, kind: "VNC")
            vnc = "\(bracketed(graphics.listen ?? "127.0.0.1")):\(port - 5900)"
        } else {
            // First free display from :0 to :99.
            vnc = "\(bracketed(graphics.listen ?? "127.0.0.1")):0,to=99"
        }
        if graphics.password != nil { vnc += ",password=on" }
        return vnc
    }

    /// SPICE on the unix socket needs no ticket: only berthd (and root) can open the display
    /// directory, and the WebSocket proxy carries the API's authentication. On TCP a password
    /// is set over QMP after start (berthd generates one when none is given), so ticketing
    /// stays on.
    static func spiceOption(_ graphics: GraphicsSpec, freePort: (String) -> Int?) throws -> String {
        guard graphics.listen != nil || graphics.port != nil else {
            return "unix=on,addr=\(RuntimePaths.spiceSocketName),disable-ticketing=on"
        }
        let listen = graphics.listen ?? "127.0.0.1"
        guard let port = graphics.port ?? freePort(listen) else {
            throw BerthError(
                .unavailable, "No free TCP port from 5900 to 5999 on \(listen) for the SPICE display.",
                remedy: "Give the display a \"port\", or leave out \"listen\" to use a unix socket reached through berthd.")
        }
        try checkPort(port, kind: "SPICE")
        return "addr=\(listen),port=\(port)" + (graphics.password == nil ? ",disable-ticketing=on" : "")
    }

    static func checkPort(_ port: Int, kind: String) throws {
        guard (5900...65535).contains(port) else {
            throw BerthError(
                .invalidArgument, "\(kind) port \(port) is out of range.",
                remedy: "Give a port from 5900 (display :0) up, or leave it out to pick a free one.")
        }
    }

    static func bracketed(_ listen: String) -> String {
        listen.contains(":") && !listen.hasPrefix("[") ? "[\(listen)]" : listen
    }
}

/// Finds a free TCP port for a display QEMU cannot place itself (SPICE has no `to=` range).
public enum DisplayPort {
    /// The first port from 5900 to 5999 that binds on `listen` (an IPv4 or IPv6 literal; any
    /// other name is tried on all IPv4 addresses). Another program may take it before QEMU
    /// does; QEMU then fails to start with its own message.
    public static func free(_ listen: String) -> Int? {
        (5900...5999).first { bindable(listen, port: $0) }
    }

    static func bindable(_ listen: String, port: Int) -> Bool {
        var v6 = sockaddr_in6()
        let isV6 = inet_pton(AF_INET6, listen.trimmed(of: "[]"), &v6.sin6_addr) == 1
        let fd = socket(isV6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var on: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size))
        if isV6 {
            v6.sin6_family = sa_family_t(AF_INET6)
            v6.sin6_port = in_port_t(UInt16(port).bigEndian)
            return withUnsafePointer(to: &v6) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            } == 0
        }
        var v4 = sockaddr_in()
        v4.sin_family = sa_family_t(AF_INET)
        v4.sin_port = in_port_t(UInt16(port).bigEndian)
        if inet_pton(AF_INET, listen, &v4.sin_addr) != 1 { v4.sin_addr.s_addr = INADDR_ANY }
        return withUnsafePointer(to: &v4) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }
}
