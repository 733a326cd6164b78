import BerthClient
import BerthModel
import Foundation
import Testing

/// The web console in a real browser (headless Chromium over the DevTools protocol, driven
/// by Tests/Browser/webui.py) against a real berthd and a real TCG guest, and the display
/// and statistics commands.
@Suite(.serialized, .bootsGuests) struct WebConsoleTests {
    /// What the browser test needs from Debian, with the command that installs it.
    static func requireBrowserTools() throws {
        let needed: [(path: String, package: String)] = [
            ("/usr/bin/chromium", "chromium"), ("/usr/share/novnc/core/rfb.js", "novnc"),
            ("/usr/share/javascript/xterm/xterm.css", "libjs-xterm"), ("/usr/share/nodejs/xterm/lib/public/Terminal.js", "node-xterm"),
            ("/usr/share/spice-html5/main.js", "spice-html5"),
        ]
        let missing = needed.filter { !FileManager.default.fileExists(atPath: $0.path) }.map(\.package)
        guard missing.isEmpty else {
            Issue.record(
                "The browser test needs \(missing.joined(separator: ", ")): run 'apt-get install \(missing.joined(separator: " "))' (or scripts/install-host-deps)."
            )
            throw BerthError(.unavailable, "browser test tools missing")
        }
    }

    static var artifacts: String {
        ProcessInfo.processInfo.environment["BERTH_TEST_ARTIFACTS"]
            ?? URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent(".build/test-artifacts/webui").path
    }

    @Test func browserLogsInUsesBothConsolesAndSeesStateChangeLive() async throws {
        try Self.requireBrowserTools()
        let daemon = try await TestDaemon()
        defer { daemon.tearDown() }
        var spec = try GuestFixture.spec("web1")
        spec.machine = "pc"
        spec.graphics = GraphicsSpec(kind: .vnc)
        _ = try await daemon.client.define(spec)
        _ = try await daemon.client.perform(.start, on: "web1")
        _ = try await daemon.waitForLog("web1", "berth-guest# ")

        let run = try await Self.browser(daemon, "consoles", "web1")
        #expect(run.status == 0, "webui.py: \(run.stdout)\(run.stderr)")
        for step in ["login page", "listed as running", "BERTH-GUEST-READY", "read hi-42", "lit pixels", "without a reload"] {
            #expect(run.stdout.contains(step), "missing step '\(step)': \(run.stdout)")
        }
        for shot in ["login-wrong-token.png", "list.png", "serial.png", "vnc.png", "stopped.png"] {
            #expect(FileManager.default.fileExists(atPath: Self.artifacts + "/" + shot), "no screenshot \(shot)")
        }
        #expect(try await daemon.client.info("web1").state == .shutoff)
    }

    /// Runs one scenario of Tests/Browser/webui.py against `daemon`; screenshots go to
    /// `artifacts`.
    static func browser(_ daemon: TestDaemon, _ scenario: String, _ arguments: String..., timeout: Double = 150) async throws
        -> BerthRun
    {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Browser/webui.py").path
        try FileManager.default.createDirectory(atPath: artifacts, withIntermediateDirectories: true)
        return try await BerthRun.command(
            ["/usr/bin/python3", script, "http://127.0.0.1:\(daemon.port)", daemon.token, artifacts, scenario] + arguments,
            timeout: timeout)
    }

