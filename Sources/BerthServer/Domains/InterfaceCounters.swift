import BerthModel
import FoundationEssentials
import Glibc

/// A running guest's NIC counters. berthd does not keep the tap names it made (the kernel
/// names them, and a restarted berthd re-attaches to guests it did not start), so each is
/// found from QEMU itself: `-netdev tap,id=netN,fd=FD` in its command line, and the tun
/// descriptor's `iff:` line in `/proc/PID/fdinfo/FD`. The counters are the tap's
/// (`/sys/class/net/TAP/statistics`), swapped to the guest's side. User-mode NICs have none.
enum InterfaceCounters {
    static func read(pid: Int32, nics: [NICSpec]) -> [InterfaceStats] {
        let arguments = commandLine(pid: pid)
        return nics.enumerated().map { index, nic in
            var stats = InterfaceStats(index: index, mode: nic.mode.rawValue, mac: nic.mac?.description)
            guard nic.mode != .user, let fd = tapDescriptor(arguments, index: index), let tap = tapName(pid: pid, fd: fd) else {
                return stats
            }
            stats.device = tap
            // The tap's transmit is what the guest receives, and the other way round.
            stats.rxBytes = counter(tap, "tx_bytes")
            stats.txBytes = counter(tap, "rx_bytes")
            stats.rxPackets = counter(tap, "tx_packets")
            stats.txPackets = counter(tap, "rx_packets")
            return stats
        }
    }

    static func commandLine(pid: Int32) -> [String] {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return [] }
        return data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
    }

    /// The descriptor QEMU holds for NIC `index`'s tap (`-netdev tap,id=netN,fd=FD`).
    static func tapDescriptor(_ arguments: [String], index: Int) -> Int? {
        let prefix = "tap,id=net\(index),"
        for (position, argument) in arguments.enumerated()
        where argument == "-netdev" && position + 1 < arguments.count && arguments[position + 1].hasPrefix(prefix) {
            let options = arguments[position + 1].split(separator: ",")
            if let fd = options.first(where: { $0.hasPrefix("fd=") }).flatMap({ Int($0.dropFirst(3)) }) { return fd }
        }
        return nil
    }

    /// The interface a tun descriptor is attached to: the `iff:` line of its fdinfo. Only a
    /// plain interface name is taken (it becomes part of a /sys path).
    static func tapName(pid: Int32, fd: Int) -> String? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/fdinfo/\(fd)", encoding: .utf8) else { return nil }
        return interfaceName(fdinfo: text)
    }

    static func interfaceName(fdinfo text: String) -> String? {
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("iff:") }) else { return nil }
        let name = line.dropFirst(4).trimmed()
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
        guard (1...15).contains(name.count), name.allSatisfy(allowed.contains) else { return nil }
        return name
    }

    static func counter(_ interface: String, _ name: String) -> Int64? {
        guard let text = try? String(contentsOfFile: "/sys/class/net/\(interface)/statistics/\(name)", encoding: .utf8) else {
            return nil
        }
        return Int64(text.trimmed())
    }
}
