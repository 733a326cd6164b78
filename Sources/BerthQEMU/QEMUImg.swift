import BerthModel
import Foundation

/// `qemu-img` (Debian `qemu-utils`) for image files: create, info, resize, convert. Berth never
/// writes qcow2 itself. Every call names the image's recorded format (`-f`), so qemu-img never
/// probes a guest-written file (CVE-2008-2004).
public enum QEMUImg {
    /// What `qemu-img info --output=json` says.
    public struct Info: Sendable, Equatable {
        public var virtualSize: UInt64
        public var actualSize: UInt64
        public var backingFile: String?
    }

    /// The binary, or an error naming the Debian package.
    public static func locate() throws -> String {
        for candidate in ["/usr/bin/qemu-img", "/usr/local/bin/qemu-img"]
        where FileManager.default.isExecutableFile(atPath: candidate) {
            return candidate
        }
        throw BerthError(
            .unavailable, "qemu-img is not installed on berthd's host.",
            remedy: "Install it: 'apt-get install qemu-utils' (or scripts/install-host-deps).")
    }

    /// Runs `qemu-img ARGS`; a failure is `.unavailable` with qemu-img's own message. Only
    /// berthd runs it, and it dies with berthd (a killed berthd's half-written temporary is
    /// removed at its next start, so a qemu-img still writing it would only waste the disk).
    @discardableResult
    public static func run(_ arguments: [String], timeout: Duration = .seconds(3600)) async throws -> Spawn.Outcome {
        let outcome = try await Spawn.run([try locate()] + arguments, timeout: timeout, diesWithParent: true)
        guard outcome.status == 0, !outcome.timedOut else {
            let message = outcome.output.trimmingCharacters(in: .whitespacesAndNewlines)
            throw BerthError(
                .unavailable, "qemu-img \(arguments.first ?? "") failed: \(message.isEmpty ? "status \(outcome.status)" : message)",
                remedy: "Check free space and permissions in the pool's directory.")
        }
        return outcome
    }

    /// Reads an image's sizes and backing file. `-U` lets it read an image a running QEMU holds.
    public static func info(path: String, format: DiskSpec.Format) async throws -> Info {
        let outcome = try await run(["info", "-U", "-f", format.rawValue, "--output=json", path], timeout: .seconds(60))
        struct Reply: Decodable {
            var virtualSize: UInt64
            var actualSize: UInt64?
            var backingFilename: String?
            enum CodingKeys: String, CodingKey {
                case virtualSize = "virtual-size", actualSize = "actual-size", backingFilename = "backing-filename"
            }
        }
        do {
            let reply = try JSONDecoder().decode(Reply.self, from: Data(outcome.stdout))
            return Info(virtualSize: reply.virtualSize, actualSize: reply.actualSize ?? 0, backingFile: reply.backingFilename)
        } catch {
            throw BerthError(
                .internal, "qemu-img info \(path) answered something Berth cannot read: \(error)",
                remedy: "Check the qemu-utils version ('qemu-img --version').")
        }
    }
}
