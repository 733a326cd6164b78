import BerthModel
import FoundationEssentials
import Glibc

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
    public static func run(
        _ arguments: [String], timeout: Duration = .seconds(3600), onOutput: (@Sendable ([UInt8]) -> Void)? = nil
    ) async throws -> Spawn.Outcome {
        let outcome = try await Spawn.run(
            [try locate()] + arguments, timeout: timeout, diesWithParent: true, onOutput: onOutput)
        guard outcome.status == 0, !outcome.timedOut else {
            let message = outcome.output.trimmed()
            throw BerthError(
                .unavailable, "qemu-img \(arguments.first ?? "") failed: \(message.isEmpty ? "status \(outcome.status)" : message)",
                remedy: "Check free space and permissions in the pool's directory.")
        }
        return outcome
    }

    /// `qemu-img convert -p ARGS`: `progress` hears the fraction done (0…1) as qemu-img prints it.
    public static func convert(_ arguments: [String], progress: @escaping @Sendable (Double) -> Void) async throws {
        try await run(["convert", "-p"] + arguments) { bytes in
            if let fraction = lastProgress(in: bytes) { progress(fraction) }
        }
    }

    /// A `json:` image name for the raw `size` bytes at `offset` of `device` (a file or a block
    /// device): a logical volume's range of its physical volume, or its own node at offset 0.
    public static func rangeImage(device: String, offset: UInt64, size: UInt64) -> String {
        struct File: Encodable {
            var driver: String
            var filename: String
            // Two ranges of one PV (a clone) are two opens of one file, whose image locks
            // would refuse each other; berthd keeps operations off a volume in use itself.
            var locking = "off"
        }
        struct Range: Encodable {
            var driver = "raw"
            var offset: UInt64
            var size: UInt64
            var file: File
        }
        let file = File(driver: DiskFormat.isBlockDevice(device) ? "host_device" : "file", filename: device)
        return "json:" + encoded(Range(offset: offset, size: size, file: file))
    }

    /// A `json:` image name for `size` bytes of zeros (what `vol-wipe` copies over a range).
    public static func zerosImage(size: UInt64) -> String {
        struct Null: Encodable {
            var driver = "null-co"
            var readZeroes = true
            var size: UInt64
            enum CodingKeys: String, CodingKey { case driver, readZeroes = "read-zeroes", size }
        }
        struct Raw: Encodable {
            var driver = "raw"
            var file: Null
        }
        return "json:" + encoded(Raw(file: Null(size: size)))
    }

    private static func encoded(_ value: some Encodable) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: (try? encoder.encode(value)) ?? Data("{}".utf8), as: UTF8.self)
    }

    /// The last `(12.34/100%)` in a piece of `-p` output, as 0.1234.
    static func lastProgress(in bytes: [UInt8]) -> Double? {
        let text = String(decoding: bytes, as: UTF8.self)
        guard let end = text.ranges(of: "/100%)").last,
            let open = text[..<end.lowerBound].lastIndex(of: "("),
            let percent = Double(text[text.index(after: open)..<end.lowerBound]), (0...100).contains(percent)
        else { return nil }
        return percent / 100
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
