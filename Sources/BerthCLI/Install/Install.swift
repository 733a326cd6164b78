import ArgumentParser
import BerthFormats
import BerthModel
import Foundation

/// `berth install`: virt-install's command line, orchestrated by the CLI against berthd the way
/// virt-install was a libvirt client.
struct Install: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "install",
        abstract: "Install a guest from an install tree, ISO or URL (virt-install's options).",
        discussion: """
            Takes virt-install's options, e.g.
              berth install --name=devel1 --ram=1200 --vcpus=2 --disk path=/var/lib/berth/devel1.img,size=8 \\
                --mac=00:0C:29:1A:98:D5 --os-variant=rhel6 --location=http://127.0.0.1:8000/install/centos6/ \\
                -x "ks=http://127.0.0.1:8000/kickstarts/devel1.ks" --nographics
            Phase 1 boots the tree's installer kernel (its reboot ends the phase); phase 2 defines the
            guest to boot from its own disk through Berth's bootloader and starts it. URLs naming this
            host are rewritten to 10.0.2.2, the host as user-mode networking guests see it.
            --connect URL (and --tls-*, --ssh-option; before or among the options) picks the daemon.
            """)

    @Argument(parsing: .captureForPassthrough, help: "virt-install options.")
    var arguments: [String] = []

    func run() async throws {
        var arguments = arguments.filter { !$0.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty }
        let connection = try ConnectionOptions.parse(Self.extractConnectionOptions(&arguments))
        let request: VirtInstallRequest
        do {
            request = try VirtInstallRequest.parse(arguments: arguments)
        } catch let error as VirtInstallError {
            throw error.berthError
        }
        var installer = Installer(request: request, connection: connection)
        try await installer.install()
    }

    /// `--connect URL` / `--connect=URL` (and `--tls-*`, `--ssh-option`) pick the daemon;
    /// virt-install's meaning (a libvirt URI) has no other use here.
    static func extractConnectionOptions(_ arguments: inout [String]) -> [String] {
        var taken: [String] = []
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            let name = String(argument.prefix { $0 != "=" })
            if ConnectionOptions.leadingOptions.contains(name), name.hasPrefix("--"), argument.contains("=") {
                taken.append(argument)
                arguments.remove(at: index)
            } else if ConnectionOptions.leadingOptions.contains(argument), argument.hasPrefix("--"), index + 1 < arguments.count {
                taken += [argument, arguments[index + 1]]
                arguments.removeSubrange(index...(index + 1))
            } else {
                index += 1
            }
        }
        return taken
    }
}
