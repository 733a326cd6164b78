import BerthModel
import BerthPOSIX
import BerthQEMU
import FoundationEssentials
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// One network's dnsmasq, run as libvirt runs it: a generated config file, a hosts file of
/// reservations (re-read on SIGHUP, so reservations change without a restart or lost
/// leases), a leases file and a pidfile, all in the network's directory. It runs in its own
/// session and outlives berthd; a restarted berthd finds it again by the pidfile, checked
/// against its command line.
struct Dnsmasq: Sendable {
    let directory: String
    var configPath: String { directory + "/dnsmasq.conf" }
    var hostsPath: String { directory + "/dhcp-hosts" }
    var leasesPath: String { directory + "/leases" }
    var pidPath: String { directory + "/dnsmasq.pid" }
    var logPath: String { directory + "/dnsmasq.log" }

    /// Serializes rewrites of hosts files (a domain define and a net-update may race).
    private static let writing = Mutex(())

    /// The configuration for `spec` on `bridge`.
    static func configuration(_ spec: NetworkSpec, bridge: String, directory: String) -> String? {
        guard let subnet = spec.subnet, let pool = spec.dhcpPool else { return nil }
        let size = Int(pool.upperBound.value - pool.lowerBound.value) + 1
        let dnsmasq = Dnsmasq(directory: directory)
        return """
            # Written by berthd for network '\(spec.name)' at every net-start; edits are lost.
            strict-order
            pid-file=\(dnsmasq.pidPath)
            except-interface=lo
            bind-dynamic
            interface=\(bridge)
            dhcp-range=\(pool.lowerBound),\(pool.upperBound),\(subnet.netmask)
            dhcp-no-override
            dhcp-authoritative
            dhcp-lease-max=\(size)
            dhcp-hostsfile=\(dnsmasq.hostsPath)
            dhcp-leasefile=\(dnsmasq.leasesPath)
            log-facility=-
            user=nobody
            group=nogroup
            \(Self.networkBoot(spec))\(spec.mode == .isolated ? "# No router: an isolated network is no way out (libvirt does the same).\ndhcp-option=3\n" : "")
            """ + ipv6Configuration(spec, bridge: bridge)
    }

    /// Router advertisements, and DHCPv6 when the network has a pool (libvirt's dnsmasq lines:
    /// a stateful `dhcp-range`, or `ra-only` so guests configure themselves by SLAAC). An
    /// isolated network advertises no default route.
    static func ipv6Configuration(_ spec: NetworkSpec, bridge: String) -> String {
        guard let subnet6 = spec.subnet6 else { return "" }
        var lines = ["enable-ra"]
        if let pool = spec.dhcp6Pool {
            lines.append("dhcp-range=\(pool.lowerBound),\(pool.upperBound),\(subnet6.prefix)")
        } else {
            lines.append("dhcp-range=\(subnet6.network),ra-only,\(subnet6.prefix)")
        }
        if spec.mode == .isolated { lines.append("ra-param=\(bridge),60,0") }
        return lines.map { $0 + "\n" }.joined()
    }

    /// TFTP and the DHCP boot file (`--pxe` guests): libvirt's `<tftp root>` and `<bootp file>`.
    static func networkBoot(_ spec: NetworkSpec) -> String {
        var lines = ""
        if let root = spec.tftpRoot { lines += "enable-tftp\ntftp-root=\(root)\n" }
        if let file = spec.bootFile { lines += "dhcp-boot=\(file)\n" }
        return lines
    }

    /// dnsmasq's `dhcp-hostsfile` lines: `MAC,IP[,NAME]`.
    static func hostLines(_ hosts: [DHCPHost]) -> String {
        hosts.map { host in ([host.mac.description, host.ip] + (host.name.map { [$0] } ?? [])).joined(separator: ",") + "\n" }
            .joined()
    }

