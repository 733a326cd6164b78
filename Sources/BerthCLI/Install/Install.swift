import ArgumentParser
import BerthFormats
import BerthModel
import Foundation

/// `berth install`: virt-install's command line, orchestrated by the CLI against berthd the way
/// virt-install was a libvirt client.
struct Install: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Install a guest from an install tree, ISO or URL (virt-install's options).",
        discussion: """
            Takes virt-install's options, e.g.
              berth install --name=devel1 --ram=1200 --vcpus=2 --disk path=/var/lib/berth/devel1.img,size=8 \\
                --mac=00:0C:29:1A:98:D5 --os-variant=rhel6 --location=http://127.0.0.1:8000/install/centos6/ \\
                -x "ks=http://127.0.0.1:8000/kickstarts/devel1.ks" --nographics
            Phase 1 boots the tree's installer kernel (its reboot ends the phase); phase 2 defines the
            guest to boot from its own disk through Berth's bootloader and starts it. URLs naming this
            host are rewritten to 10.0.2.2, the host as user-mode networking guests see it.
            --connect URL (before or among the options) picks the daemon.
            """)

    @Argument(parsing: .captureForPassthrough, help: "virt-install options.")
    var arguments: [String] = []

    func run() async throws {
        var arguments = arguments.filter { !$0.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty }
        let connect = Self.extractConnect(&arguments)
        let request: VirtInstallRequest
        do {
            request = try VirtInstallRequest.parse(arguments: arguments)
        } catch let error as VirtInstallError {
            throw error.berthError
        }
        var installer = Installer(request: request, connection: ConnectionOptions(url: connect))
        try await installer.install()
    }

    /// `--connect URL` / `--connect=URL` pick the daemon; virt-install's meaning (a libvirt URI)
    /// has no other use here.
    static func extractConnect(_ arguments: inout [String]) -> String? {
        var url: String?
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            if argument == "--connect", index + 1 < arguments.count {
                url = arguments[index + 1]
                arguments.removeSubrange(index...(index + 1))
            } else if argument.hasPrefix("--connect=") {
                url = String(argument.dropFirst("--connect=".count))
                arguments.remove(at: index)
            } else {
                index += 1
            }
        }
        return url
    }
}

extension ConnectionOptions {
    init(url: String?) {
        self.init()
        self.url = url
    }
}
