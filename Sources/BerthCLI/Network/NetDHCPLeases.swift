import ArgumentParser
import BerthModel
import Foundation

struct NetDHCPLeases: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "net-dhcp-leases", abstract: "The live DHCP leases of a network (from its dnsmasq).")

    @Argument(help: "The network.") var name: String
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let leases = try await connection.run { try await $0.leases(name) }
        if output.json { return try output.printJSON(leases) }
        func pad(_ text: String, _ width: Int) -> String { text.padding(toLength: width, withPad: " ", startingAt: 0) }
        print(" " + pad("Expiry Time", 22) + pad("MAC address", 20) + pad("IP address", 18) + "Hostname")
        print(String(repeating: "-", count: 72))
        let format = DateFormatter()
        format.dateFormat = "yyyy-MM-dd HH:mm:ss"
        for lease in leases {
            print(
                " " + pad(lease.expires.map(format.string) ?? "never", 22) + pad(lease.mac.description, 20)
                    + pad(lease.ip, 18) + (lease.hostname ?? "-"))
        }
    }
}
