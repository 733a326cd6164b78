import ArgumentParser
import BerthFormats
import BerthModel
import Foundation

/// `berth reinstall NAME`: phase 1 and 2 again on the same domain — same disks, MAC and UUID —
/// optionally with another kickstart, as the seed did with `-x "ks=http://…/centos-6.ks"`.
struct Reinstall: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Reinstall a guest installed with 'berth install' (same disks, MAC and UUID).",
        discussion: "A kickstart FILE is copied to <state>/kickstarts/NAME-<random>.ks, given to the installer through berthd's media listener (--media-url) and removed when the install is over.")

    @Argument(help: "Domain name.") var name: String
    @Option(help: "The kickstart to install with: an http(s) URL or a file.") var kickstart: String?
    @Option(help: "berthd's media server as the guest sees it, for a kickstart FILE (default: http://10.0.2.2:PORT, PORT the daemon's media port).")
    var mediaURL: String?
    @Flag(help: "Do not follow the console.") var noautoconsole = false
    @Flag(help: "Leave the guest shut off after the install.") var noreboot = false
    @Option(help: "Minutes to wait for the installer (negative: forever).") var wait: Int?
    @Flag(help: "Destroy a running guest first; install despite kickstart errors.") var force = false
    @Flag(help: "Print every step.") var debug = false
    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        let client = try connection.client()
        let info = try await connection.run { try await $0.info(name) }
        let host = try await client.host()
        let state = host.stateDirectory
        if info.state != .shutoff {
            guard force else {
                throw BerthError(
                    .wrongState, "Domain '\(name)' is \(info.state.rawValue).",
                    remedy: "Shut it down first ('berth shutdown \(name)'), or add --force to destroy it.")
            }
            _ = try await client.perform(.destroy, on: name)
        }
        var installed = info.spec
        installed.description = Self.withoutFailureNote(installed.description)
        let prefix = "installer-cmdline: "
        guard let note = installed.notes.last(where: { $0.hasPrefix(prefix) }) else {
            throw BerthError(
                .invalidArgument, "Domain '\(name)' was not installed with 'berth install': there is no installer to re-run.",
                remedy: "Install it with 'berth install' (after 'berth undefine \(name)').")
        }
        var cmdline = String(note.dropFirst(prefix.count))
        let directory = state + "/install/" + name
        let kernel = directory + "/vmlinuz"
        let initrd = directory + "/initrd.img"
        for path in [kernel, initrd] where !FileManager.default.fileExists(atPath: path) {
            throw BerthError(
                .notFound, "The installer's \(path) is gone.", remedy: "Run 'berth undefine \(name)' and 'berth install' again.")
        }

        // The kickstart: the host fetches it to check it; the guest gets a URL it can reach.
        var hostKickstart: String?
        var published: PublishedKickstart?
        if let kickstart {
            let guestURL: String
            if Installer.isNetworkURL(kickstart) {
                hostKickstart = kickstart
                guestURL = Installer.guestURL(kickstart) ?? kickstart
            } else {
                let text = try Installer.readKickstart(kickstart)
                let base = try mediaURL.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 } ?? Installer.mediaURL(host: host)
                let publication = try Installer.publishKickstart(text, name: name, state: state, mediaURL: base)
                published = publication
                hostKickstart = publication.path
                guestURL = publication.guestURL
            }
            if guestURL != kickstart { InstallOutput.err("ks=: \(kickstart) -> \(guestURL)") }
            cmdline = Self.replacing(key: "ks", in: cmdline, with: guestURL)
        } else if let current = Installer.kickstartArgument(in: [cmdline]) {
            hostKickstart = Self.hostURL(current)
        }
        // Until the phases own it, a refusal below takes the published kickstart away.
        var handedOver = false
        defer { if !handedOver { published?.remove() } }
        if let hostKickstart {
            let text = try Installer.readKickstart(hostKickstart)
            // The same check as berthd's install: parse errors and a disk too small refuse.
            let diskBytes = installed.disks.filter { $0.device == .disk }.reduce(UInt64(0)) { total, disk in
                var st = stat()
                return total + (stat(disk.path, &st) == 0 ? UInt64(st.st_size) : 0)
            }
            for line in try KickstartCheck.check(text, source: hostKickstart, diskBytes: diskBytes, force: force) {
                InstallOutput.err(line)
            }
            try await client.setKickstart(name, text)
        }

        installed.notes.removeAll { $0.hasPrefix(prefix) }
        installed.notes.append(prefix + cmdline)
        var installer = installed
        installer.bootloader = nil
        installer.kernel = kernel
        installer.initrd = initrd
        installer.cmdline = cmdline
        installer.onReboot = .destroy
        installer.autostart = false
        if debug { InstallOutput.err("[debug] installer cmdline: \(cmdline)") }
        handedOver = true
        let phases = InstallPhases(
            client: client, name: name, debug: debug, autoconsole: !noautoconsole, waitMinutes: wait,
            noReboot: noreboot, createdDisks: [], publishedKickstart: published)
        try await phases.run(installer: installer, installed: installed)
    }

    static func withoutFailureNote(_ description: String?) -> String? {
        guard let description, let range = description.range(of: "berth install failed: ") else { return description }
        let kept = String(description[..<range.lowerBound]).replacingOccurrences(of: " — ", with: "")
            .trimmingCharacters(in: .whitespaces)
        return kept.isEmpty ? nil : kept
    }

    /// `ks=…` (or `inst.ks=…`) replaced, or appended when absent.
    static func replacing(key: String, in cmdline: String, with value: String, appendIfMissing: Bool = true) -> String {
        var found = false
        var tokens = cmdline.split(separator: " ").map { token -> String in
            for candidate in [key + "=", "inst." + key + "="] where token.hasPrefix(candidate) {
                found = true
                return candidate + value
            }
            return String(token)
        }
        if !found, appendIfMissing { tokens.insert(key + "=" + value, at: 0) }
        return tokens.joined(separator: " ")
    }

    /// The guest's 10.0.2.2 is this host's loopback.
    static func hostURL(_ url: String) -> String {
        guard var components = URLComponents(string: url), components.host == Installer.guestHostAddress else { return url }
        components.host = "127.0.0.1"
        return components.string ?? url
    }
}
