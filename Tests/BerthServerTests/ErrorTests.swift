import BerthClient
import BerthModel
import Foundation
import Testing

/// Every error says what to do next and changes nothing.
@Suite(.serialized, .bootsGuests) struct ErrorTests {
    func expectError(
        _ code: BerthError.Code, containing text: String, _ body: () async throws -> Void,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async {
        do {
            try await body()
            Issue.record("expected a \(code.rawValue) error", sourceLocation: sourceLocation)
        } catch let error as BerthError {
            #expect(error.code == code, sourceLocation: sourceLocation)
            #expect(error.message.contains(text), "\(error.message)", sourceLocation: sourceLocation)
            #expect(error.remedy?.isEmpty == false, "no remedy: \(error.message)", sourceLocation: sourceLocation)
        } catch {
            Issue.record("unexpected \(error)", sourceLocation: sourceLocation)
        }
    }

    @Test func definitionErrorsLeaveTheCatalogAlone() async throws {
        let daemon = try await TestDaemon()
        defer { daemon.tearDown() }
        let client = daemon.client
        var spec = try GuestFixture.spec("devel1")
        spec.nics = [NICSpec(mac: MACAddress("00:0C:29:1A:98:D5"))]
        _ = try await client.define(spec)

        await expectError(.notFound, containing: "No domain named 'ghost'") { _ = try await client.info("ghost") }
        await expectError(.notFound, containing: "ghost") { _ = try await client.perform(.start, on: "ghost") }
        await expectError(.alreadyExists, containing: "already in use") { _ = try await client.define(spec) }

        var sameMAC = try GuestFixture.spec("devel2")
        sameMAC.nics = [NICSpec(mac: MACAddress("00:0c:29:1a:98:d5"))]
        await expectError(.alreadyExists, containing: "MAC 00:0c:29:1a:98:d5 is already used by domain 'devel1'") {
            _ = try await client.define(sameMAC)
        }
        var tooBig = try GuestFixture.spec("big")
        tooBig.memory = 8
        await expectError(.invalidArgument, containing: "Memory 8 MiB") { _ = try await client.define(tooBig) }
        tooBig.memory = 256
        tooBig.vcpus = 0
        await expectError(.invalidArgument, containing: "vCPUs") { _ = try await client.define(tooBig) }
        var noKernel = try GuestFixture.spec("nokernel")
        noKernel.kernel = "/nonexistent/vmlinuz"
        await expectError(.notFound, containing: "/nonexistent/vmlinuz does not exist") {
            _ = try await client.define(noKernel)
        }
        #expect(try await client.list().map(\.name) == ["devel1"])

        await expectError(.wrongState, containing: "not running") { _ = try await client.perform(.shutdown, on: "devel1") }
        await expectError(.wrongState, containing: "not running") { _ = try await client.perform(.suspend, on: "devel1") }
    }

    @Test func daemonStopsPromptlyWithFollowersAttached() async throws {
        let daemon = try await TestDaemon()
        defer { daemon.tearDown() }
        _ = try await daemon.client.define(try GuestFixture.spec("quiet"))
        let client = daemon.client
        let follower = Task(executorPreference: GuestSlots.current) { try? await client.consoleLog("quiet", tail: nil, follow: true) { _ in } }
        let events = Task(executorPreference: GuestSlots.current) { try? await client.events { _ in } }
        try await Task.sleep(for: .milliseconds(500))
        let started = Date()
        daemon.stop()
        #expect(Date().timeIntervalSince(started) < 10)
        _ = await (follower.value, events.value)
    }

    @Test func malformedJSONNamesTheField() async throws {
        let daemon = try await TestDaemon()
        defer { daemon.tearDown() }
        let bad = try await raw(daemon, method: "POST", path: "/v1/domains", body: #"{"name":"x","memory":"lots"}"#)
        #expect(bad.status == 400)
        #expect(bad.body.contains("memory"))
        let missing = try await raw(daemon, method: "POST", path: "/v1/domains", body: #"{"memory":256}"#)
        #expect(missing.status == 400)
        #expect(missing.body.contains("required field 'name' is missing"))
        #expect(try await daemon.client.list().isEmpty)
    }

    @Test func tokenIsRequiredOnTCP() async throws {
        let daemon = try await TestDaemon()
        defer { daemon.tearDown() }
        let body = try JSONEncoder().encode(try GuestFixture.spec("sneaky"))
        let anonymous = try await raw(daemon, method: "POST", path: "/v1/domains", body: String(decoding: body, as: UTF8.self), tcp: true, token: nil)
        #expect(anonymous.status == 401)
        let wrong = try await raw(daemon, method: "POST", path: "/v1/domains", body: String(decoding: body, as: UTF8.self), tcp: true, token: "0000")
        #expect(wrong.status == 401)
        #expect(wrong.body.contains("api-token"))
        #expect(try await daemon.client.list().isEmpty)

        let tcp = BerthClient(endpoint: .tcp(host: "127.0.0.1", port: daemon.port, token: daemon.token))
        #expect(try await tcp.list().isEmpty)
        // The same host answer over TCP as over the unix socket.
        #expect(try await tcp.host().accelerator == (try await daemon.client.host().accelerator))
    }

    @Test func startFailuresAreExplainedAndRecorded() async throws {
        let daemon = try await TestDaemon()
        defer { daemon.tearDown() }
        let client = daemon.client
        var kvm = try GuestFixture.spec("kvmguest")
        kvm.accel = .kvm
        _ = try await client.define(kvm)
        let verdict = try await client.host().accelerator
        if verdict.chosen == .tcg {
            await expectError(.unavailable, containing: "KVM was requested") { _ = try await client.perform(.start, on: "kvmguest") }
            let info = try await client.info("kvmguest")
            #expect(info.state == .shutoff)
            #expect(info.lastError?.contains("KVM") == true)
        }

        _ = try await client.define(try GuestFixture.spec("twice"))
        _ = try await client.perform(.start, on: "twice")
        await expectError(.wrongState, containing: "already running") { _ = try await client.perform(.start, on: "twice") }
        await expectError(.wrongState, containing: "is running") { try await client.undefine("twice", keepLogs: false) }
        _ = try await client.perform(.destroy, on: "twice")
        try await client.undefine("twice", keepLogs: false)
    }

    /// A request without the client library, to see exactly what the daemon answers.
    func raw(_ daemon: TestDaemon, method: String, path: String, body: String, tcp: Bool = false, token: String? = nil)
        async throws -> (status: Int, body: String)
    {
        var arguments = ["-s", "-o", "-", "-w", "\n%{http_code}", "-X", method, "-d", body, "-H", "Content-Type: application/json"]
        if tcp {
            if let token { arguments += ["-H", "Authorization: Bearer \(token)"] }
            arguments.append("http://127.0.0.1:\(daemon.port)\(path)")
        } else {
            arguments += ["--unix-socket", daemon.socketPath, "http://berthd\(path)"]
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        return (Int(lines.last ?? "") ?? 0, lines.dropLast().joined(separator: "\n"))
    }
}
