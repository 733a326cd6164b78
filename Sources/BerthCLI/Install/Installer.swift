import BerthClient
import BerthFormats
import BerthHost
import BerthModel
import BerthQEMU
import Foundation
import Synchronization

/// The steps of `berth install`, in the order virt-install took them, with every check that can
/// refuse done before anything changes: a refused install leaves catalog and disks as they were.
struct Installer {
    var request: VirtInstallRequest
    let connection: ConnectionOptions
    /// The host as a user-mode networking guest reaches it.
    static let guestHostAddress = "10.0.2.2"
    static let kernelLimit = 256 << 20
    static let initrdLimit = 2 << 30
    static let kickstartLimit = 1 << 20

    init(request: VirtInstallRequest, connection: ConnectionOptions) {
        self.request = request
        self.connection = connection
    }

    var debug: Bool { request.debug }

    func step(_ text: String) {
        if debug { InstallOutput.err("[debug] \(text)") }
    }

    mutating func install() async throws {
        for warning in request.warnings { InstallOutput.err("warning: \(warning)") }
        guard let name = request.name else {
            throw BerthError(.invalidArgument, "--name is required.", remedy: "Add --name NAME.")
        }
        if request.dryRun || request.printXML {
            try await dryRun(name: name)
            return
        }
        let client = try connection.client()
        let host = try await connection.run { try await $0.host() }
        let state = host.stateDirectory
        step("daemon \(client.endpoint), state directory \(state)")

        // 1. Refusals that change nothing.
        try await preflight(client: client, name: name)
        let disks = try planDisks(name: name, state: state)

        // 2. The install tree and its installer kernel.
        guard case .location(let location, let kernelOverride, let initrdOverride) = request.method else {
            throw BerthError(
                .invalidArgument, "berth install needs --location (an install tree, ISO or URL).",
                remedy: "Give --location http://…/ or --location /path/to/tree-or.iso; for --import use 'berth define'.")
        }
        let source = try Self.treeSource(location)
        step("recognising the tree at \(location) (\(type(of: source)))")
        let tree: InstallTree
        let pair: InstallTree.KernelPair
        do {
            tree = try InstallTree.recognize(source, arch: request.arch ?? "x86_64")
            if let kernelOverride, let initrdOverride {
                pair = .init(kernel: kernelOverride, initrd: initrdOverride)
            } else {
                pair = try tree.resolveKernel(in: source)
            }
        } catch let error as InstallTreeError {
            throw error.berthError
        }
        InstallOutput.err("Install tree: \(tree.name) (\(tree.evidence)); installer \(pair.kernel) + \(pair.initrd)")
        request.adoptDetectedOSVariant(tree.osVariant)

        // 3. URLs the guest must reach: this host becomes 10.0.2.2 under user-mode networking.
        let guestLocation = rewriteForGuest(location, what: "--location")
        var extraArgs = request.extraArgs
        for index in extraArgs.indices {
            extraArgs[index] = rewriteArguments(extraArgs[index])
        }

        // 4. The kickstart: fetched, validated and kept, as anaconda-ks.cfg would be.
        var kickstartText: String?
        var published: PublishedKickstart?
        if let ks = Self.kickstartArgument(in: request.extraArgs) {
            let text = try await checkKickstart(ks, disks: disks)
            kickstartText = text
            if !isNetworkURL(ks) {
                // A host file is out of the guest's reach: berthd's media server hands it out.
                let publication = try Self.publishKickstart(
                    text, name: name, state: state, mediaURL: try Self.mediaURL(host: host))
                published = publication
                InstallOutput.err("ks=: \(ks) -> \(publication.guestURL) (served by berthd from \(state)/kickstarts/)")
                extraArgs = extraArgs.map {
                    Reinstall.replacing(key: "ks", in: $0, with: publication.guestURL, appendIfMissing: false)
                }
            }
        }

        // Until the phases own it, a refusal or failure below takes the published kickstart away.
        var handedOver = false
        defer { if !handedOver { published?.remove() } }

        // 5. Installer kernel and initrd into <state>/install/<name>/.
        let directory = state + "/install/" + name
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let kernelPath = directory + "/vmlinuz"
        let initrdPath = directory + "/initrd.img"
        try fetch(source, pair.kernel, to: kernelPath, limit: Self.kernelLimit)
        try fetch(source, pair.initrd, to: initrdPath, limit: Self.initrdLimit)
        if !request.initrdInjections.isEmpty { try inject(into: initrdPath) }

        // 6. New disks.
        var created: [String] = []
        var createdByIndex: [Int: String] = [:]
        for disk in disks where disk.create {
            do {
                try await createDisk(disk)
            } catch {
                removeDisks(created)
                throw error
            }
            created.append(disk.path)
            createdByIndex[disk.index] = disk.path
        }

        // 7. Both phases' definitions; the permanent one is stored first.
        request.extraArgs = extraArgs
        // The format of a disk made here is known; the definition says it instead of "auto".
        for disk in disks where disk.create && disk.index < request.disks.count {
            request.disks[disk.index].format = disk.format
        }
        if isNetworkURL(location) {
            request.method = .location(guestLocation, kernel: kernelOverride, initrd: initrdOverride)
        }
        let domains: VirtInstallDomains
        do {
            domains = try request.domains(
                installerBoot: VirtInstallInstallerBoot(
                    kernel: kernelPath, initrd: initrdPath,
                    sourceArgument: isNetworkURL(location) ? tree.sourceArgument : nil),
                createdDiskPaths: createdByIndex)
        } catch let error as VirtInstallError {
            removeDisks(created)
            throw error.berthError
        }
        guard var installer = domains.installer else {
            removeDisks(created)
            throw BerthError(.invalidArgument, "This request has no install phase.", remedy: "Use 'berth define' for --import.")
        }
        var isoFile: Bool {
            var isDirectory: ObjCBool = false
            return FileManager.default.fileExists(atPath: location, isDirectory: &isDirectory) && !isDirectory.boolValue
        }
        if !isNetworkURL(location), isoFile {
            // As virt-install did: the installer also sees the ISO as its CD-ROM, where an installer
            // finds its packages without any network.
            installer.disks.append(DiskSpec(path: location, format: .raw, device: .cdrom, bus: .ide, readOnly: true))
            InstallOutput.err("The ISO \(location) is the installer's CD-ROM (read-only).")
        } else if !isNetworkURL(location) {
            // A host directory is not reachable from the guest over its path: the installer gets it
            // from berthd's media server when registered, else only its kernel and initrd.
            InstallOutput.err(
                "note: the installer boots \(pair.kernel) from \(location); it must fetch packages itself (register the tree with 'berth media add' to serve it).")
        }
        var installed = domains.installed
        installed.notes.append("installer-cmdline: \(installer.cmdline ?? "")")
        installed.notes.append("install-location: \(location)")
        installer.notes = installed.notes
        step("installer cmdline: \(installer.cmdline ?? "")")

        do {
            step("POST /v1/domains \(name) (installed definition)")
            _ = try await client.define(installed)
        } catch {
            removeDisks(created)
            throw error
        }
        InstallOutput.err("Domain '\(name)' defined.")
        if let kickstartText {
            try? await client.setKickstart(name, kickstartText)
        }
        let phases = InstallPhases(client: client, name: name, debug: debug, autoconsole: request.autoconsole,
            waitMinutes: request.waitMinutes, noReboot: request.noReboot, createdDisks: created,
            publishedKickstart: published)
        handedOver = true
        try await phases.run(installer: installer, installed: installed)
    }

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

