import BerthModel
import BerthQEMU
import FoundationEssentials
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The host programs and kernel interfaces networks are made of: `ip` (iproute2), `nft`,
/// `dnsmasq`, `/dev/net/tun`, and sysfs to look.
enum HostLinks {
    /// Finds a host program, or says which Debian package provides it.
    static func tool(_ name: String, package: String) throws -> String {
        for directory in ["/usr/sbin", "/sbin", "/usr/bin", "/bin", "/usr/local/sbin"] {
            let path = directory + "/" + name
            if access(path, X_OK) == 0 { return path }
        }
        throw BerthError(
            .unavailable, "\(name) is not installed; Berth's networks need it.",
            remedy: "Install it with 'apt-get install \(package)' (or scripts/install-host-deps).")
    }

    /// Runs `ip ARGS`; a failure is an error naming the command and what `ip` said.
    @discardableResult
    static func ip(_ arguments: [String]) async throws -> String {
        let ip = try tool("ip", package: "iproute2")
        let outcome = try await Spawn.run([ip] + arguments, timeout: .seconds(20))
        guard outcome.status == 0 else {
            throw BerthError(
                .unavailable,
                "'ip \(arguments.joined(separator: " "))' failed: \(outcome.output.trimmed().prefix(300))",
                remedy: "Check that berthd runs as root (CAP_NET_ADMIN) and that the interface names are free.")
        }
        return String(decoding: outcome.stdout, as: UTF8.self)
    }

    static func exists(_ interface: String) -> Bool { access("/sys/class/net/\(interface)", F_OK) == 0 }
    static func isBridge(_ interface: String) -> Bool { access("/sys/class/net/\(interface)/bridge", F_OK) == 0 }

    /// The interfaces enslaved to a bridge.
    static func ports(of bridge: String) -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: "/sys/class/net/\(bridge)/brif")) ?? []
    }

    /// The name prefix of the taps berthd makes (the kernel numbers them: `btap0`, `btap1`, …).
    static let tapPrefix = "btap"

    /// Berth's taps on this host (in berthd's network namespace).
    static func berthTaps() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/sys/class/net")) ?? []).filter {
            $0.hasPrefix(tapPrefix) && $0.dropFirst(tapPrefix.count).allSatisfy(\.isNumber)
                && access("/sys/class/net/\($0)/tun_flags", F_OK) == 0
        }
    }

    /// IPv4 prefixes the host already routes (every table), with the interface they go to.
    static func routes() async throws -> [(subnet: IPv4Subnet, device: String?)] {
        let text = try await ip(["-j", "-4", "route", "show", "table", "all"])
        guard let entries = try? JSONDecoder().decode([RouteEntry].self, from: Data(text.utf8)) else { return [] }
        return entries.compactMap { entry in
            guard let dst = entry.dst, dst != "default" else { return nil }
            let subnet = IPv4Subnet(dst.contains("/") ? dst : dst + "/32")
            return subnet.map { ($0, entry.dev) }
        }
    }

    /// IPv6 prefixes the host already routes (every table, not link-local or multicast).
    static func routes6() async throws -> [(subnet: IPv6Subnet, device: String?)] {
        let text = try await ip(["-j", "-6", "route", "show", "table", "all"])
        guard let entries = try? JSONDecoder().decode([RouteEntry].self, from: Data(text.utf8)) else { return [] }
        return entries.compactMap { entry in
            guard let dst = entry.dst, dst != "default", entry.type != "local", entry.type != "multicast",
                let subnet = IPv6Subnet(dst.contains("/") ? dst : dst + "/128"),
                !IPv6Subnet(host: IPv6Address(high: 0xfe80 << 48, low: 0), prefix: 10).overlaps(subnet)
            else { return nil }
            return (subnet, entry.dev)
        }
    }

    /// Interfaces whose IPv6 routes came from router advertisements and that would stop taking
    /// them once IPv6 forwarding is on (`accept_ra` other than 2): the host would lose those
    /// routes when they expire (libvirt refuses to start such a network for the same reason).
    static func interfacesLosingRARoutes() async throws -> [String] {
        let text = try await ip(["-j", "-6", "route", "show", "table", "all", "proto", "ra"])
        guard let entries = try? JSONDecoder().decode([RouteEntry].self, from: Data(text.utf8)) else { return [] }
        let devices = Set(entries.compactMap(\.dev))
        return devices.sorted().filter { device in
            let value = (try? String(contentsOfFile: "/proc/sys/net/ipv6/conf/\(device)/accept_ra", encoding: .utf8)) ?? ""
            return !value.hasPrefix("2")
        }
    }

    /// The kernel's forwarding switch for one address family (per network namespace).
    enum Family: String, Sendable, CaseIterable {
        case ipv4, ipv6
        var forwardingPath: String {
            self == .ipv4 ? "/proc/sys/net/ipv4/ip_forward" : "/proc/sys/net/ipv6/conf/all/forwarding"
        }
    }

    static func forwarding(_ family: Family) -> Bool {
        (try? String(contentsOfFile: family.forwardingPath, encoding: .utf8))?.hasPrefix("1") == true
    }

    static func setForwarding(_ family: Family, _ on: Bool) throws {
        try writeSysctl(family.forwardingPath, on ? "1" : "0")
    }

    /// A Berth bridge with IPv6 is a router, not a host: it takes no router advertisements and
    /// configures no address of its own (as libvirt sets it).
    static func makeIPv6Router(_ bridge: String) throws {
        for (key, value) in [("disable_ipv6", "0"), ("accept_ra", "0"), ("autoconf", "0")] {
            try writeSysctl("/proc/sys/net/ipv6/conf/\(bridge)/\(key)", value)
        }
    }

    static func writeSysctl(_ path: String, _ value: String) throws {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw BerthError(
                .unavailable, "Cannot write \(path): \(String(cString: strerror(errno))).",
                remedy: "berthd must run as root to route or NAT guests (and the kernel needs IPv6 for address6).")
        }
        defer { close(fd) }
        let bytes = Array((value + "\n").utf8)
        _ = write(fd, bytes, bytes.count)
    }
}