    @Test func spiceDisplayInTheBrowserAndForDesktopViewers() async throws {
        try Self.requireBrowserTools()
        let daemon = try await TestDaemon()
        defer { daemon.tearDown() }
        var spec = try GuestFixture.spec("spice1")
        spec.machine = "pc"
        spec.graphics = GraphicsSpec(kind: .spice)
        _ = try await daemon.client.define(spec)
        _ = try await daemon.client.perform(.start, on: "spice1")
        _ = try await daemon.waitForLog("spice1", "berth-guest# ")

        // A desktop viewer on berthd's host opens the unix socket: it speaks SPICE (the server
        // answers a link message with its own "REDQ" header).
        let display = try await BerthRun.run(["domdisplay", "spice1"], state: daemon.stateDirectory)
        let uri = display.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(uri.hasPrefix("spice+unix:///") && uri.hasSuffix("/display/spice.sock"), "\(display.stdout)\(display.stderr)")
        let reply = try await SpiceLink.hello(socket: String(uri.dropFirst("spice+unix://".count)))
        #expect(reply.starts(with: Array("REDQ".utf8)), "the SPICE socket answered \(reply)")
        let vnc = try await BerthRun.run(["vncdisplay", "spice1"], state: daemon.stateDirectory)
        #expect(vnc.status != 0 && vnc.stderr.contains("spice display, not VNC"))

        // The VNC WebSocket of a SPICE display is refused (no upgrade); the display says which.
        let upgrade = [
            "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
            "Authorization": "Bearer \(daemon.token)",
        ]
        let wrongKind = try await HTTP.get("http://127.0.0.1:\(daemon.port)/v1/domains/spice1/vnc", headers: upgrade)
        #expect(wrongKind.status == 400, "\(wrongKind.status) \(wrongKind.body)")
        let info = try await daemon.client.display("spice1")
        #expect(info.kind == .spice && info.webSocket == "/v1/domains/spice1/spice" && info.password == nil)

        // spice-html5 in Chromium, through berthd's WebSocket proxy: the canvas is drawn.
        let run = try await Self.browser(daemon, "spice", "spice1")
        #expect(run.status == 0, "webui.py: \(run.stdout)\(run.stderr)")
        #expect(run.stdout.contains("SPICE console:") && run.stdout.contains("lit pixels"), "\(run.stdout)")
        #expect(FileManager.default.fileExists(atPath: Self.artifacts + "/spice.png"))
        _ = try await daemon.client.perform(.destroy, on: "spice1")

        // SPICE on TCP: berthd picks the port and generates the password (set over QMP).
        spec = try GuestFixture.spec("spice2")
        spec.machine = "pc"
        spec.graphics = GraphicsSpec(kind: .spice, listen: "127.0.0.1")
        let defined = try await daemon.client.define(spec)
        let password = try #require(defined.spec.graphics?.password)
        _ = try await daemon.client.perform(.start, on: "spice2")
        let tcp = try await BerthRun.run(["domdisplay", "spice2", "--include-password"], state: daemon.stateDirectory)
        #expect(tcp.stdout.hasPrefix("spice://127.0.0.1:59") && tcp.stdout.contains("?password=\(password)"), "\(tcp.stdout)\(tcp.stderr)")
        let tcpInfo = try await daemon.client.display("spice2")
        #expect(tcpInfo.kind == .spice && tcpInfo.socket == nil && (5900...5999).contains(tcpInfo.port ?? 0))
        _ = try await daemon.client.perform(.destroy, on: "spice2")
    }

