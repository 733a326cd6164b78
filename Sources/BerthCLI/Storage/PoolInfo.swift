import ArgumentParser
import BerthModel

struct PoolInfoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "pool-info", abstract: "Show a storage pool's state and space.")

    @Argument(help: "Pool name.") var name: String
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let pool = try await connection.run { try await $0.pool(name) }
        if output.json { return try output.printJSON(pool) }
        var rows: [(String, String)] = [
            ("Name", pool.spec.name), ("Type", pool.spec.type.rawValue), ("State", pool.active ? "running" : "inactive"),
            ("Autostart", pool.spec.autostart ? "yes" : "no"),
        ]
        if let target = pool.spec.target { rows.append(("Target", target)) }
        if let source = pool.spec.sourceName { rows.append(("Source", source)) }
        if let device = pool.spec.sourceDevice { rows.append(("Source device", device)) }
        if pool.active {
            rows += [
                ("Capacity", ByteSize.describe(pool.capacity)), ("Allocation", ByteSize.describe(pool.allocation)),
                ("Available", ByteSize.describe(pool.available)),
            ]
        }
        rows.append(("Volumes", String(pool.volumes)))
        printRows(rows)
    }
}

/// `Key:   value` lines, as virsh's *-info commands print them.
func printRows(_ rows: [(String, String)]) {
    let width = (rows.map(\.0.count).max() ?? 0) + 2
    for (key, value) in rows { print((key + ":").padding(toLength: width, withPad: " ", startingAt: 0) + value) }
}