/// A tap device berthd made: the open descriptor keeps it alive. Taps are not persistent, so
/// the kernel removes one as soon as the last holder (the guest's QEMU, once berthd has
/// closed its own copy) is gone: a stopped or killed guest leaves no tap behind, even while
/// berthd is down.
final class TapDevice: Sendable {
    let name: String
    let fd: Int32
    private let closed = Atomic(false)

    private init(name: String, fd: Int32) {
        self.name = name
        self.fd = fd
    }

    deinit { close() }

    /// Creates a tap (`IFF_TAP | IFF_NO_PI | IFF_VNET_HDR`), named by the kernel after
    /// `HostLinks.tapPrefix`, attaches it to `bridge` and brings it up.
    static func make(attachingTo bridge: String) async throws -> TapDevice {
        let fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC)
        guard fd >= 0 else {
            let code = errno
            throw BerthError(
                .unavailable, "Cannot open /dev/net/tun: \(String(cString: strerror(code))).",
                remedy: code == ENOENT
                    ? "Load the tun module ('modprobe tun')." : "Tap networking needs berthd to run as root.")
        }
        // struct ifreq: a 16-byte name, then the flags as a short (the rest of the 40 bytes unused).
        var request = [UInt8](repeating: 0, count: 40)
        let pattern = Array((HostLinks.tapPrefix + "%d").utf8)
        request.replaceSubrange(0..<pattern.count, with: pattern)
        let flags: UInt16 = 0x0002 | 0x1000 | 0x4000  // IFF_TAP | IFF_NO_PI | IFF_VNET_HDR
        request[16] = UInt8(flags & 0xff)
        request[17] = UInt8(flags >> 8)
        let tunsetiff: UInt = 0x4004_54ca  // _IOW('T', 202, int)
        let result = request.withUnsafeMutableBytes { buffer -> Int32 in
            guard let pointer = buffer.baseAddress else { return -1 }
            return ioctl(fd, tunsetiff, pointer)
        }
        guard result == 0 else {
            let code = errno
            _ = Glibc.close(fd)
            throw BerthError(
                .unavailable, "Cannot create a tap device: \(String(cString: strerror(code))).",
                remedy: "Tap networking needs berthd to run as root (CAP_NET_ADMIN).")
        }
        let name = String(decoding: request[0..<16].prefix { $0 != 0 }, as: UTF8.self)
        let tap = TapDevice(name: name, fd: fd)
        do {
            try await HostLinks.ip(["link", "set", "dev", name, "master", bridge, "up"])
        } catch {
            tap.close()
            throw error
        }
        return tap
    }

    /// Drops berthd's copy; the tap lives on while QEMU holds its own.
    func close() {
        if !closed.exchange(true, ordering: .relaxed) { _ = Glibc.close(fd) }
    }
}

/// One route of `ip -j route show`: only the fields Berth reads.
private struct RouteEntry: Decodable {
    let dst: String?
    let dev: String?
    let type: String?
}
