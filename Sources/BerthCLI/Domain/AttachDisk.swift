import ArgumentParser
import BerthModel

struct AttachDisk: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "attach-disk", abstract: "Add a disk to a running guest (hot-plug) and/or its definition.",
        discussion:
            "berth attach-disk devel1 default/data vdb --persistent. Without --live, --config or --persistent: the running guest if it runs, else the definition. Live hot-plug needs the pc machine and a virtio (vdX) target."
    )

    @Argument(help: "Domain name.") var name: String
    @Argument(help: "The disk: a host path, or a volume POOL/NAME.") var source: String
    @Argument(help: "The guest's name for it: vdX (virtio), sdX (SCSI) or hdX (IDE).") var target: String
    @Flag(help: "Plug it into the running guest.") var live = false
    @Flag(help: "Add it to the stored definition (the next start).") var config = false
    @Flag(help: "The definition, and the running guest too when it runs.") var persistent = false
    @Option(help: "readonly or readwrite (default).") var mode: String?
    @OptionGroup var connection: ConnectionOptions

    func validate() throws {
        guard mode == nil || mode == "readonly" || mode == "readwrite" else {
            throw ValidationError("--mode takes readonly or readwrite.")
        }
    }

    func run() async throws {
        let request = DiskAttachRequest(
            source: source, target: target, readOnly: mode == "readonly",
            scope: DiskChangeScope(live: live, config: config, persistent: persistent))
        _ = try await connection.run { try await $0.attachDisk(name, request) }
        print("Disk attached successfully")
    }
}
