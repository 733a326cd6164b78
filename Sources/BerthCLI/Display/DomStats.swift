import ArgumentParser
import BerthModel
import Foundation

struct DomStatsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "domstats", abstract: "Print a running domain's counters.",
        discussion: """
            CPU time and resident memory are the QEMU process's own accounting (/proc/PID/stat on \
            berthd's host); disk I/O is QEMU's (QMP query-blockstats). Counters are totals since the \
            guest started; 'berth top' shows rates. Network counters are a tap NIC's \
            (/sys/class/net/TAP/statistics, from the guest's side); a user-mode NIC has none (QEMU's \
            user-mode networking keeps no counters), shown as net.N.counters=none.
            """)

    @Argument(help: "Domain name.") var name: String
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let stats = try await connection.run { try await $0.stats(name) }
        if output.json { return try output.printJSON(stats) }
        print("Domain: '\(stats.name)'")
        print("  state=\(stats.state.rawValue)")
        if let pid = stats.pid { print("  pid=\(pid)") }
        print("  cpu.time=\(String(format: "%.2f", stats.cpuSeconds))s")
        print("  vcpu.current=\(stats.vcpus)")
        print("  balloon.maximum=\(stats.memory * 1024)KiB")
        print("  memory.rss=\(stats.rssBytes / 1024)KiB")
        print("  block.count=\(stats.blocks.count)")
        for (index, block) in stats.blocks.enumerated() {
            print("  block.\(index).name=\(block.device)")
            print("  block.\(index).rd.reqs=\(block.readOps)")
            print("  block.\(index).rd.bytes=\(block.readBytes)")
            print("  block.\(index).wr.reqs=\(block.writeOps)")
            print("  block.\(index).wr.bytes=\(block.writeBytes)")
        }
        print("  net.count=\(stats.interfaces.count)")
        for nic in stats.interfaces {
            print("  net.\(nic.index).name=\(nic.device ?? nic.mode)")
            if let mac = nic.mac { print("  net.\(nic.index).mac=\(mac)") }
            guard let rx = nic.rxBytes, let tx = nic.txBytes else {
                print("  net.\(nic.index).counters=none (\(nic.mode)-mode networking keeps no counters)")
                continue
            }
            print("  net.\(nic.index).rx.bytes=\(rx)")
            print("  net.\(nic.index).rx.pkts=\(nic.rxPackets ?? 0)")
            print("  net.\(nic.index).tx.bytes=\(tx)")
            print("  net.\(nic.index).tx.pkts=\(nic.txPackets ?? 0)")
        }
    }
}

/// xentop / `xm top`: a refreshing table of every running guest.
struct Top: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "top",
        abstract: "Show every running guest's CPU, memory and disk I/O, refreshing (like xentop).",
        discussion: """
            CPU % is the QEMU process's CPU time (/proc/PID/stat) over the interval (100 % = one host \
            core); memory is its resident set; disk rates come from QMP query-blockstats; network rates \
            from the guest's taps (/sys/class/net/TAP/statistics). A guest with only user-mode NICs \
            shows '-' for the network: QEMU's user-mode networking keeps no counters. Ctrl-C ends it.
            """)

    @Option(name: .shortAndLong, help: "Seconds between updates.") var delay: Double = 2
    @Option(name: .shortAndLong, help: "Number of updates, then exit (default: until Ctrl-C).") var iterations: Int?
    @Flag(name: .shortAndLong, help: "Print each update below the last instead of redrawing the screen.") var batch = false
    @OptionGroup var connection: ConnectionOptions

    func validate() throws {
        guard delay >= 0.2, delay <= 3600 else { throw ValidationError("--delay must be between 0.2 and 3600 seconds.") }
        if let iterations, iterations < 1 { throw ValidationError("--iterations must be at least 1.") }
    }

    func run() async throws {
        var previous: [String: DomainStats] = [:]
        var count = 0
        while true {
            let all = try await connection.run { try await $0.allStats() }
            if !batch { print("\u{1B}[H\u{1B}[2J", terminator: "") }
            print(Self.table(all, previous: previous))
            fflush(nil)
            previous = Dictionary(all.map { ($0.name, $0) }, uniquingKeysWith: { $1 })
            count += 1
            if let iterations, count >= iterations { return }
            try await Task.sleep(for: .milliseconds(Int(delay * 1000)))
        }
    }

    static func table(_ all: [DomainStats], previous: [String: DomainStats]) -> String {
        var lines = [
            "NAME".padding(toLength: 20, withPad: " ", startingAt: 0)
                + " STATE       CPU(sec)   CPU(%)  MEM(MiB)  MAXMEM(MiB) VCPUS   RD(KiB/s)   WR(KiB/s)   RX(KiB/s)   TX(KiB/s)"
        ]
        for stats in all.sorted(by: { $0.name < $1.name }) {
            var cpu = "-"
            var read = "-"
            var write = "-"
            var received = "-"
            var sent = "-"
            if let before = previous[stats.name], before.pid == stats.pid {
                let seconds = stats.time.timeIntervalSince(before.time)
                if seconds > 0 {
                    cpu = String(format: "%.1f", 100 * (stats.cpuSeconds - before.cpuSeconds) / seconds)
                    let readBytes = stats.blocks.map(\.readBytes).reduce(0, &+) &- before.blocks.map(\.readBytes).reduce(0, &+)
                    let writeBytes = stats.blocks.map(\.writeBytes).reduce(0, &+) &- before.blocks.map(\.writeBytes).reduce(0, &+)
                    read = String(format: "%.1f", Double(readBytes) / 1024 / seconds)
                    write = String(format: "%.1f", Double(writeBytes) / 1024 / seconds)
                    if let rx = networkTotal(stats, \.rxBytes), let rxBefore = networkTotal(before, \.rxBytes),
                        let tx = networkTotal(stats, \.txBytes), let txBefore = networkTotal(before, \.txBytes)
                    {
                        received = String(format: "%.1f", Double(rx &- rxBefore) / 1024 / seconds)
                        sent = String(format: "%.1f", Double(tx &- txBefore) / 1024 / seconds)
                    }
                }
            }
            func left(_ text: String, _ width: Int) -> String { text.padding(toLength: max(width, text.count), withPad: " ", startingAt: 0) }
            func right(_ text: String, _ width: Int) -> String { String(repeating: " ", count: max(0, width - text.count)) + text }
            lines.append(
                [
                    left(stats.name, 20), left(stats.state.rawValue, 10), right(String(format: "%.1f", stats.cpuSeconds), 9),
                    right(cpu, 8), right("\(stats.rssBytes >> 20)", 9), right("\(stats.memory)", 12), right("\(stats.vcpus)", 5),
                    right(read, 11), right(write, 11), right(received, 11), right(sent, 11),
                ].joined(separator: " "))
        }
        if all.isEmpty { lines.append("(no running guests)") }
        return lines.joined(separator: "\n")
    }

    /// The guest's traffic over the NICs that keep counters (taps); nil when none does.
    static func networkTotal(_ stats: DomainStats, _ counter: KeyPath<InterfaceStats, Int64?>) -> Int64? {
        let counted = stats.interfaces.compactMap { $0[keyPath: counter] }
        return counted.isEmpty ? nil : counted.reduce(0, &+)
    }
}
