import ArgumentParser
import BerthClient
import BerthModel

/// start, shutdown, destroy, reboot, suspend and resume share one shape.
protocol LifecycleCommand: AsyncParsableCommand {
    static var action: BerthClient.Action { get }
    static var done: String { get }
    var name: String { get }
    var connection: ConnectionOptions { get }
    var output: OutputOptions { get }
}

extension LifecycleCommand {
    func perform(timeout: Int? = nil, force: Bool = false) async throws {
        let info = try await connection.run {
            try await $0.perform(Self.action, on: name, timeout: timeout, force: force)
        }
        if output.json { return try output.printJSON(info) }
        print("Domain '\(name)' \(Self.done).")
    }

    func run() async throws { try await perform() }
}

struct Start: LifecycleCommand {
    static let configuration = CommandConfiguration(commandName: "start", abstract: "Start a defined domain.")
    static let action = BerthClient.Action.start
    static let done = "started"
    @Argument(help: "Domain name.") var name: String
    @Flag(help: "Attach to the console after starting.") var console = false
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await perform()
        if console { try await ConsoleAttachment.attach(name, connection) }
    }
}

struct Shutdown: LifecycleCommand {
    static let configuration = CommandConfiguration(
        commandName: "shutdown",
        abstract: "Power a domain off gracefully (ACPI power button), waiting for it.")
    static let action = BerthClient.Action.shutdown
    static let done = "is shut off"
    @Argument(help: "Domain name.") var name: String
    @Option(help: "Seconds to wait for the guest to power off.") var timeout = 60
    @Flag(help: "Stop it at once, as destroy does.") var force = false
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func validate() throws {
        guard timeout >= 0, timeout <= 3600 else { throw ValidationError("--timeout must be 0–3600 seconds.") }
    }

    func run() async throws { try await perform(timeout: timeout, force: force) }
}

struct Destroy: LifecycleCommand {
    static let configuration = CommandConfiguration(commandName: "destroy", abstract: "Stop a domain at once (pull the plug).")
    static let action = BerthClient.Action.destroy
    static let done = "destroyed"
    @Argument(help: "Domain name.") var name: String
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions
}

struct Reboot: LifecycleCommand {
    static let configuration = CommandConfiguration(commandName: "reboot", abstract: "Reset a domain and boot it again.")
    static let action = BerthClient.Action.reboot
    static let done = "is being rebooted"
    @Argument(help: "Domain name.") var name: String
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions
}

struct Suspend: LifecycleCommand {
    static let configuration = CommandConfiguration(commandName: "suspend", abstract: "Pause a running domain's vCPUs.")
    static let action = BerthClient.Action.suspend
    static let done = "suspended"
    @Argument(help: "Domain name.") var name: String
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions
}

struct Resume: LifecycleCommand {
    static let configuration = CommandConfiguration(commandName: "resume", abstract: "Resume a suspended domain.")
    static let action = BerthClient.Action.resume
    static let done = "resumed"
    @Argument(help: "Domain name.") var name: String
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions
}
