import Foundation
import Testing

@testable import BerthQEMU

#if canImport(Glibc)
    import Glibc
#endif

@Suite(.serialized) struct SpawnTests {
    /// The child's `THP_enabled` line of /proc/self/status ("1" or "0"), from a launch.
    private func childHugePages(_ hugePages: Bool) async throws -> String {
        let path = NSTemporaryDirectory() + "berth-spawn-thp-\(UUID().uuidString)"
        defer { unlink(path) }
        let output = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        #expect(output >= 0)
        let grep = try #require(Spawn.find("grep"))
        _ = try Spawn.launch([grep, "THP_enabled", "/proc/self/status"], passing: [], output: output, hugePages: hugePages)
        close(output)
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
            if text.hasSuffix("\n") { return text.split(separator: ":").last.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) } ?? "" }
            try await Task.sleep(for: .milliseconds(20))
        }
        Issue.record("grep wrote nothing to \(path) within 60 s")
        return ""
    }

    private func ownHugePages() throws -> String {
        let status = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
        let line = try #require(status.split(separator: "\n").first { $0.hasPrefix("THP_enabled:") })
        return line.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)
    }

    /// A TCG guest's QEMU starts with transparent huge pages off; other children and berthd
    /// itself keep them.
    @Test func launchesWithoutHugePagesWhenAsked() async throws {
        let before = try ownHugePages()
        #expect(try await childHugePages(false) == "0")
        #expect(try ownHugePages() == before)
        #expect(try await childHugePages(true) == before)
    }
}
