import BerthModel
import BerthPOSIX
import FoundationEssentials

#if canImport(Glibc)
    import Glibc
#endif

/// A guest's CPU as the feature flags it sees, and what a host's QEMU can give a guest: the
/// migration pre-check compares the two (a guest whose CPU loses a feature mid-run crashes).
///
/// Both come from QMP's `query-cpu-model-expansion` of type `static`, which lists every
/// feature flag of the `base` model as on or off (the QEMU 7.2 QMP reference: "expand to a
/// static base model plus feature properties").
public enum CPUFeatures {
    /// The `model` argument of `query-cpu-model-expansion` for a `-cpu` value such as
    /// `max,erms=off`: its name and its `on`/`off` properties.
    public static func modelArgument(_ cpu: String) -> QMP.Value {
        let parts = cpu.split(separator: ",").map(String.init)
        var props: [String: QMP.Value] = [:]
        for part in parts.dropFirst() {
            let pair = part.split(separator: "=", maxSplits: 1).map(String.init)
            guard pair.count == 2 else { continue }
            switch pair[1] {
            case "on", "true": props[pair[0]] = .bool(true)
            case "off", "false": props[pair[0]] = .bool(false)
            default: props[pair[0]] = .string(pair[1])
            }
        }
        var model: [String: QMP.Value] = ["name": .string(parts.first ?? "max")]
        if !props.isEmpty { model["props"] = .object(props) }
        return .object(model)
    }

    /// The arguments of a static expansion of `cpu`.
    public static func expansionArguments(_ cpu: String) -> [String: QMP.Value] {
        ["type": .string("static"), "model": modelArgument(cpu)]
    }

    /// The enabled features in a `query-cpu-model-expansion` answer, sorted.
    public static func enabled(in expansion: QMP.Value) -> [String] {
        guard let props = expansion["model"]?["props"]?.object else { return [] }
        return props.compactMap { $0.value.bool == true ? $0.key : nil }.sorted()
    }

    /// The guest's features this host cannot give, sorted.
    public static func missing(_ guest: [String], host: Set<String>) -> [String] {
        Set(guest).subtracting(host).sorted()
    }

    /// The refusal for a guest whose CPU features this host lacks; names at most `shown` of them.
    public static func refusal(missing: [String], accel: Accelerator, shown: Int = 12) -> BerthError {
        let listed = missing.prefix(shown).joined(separator: ", ")
        let more = missing.count > shown ? " and \(missing.count - shown) more" : ""
        return BerthError(
            .wrongState,
            "This host's CPU (under \(accel.rawValue)) lacks \(missing.count) CPU feature\(missing.count == 1 ? "" : "s") the guest uses: \(listed)\(more); the guest would crash on it.",
            remedy:
                "Migrate it to a host whose CPU has these features, or shut the guest down and start it on a host both have them on; it keeps running on the source."
        )
    }

    /// What this host's QEMU can give a guest under `accel`: a short-lived
    /// `qemu-system-x86_64 -M none` answers one static expansion of Berth's CPU model, without
    /// its switched-off features (they are the host's to give).
    public static func probe(binary: String, accel: Accelerator) async throws -> Set<String> {
        let model = QEMUCommandLine.cpuModel(accel: accel).split(separator: ",").first.map(String.init) ?? "max"
        let commands = [
            #"{"execute":"qmp_capabilities"}"#,
            String(decoding: try JSONEncoder().encode(QMPCommand(arguments: expansionArguments(model))), as: UTF8.self),
            #"{"execute":"quit"}"#,
        ]
        let input = try pipeHolding(commands.joined(separator: "\n") + "\n")
        defer { close(input) }
        let outcome = try await Spawn.run(
            [
                binary, "-M", "none", "-accel", accel.rawValue, "-nodefaults", "-display", "none", "-qmp", "stdio",
                "-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
            ],
            timeout: .seconds(30), stdin: input)
        for line in outcome.stdout.split(separator: UInt8(ascii: "\n")) {
            if case .reply(_, let result)? = try? QMP.decode(line: Array(line)), result["model"] != nil {
                return Set(enabled(in: result))
            }
        }
        throw BerthError(
            .unavailable,
            "This host's QEMU did not describe its CPU under \(accel.rawValue) (exit \(outcome.status)): \(outcome.output.prefix(300))",
            remedy: "Check 'berth host-check' here; the guest keeps running on the source.")
    }

    private struct QMPCommand: Encodable {
        let execute = "query-cpu-model-expansion"
        let arguments: [String: QMP.Value]
    }

    /// A pipe's read end with `text` already in it (smaller than a pipe's buffer).
    private static func pipeHolding(_ text: String) throws -> Int32 {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else {
            throw BerthError(.unavailable, "Cannot make a pipe: \(String(cString: strerror(errno))).")
        }
        // The commands end in `quit`: a copy of the write end in another child cannot keep the
        // probe from ending.
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        defer { close(fds[1]) }
        do {
            try writeAll(fds[1], Array(text.utf8))
        } catch {
            close(fds[0])
            throw error
        }
        return fds[0]
    }
}