    // MARK: - Preflight

    func preflight(client: BerthClient, name: String) async throws {
        step("GET /v1/domains/\(name)")
        if (try? await client.info(name)) != nil {
            throw BerthError(
                .alreadyExists, "Guest name '\(name)' is already in use.",
                remedy: "Remove it with 'berth undefine \(name)', reinstall it with 'berth reinstall \(name)', or choose another --name.")
        }
        let wantedMACs = Set(request.networks.compactMap(\.mac) + request.macs)
        let wantedDisks = Set(request.effectiveDisks.compactMap { $0.path.map(Self.absolute) })
        for summary in try await client.list() {
            let other = try await client.info(summary.name)
            for nic in other.spec.nics {
                if let mac = nic.mac, wantedMACs.contains(mac) {
                    throw BerthError(
                        .alreadyExists, "MAC \(mac) is already used by domain '\(summary.name)'.",
                        remedy: "Give another --mac, or change '\(summary.name)'.")
                }
            }
            for disk in other.spec.disks where wantedDisks.contains(Self.absolute(disk.path)) {
                throw BerthError(
                    .alreadyExists, "Disk \(disk.path) is already in use by domain '\(summary.name)'.",
                    remedy: "Give another --disk path, or 'berth reinstall \(summary.name)' to reinstall that guest.")
            }
        }
    }

