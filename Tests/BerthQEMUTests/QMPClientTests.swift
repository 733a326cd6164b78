import Foundation
import Testing

@testable import BerthQEMU

/// QMP error paths against an in-process stub peer (the happy path runs against real QEMU in
/// GuestTests).
@Suite struct QMPClientTests {
    @Test func qemuErrorKeepsClassDescriptionAndRawLine() async throws {
        let server = try StubQMPServer { peer in
            peer.handshake()
            guard let command = peer.readCommand() else { return }
            peer.send(
                #"{"error": {"class": "CommandNotFound", "desc": "The command frobnicate has not been found"}, "id": \#(command.id)}"#
            )
            _ = peer.readLine()
        }
        let client = try await QMP.Client.connect(path: server.path, timeout: .seconds(5))
        defer { client.close() }
        #expect(client.greeting.version == "7.2.0")
        let error = await #expect(throws: QMP.Error.self) { try await client.execute("frobnicate") }
        guard case .qemu(let command, let cls, let desc, let raw) = error else {
            Issue.record("expected a QEMU-reported error, got \(String(describing: error))")
            return
        }
        #expect(command == "frobnicate")
        #expect(cls == "CommandNotFound")
        #expect(desc == "The command frobnicate has not been found")
        #expect(raw.contains("CommandNotFound"))
        #expect(error?.berthError.message.contains("frobnicate has not been found") == true)
    }

