import BerthModel
import FoundationEssentials
import Glibc

/// The `qemu-system-x86_64` Berth runs, and its version.
public struct QEMUBinary: Sendable, Equatable {
    public static let defaultName = "qemu-system-x86_64"
    /// Environment variable that overrides the binary (for tests and unusual installs).
    public static let environmentOverride = "BERTH_QEMU"

    public var path: String
    /// Such as `7.2.22`.
    public var version: String
    /// The whole first line of `--version`.
    public var versionLine: String

    public init(path: String, version: String, versionLine: String) {
        self.path = path
        self.version = version
        self.versionLine = versionLine
    }

    /// Finds the binary: `override`, else `$BERTH_QEMU`, else `qemu-system-x86_64` in `PATH`.
    ///
    /// - Throws: `BerthError(.unavailable)` naming the Debian package when it is not installed.
    public static func locate(
        override: String? = nil, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> String {
        let explicit = override ?? environment[environmentOverride].flatMap { $0.isEmpty ? nil : $0 }
        if let explicit {
            guard access(explicit, X_OK) == 0 else {
                throw BerthError(
                    .unavailable, "QEMU binary '\(explicit)' does not exist or is not executable.",
                    remedy: "Fix the path, or unset \(environmentOverride) to use \(defaultName) from PATH.")
            }
            return explicit
        }
        let path = environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for directory in path.split(separator: ":") where !directory.isEmpty {
            let candidate = "\(directory)/\(defaultName)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        throw notInstalled(path: path)
    }

    static func notInstalled(path: String) -> BerthError {
        BerthError(
            .unavailable, "QEMU is not installed: \(defaultName) is not in PATH (\(path)).",
            remedy:
                "Install it with 'apt-get install qemu-system-x86' (Debian/Ubuntu), or set \(environmentOverride) to the binary."
        )
    }

    /// Locates the binary and asks it for its version.
    public static func find(
        override: String? = nil, environment: [String: String] = ProcessInfo.processInfo.environment
    ) async throws -> QEMUBinary {
        let path = try locate(override: override, environment: environment)
        let outcome = try await Spawn.run([path, "--version"], timeout: .seconds(10))
        let firstLine = outcome.output.split(separator: "\n").first.map(String.init) ?? ""
        guard outcome.status == 0, let version = parseVersion(firstLine) else {
            throw BerthError(
                .unavailable,
                "'\(path) --version' did not report a QEMU version (exit \(outcome.status)): \(outcome.output.prefix(300))",
                remedy: "Reinstall QEMU with 'apt-get install --reinstall qemu-system-x86'.")
        }
        return QEMUBinary(path: path, version: version, versionLine: firstLine)
    }

    /// `QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)` → `7.2.22`.
    static func parseVersion(_ line: String) -> String? {
        guard let range = line.firstRange(of: "version ") else { return nil }
        let version = line[range.upperBound...].prefix { $0.isNumber || $0 == "." }
        return version.isEmpty ? nil : String(version)
    }
}
