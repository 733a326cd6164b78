import ArgumentParser
import BerthClient
import BerthModel
import Foundation

/// `berth migrate NAME --to URL [--live] [--copy-storage-all] [--persistent] [--undefine-source]`
/// (virsh migrate, xm migrate --live).
struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Move a running domain to another berthd; it runs there and stops here.",
        discussion:
            "The source berthd (--connect) talks to the destination's API (--to) with the destination's token (--to-token, or BERTH_TO_TOKEN). The destination checks it has the guest's networks, pools, accelerator and QEMU before anything moves. Cancel with 'berth domjobabort NAME': the guest keeps running here. Berth has no transient domains: the definition always moves and stays defined on the destination (as virsh's --persistent would have it); here the domain stays defined, shut off, unless --undefine-source."
    )
    @Argument(help: "Domain name.") var name: String
    @Option(
        name: .customLong("to"),
        help:
            "The destination berthd: https://HOST:PORT (TLS; berthd presents its --migration-tls-cert), ssh://[USER@]HOST, or http://HOST:PORT with --to-token."
    ) var destination: String
    @Option(help: "The destination's API token (its <state>/api-token). Default: $BERTH_TO_TOKEN.") var toToken: String?
    @Flag(help: "Keep the guest running while its memory is copied (otherwise it is paused for the copy).") var live = false
    @Flag(help: "Copy every writable disk to the destination while the guest runs (non-shared storage).")
    var copyStorageAll = false
    @Flag(
        help:
            "Accepted for virsh's scripts, changes nothing: the destination always keeps the definition (Berth has no transient domains)."
    )
    var persistent = false
    @Flag(help: "Undefine the domain here once it runs on the destination.") var undefineSource = false
    @Option(help: "Limit the memory copy to this many MiB/s (default: no limit).") var bandwidth: Int?
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let request = MigrateRequest(
            destination: destination, token: toToken ?? ProcessInfo.processInfo.environment["BERTH_TO_TOKEN"], live: live,
            copyStorageAll: copyStorageAll, persistent: persistent, undefineSource: undefineSource,
            bandwidth: bandwidth)
        let done = try await connection.run { client in
            let operation = try await client.beginMigrate(name, request)
            var printed = 0
            return try await client.finish(operation) { progress in
                ProgressBar.show(progress)
            } messages: { messages in
                guard !output.json else { return }
                for message in messages.dropFirst(printed) { print(message.text) }
                printed = messages.count
            }
        }
        ProgressBar.end()
        if output.json { return try output.printJSON(done) }
        print("Domain '\(name)' migrated to \(destination), which keeps its definition.")
        if !undefineSource {
            print(
                "Its definition stays here too, shut off: 'berth undefine \(name)' here (or --undefine-source next time) leaves it defined on one host only."
            )
        }
    }
}

/// `berth domjobabort NAME` (virsh): cancels a running migration; the guest stays here.
struct DomJobAbort: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "domjobabort", abstract: "Cancel a domain's running migration; the guest keeps running here.")
    @Argument(help: "Domain name.") var name: String
    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        try await connection.run { client in try await client.abortMigration(name) }
        print("Migration of '\(name)' cancelled.")
    }
}
