import ArgumentParser
import BerthModel
import BerthQEMU

struct HostCheck: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "host-check",
        abstract: "Check what this host offers and which accelerator Berth will use (needs no daemon).")

    @Option(help: "The qemu-system-x86_64 binary to check.") var qemu: String?
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let (verdict, _) = await AcceleratorProbe.hostCheck(qemuOverride: qemu)
        if output.json { return try output.printJSON(verdict) }
        let width = (verdict.checks.map(\.name.count).max() ?? 0) + 2
        for check in verdict.checks {
            print("BERTH: Checking \(check.name.padding(toLength: width, withPad: " ", startingAt: 0)): \(check.result.rawValue) (\(check.detail))")
        }
        print("BERTH: Accelerator: \(verdict.chosen.rawValue) — \(verdict.reason)")
        if verdict.checks.contains(where: { $0.name == "QEMU" && $0.result == .fail }) {
            throw BerthError(
                .unavailable, "QEMU is not installed.", remedy: "Install it with 'apt-get install qemu-system-x86 qemu-utils'.")
        }
    }
}
