import ArgumentParser
import BerthModel

struct PoolDefineAs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pool-define-as", abstract: "Define a storage pool (a directory of images, or an LVM volume group).",
        discussion: "berth pool-define-as images dir --target /var/lib/berth/images; then 'berth pool-start images'.")

    @Argument(help: "Pool name.") var name: String
    @Argument(help: "Pool type: dir or logical.") var type: PoolSpec.Kind
    @Option(help: "The directory (dir pools).") var target: String?
    @Option(help: "The volume group (logical pools).") var sourceName: String?
    @OptionGroup var connection: ConnectionOptions

    func validate() throws {
        if type == .dir, target == nil { throw ValidationError("A dir pool needs --target DIR.") }
        if type == .logical, sourceName == nil { throw ValidationError("A logical pool needs --source-name VG.") }
    }

    func run() async throws {
        let spec = PoolSpec(name: name, type: type, target: target, sourceName: sourceName)
        _ = try await connection.run { try await $0.definePool(spec) }
        print("Pool \(name) defined")
    }
}
