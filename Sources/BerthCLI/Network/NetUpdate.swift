import ArgumentParser
import BerthModel

struct NetUpdate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "net-update",
        abstract: "Add or delete a DHCP reservation; a running network's dnsmasq takes it at once, leases kept.",
        discussion:
            "berth net-update default add dhcp-host \"52:54:00:12:34:56,192.168.122.50,web\" (virsh's <host mac='…' ip='…'/> works too); berth net-update default delete dhcp-host 52:54:00:12:34:56."
    )

    enum Command: String, ExpressibleByArgument, CaseIterable { case add, delete }
    enum Section: String, ExpressibleByArgument, CaseIterable { case dhcpHost = "dhcp-host" }

    @Argument(help: "The network.") var name: String
    @Argument(help: "add or delete.") var command: Command
    @Argument(help: "What to change: dhcp-host.") var section: Section
    @Argument(help: "MAC,IP[,HOSTNAME] (for delete, the MAC is enough).") var value: String
    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        switch command {
        case .add:
            let host = try DHCPHost(parsing: value)
            _ = try await connection.run { try await $0.addReservation(host, network: name) }
            print("Reserved \(host.ip) for \(host.mac) on '\(name)'.")
        case .delete:
            let macText = value.split(separator: ",").first.map(String.init) ?? value
            guard let mac = MACAddress(macText) ?? (try? DHCPHost(parsing: value))?.mac else {
                throw BerthError(
                    .invalidArgument, "'\(value)' names no MAC address.",
                    remedy: "Give the reservation's MAC: 52:54:00:12:34:56.")
            }
            _ = try await connection.run { try await $0.removeReservation(mac, network: name) }
            print("Removed the reservation for \(mac) on '\(name)'.")
        }
    }
}