    @Test func newGuestFormInstallsFromTheMediaLibrary() async throws {
        try Self.requireBrowserTools()
        let (daemon, base) = try await InstallTests.setUp()
        defer { daemon.tearDown() }
        // The form's media list: the library with each medium's --location.
        let media = try await HTTP.get(
            "http://127.0.0.1:\(daemon.port)/v1/media", headers: ["Authorization": "Bearer \(daemon.token)"])
        let entries = try JSONDecoder().decode([MediaInfo].self, from: Data(media.body.utf8))
        #expect(entries.map(\.name) == ["centos6"] && entries.first?.location == "\(base)/install/centos6/", "\(media.body)")

        let run = try await Self.browser(daemon, "install", "web3", "\(base)/kickstarts/a.ks", timeout: 600)
        #expect(run.status == 0, "webui.py: \(run.stdout)\(run.stderr)")
        for step in ["the form sent", "tree recognised", "the installer's output", "installed: web3 running"] {
            #expect(run.stdout.contains(step), "missing step '\(step)': \(run.stdout)")
        }
        // What the form sent is what `berth install` sends: the installed guest boots its own
        // kernel through the bootloader from a volume of the default pool, with the kickstart's marker.
        _ = try await daemon.waitForLog("web3", "BERTH-GUEST-MARKER INSTALLED-alpha", timeout: 120)
        let info = try await daemon.client.info("web3")
        #expect(info.spec.bootloader != nil && info.spec.kernel == nil && info.spec.memory == 512)
        #expect(info.spec.disks.first?.volume == "default/web3.img")
        #expect(try await daemon.client.kickstart("web3").contains("#berth.marker alpha"))
        for shot in ["install-form.png", "install-console.png", "installed.png"] {
            #expect(FileManager.default.fileExists(atPath: Self.artifacts + "/" + shot), "no screenshot \(shot)")
        }
        _ = try await daemon.client.perform(.destroy, on: "web3")
    }

