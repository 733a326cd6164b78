import BerthModel
import Foundation
import Hummingbird
import Testing

@testable import BerthServer

/// Every query parameter is checked: a bad one is a 400 naming it and its range, and berthd
/// keeps answering (these values used to trap it: "Double value cannot be converted to Int").
@Suite(.serialized, .bootsGuests) struct APIValidationTests {
    /// `curl` over the unix socket: what berthd answers to exactly this request.
    static func curl(_ daemon: TestDaemon, _ method: String, _ path: String, timeout: Int = 10) throws -> (status: Int, body: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        process.arguments = [
            "-s", "-g", "-m", String(timeout), "-o", "-", "-w", "\n%{http_code}", "-X", method, "--unix-socket", daemon.socketPath,
            "http://berthd\(path)",
        ]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let lines = String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        return (Int(lines.last ?? "") ?? 0, lines.dropLast().joined(separator: "\n"))
    }

    @Test func badParametersAre400AndBerthdSurvives() async throws {
        let daemon = try await TestDaemon()
        defer { daemon.tearDown() }
        _ = try await daemon.client.define(try GuestFixture.spec("v1"))
        let cases: [(String, String, String)] = [
            ("GET", "/v1/operations/x?wait=nan", "wait"),
            ("GET", "/v1/operations/x?wait=-4.6874042822294936e+16", "wait"),
            ("GET", "/v1/operations/x?wait=1e400", "wait"),
            ("GET", "/v1/operations/x?wait=inf", "wait"),
            ("GET", "/v1/operations/x?wait=3601", "wait"),
            ("GET", "/v1/operations/x?wait=soon", "wait"),
            ("GET", "/v1/domains/v1/console?tail=-1", "tail"),
            ("GET", "/v1/domains/v1/console?tail=99999999999999999999999", "tail"),
            ("GET", "/v1/domains/v1/console?tail=1.5", "tail"),
            ("GET", "/v1/domains/v1/console?follow=maybe", "follow"),
            ("POST", "/v1/domains/v1/start?wait=nan", "wait"),
            ("POST", "/v1/domains/v1/shutdown?timeout=-1", "timeout"),
            ("POST", "/v1/domains/v1/shutdown?timeout=nan", "timeout"),
            ("POST", "/v1/domains/v1/shutdown?timeout=1e20", "timeout"),
            ("POST", "/v1/domains/v1/shutdown?force=2", "force"),
            ("DELETE", "/v1/domains/v1?keepLogs=yes", "keepLogs"),
        ]
        for (method, path, parameter) in cases {
            let reply = try Self.curl(daemon, method, path)
            #expect(reply.status == 400, "\(method) \(path) answered \(reply.status): \(reply.body)")
            #expect(reply.body.contains("'\(parameter)="), "\(path): \(reply.body)")
            #expect(reply.body.contains("remedy"), "\(path): \(reply.body)")
            #expect(daemon.process?.isRunning == true, "berthd died on \(method) \(path)")
        }
        // Still answering, and nothing changed.
        #expect(try await daemon.client.info("v1").state == .shutoff)
        #expect(try Self.curl(daemon, "GET", "/v1/operations/x?wait=0.1").status == 404)
        #expect(try Self.curl(daemon, "GET", "/v1/domains/v1/console?tail=0").status == 200)
    }

    /// `?wait=N` returns after N seconds while the operation still runs (it waited for the
    /// operation before: `await task.value` ignores cancellation).
    @Test func operationWaitEndsOnTimeWhileTheOperationRuns() async throws {
        let registry = OperationRegistry()
        let operation = registry.run(domain: "slow", action: "shutdown") { try await Task.sleep(for: .seconds(20)) }
        let started = ContinuousClock.now
        let info = try await registry.get(operation.id, wait: .milliseconds(300))
        let elapsed = ContinuousClock.now - started
        #expect(info.status == .running)
        #expect(elapsed >= .milliseconds(250) && elapsed < .seconds(3), "get took \(elapsed)")
        // A finished operation is answered as soon as it ends, well before the wait.
        let quick = registry.run(domain: "quick", action: "start") { try await Task.sleep(for: .milliseconds(100)) }
        let quickStart = ContinuousClock.now
        #expect(try await registry.get(quick.id, wait: .seconds(30)).status == .succeeded)
        #expect(ContinuousClock.now - quickStart < .seconds(5))
    }

