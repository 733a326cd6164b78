import BerthClient
import BerthModel
import Foundation
import Testing

/// The URIs `berth domdisplay` prints, opened by the desktop viewers a user would run on
/// berthd's host: Debian's remote-viewer (virt-viewer) and TigerVNC's vncviewer, on a virtual
/// X server (Tests/Desktop/viewer.py). Each viewer must reach the guest's display; the
/// screenshots are kept as test artifacts.
@Suite(.serialized, .bootsGuests) struct DesktopViewerTests {
    static func requireDesktopTools() throws {
        let needed: [(path: String, package: String)] = [
            ("/usr/bin/remote-viewer", "virt-viewer"), ("/usr/bin/xtigervncviewer", "tigervnc-viewer"),
            ("/usr/bin/Xvfb", "xvfb"), ("/usr/bin/xwd", "x11-apps"),
        ]
        let missing = needed.filter { !FileManager.default.fileExists(atPath: $0.path) }.map(\.package)
        guard missing.isEmpty else {
            Issue.record(
                "The desktop viewer test needs \(missing.joined(separator: ", ")): run 'apt-get install \(missing.joined(separator: " "))' (or scripts/install-host-deps)."
            )
            throw BerthError(.unavailable, "desktop viewer tools missing")
        }
    }

    /// A running test guest with `graphics`, its kernel writing to the screen as well as to the
    /// serial line (so the screenshot shows the guest's own text).
    static func runningGuest(_ daemon: TestDaemon, _ name: String, _ graphics: GraphicsSpec) async throws {
        var spec = try GuestFixture.spec(name)
        spec.machine = "pc"
        spec.cmdline = spec.cmdline?.replacingOccurrences(of: "console=ttyS0", with: "console=tty0 console=ttyS0")
        spec.graphics = graphics
        _ = try await daemon.client.define(spec)
        _ = try await daemon.client.perform(.start, on: name)
        _ = try await daemon.waitForLog(name, "berth-guest# ")
    }

    static func domdisplay(_ daemon: TestDaemon, _ arguments: String...) async throws -> String {
        let run = try await BerthRun.run(["domdisplay"] + arguments, state: daemon.stateDirectory)
        #expect(run.status == 0, "\(run.stdout)\(run.stderr)")
        return run.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Runs `viewer` on Xvfb until it prints one of `expect` ("|"-separated); saves `shot`.
    static func view(_ shot: String, expect: String, _ viewer: String...) async throws -> BerthRun {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Desktop/viewer.py").path
        return try await BerthRun.command(
            ["/usr/bin/python3", script, WebConsoleTests.artifacts, shot, expect] + viewer, timeout: 150)
    }

    @Test func remoteViewerOpensSpiceOnTheSocketAndOnTCPWithItsPassword() async throws {
        try Self.requireDesktopTools()
        let daemon = try await TestDaemon()
        defer { daemon.tearDown() }

        try await Self.runningGuest(daemon, "rv1", GraphicsSpec(kind: .spice))
        let socketURI = try await Self.domdisplay(daemon, "rv1")
        #expect(socketURI.hasPrefix("spice+unix:///"), "\(socketURI)")
        let onSocket = try await Self.view("remote-viewer-spice-socket.png", expect: "SpiceDisplayChannel", "remote-viewer", "--debug", socketURI)
        #expect(onSocket.status == 0 && onSocket.stdout.contains("connected: "), "\(onSocket.stdout)\(onSocket.stderr)")
        _ = try await daemon.client.perform(.destroy, on: "rv1")

        // On TCP berthd sets a password; the URI with --include-password carries it, and
        // spice-gtk logs in with it (without it, the server would refuse the link).
        try await Self.runningGuest(daemon, "rv2", GraphicsSpec(kind: .spice, listen: "127.0.0.1"))
        let tcpURI = try await Self.domdisplay(daemon, "rv2", "--include-password")
        #expect(tcpURI.hasPrefix("spice://127.0.0.1:") && tcpURI.contains("?password="), "\(tcpURI)")
        let onTCP = try await Self.view("remote-viewer-spice-tcp.png", expect: "SpiceDisplayChannel", "remote-viewer", "--debug", tcpURI)
        #expect(onTCP.status == 0 && onTCP.stdout.contains("connected: "), "\(onTCP.stdout)\(onTCP.stderr)")
        _ = try await daemon.client.perform(.destroy, on: "rv2")
    }

    @Test func vncOnTheSocketOpensInTigerVNCAndOnTCPInRemoteViewer() async throws {
        try Self.requireDesktopTools()
        let daemon = try await TestDaemon()
        defer { daemon.tearDown() }

        // remote-viewer cannot open a VNC unix socket (gtk-vnc wants a host); TigerVNC's
        // vncviewer takes the socket's path, which is what `domdisplay` names.
        try await Self.runningGuest(daemon, "tv1", GraphicsSpec(kind: .vnc))
        let socketURI = try await Self.domdisplay(daemon, "tv1")
        #expect(socketURI.hasPrefix("vnc+unix:///"), "\(socketURI)")
        let path = String(socketURI.dropFirst("vnc+unix://".count))
        let tiger = try await Self.view("tigervnc-socket.png", expect: "Using pixel format", "xtigervncviewer", path)
        #expect(tiger.status == 0 && tiger.stdout.contains("connected: "), "\(tiger.stdout)\(tiger.stderr)")
        _ = try await daemon.client.perform(.destroy, on: "tv1")

        // VNC on TCP: remote-viewer connects and, the display having a password, asks for it
        // (gtk-vnc takes no password from a vnc:// URI; `domdisplay --include-password` shows it).
        try await Self.runningGuest(daemon, "tv2", GraphicsSpec(kind: .vnc, listen: "127.0.0.1"))
        let tcpURI = try await Self.domdisplay(daemon, "tv2")
        #expect(tcpURI.hasPrefix("vnc://127.0.0.1:"), "\(tcpURI)")
        let remote = try await Self.view("remote-viewer-vnc-tcp.png", expect: "Got VNC credential request", "remote-viewer", "--debug", tcpURI)
        #expect(remote.status == 0 && remote.stdout.contains("connected: "), "\(remote.stdout)\(remote.stderr)")
        _ = try await daemon.client.perform(.destroy, on: "tv2")
    }
}
