import ArgumentParser
import BerthModel

struct DetachDisk: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "detach-disk", abstract: "Remove a disk from a running guest (hot-unplug) and/or its definition.",
        discussion:
            "berth detach-disk devel1 vdb --persistent. Live, the guest is asked to let go of the disk (ACPI eject) and berthd waits for it."
    )

    @Argument(help: "Domain name.") var name: String
    @Argument(help: "The disk's target (vdb) or its source path.") var target: String
    @Flag(help: "Unplug it from the running guest.") var live = false
    @Flag(help: "Remove it from the stored definition (the next start).") var config = false
    @Flag(help: "The definition, and the running guest too when it runs.") var persistent = false
    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        let scope = DiskChangeScope(live: live, config: config, persistent: persistent)
        try await connection.run { try await $0.detachDisk(name, target: target, scope: scope) }
        print("Disk detached successfully")
    }
}