    /// At most 64 event streams and 64 console followers; the next is told why (503).
    @Test func streamsAreCapped() async throws {
        let daemon = try await TestDaemon()
        defer { daemon.tearDown() }
        _ = try await daemon.client.define(try GuestFixture.spec("cap"))
        for (path, kind) in [("/v1/events", "event streams"), ("/v1/domains/cap/console?follow=true", "console followers")] {
            var open: [Int32] = []
            defer { for fd in open { close(fd) } }
            for _ in 0..<64 {
                let (fd, status) = try UnixHTTP.openStream(daemon.socketPath, path)
                open.append(fd)
                #expect(status == 200)
            }
            let (fd, status) = try UnixHTTP.openStream(daemon.socketPath, path)
            open.append(fd)
            #expect(status == 503, "stream 65 on \(path) answered \(status)")
            let reply = try Self.curl(daemon, "GET", path, timeout: 3)
            #expect(reply.body.contains(kind) && reply.body.contains("limit"), "\(reply.body)")
            // Clients that went away free their slots.
            for fd in open { close(fd) }
            open.removeAll()
            var freed = false
            for _ in 0..<100 where !freed {
                let (fd, status) = try UnixHTTP.openStream(daemon.socketPath, path)
                open.append(fd)
                freed = status == 200
                if !freed { try await Task.sleep(for: .milliseconds(200)) }
            }
            #expect(freed, "\(path): slots of closed connections were not freed within 20 s")
        }
        #expect(try await daemon.client.info("cap").state == .shutoff)
    }

    /// A connection that sends nothing is closed after --idle-timeout.
    @Test func idleConnectionsAreClosed() async throws {
        let daemon = try await TestDaemon(extraArguments: ["--idle-timeout", "1"])
        defer { daemon.tearDown() }
        for port in [daemon.port, daemon.mediaPort] {
            let fd = try RawHTTP.connect(port: port)
            defer { close(fd) }
            var limit = timeval(tv_sec: 10, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
            let started = Date()
            var byte: UInt8 = 0
            let n = recv(fd, &byte, 1, 0)
            #expect(n == 0, "port \(port): the idle connection was not closed (recv \(n), errno \(errno))")
            #expect(Date().timeIntervalSince(started) < 8)
        }
    }
}

/// Which Host headers the media listener serves (the live check is in MediaServerTests).
@Suite struct HostCheckTests {
    @Test func namesAndAddresses() {
        let loopback = HostCheckMiddleware<BasicRequestContext>(listenHost: "127.0.0.1", port: 8001)
        #expect(loopback.accepts("127.0.0.1:8001") && loopback.accepts("10.0.2.2:8001") && loopback.accepts("[::1]:8001"))
        #expect(!loopback.accepts("192.168.1.5:8001"), "an address the listener is not bound to")
        #expect(!loopback.accepts("evil.example:8001") && !loopback.accepts("127.0.0.1:8000"))
        let configured = HostCheckMiddleware<BasicRequestContext>(listenHost: "192.168.1.5", port: 8001)
        #expect(configured.accepts("192.168.1.5:8001") && !configured.accepts("192.168.1.6:8001"))
        let everywhere = HostCheckMiddleware<BasicRequestContext>(listenHost: "0.0.0.0", port: 8001)
        #expect(everywhere.accepts("192.168.1.5:8001") && everywhere.accepts("[fe80::1]:8001"))
        #expect(!everywhere.accepts("evil.example:8001") && !everywhere.accepts("1.2.3.4.nip.io:8001"))
    }
}

/// Raw requests over the daemon's unix socket, left open (streams).
enum UnixHTTP {
    /// Sends `GET path` and reads the status line; the connection stays open for the caller.
    static func openStream(_ socketPath: String, _ path: String) throws -> (Int32, Int) {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw BerthError(.connection, "socket") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(socketPath.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else {
            close(fd)
            throw BerthError(.connection, "connect \(socketPath)")
        }
        let request = Array("GET \(path) HTTP/1.1\r\nHost: berthd\r\n\r\n".utf8)
        _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        var limit = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        var head: [UInt8] = []
        var byte: UInt8 = 0
        while !head.suffix(2).elementsEqual([0x0D, 0x0A]) || head.count < 12 {
            guard recv(fd, &byte, 1, 0) == 1 else { break }
            head.append(byte)
        }
        let status = Int(String(decoding: head, as: UTF8.self).split(separator: " ").dropFirst().first ?? "") ?? 0
        return (fd, status)
    }
}
