import Foundation
import Testing

@testable import BerthQEMU

#if canImport(Glibc)
    import Glibc
#endif

@Suite(.serialized) struct SpawnTests {
    /// The `THP_enabled` value ("1" or "0") of a child started by `launch`, read from its
    /// /proc/PID/status while it sleeps (no output to collect, so no descriptor to lose).
    private func childHugePages(_ hugePages: Bool) throws -> String {
        let sleep = try #require(Spawn.find("sleep"))
        let devNull = open("/dev/null", O_WRONLY | O_CLOEXEC)
        #expect(devNull >= 0)
        defer { close(devNull) }
        // posix_spawn returns after the exec, so the status is already sleep's own.
        let pid = try Spawn.launch([sleep, "60"], passing: [], output: devNull, hugePages: hugePages)
        defer { kill(pid, SIGKILL) }
        return try hugePagesValue(of: "/proc/\(pid)/status")
    }

    private func hugePagesValue(of statusPath: String) throws -> String {
        let status = try String(contentsOfFile: statusPath, encoding: .utf8)
        let line = try #require(status.split(separator: "\n").first { $0.hasPrefix("THP_enabled:") })
        return line.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)
    }

    private func ownHugePages() throws -> String { try hugePagesValue(of: "/proc/self/status") }

    /// A TCG guest's QEMU starts with transparent huge pages off; other children and berthd
    /// itself keep them.
    @Test func launchesWithoutHugePagesWhenAsked() throws {
        let before = try ownHugePages()
        #expect(try childHugePages(false) == "0")
        #expect(try ownHugePages() == before)
        #expect(try childHugePages(true) == before)
    }
}
