import ArgumentParser
import BerthModel

struct PoolDefineAs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pool-define-as", abstract: "Define a storage pool (a directory of images, or an LVM volume group).",
        discussion:
            "berth pool-define-as images dir --target /var/lib/berth/images; then 'berth pool-start images'. berth pool-define-as vms logical --source-name vg0 --source-dev /dev/sdb; then 'berth pool-build vms' makes the volume group (pvcreate, vgcreate)."
    )

    @Argument(help: "Pool name.") var name: String
    @Argument(help: "Pool type: dir or logical.") var type: PoolSpec.Kind
    @Option(help: "The directory (dir pools).") var target: String?
    @Option(help: "The volume group (logical pools).") var sourceName: String?
    @Option(name: .customLong("source-dev"), help: "The block device pool-build makes the volume group on (logical pools).")
    var sourceDevice: String?
    @OptionGroup var connection: ConnectionOptions

    func validate() throws {
        if type == .dir, target == nil { throw ValidationError("A dir pool needs --target DIR.") }
        if type == .logical, sourceName == nil { throw ValidationError("A logical pool needs --source-name VG.") }
        if type == .dir, sourceDevice != nil { throw ValidationError("--source-dev is for logical pools.") }
    }

    func run() async throws {
        let spec = PoolSpec(name: name, type: type, target: target, sourceName: sourceName, sourceDevice: sourceDevice)
        _ = try await connection.run { try await $0.definePool(spec) }
        print("Pool \(name) defined")
    }
}
