import BerthModel
import BerthQEMU
import FoundationEssentials
import Glibc

/// Graphical consoles and live statistics of running domains.
extension Hypervisor {
    /// Where a running domain's display is.
    ///
    /// - Throws: `BerthError` when the domain has no graphics (with how to add them) or is
    ///   not running.
    func display(_ name: String) async throws -> DisplayInfo {
        let info = try info(name)
        guard let graphics = info.spec.graphics else {
            throw BerthError(
                .wrongState, "Domain '\(name)' has no graphical console.",
                remedy:
                    "Add \"graphics\": {\"kind\": \"vnc\"} (or \"spice\") to its definition ('berth dumpconfig \(name) --format json', edit, 'berth define FILE --update') and start it again; a microvm machine needs \"machine\": \"pc\"."
            )
        }
        guard info.state == .running || info.state == .paused || info.state == .shuttingDown else {
            throw BerthError(
                .wrongState, "Domain '\(name)' is \(info.state.rawValue), so its display is not up.",
                remedy: "Start it with 'berth start \(name)'.")
        }
        let kind = graphics.kind.rawValue
        let webSocket = "/v1/domains/\(name)/\(kind)"
        guard graphics.listen != nil || graphics.port != nil else {
            let socket = graphics.kind == .vnc ? driver.vncSocketPath(info.spec) : driver.spiceSocketPath(info.spec)
            return DisplayInfo(
                kind: graphics.kind, uri: "\(kind)+unix://\(socket)", socket: socket, password: graphics.password,
                webSocket: webSocket)
        }
        let listen = graphics.listen ?? "127.0.0.1"
        var port = graphics.port
        if port == nil {
            // VNC's "to=99" or berthd's pick for SPICE: QEMU says which port it has.
            let answer = try await instance(name)?.query("query-\(kind)")
            port = answer?["service"]?.string.flatMap { Int($0) } ?? answer?["port"]?.int.map { Int($0) }
        }
        guard let port else {
            throw BerthError(
                .unavailable, "QEMU did not say which \(kind) port '\(name)' got.", remedy: "See the domain's QEMU log.")
        }
        let host = listen.isEmpty || listen == "0.0.0.0" || listen == "::" ? "127.0.0.1" : listen
        let shown = host.contains(":") ? "[\(host)]" : host
        return DisplayInfo(
            kind: graphics.kind, uri: "\(kind)://\(shown):\(port)", host: host, port: port, password: graphics.password,
            webSocket: webSocket)
    }

    /// The running guest of `name`, nil when it is not running.
    func instance(_ name: String) async throws -> (any GuestInstance)? {
        await (try supervisor(name)).runningInstance
    }

    /// A running domain's counters.
    func stats(_ name: String) async throws -> DomainStats {
        let info = try info(name)
        guard let instance = try await instance(name) else {
            throw BerthError(
                .wrongState, "Domain '\(name)' is \(info.state.rawValue); statistics are kept only while it runs.",
                remedy: "Start it with 'berth start \(name)'.")
        }
        let process = ProcessAccounting.read(pid: instance.pid)
        var blocks: [BlockStats] = []
        if let answer = try? await instance.query("query-blockstats"), let devices = answer.array {
            for device in devices {
                let stats = device["stats"]
                let node = device["node-name"]?.string ?? device["device"]?.string ?? device["qdev"]?.string ?? "?"
                blocks.append(
                    BlockStats(
                        device: node, readBytes: stats?["rd_bytes"]?.int ?? 0, writeBytes: stats?["wr_bytes"]?.int ?? 0,
                        readOps: stats?["rd_operations"]?.int ?? 0, writeOps: stats?["wr_operations"]?.int ?? 0))
            }
        }
        return DomainStats(
            name: name, state: info.state, pid: instance.pid, cpuSeconds: process.cpuSeconds, rssBytes: process.rssBytes,
            memory: info.spec.memory, vcpus: info.spec.vcpus, blocks: blocks,
            interfaces: InterfaceCounters.read(pid: instance.pid, nics: info.spec.nics), time: Date())
    }

    /// Every running domain's counters (`GET /v1/stats`, `berth top`, `/metrics`).
    func allStats() async throws -> [DomainStats] {
        var all: [DomainStats] = []
        for summary in try catalog.summaries() where summary.state != .shutoff {
            if let stats = try? await stats(summary.name) { all.append(stats) }
        }
        return all
    }
}

/// A process's own accounting in `/proc/PID/stat`: user + system CPU time and resident pages.
enum ProcessAccounting {
    static func read(pid: Int32) -> (cpuSeconds: Double, rssBytes: Int64) {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/stat") else { return (0, 0) }
        return parse(String(decoding: data, as: UTF8.self))
    }

    /// The command name (field 2) may hold spaces and parentheses: fields are counted from
    /// the last `)`. Field 14 utime, 15 stime (clock ticks), 24 rss (pages).
    static func parse(_ text: String) -> (cpuSeconds: Double, rssBytes: Int64) {
        guard let close = text.lastIndex(of: ")") else { return (0, 0) }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // fields[0] is field 3 (state).
        func field(_ number: Int) -> Int64 {
            let index = number - 3
            guard index >= 0, index < fields.count else { return 0 }
            return Int64(fields[index]) ?? 0
        }
        let ticks = max(sysconf(Int32(_SC_CLK_TCK)), 1)
        let pageSize = Int64(max(sysconf(Int32(_SC_PAGESIZE)), 1))
        let (rss, overflow) = field(24).multipliedReportingOverflow(by: pageSize)
        return (Double(field(14) &+ field(15)) / Double(ticks), overflow ? Int64.max : rss)
    }
}
