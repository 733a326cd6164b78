import BerthStore
import Foundation
import Testing

@testable import BerthServer

/// docs/openapi.yaml must list exactly the routes berthd serves, be a valid OpenAPI document,
/// and describe an API that no generated request can make fail with a 5xx.
@Suite(.serialized, .bootsGuests) struct OpenAPITests {
    static var package: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }
    static var document: String { package.appendingPathComponent("docs/openapi.yaml").path }

    /// A tool from the venv scripts/install-host-deps makes (BERTH_VENV overrides its place).
    static func tool(_ name: String) -> String? {
        let venv = ProcessInfo.processInfo.environment["BERTH_VENV"] ?? package.appendingPathComponent("fixtures/venv").path
        let path = venv + "/bin/" + name
        guard FileManager.default.isExecutableFile(atPath: path) else {
            Issue.record(
                "\(name) is missing at \(path): run scripts/install-host-deps (it makes the venv with schemathesis and openapi-spec-validator).")
            return nil
        }
        return path
    }

    static func run(_ tool: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        let output = Collector()
        try process.run()
        let reader = Thread { output.append(Array(pipe.fileHandleForReading.readDataToEndOfFile())) }
        reader.start()
        process.waitUntilExit()
        while !reader.isFinished { usleep(10_000) }
        return (process.terminationStatus, output.text)
    }

    @Test func documentIsValidOpenAPI() throws {
        guard let validator = Self.tool("openapi-spec-validator") else { return }
        let result = try Self.run(validator, [Self.document])
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("OK"), "\(result.output)")
    }

    /// Schemathesis against a live berthd over TCP with the token: coverage, fuzzing and stateful
    /// phases with a bounded number of examples; no 5xx, and berthd still running. /v1/events and
    /// a domain's console (`?follow=true` of a defined domain — any `{"name": …}` defines one now
    /// that a domain may have nothing to boot yet) are left out: streams that never end by
    /// themselves; media paths are another listener's.
    @Test func fuzzedRequestsNeverMakeA5xx() async throws {
        guard let schemathesis = Self.tool("schemathesis") else { return }
        // As root, in a network namespace of its own: the fuzzer may define and start networks
        // (bridges, nft tables, IP forwarding), which must never reach the machine's own.
        let namespace = getuid() == 0 ? try TestNamespace("fuzz") : nil
        defer { namespace?.destroy() }
        let daemon = try await TestDaemon(namespace: namespace)
        defer { daemon.tearDown() }
        let (tool, prefix) = namespace.map { ("/usr/bin/env", ["ip", "netns", "exec", $0.name, schemathesis]) } ?? (schemathesis, [])
        let started = Date()
        let result = try await withCheckedThrowingContinuation { continuation in
            Thread {
                continuation.resume(
                    with: Result {
                        try Self.run(
                            tool,
                            prefix + [
                                "run", Self.document, "--url", "http://127.0.0.1:\(daemon.port)",
                                "-H", "Authorization: Bearer \(daemon.token)", "--checks", "not_a_server_error",
                                "--include-path-regex", "^/v1/", "--exclude-path", "/v1/events", "--exclude-path", "/v1/domains/{name}/console",
                                "--max-examples", "25",
                                "--request-timeout", "20", "--max-time", "60", "--seed", "20261203", "--no-color",
                            ])
                    })
            }.start()
        }
        let seconds = Date().timeIntervalSince(started)
        let summary = result.output.split(separator: "\n").filter { $0.contains("generated") || $0.contains("failures") || $0.contains("passed") }
        print("schemathesis: \(String(format: "%.1f", seconds)) s; \(summary.joined(separator: " | "))")
        // The errors and failures sections first (which request, what happened), then the summary.
        let details = result.output.range(of: "ERRORS").map { String(result.output[$0.lowerBound...].prefix(6000)) } ?? ""
        #expect(result.status == 0, "schemathesis found failures:\n\(details)\n\(result.output.suffix(4000))")
        #expect(result.output.contains("generated"), "\(result.output.suffix(2000))")
        #expect(daemon.process?.isRunning == true, "berthd died under the fuzzer")
        #expect(try await daemon.client.host().mediaPort == daemon.mediaPort)
    }

    @Test func documentMatchesTheRouter() async throws {
        let directory = "/tmp/berth-openapi-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let driver = await QEMUGuestDriver(runtimeRoot: directory + "/run", logRoot: directory + "/logs")
        let hypervisor = try Hypervisor(
            catalog: try Catalog(path: directory + "/catalog.sqlite"), driver: driver,
            bootPreparer: BootPreparer { _, _ in nil }, stateDirectory: directory, isolateGuests: false)
        // The API listeners' routes and the media listener's, in one document.
        let routes =
            Daemon.router(hypervisor: hypervisor, token: nil).routes.map { ($0.method, "\($0.path)") }
            + Daemon.mediaRouter(library: hypervisor.mediaLibrary, listenHost: "127.0.0.1", port: 8001).routes.map {
                ($0.method, "\($0.path)")
            }
        let served = Set(routes.map { "\($0.0.rawValue) " + $0.1.replacing(/:(\w+)/) { "{\($0.1)}" } })

        let yaml = try String(contentsOfFile: Self.document, encoding: .utf8)
        var documented = Set<String>()
        var currentPath: String?
        for line in yaml.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("  /"), line.hasSuffix(":") {
                currentPath = String(line.dropFirst(2).dropLast())
            } else if let path = currentPath, let match = line.wholeMatch(of: /\s{4}(get|put|post|delete|head):/) {
                documented.insert("\(match.1.uppercased()) \(path)")
            } else if !line.hasPrefix(" "), !line.isEmpty {
                currentPath = nil
            }
        }
        #expect(served.subtracting(documented).isEmpty, "served but not documented: \(served.subtracting(documented))")
        #expect(documented.subtracting(served).isEmpty, "documented but not served: \(documented.subtracting(served))")
        #expect(served.count >= 14)
    }
}
