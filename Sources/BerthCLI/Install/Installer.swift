import BerthClient
import BerthFormats
import BerthHost
import BerthModel
import BerthXML
import Foundation

/// `berth install` as a client: virt-install's options become one `InstallPlan`, sent to berthd
/// (`POST /v1/domains/{name}/install`), which does the work as an operation; this follows it and
/// prints its progress. Refusals come back before anything changed.
struct Installer {
    var request: VirtInstallRequest
    let connection: ConnectionOptions
    /// The host as a user-mode networking guest reaches it.
    static let guestHostAddress = "10.0.2.2"
    static let kickstartLimit = KickstartCheck.limit

    init(request: VirtInstallRequest, connection: ConnectionOptions) {
        self.request = request
        self.connection = connection
    }

    var debug: Bool { request.debug }

    func step(_ text: String) {
        if debug { InstallOutput.err("[debug] \(text)") }
    }

    /// Parses nothing more: sends the plan in one request, then follows the operation.
    mutating func install() async throws {
        for warning in request.warnings { InstallOutput.err("warning: \(warning)") }
        guard let name = request.name else {
            throw BerthError(.invalidArgument, "--name is required.", remedy: "Add --name NAME.")
        }
        if request.dryRun || request.printXML {
            try await dryRun(name: name)
            return
        }
        var plan: InstallPlan
        do {
            plan = try request.installPlan(workingDirectory: FileManager.default.currentDirectoryPath)
        } catch let error as VirtInstallError {
            throw error.berthError
        }
        // Files on this (the client's) host travel with the plan; URLs are berthd's to fetch.
        if let ks = VirtInstallRequest.kickstartArgument(in: request.extraArgs) {
            plan.kickstart = isNetworkURL(ks) ? .init(origin: ks) : .init(origin: ks, text: try Self.readKickstart(ks))
        }
        for path in request.initrdInjections {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw BerthError(.notFound, "--initrd-inject \(path): cannot read it.", remedy: "Check the path.")
            }
            plan.initrdInjections.append(.init(name: InitrdInjection.injectedName(forHostPath: path), contents: data))
        }
        let client = try connection.client()
        step("POST /v1/domains/\(name)/install (daemon \(client.endpoint))")
        let operation = try await connection.run { try await $0.install(plan) }
        step("operation \(operation.id)")
        try await follow(operation, client: client, name: name)
    }

    func follow(_ operation: OperationInfo, client: BerthClient, name: String) async throws {
        let follower = InstallFollower(
            autoconsole: request.autoconsole, waitMinutes: request.waitMinutes, noReboot: request.noReboot, debug: debug,
            kickstart: VirtInstallRequest.kickstartArgument(in: request.extraArgs) != nil)
        try await follower.follow(operation, client: client, name: name)
    }
}

/// Prints an install operation's progress until it ends, or (with --noautoconsole and no
/// --wait) until the installer runs; follows the console unless --noautoconsole. Shared by
/// `install` and `reinstall`.
struct InstallFollower {
    var autoconsole: Bool
    /// virt-install's --wait: minutes; negative waits forever.
    var waitMinutes: Int?
    var noReboot: Bool
    var debug: Bool
    /// The installer fetches a kickstart (said in the background case).
    var kickstart: Bool

    static let isTerminal = isatty(2) == 1

    func follow(_ operation: OperationInfo, client: BerthClient, name: String) async throws {
        let background = !autoconsole && waitMinutes == nil
        let deadline = waitMinutes.flatMap { $0 >= 0 ? Date().addingTimeInterval(Double($0) * 60) : nil }
        var printed = 0
        var redrawn = false
        var follower: Task<Void, Never>?
        defer { follower?.cancel() }
        while true {
            let info = try await client.operation(operation.id, wait: 1)
            let messages = info.messages ?? []
            for message in messages.dropFirst(printed) {
                switch message.level {
                case .debug where message.phase == .fetch && !debug && Self.isTerminal:
                    // A download's progress: one line redrawn in place.
                    FileHandle.standardError.write(Data(("\r" + message.text).utf8))
                    redrawn = true
                case .debug: if debug { InstallOutput.err("[debug] \(message.text)") }
                case .info, .warning:
                    if redrawn { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
                    redrawn = false
                    InstallOutput.err(message.text)
                }
                guard message.phase == .installerRunning else { continue }
                if background {
                    InstallOutput.err(
                        "Installer started in the background. When it powers off, '\(name)' boots from its own disk\(noReboot ? " at its next 'berth start'" : " by itself"). Follow it with 'berth log -f \(name)'; wait for it with --wait."
                    )
                    if kickstart { InstallOutput.err("Its kickstart is served until the installer powers off.") }
                    return
                }
                InstallOutput.err("Installer started; waiting for it to finish\(waitMinutes.map { $0 >= 0 ? " (at most \($0) min)" : "" } ?? "").")
                if autoconsole { follower = Self.followConsole(client: client, name: name) }
            }
            printed = messages.count
            switch info.status {
            case .running:
                if let deadline, Date() > deadline {
                    throw BerthError(
                        .timeout, "The install of '\(name)' was still running when --wait ran out; berthd goes on with it.",
                        remedy: "Watch it with 'berth console \(name)' or 'berth dominfo \(name)'.")
                }
            case .failed:
                throw info.error ?? BerthError(.internal, "The install of '\(name)' failed without a reason.")
            case .succeeded:
                // The same follower goes on into the installed system's console (nothing is
                // printed twice); on a terminal until the guest stops running (or ^C), as
                // virt-install's console stays attached; without one (a script) the command
                // ends with the install.
                if let follower, !noReboot, Self.isInteractive { await Self.untilStopped(client: client, name: name) }
                follower?.cancel()
                return
            }
        }
    }

    /// Whether a user is at the keyboard: stdin is a terminal.
    static let isInteractive = isatty(0) == 1

    /// Returns once the guest no longer runs (powered off, crashed, destroyed) or berthd went away.
    static func untilStopped(client: BerthClient, name: String) async {
        while let info = try? await client.info(name), [.running, .paused, .shuttingDown].contains(info.state) {
            try? await Task.sleep(for: .seconds(1))
        }
        // What the console wrote last is in the log by now: give the follower a poll to print it.
        try? await Task.sleep(for: .milliseconds(300))
    }

    static func followConsole(client: BerthClient, name: String) -> Task<Void, Never> {
        Task {
            try? await client.consoleLog(name, tail: nil, follow: true) { buffer in
                try Task.checkCancellation()
                try StandardOutput.write(Array(buffer.readableBytesView))
            }
        }
    }

}

extension Installer {
    // MARK: - Dry run

