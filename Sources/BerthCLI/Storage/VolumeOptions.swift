import ArgumentParser
import BerthClient
import BerthModel

/// virsh's way of naming a volume: `VOL --pool POOL`, a volume's path, or `POOL/NAME`.
struct VolumeOptions: ParsableArguments {
    @Option(help: "The pool holding the volume.") var pool: String?

    /// Pool and name of `volume`.
    func locate(_ volume: String, client: BerthClient) async throws -> (pool: String, name: String) {
        if volume.hasPrefix("/") {
            let info = try await client.volume(path: volume)
            return (info.pool, info.name)
        }
        if let pool { return (pool, volume) }
        let parts = volume.split(separator: "/", maxSplits: 1).map(String.init)
        guard parts.count == 2 else {
            throw BerthError(
                .invalidArgument, "Which pool holds volume '\(volume)'?",
                remedy: "Add --pool POOL (or write POOL/\(volume), or give the volume's path).")
        }
        return (parts[0], parts[1])
    }
}

extension ByteSize {
    /// An argument that is a size (`10G`), parsed when the command is validated.
    static func argument(_ text: String) throws -> UInt64 {
        do {
            return try parse(text)
        } catch let error as BerthError {
            throw ValidationError("\(error.message) \(error.remedy ?? "")")
        }
    }
}

extension DiskSpec.Format: ExpressibleByArgument {}
extension PoolSpec.Kind: ExpressibleByArgument {}
