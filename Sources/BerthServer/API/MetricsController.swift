import BerthModel
import Foundation
import Hummingbird

/// `GET /metrics`: the host and every running guest in Prometheus' text format (0.0.4),
/// written by hand: a few gauges and counters need no metrics library.
struct MetricsController<Context: RequestContext> {
    let hypervisor: Hypervisor

    func add(to router: Router<Context>) {
        router.get("metrics") { _, _ in
            let text = Self.render(
                summaries: try hypervisor.catalog.summaries(), stats: try await hypervisor.allStats(),
                starts: hypervisor.capacity.startsInProgress)
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
        }
    }

    static func render(summaries: [DomainSummary], stats: [DomainStats], starts: (running: Int, waiting: Int) = (0, 0)) -> String {
        var out = ""
        func family(_ name: String, _ type: String, _ help: String) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
        }
        func sample(_ name: String, _ labels: [(String, String)], _ value: String) {
            let text = labels.map { "\($0.0)=\"\(escape($0.1))\"" }.joined(separator: ",")
            out += labels.isEmpty ? "\(name) \(value)\n" : "\(name){\(text)} \(value)\n"
        }
        family("berth_domains", "gauge", "Defined domains by state.")
        for state in DomainState.allCases {
            sample("berth_domains", [("state", state.rawValue)], "\(summaries.filter { $0.state == state }.count)")
        }
        family("berth_host_memory_bytes", "gauge", "Host memory from /proc/meminfo (total, available).")
        let memory = HostCapacity.hostMemory()
        sample("berth_host_memory_bytes", [("kind", "total")], "\(memory.total)")
        sample("berth_host_memory_bytes", [("kind", "available")], "\(memory.available)")
        family("berth_starts", "gauge", "Guest starts running and waiting for a start slot (--start-limit).")
        sample("berth_starts", [("state", "running")], "\(starts.running)")
        sample("berth_starts", [("state", "waiting")], "\(starts.waiting)")
        family("berth_domain_cpu_seconds_total", "counter", "CPU time of the guest's QEMU process (/proc/PID/stat).")
        for s in stats { sample("berth_domain_cpu_seconds_total", [("domain", s.name)], String(format: "%.2f", s.cpuSeconds)) }
        family("berth_domain_memory_rss_bytes", "gauge", "Resident memory of the guest's QEMU process.")
        for s in stats { sample("berth_domain_memory_rss_bytes", [("domain", s.name)], "\(s.rssBytes)") }
        family("berth_domain_memory_configured_bytes", "gauge", "The guest's configured memory.")
        for s in stats { sample("berth_domain_memory_configured_bytes", [("domain", s.name)], "\(Int64(s.memory) << 20)") }
        family("berth_domain_vcpus", "gauge", "The guest's virtual CPUs.")
        for s in stats { sample("berth_domain_vcpus", [("domain", s.name)], "\(s.vcpus)") }
        family("berth_domain_block_read_bytes_total", "counter", "Bytes read by the guest's disk (QMP query-blockstats).")
        for s in stats {
            for b in s.blocks { sample("berth_domain_block_read_bytes_total", [("domain", s.name), ("device", b.device)], "\(b.readBytes)") }
        }
        family("berth_domain_block_write_bytes_total", "counter", "Bytes written by the guest's disk (QMP query-blockstats).")
        for s in stats {
            for b in s.blocks { sample("berth_domain_block_write_bytes_total", [("domain", s.name), ("device", b.device)], "\(b.writeBytes)") }
        }
        family(
            "berth_domain_network_receive_bytes_total", "counter",
            "Bytes the guest received on a tap NIC (the tap's tx_bytes); user-mode NICs keep no counters.")
        for s in stats {
            for n in s.interfaces {
                if let rx = n.rxBytes {
                    sample("berth_domain_network_receive_bytes_total", [("domain", s.name), ("interface", n.device ?? "")], "\(rx)")
                }
            }
        }
        family("berth_domain_network_transmit_bytes_total", "counter", "Bytes the guest sent on a tap NIC (the tap's rx_bytes).")
        for s in stats {
            for n in s.interfaces {
                if let tx = n.txBytes {
                    sample("berth_domain_network_transmit_bytes_total", [("domain", s.name), ("interface", n.device ?? "")], "\(tx)")
                }
            }
        }
        return out
    }

    static func escape(_ value: String) -> String {
        value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
    }
}