    func dryRun(name: String) async throws {
        print(request.plan())
        guard request.printXML else { return }
        let state = DefaultPaths.current().stateDirectory
        var created: [Int: String] = [:]
        for (index, disk) in request.volumesToCreate where disk.path == nil {
            created[index] = Self.volumePath(state: state, name: name, index: index, format: disk.format ?? .qcow2)
        }
        let directory = state + "/install/" + name
        do {
            let domains = try request.domains(
                installerBoot: VirtInstallInstallerBoot(kernel: directory + "/vmlinuz", initrd: directory + "/initrd.img"),
                createdDiskPaths: created)
            if let installer = domains.installer {
                print("<!-- phase 1: the installer -->")
                print(DomainDocument.write(installer, as: .libvirtXML))
            }
            print("<!-- phase 2: the installed guest -->")
            print(DomainDocument.write(domains.installed, as: .libvirtXML))
        } catch let error as VirtInstallError {
            throw error.berthError
        }
    }

    static func volumePath(state: String, name: String, index: Int, format: DiskSpec.Format) -> String {
        "\(state)/images/\(name)\(index == 0 ? "" : "-\(index + 1)").\(format == .qcow2 ? "qcow2" : "img")"
    }

    static func absolute(_ path: String) -> String {
        path.hasPrefix("/") ? path : URL(fileURLWithPath: path).standardizedFileURL.path
    }

    // MARK: - Kickstart

    static func kickstartArgument(in extraArgs: [String]) -> String? {
        for token in extraArgs.flatMap({ $0.split(separator: " ") }) {
            for key in ["ks=", "inst.ks="] where token.hasPrefix(key) {
                return String(token.dropFirst(key.count))
            }
        }
        return nil
    }

    /// berthd's media listener as a guest on user-mode networking sees it: `BERTH_MEDIA_URL`, else
    /// 10.0.2.2 on the media port the daemon reports (8001 by default).
    static func mediaURL(host: HostInfo) throws -> String {
        if let url = ProcessInfo.processInfo.environment["BERTH_MEDIA_URL"], !url.isEmpty {
            return url.hasSuffix("/") ? String(url.dropLast()) : url
        }
        guard let port = host.mediaPort else {
            throw BerthError(
                .unavailable, "berthd serves no install media (it runs with --media-listen none), so the guest cannot fetch the kickstart.",
                remedy: "Restart berthd with --media-listen 127.0.0.1:8001, set BERTH_MEDIA_URL, or give ks= as an http:// URL.")
        }
        return "http://\(guestHostAddress):\(port)"
    }

    /// A kickstart file on this machine (`ks=file:/…` or a path); one given as an http:// URL
    /// is fetched by berthd, not here.
    static func readKickstart(_ url: String) throws -> String {
        let path = url.hasPrefix("file:") ? String(url.drop { $0 != "/" }) : url
        guard let data = FileManager.default.contents(atPath: path), data.count <= kickstartLimit else {
            throw BerthError(.notFound, "Cannot read the kickstart \(path).", remedy: "Check the path.")
        }
        let bytes = [UInt8](data)
        guard let text = String(bytes: bytes, encoding: .utf8) else {
            throw BerthError(.invalidArgument, "The kickstart \(url) is not UTF-8 text.", remedy: "Check ks=.")
        }
        return text
    }

    // MARK: - Guest-visible URLs

    static func guestURL(_ url: String) -> String? {
        guard var components = URLComponents(string: url), let host = components.host?.lowercased() else { return nil }
        guard localNames.contains(host) else { return nil }
        components.host = guestHostAddress
        return components.string
    }

    static let localNames: Set<String> = {
        var names: Set<String> = ["localhost", "127.0.0.1", "::1", "[::1]", "0.0.0.0", "localhost.localdomain"]
        var buffer = [CChar](repeating: 0, count: 256)
        if gethostname(&buffer, buffer.count) == 0 {
            let name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self).lowercased()
            if !name.isEmpty {
                names.insert(name)
                if let short = name.split(separator: ".").first { names.insert(String(short)) }
            }
        }
        return names
    }()

    func isNetworkURL(_ text: String) -> Bool { Self.isNetworkURL(text) }
    static func isNetworkURL(_ text: String) -> Bool {
        let lower = text.lowercased()
        return lower.hasPrefix("http://") || lower.hasPrefix("https://") || lower.hasPrefix("ftp://")
    }
}

/// stderr lines and a download meter.
enum InstallOutput {
    static func err(_ line: String) {
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }
}
