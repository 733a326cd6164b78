import BerthClient
import BerthModel
import Foundation
import Testing

/// `berth console`: the serial line through berthd's console WebSocket, typed into and read
/// back from a real guest (the remote cases are in RemoteHostTests).
@Suite(.serialized, .bootsGuests) struct ConsoleTests {
    static func attach(_ daemon: TestDaemon, _ name: String) throws -> ConsoleSession {
        var environment = ProcessInfo.processInfo.environment
        environment.removeValue(forKey: "BERTH_CONNECT")
        environment["BERTH_STATE_DIR"] = daemon.stateDirectory
        return try ConsoleSession(TestDaemon.berthBinary, ["console", name], environment: environment)
    }

    @Test func typesIntoTheGuestReadsTheAnswerAndDetachesOnCtrlRightBracket() async throws {
        let daemon = try await TestDaemon()
        defer { daemon.tearDown() }
        _ = try await daemon.client.define(try GuestFixture.spec("con1"))
        _ = try await daemon.client.perform(.start, on: "con1")
        _ = try await daemon.waitForLog("con1", "berth-guest# ")

        let session = try Self.attach(daemon, "con1")
        try await session.waitFor("Escape character is ^]", inMessages: true)
        session.type("echo hi-$((6*7))\r")
        try await session.waitFor("hi-42")
        session.type([0x1D])
        #expect(try await session.waitForExit() == 0)
        #expect(session.messages.contains("Detached from domain 'con1'"), "\(session.messages)")
        #expect(try await daemon.client.info("con1").state == .running, "detaching leaves the guest running")

        // Attached again (one client at a time: the first has let go), the guest powers itself
        // off: berthd closes the console and the CLI ends by itself.
        let second = try Self.attach(daemon, "con1")
        try await second.waitFor("Escape character is ^]", inMessages: true)
        second.type("echo again-$((6*7))\r")
        try await second.waitFor("again-42")
        second.type("poweroff -f\r")
        #expect(try await second.waitForExit(seconds: 120) == 0, "\(second.messages)")
        _ = try await daemon.waitForState("con1", .shutoff)
    }

    @Test func aDomainThatIsNotRunningHasNoConsoleAndSaysWhatToDo() async throws {
        let daemon = try await TestDaemon()
        defer { daemon.tearDown() }
        _ = try await daemon.client.define(try GuestFixture.spec("con2"))
        let session = try Self.attach(daemon, "con2")
        #expect(try await session.waitForExit() != 0)
        #expect(session.messages.contains("shut off, so it has no live console"), "\(session.messages)")
        #expect(session.messages.contains("berth start --console con2"), "\(session.messages)")
        let missing = try Self.attach(daemon, "nosuch")
        #expect(try await missing.waitForExit() != 0)
        #expect(missing.messages.contains("nosuch"), "\(missing.messages)")
    }
}