    /// Writes the config and hosts file. dnsmasq drops to `nobody` and re-reads the hosts file
    /// by path on SIGHUP, so the directory is traversable and the hosts file readable; nothing
    /// in it is secret (the leases file is opened by dnsmasq before it drops privileges).
    func prepare(_ spec: NetworkSpec, bridge: String) throws {
        guard let text = Self.configuration(spec, bridge: bridge, directory: directory) else {
            throw BerthError(.internal, "Network '\(spec.name)' has no subnet for dnsmasq.")
        }
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            chmod(directory, 0o755)
            try text.write(toFile: configPath, atomically: true, encoding: .utf8)
            chmod(configPath, 0o644)
        } catch {
            throw BerthError(
                .unavailable, "Cannot write dnsmasq's files in \(directory): \(BerthError.reason(error))",
                remedy: "Check that berthd's runtime directory is writable.")
        }
        try writeHosts(spec.hosts)
    }

    /// Rewrites the reservations in place (the same inode: dnsmasq reads it by path anyway).
    func writeHosts(_ hosts: [DHCPHost]) throws {
        try Self.writing.withLock { _ in
            let fd = open(hostsPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o644)
            guard fd >= 0 else {
                throw BerthError(
                    .unavailable, "Cannot write \(hostsPath): \(String(cString: strerror(errno)))",
                    remedy: "Check that berthd's runtime directory is writable.")
            }
            defer { close(fd) }
            fchmod(fd, 0o644)
            let bytes = Array(Self.hostLines(hosts).utf8)
            guard bytes.isEmpty || write(fd, bytes, bytes.count) == bytes.count else {
                throw BerthError(.unavailable, "Cannot write \(hostsPath).", remedy: "Check free space.")
            }
        }
    }

    /// Starts dnsmasq and returns its PID once it has written its pidfile; its own message
    /// (a port in use, a bad option) is the error when it exits first.
    func start() async throws -> Int32 {
        let binary = try HostLinks.tool("dnsmasq", package: "dnsmasq-base")
        unlink(pidPath)
        let log = open(logPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard log >= 0 else {
            throw BerthError(.unavailable, "Cannot write \(logPath): \(String(cString: strerror(errno)))")
        }
        defer { close(log) }
        let pid = try Spawn.launch(
            [binary, "--conf-file=\(configPath)", "--keep-in-foreground"], passing: [], output: log)
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            if let running = runningPID(), running == pid { return pid }
            if kill(pid, 0) != 0 { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        kill(pid, SIGKILL)
        let message = CappedText.read(logPath, maxBytes: 2000)
        throw BerthError(
            .unavailable, "dnsmasq did not start: \(message.isEmpty ? "no message" : message)",
            remedy: message.contains("in use")
                ? "Another DNS or DHCP server listens on every interface; configure it with bind-interfaces (or except-interface for Berth's bridges)."
                : "See \(logPath).")
    }

    /// The PID of this network's live dnsmasq, from its pidfile, confirmed by its command line.
    func runningPID() -> Int32? {
        guard let text = try? String(contentsOfFile: pidPath, encoding: .utf8),
            let pid = Int32(text.trimmed()), pid > 1,
            let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline")
        else { return nil }
        let arguments = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        guard arguments.contains("--conf-file=\(configPath)") else { return nil }
        let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
        if let close = stat.lastIndex(of: ")"),
            let state = stat[stat.index(after: close)...].trimmed().first, state == "Z"
        {
            return nil
        }
        return pid
    }

    /// Makes dnsmasq re-read its hosts file.
    func reload() {
        if let pid = runningPID() { kill(pid, SIGHUP) }
    }

    /// SIGTERM, then SIGKILL; returns once it is gone.
    func stop() async {
        guard let pid = runningPID() else { return }
        kill(pid, SIGTERM)
        for _ in 0..<100 {
            if runningPID() == nil { break }
            try? await Task.sleep(for: .milliseconds(20))
        }
        if runningPID() != nil { kill(pid, SIGKILL) }
        for _ in 0..<100 where runningPID() != nil { try? await Task.sleep(for: .milliseconds(20)) }
        unlink(pidPath)
    }

    /// The live leases: dnsmasq's leases file, `EXPIRY MAC IP HOSTNAME CLIENTID` per line.
    func leases() -> [DHCPLease] {
        let text = CappedText.read(leasesPath, maxBytes: 1 << 20)
        return text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ").map(String.init)
            guard fields.count >= 4, let mac = MACAddress(fields[1]), IPv4Address(fields[2]) != nil else { return nil }
            let expiry = Int(fields[0]).flatMap { $0 == 0 ? nil : Date(timeIntervalSince1970: TimeInterval($0)) }
            return DHCPLease(mac: mac, ip: fields[2], hostname: fields[3] == "*" ? nil : fields[3], expires: expiry)
        }
    }
}

/// Reads a small text file with a cap (logs, leases).
enum CappedText {
    static func read(_ path: String, maxBytes: Int) -> String {
        String(decoding: FileBytes.read(path, maxBytes: maxBytes) ?? [], as: UTF8.self).trimmed()
    }
}
