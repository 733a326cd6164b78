import ArgumentParser
import BerthModel
import BerthQEMU
import Foundation
import Logging

/// `berthd`: what xend and libvirtd were.
public struct BerthDaemonCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "berthd",
        abstract: "The Berth daemon: owns the catalog, runs and supervises guests, serves the API.",
        discussion: "Listens on a unix socket in the runtime directory and on 127.0.0.1:8000 (xend's port), where every request needs the token from <state-dir>/api-token. Guests keep running when berthd stops; a restarted berthd re-attaches to them.")

    @Option(help: "State directory (catalog, token, logs). Default: /var/lib/berth as root, else the XDG state directory.")
    var stateDir: String?
    @Option(help: "TCP address to listen on as HOST:PORT; 'none' disables TCP.")
    var listen: String = "127.0.0.1:8000"
    @Option(help: "Accelerator for domains that say 'auto': auto (probe), kvm or tcg.")
    var accel: Accelerator = .auto
    @Option(help: "The qemu-system-x86_64 binary to use.")
    var qemu: String?
    @Option(help: "Log level: trace, debug, info, notice, warning, error.")
    var logLevel: String = "info"

    public init() {}

    /// Parses the arguments, runs the daemon and exits. (`main()` from a `main.swift` would
    /// pick the synchronous entry point on Linux.)
    public static func main(arguments: [String]) async -> Never {
        do {
            var command = try parseAsRoot(arguments)
            if let daemon = command as? BerthDaemonCommand {
                try await daemon.run()
            } else {
                try command.run()
            }
            Foundation.exit(0)
        } catch {
            exit(withError: error)
        }
    }

    public func run() async throws {
        var configuration = DaemonConfiguration.defaults(stateDirectory: stateDir ?? ProcessInfo.processInfo.environment["BERTH_STATE_DIR"])
        if listen == "none" {
            configuration.tcpHost = nil
        } else {
            guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]),
                (0...65535).contains(port)
            else {
                throw ValidationError("--listen takes HOST:PORT (127.0.0.1:8000) or 'none'.")
            }
            configuration.tcpHost = String(listen[..<colon])
            configuration.tcpPort = port
        }
        configuration.qemuBinary = qemu
        var logger = Logger(label: "berthd")
        logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info
        let driver = await QEMUGuestDriver(
            runtimeRoot: configuration.runtimeDirectory, logRoot: configuration.logDirectory, qemuOverride: qemu,
            accelOverride: accel)
        logger.info("accelerator: \(driver.acceleratorVerdict().chosen.rawValue) — \(driver.acceleratorVerdict().reason)")
        do {
            try await Daemon.run(
                configuration: configuration, driver: driver,
                bootPreparer: BootPreparer.fromGuestDisk(directory: configuration.bootDirectory), logger: logger)
        } catch let error as BerthError {
            FileHandle.standardError.write(Data("berthd: \(error.message)\n  \(error.remedy ?? "")\n".utf8))
            throw ExitCode(error.code.exitCode)
        }
    }
}

extension Accelerator: ExpressibleByArgument {}
