import ArgumentParser
import BerthFormats
import BerthModel
import Foundation

/// `berth reinstall NAME`: berthd runs the installer the domain was installed with again — same
/// disks, MAC and UUID — with the plan it stored at `berth install`, optionally another kickstart.
struct Reinstall: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reinstall",
        abstract: "Reinstall a guest installed with 'berth install' (same disks, MAC and UUID).",
        discussion:
            "berthd reuses the install plan it stored. A kickstart FILE is read here, sent to berthd, served to the installer under an unguessable name on the media listener and withdrawn when the install is over."
    )

    @Argument(help: "Domain name.") var name: String
    @Option(help: "The kickstart to install with: an http(s) URL (fetched by berthd) or a file.") var kickstart: String?
    @Flag(help: "Do not follow the console.") var noautoconsole = false
    @Flag(help: "Leave the guest shut off after the install.") var noreboot = false
    @Option(help: "Minutes to wait for the installer (negative: forever).") var wait: Int?
    @Flag(help: "Destroy a running guest first; install despite kickstart errors.") var force = false
    @Flag(help: "Print every step.") var debug = false
    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        var request = ReinstallRequest(noReboot: noreboot, force: force)
        if let kickstart {
            request.kickstart =
                Installer.isNetworkURL(kickstart)
                ? .init(origin: kickstart) : .init(origin: kickstart, text: try Installer.readKickstart(kickstart))
        }
        let client = try connection.client()
        if debug { InstallOutput.err("[debug] POST /v1/domains/\(name)/reinstall") }
        let operation = try await connection.run { try await $0.reinstall(name, request) }
        let follower = InstallFollower(
            autoconsole: !noautoconsole, waitMinutes: wait, noReboot: noreboot, debug: debug, kickstart: true)
        try await follower.follow(operation, client: client, name: name)
    }
}
