import ArgumentParser
import BerthModel

struct NetInfo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "net-info", abstract: "Details of a network.")

    @Argument(help: "The network.") var name: String
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let info = try await connection.run { try await $0.network(name) }
        if output.json { return try output.printJSON(info) }
        let spec = info.spec
        var lines: [(String, String)] = [
            ("Name", spec.name), ("UUID", spec.uuid.uuidString.lowercased()), ("Mode", spec.mode.rawValue),
            ("Active", info.active ? "yes" : "no"), ("Autostart", spec.autostart ? "yes" : "no"),
            ("Bridge", spec.bridge ?? "-"),
        ]
        if let subnet = spec.subnet { lines.append(("Address", subnet.description)) }
        if let pool = spec.dhcpPool { lines.append(("DHCP pool", "\(pool.lowerBound) – \(pool.upperBound)")) }
        if let subnet6 = spec.subnet6 {
            lines.append(("IPv6 address", subnet6.description))
            lines.append(("IPv6 config", spec.dhcp6Pool.map { "DHCPv6 \($0.lowerBound) – \($0.upperBound)" } ?? "SLAAC"))
        }
        lines.append(("Reservations", String(spec.hosts.count)))
        if let pid = info.dnsmasqPID { lines.append(("dnsmasq", "pid \(pid)")) }
        lines.append(("Guests", info.domains.isEmpty ? "-" : info.domains.joined(separator: ", ")))
        for (key, value) in lines { print((key + ":").padding(toLength: 15, withPad: " ", startingAt: 0) + value) }
    }
}
