import ArgumentParser
import BerthModel

struct PoolList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "pool-list", abstract: "List storage pools (active ones unless --all).")

    @Flag(help: "Inactive pools too.") var all = false
    @Flag(help: "Capacity, allocation and free space too.") var details = false
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let pools = try await connection.run { try await $0.pools() }.filter { all || $0.active }
        if output.json { return try output.printJSON(pools) }
        var rows = [["Name", "State", "Autostart"] + (details ? ["Type", "Capacity", "Allocation", "Available"] : [])]
        for pool in pools {
            var row = [pool.spec.name, pool.active ? "active" : "inactive", pool.spec.autostart ? "yes" : "no"]
            if details {
                row += [pool.spec.type.rawValue] + [pool.capacity, pool.allocation, pool.available].map(ByteSize.describe)
            }
            rows.append(row)
        }
        printTable(rows)
    }
}

/// Left-aligned columns with a rule under the header, as virsh prints its lists.
func printTable(_ rows: [[String]]) {
    guard let header = rows.first else { return }
    let widths = header.indices.map { column in rows.map { column < $0.count ? $0[column].count : 0 }.max() ?? 0 }
    func line(_ row: [String]) -> String {
        row.enumerated().map { $1.padding(toLength: widths[$0] + 3, withPad: " ", startingAt: 0) }.joined()
            .trimmingCharacters(in: .whitespaces)
    }
    print(" " + line(header))
    print(String(repeating: "-", count: widths.reduce(0) { $0 + $1 + 3 }))
    for row in rows.dropFirst() { print(" " + line(row)) }
}