    /// A tap NIC's traffic in domstats, top and /metrics; a user-mode NIC says it has none. In a
    /// network namespace of the test's own (a tap and a bridge).
    @Test func networkCountersOfATapNICAndNoneForUserMode() async throws {
        let host = try TestNamespace("host")
        defer { host.destroy() }
        let daemon = try await TestDaemon(namespace: host)
        defer { daemon.tearDown() }
        _ = try await daemon.client.defineNetwork(
            try NetworkTests.networkSpec(#"{"name": "counted", "mode": "isolated", "address": "10.61.0.1/24"}"#))
        _ = try await daemon.client.startNetwork("counted")
        // 40 pings of 1,000 bytes each way on the tap, after DHCP on both NICs.
        let spec = try NetworkTests.guest(
            "talker", nics: [NICSpec(mode: .user), NICSpec(mode: .network, network: "counted", ip: "10.61.0.20")],
            run: "ping -c 40 -i 0.2 -s 1000 10.61.0.1 | tail -2")
        _ = try await daemon.client.define(spec)
        _ = try await daemon.client.perform(.start, on: "talker")
        let log = try await daemon.waitForLog("talker", "BERTH-GUEST-RUN-END", timeout: 180)
        #expect(log.contains("40 packets received"), "\(log.suffix(600))")

        let stats = try await daemon.client.stats("talker")
        #expect(stats.interfaces.count == 2)
        let user = try #require(stats.interfaces.first)
        #expect(user.mode == "user" && user.rxBytes == nil && user.txBytes == nil && user.device == nil)
        let tap = try #require(stats.interfaces.last)
        #expect(tap.device?.hasPrefix("btap") == true, "\(tap)")
        #expect((tap.rxBytes ?? 0) > 40_000 && (tap.txBytes ?? 0) > 40_000, "\(tap)")
        #expect((tap.rxPackets ?? 0) >= 40 && (tap.txPackets ?? 0) >= 40, "\(tap)")

        let domstats = try await BerthRun.run(["domstats", "talker"], state: daemon.stateDirectory)
        #expect(domstats.stdout.contains("net.0.counters=none (user-mode networking keeps no counters)"), "\(domstats.stdout)")
        #expect(domstats.stdout.contains("net.1.name=\(tap.device ?? "?")") && domstats.stdout.contains("net.1.rx.bytes="))
        let top = try await BerthRun.run(["top", "--batch", "--iterations", "2", "--delay", "1"], state: daemon.stateDirectory)
        #expect(top.stdout.contains("RX(KiB/s)") && top.stdout.contains("TX(KiB/s)"), "\(top.stdout)")
        // berthd's TCP listener is in the namespace: curl there.
        let metrics = try host.run(
            ["curl", "-sS", "-H", "Authorization: Bearer \(daemon.token)", "http://127.0.0.1:\(daemon.port)/metrics"])
        let line = "berth_domain_network_receive_bytes_total{domain=\"talker\",interface=\"\(tap.device ?? "?")\"}"
        let received = metrics.split(separator: "\n").first { $0.hasPrefix(line) }.flatMap { Int64($0.split(separator: " ").last ?? "") }
        #expect((received ?? 0) >= (tap.rxBytes ?? 0), "\(metrics)")
        _ = try await daemon.client.perform(.destroy, on: "talker")
    }

    @Test func webSocketsAndUIRequireAuthentication() async throws {
        let daemon = try await TestDaemon()
        defer { daemon.tearDown() }
        let base = "http://127.0.0.1:\(daemon.port)"
        // No session: the UI answers with the login page, never the API's JSON.
        let page = try await HTTP.get(base + "/ui/")
        #expect(page.status == 303 && page.headers["location"] == "/ui/login")
        let wrong = try await HTTP.post(base + "/ui/login", body: "token=nope")
        #expect(wrong.status == 401 && wrong.body.contains("<form") && wrong.body.contains("login-error"))
        let login = try await HTTP.post(base + "/ui/login", body: "token=\(daemon.token)")
        let cookie = try #require(login.headers["set-cookie"])
        #expect(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"))
        let session = String(cookie.prefix { $0 != ";" })
        // The session reads the API; a change needs the page's CSRF header as well.
        #expect(try await HTTP.get(base + "/v1/domains", headers: ["Cookie": session]).status == 200)
        _ = try await daemon.client.define(try GuestFixture.spec("web2"))
        let noCSRF = try await HTTP.post(base + "/v1/domains/web2/start", body: "", headers: ["Cookie": session])
        #expect(noCSRF.status == 401 && noCSRF.body.contains("X-Berth-CSRF"))
        // A WebSocket upgrade without a token or session is refused (no 101); with the token
        // it is switched to the guest's console. A plain GET of the path says it is a WebSocket.
        let upgrade = [
            "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        ]
        let bearer = ["Authorization": "Bearer \(daemon.token)"]
        let offline = try await HTTP.get(base + "/v1/domains/web2/console/ws", headers: upgrade.merging(bearer) { $1 })
        #expect(offline.status == 400, "a console of a guest that is off")
        _ = try await daemon.client.perform(.start, on: "web2")
        #expect(try await HTTP.get(base + "/v1/domains/web2/console/ws", headers: upgrade).status == 400)
        let crossSite = upgrade.merging(["Cookie": session, "Origin": "http://evil.example"]) { $1 }
        #expect(try await HTTP.get(base + "/v1/domains/web2/console/ws", headers: crossSite).status == 400)
        let switched = try await HTTP.get(base + "/v1/domains/web2/console/ws", headers: upgrade.merging(bearer) { $1 })
        #expect(switched.status == 101)
        let sameSite = upgrade.merging(["Cookie": session, "Origin": base]) { $1 }
        #expect(try await HTTP.get(base + "/v1/domains/web2/console/ws", headers: sameSite).status == 101)
        let plain = try await HTTP.get(base + "/v1/domains/web2/console/ws", headers: bearer)
        #expect(plain.status == 400 && plain.body.contains("WebSocket"))
        // No graphics: the display says how to add them.
        let display = try await HTTP.get(base + "/v1/domains/web2/display", headers: bearer)
        #expect(display.status == 409 && display.body.contains("graphics"), "\(display.body)")
        _ = try await daemon.client.perform(.destroy, on: "web2")
    }

    @Test func domstatsTopAndMetricsShowABusyGuestsCPU() async throws {
        let daemon = try await TestDaemon()
        defer { daemon.tearDown() }
        var spec = try GuestFixture.spec("spin")
        spec.cmdline = (spec.cmdline ?? "") + " berth.run=\"while :; do :; done >/dev/null 2>&1 &\""
        spec.graphics = GraphicsSpec(kind: .vnc, listen: "127.0.0.1")
        spec.machine = "pc"
        _ = try await daemon.client.define(spec)
        // An idle guest beside it, measured over the same moments: the machine may be busy with
        // other tests, so the spinning guest is judged against its neighbour, not a fixed figure.
        _ = try await daemon.client.define(try GuestFixture.spec("still"))
        _ = try await daemon.client.perform(.start, on: "spin")
        _ = try await daemon.client.perform(.start, on: "still")
        _ = try await daemon.waitForLog("spin", "BERTH-GUEST-RUN-END")
        _ = try await daemon.waitForLog("still", "berth-guest# ")

        let first = (try await daemon.client.stats("spin"), try await daemon.client.stats("still"))
        try await Task.sleep(for: .seconds(3))
        let second = (try await daemon.client.stats("spin"), try await daemon.client.stats("still"))
        let busy = (second.0.cpuSeconds - first.0.cpuSeconds) / second.0.time.timeIntervalSince(first.0.time)
        let idle = (second.1.cpuSeconds - first.1.cpuSeconds) / second.1.time.timeIntervalSince(first.1.time)
        // An idle TCG test guest uses about 1 % of a core; a spinning one all it can get.
        #expect(busy > 0.05 && busy > 3 * idle, "spinning \(busy * 100) %, idle \(idle * 100) % of a core")
        #expect(second.0.rssBytes > 16 << 20)

        let top = try await BerthRun.run(["top", "--batch", "--iterations", "2", "--delay", "1"], state: daemon.stateDirectory)
        func percent(_ name: String) -> Double {
            let row = top.stdout.split(separator: "\n").last { $0.hasPrefix(name) }.map(String.init) ?? ""
            return row.split(separator: " ", omittingEmptySubsequences: true).dropFirst(3).first.flatMap { Double($0) } ?? 0
        }
        #expect(percent("spin") > percent("still"), "berth top: \(top.stdout)")

        let domstats = try await BerthRun.run(["domstats", "spin"], state: daemon.stateDirectory)
        #expect(domstats.stdout.contains("cpu.time=") && domstats.stdout.contains("memory.rss="))

        let metrics = try await HTTP.get(
            "http://127.0.0.1:\(daemon.port)/metrics", headers: ["Authorization": "Bearer \(daemon.token)"])
        let line = metrics.body.split(separator: "\n").first { $0.hasPrefix("berth_domain_cpu_seconds_total{domain=\"spin\"}") }
        let seconds = line.flatMap { Double($0.split(separator: " ").last ?? "") } ?? 0
        #expect(seconds >= second.0.cpuSeconds, "\(metrics.body)")
        #expect(metrics.body.contains("berth_domains{state=\"running\"} 2"))

        // A TCP display: vnc://HOST:PORT, with the generated password on request.
        let display = try await BerthRun.run(["domdisplay", "spin"], state: daemon.stateDirectory)
        #expect(display.stdout.hasPrefix("vnc://127.0.0.1:59"), "\(display.stdout)\(display.stderr)")
        let withPassword = try await BerthRun.run(["vncdisplay", "spin"], state: daemon.stateDirectory)
        #expect(withPassword.stdout == display.stdout)
        let none = try await BerthRun.run(["domdisplay", "nothing"], state: daemon.stateDirectory)
        #expect(none.status == 3)
        _ = try await daemon.client.perform(.destroy, on: "spin")
        let off = try await BerthRun.run(["domstats", "spin"], state: daemon.stateDirectory)
        #expect(off.status == 5 && off.stderr.contains("berth start spin"))
    }
}

/// The first step of a SPICE client: a link message for the main channel on the display's
/// unix socket; the server's answer starts with its own link header.
enum SpiceLink {
    static func hello(socket path: String) async throws -> [UInt8] {
        try await withCheckedThrowingContinuation { continuation in
            Thread {
                continuation.resume(with: Result { try exchange(path) })
            }.start()
        }
    }

    private static func exchange(_ path: String) throws -> [UInt8] {
        guard let fd = TestDaemon.connectUnix(path) else { throw BerthError(.connection, "cannot connect to \(path)") }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        func le32(_ value: UInt32) -> [UInt8] { withUnsafeBytes(of: value.littleEndian, Array.init) }
        // SpiceLinkMess: connection id 0, channel main (1), id 0, no capabilities, caps at 18.
        let message = le32(0) + [1, 0] + le32(0) + le32(0) + le32(18)
        let header = Array("REDQ".utf8) + le32(2) + le32(2) + le32(UInt32(message.count))
        let hello = header + message
        _ = hello.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        var answer = [UInt8](repeating: 0, count: 16)
        let count = read(fd, &answer, answer.count)
        return Array(answer.prefix(max(count, 0)))
    }
}

/// A plain HTTP/1.1 client on one socket (URLSession on Linux would follow redirects and
/// refuse to send Upgrade).
enum HTTP {
    struct Answer {
        var status: Int
        var headers: [String: String]
        var body: String
    }

    static func get(_ url: String, headers: [String: String] = [:]) async throws -> Answer {
        try await request("GET", url, body: nil, headers: headers)
    }

    static func post(_ url: String, body: String, headers: [String: String] = [:]) async throws -> Answer {
        try await request("POST", url, body: body, headers: headers)
    }

    static func request(_ method: String, _ url: String, body: String?, headers: [String: String]) async throws -> Answer {
        let components = try #require(URLComponents(string: url))
        let port = try #require(components.port)
        var text = "\(method) \(components.percentEncodedPath) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\n"
        var all = headers
        if let body {
            all["Content-Length"] = "\(body.utf8.count)"
            all["Content-Type"] = all["Content-Type"] ?? "application/x-www-form-urlencoded"
        }
        if all["Upgrade"] == nil { all["Connection"] = "close" }
        for (key, value) in all { text += "\(key): \(value)\r\n" }
        text += "\r\n" + (body ?? "")
        let request = text
        return try await withCheckedThrowingContinuation { continuation in
            Thread {
                continuation.resume(with: Result { try exchange(request, port: port) })
            }.start()
        }
    }

    private static func exchange(_ request: String, port: Int) throws -> Answer {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw BerthError(.connection, "cannot connect to 127.0.0.1:\(port)") }
        let bytes = Array(request.utf8)
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = read(fd, &buffer, buffer.count)
            if count <= 0 { break }
            received += buffer[0..<count]
            // An answer with a length (or a refused upgrade) is complete once that many bytes came.
            let text = String(decoding: received, as: UTF8.self)
            if let split = text.range(of: "\r\n\r\n") {
                let head = text[..<split.lowerBound].lowercased()
                if head.hasPrefix("http/1.1 101") { break }
                if let line = head.split(separator: "\r\n").first(where: { $0.hasPrefix("content-length:") }),
                    let length = Int(line.dropFirst(15).trimmingCharacters(in: .whitespaces)),
                    text[split.upperBound...].utf8.count >= length
                {
                    break
                }
            }
        }
        let text = String(decoding: received, as: UTF8.self)
        let parts = text.components(separatedBy: "\r\n\r\n")
        let lines = parts[0].components(separatedBy: "\r\n")
        let status = Int(lines.first?.split(separator: " ").dropFirst().first ?? "") ?? 0
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return Answer(status: status, headers: headers, body: parts.dropFirst().joined(separator: "\r\n\r\n"))
    }
}

extension BerthRun {
    /// Runs any program (here the browser driver), ended after `timeout` seconds.
    static func command(_ arguments: [String], timeout: Double) async throws -> BerthRun {
        try await withCheckedThrowingContinuation { continuation in
            Thread {
                continuation.resume(
                    with: Result { try execute(arguments[0], Array(arguments.dropFirst()), timeout: timeout) })
            }.start()
        }
    }
}