    @Test func repliesAreMatchedByIdAndEventsInterleave() async throws {
        let server = try StubQMPServer { peer in
            peer.handshake()
            guard let first = peer.readCommand(), let second = peer.readCommand() else { return }
            // Answer out of order, with an event in between.
            peer.send(#"{"return": {"which": "\#(second.execute)"}, "id": \#(second.id)}"#)
            peer.send(#"{"timestamp": {"seconds": 1700000000, "microseconds": 5}, "event": "STOP"}"#)
            peer.send(#"{"return": {"which": "\#(first.execute)"}, "id": \#(first.id)}"#)
            peer.send(
                #"{"timestamp": {"seconds": 1700000001, "microseconds": 0}, "event": "SHUTDOWN", "data": {"guest": true, "reason": "guest-shutdown"}}"#
            )
        }
        let client = try await QMP.Client.connect(path: server.path, timeout: .seconds(5))
        defer { client.close() }
        async let a = client.execute("query-a")
        // Make sure query-a is written first.
        try await Task.sleep(for: .milliseconds(50))
        async let b = client.execute("query-b")
        let (ra, rb) = try await (a, b)
        #expect(ra["which"]?.string == "query-a")
        #expect(rb["which"]?.string == "query-b")

        var kinds: [QMP.Event.Kind] = []
        for await event in client.events { kinds.append(event.kind) }
        // The stream finished because the stub closed the socket.
        #expect(kinds == [.stop, .shutdown(guest: true, reason: "guest-shutdown")])
        #expect(client.isClosed)
    }

    @Test func closedSocketFailsPendingAndLaterCommands() async throws {
        let server = try StubQMPServer { peer in
            peer.handshake()
            _ = peer.readCommand()
            // Hang up without answering, as an exiting QEMU does.
        }
        let client = try await QMP.Client.connect(path: server.path, timeout: .seconds(5))
        await #expect(throws: QMP.Error.closed) { try await client.execute("system_powerdown") }
        await #expect(throws: QMP.Error.closed) { try await client.execute("query-status") }
        await client.waitUntilClosed()
        var count = 0
        for await _ in client.events { count += 1 }
        #expect(count == 0)
    }

    @Test func undecodableReplyIsADecodingErrorWithTheRawLine() async throws {
        let server = try StubQMPServer { peer in
            peer.handshake()
            _ = peer.readCommand()
            peer.send(#"{"return": {"status": "running"}, "id": 1"#)  // truncated JSON
            _ = peer.readCommand()
            peer.send(#"{"surprise": 1, "id": 3}"#)
            _ = peer.readLine()
        }
        let client = try await QMP.Client.connect(path: server.path, timeout: .seconds(5))
        defer { client.close() }
        let first = await #expect(throws: QMP.Error.self) { try await client.execute("query-status") }
        #expect(first == .decoding("not JSON", raw: #"{"return": {"status": "running"}, "id": 1"#))
        let second = await #expect(throws: QMP.Error.self) { try await client.execute("query-status") }
        #expect(second == .decoding("neither greeting, return, error nor event", raw: #"{"surprise": 1, "id": 3}"#))
    }

    @Test func errorWithoutIdAnswersTheOldestCommand() async throws {
        let server = try StubQMPServer { peer in
            peer.handshake()
            _ = peer.readCommand()
            peer.send(#"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#)
            _ = peer.readLine()
        }
        let client = try await QMP.Client.connect(path: server.path, timeout: .seconds(5))
        defer { client.close() }
        let error = await #expect(throws: QMP.Error.self) { try await client.execute("query-status") }
        if case .qemu(_, let cls, let desc, _) = error {
            #expect(cls == "GenericError")
            #expect(desc.contains("JSON parse error"))
        } else {
            Issue.record("expected a QEMU error, got \(String(describing: error))")
        }
    }

    @Test func commandTimeoutLeavesTheConnectionUsable() async throws {
        let server = try StubQMPServer { peer in
            peer.handshake()
            _ = peer.readCommand()  // never answered
            guard let second = peer.readCommand() else { return }
            peer.send(#"{"return": {}, "id": \#(second.id)}"#)
            _ = peer.readLine()
        }
        let client = try await QMP.Client.connect(path: server.path, timeout: .seconds(5))
        defer { client.close() }
        await #expect(throws: QMP.Error.timeout(command: "query-slow", seconds: 0.2)) {
            try await client.execute("query-slow", timeout: .milliseconds(200))
        }
        #expect(try await client.execute("query-status") == .object([:]))
    }

    @Test func silentPeerIsAGreetingTimeout() async throws {
        // Silent until the test has its answer, however loaded the machine (a fixed sleep lost
        // the race in a CI run where the cooperative pool was busy for seconds).
        let release = DispatchSemaphore(value: 0)
        let server = try StubQMPServer { _ in _ = release.wait(timeout: .now() + 3600) }
        defer { release.signal() }
        let error = await #expect(throws: QMP.Error.self) {
            try await QMP.Client.connect(path: server.path, timeout: .milliseconds(300))
        }
        guard case .transport(let why) = error else {
            Issue.record("expected a transport error, got \(String(describing: error))")
            return
        }
        #expect(why.contains("no QMP greeting"))
    }

    @Test func descriptorTravelsWithTheCommand() async throws {
        // berthd opens the file; QEMU (here the stub) writes through the descriptor it got.
        let file = NSTemporaryDirectory() + "berth-getfd-\(UUID().uuidString.prefix(8))"
        let fd = open(file, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        #expect(fd >= 0)
        defer {
            close(fd)
            unlink(file)
        }
        let server = try StubQMPServer { peer in
            peer.handshake()
            guard let command = peer.readCommandWithDescriptor() else { return }
            if let received = command.descriptor {
                _ = Array("written by the peer".utf8).withUnsafeBytes { write(received, $0.baseAddress, $0.count) }
                close(received)
                peer.send(#"{"return": {"execute": "\#(command.execute)"}, "id": \#(command.id)}"#)
            } else {
                peer.send(#"{"error": {"class": "GenericError", "desc": "No file descriptor supplied via SCM_RIGHTS"}, "id": \#(command.id)}"#)
            }
            _ = peer.readLine()
        }
        let client = try await QMP.Client.connect(path: server.path, timeout: .seconds(5))
        defer { client.close() }
        let reply = try await client.execute("getfd", arguments: ["fdname": .string("save")], passing: fd)
        #expect(reply["execute"]?.string == "getfd")
        #expect(try String(contentsOfFile: file, encoding: .utf8) == "written by the peer")
    }

    @Test func missingSocketIsATransportError() async throws {
        let error = await #expect(throws: QMP.Error.self) {
            try await QMP.Client.connect(path: "/nonexistent/berth/qmp.sock")
        }
        guard case .transport(let why) = error else {
            Issue.record("expected a transport error, got \(String(describing: error))")
            return
        }
        #expect(why.contains("No such file or directory"))
        #expect(error?.berthError.code == .connection)
    }

    /// A reply many times the reader's buffer (a `query-block` of a guest with many disks)
    /// arrives in several reads and is answered whole.
    @Test func aReplyLongerThanOneReadArrivesWhole() async throws {
        let long = String(repeating: "x", count: 300_000)
        let server = try StubQMPServer { peer in
            peer.handshake()
            guard let command = peer.readCommand() else { return }
            peer.send(#"{"return": {"blob": "\#(long)"}, "id": \#(command.id)}"#)
            _ = peer.readLine()
        }
        let client = try await QMP.Client.connect(path: server.path, timeout: .seconds(5))
        defer { client.close() }
        let reply = try await client.execute("query-block")
        #expect(reply["blob"]?.string == long)
    }

    @Test func endlessLineIsRefused() async throws {
        let server = try StubQMPServer { peer in
            peer.handshake()
            _ = peer.readCommand()
            let chunk = [UInt8](repeating: 0x61, count: 1 << 20)
            for _ in 0..<18 { peer.sendRaw(chunk) }
            _ = peer.readLine()
        }
        let client = try await QMP.Client.connect(path: server.path, timeout: .seconds(5))
        let error = await #expect(throws: QMP.Error.self) { try await client.execute("query-status") }
        guard case .decoding(let why, _) = error else {
            Issue.record("expected a decoding error, got \(String(describing: error))")
            return
        }
        #expect(why.contains("longer than"))
        await client.waitUntilClosed()
    }

    @Test(arguments: [
        (
            #"{"event": "RESET", "data": {"guest": false, "reason": "host-qmp-system-reset"}}"#,
            QMP.Event.Kind.reset(guest: false, reason: "host-qmp-system-reset")
        ),
        (#"{"event": "RESUME"}"#, .resume),
        (#"{"event": "POWERDOWN"}"#, .powerdown),
        (
            #"{"event": "GUEST_PANICKED", "data": {"action": "pause", "info": {"type": "hyper-v"}}}"#,
            .guestPanicked(action: "pause")
        ),
        (#"{"event": "BLOCK_JOB_READY", "data": {}}"#, .other),
    ])
    func eventKinds(line: String, kind: QMP.Event.Kind) throws {
        guard case .event(let event) = try QMP.decode(line: Array(line.utf8)) else {
            Issue.record("not decoded as an event")
            return
        }
        #expect(event.kind == kind)
        #expect(event.raw == line)
    }
}