    struct PlannedDisk {
        var index: Int
        var path: String
        var sizeBytes: Int64?
        var format: DiskSpec.Format
        var create: Bool
    }

    func planDisks(name: String, state: String) throws -> [PlannedDisk] {
        var planned: [PlannedDisk] = []
        for (index, disk) in request.effectiveDisks.enumerated() where disk.device == .disk {
            let format = disk.format ?? (disk.path == nil ? .qcow2 : .raw)
            let path = disk.path.map(Self.absolute) ?? Self.volumePath(state: state, name: name, index: index, format: format)
            let size = disk.sizeGiB.map { Int64(($0 * 1024).rounded()) << 20 }
            if FileManager.default.fileExists(atPath: path) {
                planned.append(PlannedDisk(index: index, path: path, sizeBytes: Self.fileSize(path), format: format, create: false))
                continue
            }
            guard let size, size > 0 else {
                throw BerthError(
                    .invalidArgument, "Disk \(index + 1) (\(path)) does not exist and has no size.",
                    remedy: "Add size=GiB to create it, e.g. --disk path=\(path),size=8, or create it first.")
            }
            let parent = (path as NSString).deletingLastPathComponent
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: parent, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw BerthError(.notFound, "The directory \(parent) for disk \(index + 1) does not exist.", remedy: "Create it, or give another path.")
            }
            var fs = statvfs()
            if statvfs(parent, &fs) == 0 {
                let free = Int64(fs.f_bavail) * Int64(fs.f_frsize)
                if free < size {
                    let message = "Disk \(index + 1) (\(path)) would be \(size >> 20) MiB but \(parent) has \(free >> 20) MiB free."
                    guard request.force else {
                        throw BerthError(.unavailable, message, remedy: "Free space, choose a smaller size=, or add --force (the file is sparse).")
                    }
                    InstallOutput.err("warning: \(message)")
                }
            }
            planned.append(PlannedDisk(index: index, path: path, sizeBytes: size, format: format, create: true))
        }
        return planned
    }

    static func volumePath(state: String, name: String, index: Int, format: DiskSpec.Format) -> String {
        "\(state)/images/\(name)\(index == 0 ? "" : "-\(index + 1)").\(format == .qcow2 ? "qcow2" : "img")"
    }

    static func absolute(_ path: String) -> String {
        path.hasPrefix("/") ? path : URL(fileURLWithPath: path).standardizedFileURL.path
    }

    static func fileSize(_ path: String) -> Int64? {
        if let size = (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int64, size > 0 { return size }
        if let size = (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int, size > 0 { return Int64(size) }
        // A block device reports size 0 through stat; qemu-img would know, but the kickstart check
        // then just skips it.
        return nil
    }

    // MARK: - Tree sources

    static func treeSource(_ location: String) throws -> any InstallTreeSource {
        do {
            if isNetworkURL(location) {
                guard location.lowercased().hasPrefix("http") else {
                    throw BerthError(.invalidArgument, "Only http:// and https:// install trees can be fetched, not \(location).", remedy: "Serve the tree over HTTP, or give a local directory or ISO.")
                }
                return try HTTPInstallTree(location: location)
            }
            let path = absolute(location.hasPrefix("file://") ? String(location.dropFirst(7)) : location)
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
                throw BerthError(.notFound, "The install location \(path) does not exist.", remedy: "Give an install tree directory, an ISO file or an http:// URL.")
            }
            if isDirectory.boolValue { return LocalDirectoryInstallTree(root: path, location: location) }
            return try ISOInstallTree(path: path, location: location)
        } catch let error as InstallTreeError {
            throw error.berthError
        }
    }

    func fetch(_ source: any InstallTreeSource, _ file: String, to destination: String, limit: Int) throws {
        step("fetch \(file) -> \(destination)")
        let started = Date()
        let label = (file as NSString).lastPathComponent
        do {
            switch source {
            case let http as HTTPInstallTree:
                let meter = ProgressMeter(label: label)
                guard try http.download(file, to: destination, limit: limit, progress: { meter.update($0, $1) }) else {
                    throw InstallTreeError.cannotRead(path: file, reason: "the mirror answered 404")
                }
            case let iso as ISOInstallTree:
                let open = try iso.open(file)
                guard open.size <= UInt64(limit) else { throw InstallTreeError.fileTooLarge(path: file, limit: limit) }
                guard FileManager.default.createFile(atPath: destination, contents: nil),
                    let handle = FileHandle(forWritingAtPath: destination)
                else { throw InstallTreeError.cannotRead(path: destination, reason: "cannot create it") }
                defer { try? handle.close() }
                var offset: UInt64 = 0
                let meter = ProgressMeter(label: label)
                while offset < open.size {
                    let chunk = try open.read(at: offset, count: 4 << 20)
                    if chunk.isEmpty { break }
                    handle.write(Data(chunk))
                    offset += UInt64(chunk.count)
                    meter.update(Int64(offset), Int64(open.size))
                }
            case let local as LocalDirectoryInstallTree:
                guard let bytes = try local.fetch(file, limit: limit) else {
                    throw InstallTreeError.cannotRead(path: file, reason: "it is missing")
                }
                guard FileManager.default.createFile(atPath: destination, contents: Data(bytes)) else {
                    throw InstallTreeError.cannotRead(path: destination, reason: "cannot write it")
                }
            default:
                guard let bytes = try source.fetch(file, limit: limit) else {
                    throw InstallTreeError.cannotRead(path: file, reason: "it is missing")
                }
                _ = FileManager.default.createFile(atPath: destination, contents: Data(bytes))
            }
        } catch let error as InstallTreeError {
            throw error.berthError
        }
        let size = Self.fileSize(destination) ?? 0
        InstallOutput.err(String(format: "Fetched %@ (%.1f MiB) in %.1f s", file, Double(size) / 1_048_576, Date().timeIntervalSince(started)))
    }

    func inject(into initrd: String) throws {
        var files: [InitrdInjection.File] = []
        for path in request.initrdInjections {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw BerthError(.notFound, "--initrd-inject \(path): cannot read it.", remedy: "Check the path.")
            }
            files.append(.init(name: InitrdInjection.injectedName(forHostPath: path), contents: [UInt8](data)))
        }
        let appendix = try InitrdInjection.appendix(files)
        guard let handle = FileHandle(forWritingAtPath: initrd) else {
            throw BerthError(.internal, "Cannot append to \(initrd).")
        }
        defer { try? handle.close() }
        handle.seekToEndOfFile()
        handle.write(Data(appendix))
        step("injected \(files.map(\.name).joined(separator: ", ")) into \(initrd)")
    }

    // MARK: - Disks

    func createDisk(_ disk: PlannedDisk) async throws {
        guard let size = disk.sizeBytes else { return }
        try FileManager.default.createDirectory(
            atPath: (disk.path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let arguments = ["create", "-q", "-f", disk.format.rawValue, disk.path, "\(size >> 20)M"]
        step("qemu-img \(arguments.joined(separator: " "))")
        try await QEMUImg.run(arguments, timeout: .seconds(600))
        InstallOutput.err("Created disk \(disk.path) (\(size >> 20) MiB \(disk.format.rawValue)).")
    }

    func removeDisks(_ paths: [String]) {
        for path in paths {
            step("removing \(path): nothing was written to it")
            try? FileManager.default.removeItem(atPath: path)
        }
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

    /// Fetches the kickstart as the host sees it, prints its problems and checks the disks are
    /// large enough. Returns its text for `setKickstart`.
    func checkKickstart(_ url: String, disks: [PlannedDisk]) async throws -> String {
        step("fetch kickstart \(url)")
        let text = try Self.readKickstart(url)
        let kickstart: Kickstart
        do {
            kickstart = try Kickstart.parse(text, source: url)
        } catch {
            throw BerthError(.invalidArgument, "The kickstart \(url) cannot be parsed: \(error)", remedy: "Check it with 'berth kickstart validate FILE'.")
        }
        let problems = kickstart.validate()
        for problem in problems { InstallOutput.err("kickstart \(url): \(problem)") }
        let errors = problems.filter { $0.severity == .error }
        if !errors.isEmpty, !request.force {
            throw BerthError(
                .invalidArgument, "The kickstart \(url) has \(errors.count) error(s); the install would fail.",
                remedy: "Fix them (see above), or add --force to install anyway.")
        }
        let needed = Int64(kickstart.minimumDiskMiB) << 20
        let total = disks.compactMap(\.sizeBytes).reduce(0, +)
        if needed > 0, total > 0, total < needed {
            let message = "The kickstart needs at least \(needed >> 20) MiB of disk but the disks hold \(total >> 20) MiB."
            guard request.force else {
                throw BerthError(.invalidArgument, message, remedy: "Give a larger size=, or add --force.")
            }
            InstallOutput.err("warning: \(message)")
        }
        return text
    }

    /// Copies a kickstart into `<state>/kickstarts/NAME-<32 random hex>.ks`, mode 0600: the media
    /// listener serves it without a token, so its name is what keeps other guests from fetching it
    /// (kickstarts hold root passwords). The installer removes it when the install is over.
    static func publishKickstart(_ text: String, name: String, state: String, mediaURL base: String) throws -> PublishedKickstart {
        let directory = state + "/kickstarts"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var generator = SystemRandomNumberGenerator()
        let secret = (0..<16).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
        let file = "\(name)-\(secret).ks"
        let path = directory + "/" + file
        guard FileManager.default.createFile(atPath: path, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600]) else {
            throw BerthError(.unavailable, "Cannot write the kickstart to \(path).", remedy: "Check the state directory's permissions.")
        }
        return PublishedKickstart(path: path, guestURL: base + "/kickstarts/" + file)
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

    static func readKickstart(_ url: String) throws -> String {
        var bytes: [UInt8] = []
        if isNetworkURL(url) {
            guard let target = URL(string: url) else {
                throw BerthError(.invalidArgument, "'\(url)' is not a URL.", remedy: "Check ks=.")
            }
            do {
                let found = try HTTPDownload.get(target, limit: kickstartLimit, timeout: 30, name: url) { bytes += $0 }
                guard found else {
                    throw BerthError(.notFound, "The kickstart \(url) does not exist (HTTP 404).", remedy: "Check ks= in -x/--extra-args.")
                }
            } catch let error as InstallTreeError {
                throw BerthError(.unavailable, "Cannot fetch the kickstart: \(error.description)", remedy: "Check ks= in -x/--extra-args and that the server is up.")
            }
        } else {
            let path = url.hasPrefix("file:") ? String(url.drop { $0 != "/" }) : url
            guard let data = FileManager.default.contents(atPath: path), data.count <= kickstartLimit else {
                throw BerthError(.notFound, "Cannot read the kickstart \(path).", remedy: "Check the path.")
            }
            bytes = [UInt8](data)
        }
        guard let text = String(bytes: bytes, encoding: .utf8) else {
            throw BerthError(.invalidArgument, "The kickstart \(url) is not UTF-8 text.", remedy: "Check ks=.")
        }
        return text
    }

    // MARK: - Guest-visible URLs

    /// Rewrites a URL naming this host for a guest on user-mode networking, and says so.
    func rewriteForGuest(_ url: String, what: String) -> String {
        let usesUserNetworking = request.networks.isEmpty || request.networks.contains { $0.mode == .user }
        guard usesUserNetworking, let rewritten = Self.guestURL(url), rewritten != url else { return url }
        InstallOutput.err("\(what): \(url) -> \(rewritten) (this host as the guest sees it under user-mode networking)")
        return rewritten
    }

    func rewriteArguments(_ text: String) -> String {
        text.split(separator: " ", omittingEmptySubsequences: false).map { token -> String in
            guard let equals = token.firstIndex(of: "=") else { return String(token) }
            let key = token[..<equals]
            let value = String(token[token.index(after: equals)...])
            guard Self.isNetworkURL(value) else { return String(token) }
            return "\(key)=\(rewriteForGuest(value, what: String(key) + "="))"
        }.joined(separator: " ")
    }

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

/// A kickstart copied under `<state>/kickstarts/` for the installer to fetch.
struct PublishedKickstart: Sendable {
    var path: String
    var guestURL: String

    /// Once the installer has read it, nobody else may.
    func remove() { try? FileManager.default.removeItem(atPath: path) }
}

/// stderr lines and a download meter.
enum InstallOutput {
    static func err(_ line: String) {
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }
}

final class ProgressMeter: Sendable {
    let label: String
    let isTerminal = isatty(2) == 1
    let last = Mutex<Int64>(-1)

    init(label: String) { self.label = label }

    func update(_ done: Int64, _ total: Int64?) {
        // Ten lines at most when stderr is a file; a redrawn line on a terminal.
        let step: Int64 = isTerminal ? 1 << 20 : max((total ?? 0) / 10, 8 << 20)
        let due = last.withLock { last -> Bool in
            guard done - last >= step || done == total else { return false }
            last = done
            return true
        }
        guard due else { return }
        let text = String(format: "  %@: %.1f", label, Double(done) / 1_048_576) + (total.map { String(format: " of %.1f MiB", Double($0) / 1_048_576) } ?? " MiB")
        FileHandle.standardError.write(Data((isTerminal ? "\r" + text : text + "\n").utf8))
        if isTerminal, done == total { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}
