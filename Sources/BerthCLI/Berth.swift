import ArgumentParser
import BerthClient
import BerthModel
import Foundation

/// `berth`: the CLI, with virsh's subcommand names so the seed's habits carry over.
///
/// Every subcommand names itself (`commandName:`): ArgumentParser builds the whole command
/// tree on each run, and for a command without a name it derives one from
/// `String(describing:)` of its type, a scan of every protocol conformance in the binary per
/// type — a fifth of the CPU time of a short command like `berth domstate`.
public struct Berth: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "berth",
        abstract: "Manage virtual machines on this host (xm/virsh for QEMU).",
        discussion:
            "Talks to berthd over its unix socket or http://127.0.0.1:8000, or to another host's berthd with --connect https://HOST:PORT (TLS) or ssh://[USER@]HOST. Exit codes: 0 ok, 2 bad input, 3 not found, 4 already exists, 5 wrong state, 6 host lacks something, 7 unauthorized, 8 timeout, 9 cannot reach berthd, 10 internal error.",
        subcommands: [
            List.self, Define.self, Undefine.self, Start.self, Shutdown.self, Destroy.self, Reboot.self,
            Suspend.self, Resume.self, DomInfo.self, DomState.self, Console.self, Log.self, Autostart.self,
            Events.self, HostCheck.self, Bootloader.self, Create.self, Convert.self, DumpXML.self, DumpConfig.self,
            KickstartCommand.self, Install.self, Reinstall.self, Media.self, DomBlkList.self, AttachDisk.self, DetachDisk.self,
            PoolDefineAs.self, PoolList.self, PoolInfoCommand.self, PoolStart.self, PoolBuild.self, PoolDestroy.self,
            PoolRefresh.self, PoolAutostart.self, PoolUndefine.self, VolCreateAs.self, VolList.self, VolInfo.self,
            VolPath.self, VolDelete.self, VolWipe.self, VolClone.self, VolResize.self, VolUpload.self, VolDownload.self, NetDefine.self,
            NetUndefine.self,
            NetStart.self, NetDestroy.self, NetList.self, NetInfo.self, NetDumpXML.self, NetAutostart.self,
            NetDHCPLeases.self, NetUpdate.self,
            DomDisplay.self, VNCDisplay.self, DomStatsCommand.self, Top.self,
            Save.self, Restore.self, ManagedSave.self, ManagedSaveRemove.self, SnapshotCreateAs.self,
            SnapshotList.self, SnapshotInfoCommand.self, SnapshotRevert.self, SnapshotDelete.self, Migrate.self,
            DomJobAbort.self, TLSCommand.self, ProxyStdio.self,
        ])

    public init() {}

    /// Runs the CLI and exits with a stable code; `BerthError`s print message and remedy.
    public static func main(arguments: [String]) async -> Never {
        do {
            var command = try parseAsRoot(hoistingConnectionOptions(arguments))
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
            Foundation.exit(0)
        } catch let error as BerthError {
            report(error)
            Foundation.exit(error.code.exitCode)
        } catch {
            exit(withError: error)
        }
    }

    static func report(_ error: BerthError) {
        var text = "error: \(error.message)\n"
        if let remedy = error.remedy { text += "  \(remedy)\n" }
        FileHandle.standardError.write(Data(text.utf8))
    }
}

/// Flags every daemon-talking command shares. They may also come before the subcommand, as
/// with virsh (`berth --connect ssh://host list`): `Berth.hoistingConnectionOptions` moves them.
struct ConnectionOptions: ParsableArguments {
    @Option(
        name: .customLong("connect"),
        help:
            "Daemon address: a unix socket path, https://HOST[:PORT] (TLS), ssh://[USER@]HOST[:PORT][/path/to/berthd.sock][?berth=PATH], or http://127.0.0.1:PORT. Default: BERTH_CONNECT, else the local berthd."
    )
    var url: String?
    @Option(name: .customLong("tls-ca"), help: "CA certificate for https:// (default: BERTH_TLS_CA, else ca-cert.pem of 'berth tls init').")
    var tlsCA: String?
    @Option(name: .customLong("tls-cert"), help: "Client certificate for https:// (default: BERTH_TLS_CERT, else client-cert.pem when present).")
    var tlsCertificate: String?
    @Option(name: .customLong("tls-key"), help: "The client certificate's key (default: BERTH_TLS_KEY, else private/client-key.pem).")
    var tlsKey: String?
    @Option(name: .customLong("ssh-option"), help: "An 'ssh -o' option for ssh:// (repeatable), after those in BERTH_SSH.")
    var sshOptions: [String] = []

    /// The options that take a value and may stand before the subcommand (`-c` is virsh's `--connect`).
    static let leadingOptions: Set<String> = ["-c", "--connect", "--tls-ca", "--tls-cert", "--tls-key", "--ssh-option"]

    func client() throws -> BerthClient {
        try BerthClient.resolve(
            url: url, options: RemoteOptions(tlsCA: tlsCA, tlsCertificate: tlsCertificate, tlsKey: tlsKey, sshOptions: sshOptions))
    }

    /// Wraps a local connection failure with what was tried and how to start the daemon (a
    /// remote one already says what to do there).
    func run<T>(_ body: (BerthClient) async throws -> T) async throws -> T {
        let client = try client()
        do {
            return try await body(client)
        } catch let error as BerthError where error.code == .connection && !client.endpoint.isRemote {
            let paths = DefaultPaths.current()
            let tried =
                url == nil
                ? "Tried \(client.endpoint) (the unix socket \(paths.socketPath) \(FileManager.default.fileExists(atPath: paths.socketPath) ? "exists" : "does not exist"))."
                : "Tried \(client.endpoint)."
            throw BerthError(
                .connection, "\(error.message) \(tried)",
                remedy: "Start the daemon with 'berthd' (as root it uses /var/lib/berth), or point --connect at a running one.")
        }
    }
}

extension Berth {
    /// `berth --connect URL list` → `berth list --connect URL`: connection options given before
    /// the subcommand move to its end, where the subcommand's `ConnectionOptions` reads them.
    static func hoistingConnectionOptions(_ arguments: [String]) -> [String] {
        var leading: [String] = []
        var index = 0
        while index < arguments.count {
            // virsh's -c; after the subcommand only --connect (some subcommands have a -c of their own).
            let argument = arguments[index] == "-c" ? "--connect" : arguments[index]
            let name = String(argument.prefix { $0 != "=" })
            guard ConnectionOptions.leadingOptions.contains(name) else { break }
            if argument.contains("=") || index + 1 == arguments.count {
                leading.append(argument)
                index += 1
            } else {
                leading += [argument, arguments[index + 1]]
                index += 2
            }
        }
        guard !leading.isEmpty, index < arguments.count else { return arguments }
        // The subcommand and its own words, then the moved options (before any `--`).
        var rest = Array(arguments[index...])
        let end = rest.firstIndex(of: "--") ?? rest.count
        rest.insert(contentsOf: leading, at: end)
        return rest
    }
}

struct OutputOptions: ParsableArguments {
    @Flag(help: "Print JSON instead of text.")
    var json = false

    func printJSON(_ value: some Encodable) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        print(String(decoding: try encoder.encode(value), as: UTF8.self))
    }
}
