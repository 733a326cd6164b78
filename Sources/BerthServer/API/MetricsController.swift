import BerthModel
import FoundationEssentials
import Glibc
import Hummingbird
import Prometheus

/// `GET /metrics`: the host and every running guest in Prometheus' text format, written by
/// swift-prometheus from a registry made for each scrape: every figure is read when asked for
/// (the catalog, `/proc`, QMP), so nothing is kept between scrapes.
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
        let registry = PrometheusCollectorRegistry()
        func gauge(_ name: String, _ help: String, _ labels: [(String, String)], _ value: Double) {
            registry.makeGauge(name: name, labels: labels, help: help).set(to: value)
        }
        func counter(_ name: String, _ help: String, _ labels: [(String, String)], _ value: Int64) {
            registry.makeCounter(name: name, labels: labels, help: help).increment(by: value)
        }
        for state in DomainState.allCases {
            gauge("berth_domains", "Defined domains by state.", [("state", state.rawValue)], Double(summaries.filter { $0.state == state }.count))
        }
        let memory = HostCapacity.hostMemory()
        let memoryHelp = "Host memory from /proc/meminfo (total, available)."
        gauge("berth_host_memory_bytes", memoryHelp, [("kind", "total")], Double(memory.total))
        gauge("berth_host_memory_bytes", memoryHelp, [("kind", "available")], Double(memory.available))
        let startsHelp = "Guest starts running and waiting for a start slot (--start-limit)."
        gauge("berth_starts", startsHelp, [("state", "running")], Double(starts.running))
        gauge("berth_starts", startsHelp, [("state", "waiting")], Double(starts.waiting))
        for s in stats {
            let domain = [("domain", s.name)]
            registry.makeCounter(
                name: "berth_domain_cpu_seconds_total", labels: domain, help: "CPU time of the guest's QEMU process (/proc/PID/stat)."
            ).increment(by: s.cpuSeconds)
            gauge("berth_domain_memory_rss_bytes", "Resident memory of the guest's QEMU process.", domain, Double(s.rssBytes))
            gauge("berth_domain_memory_configured_bytes", "The guest's configured memory.", domain, Double(Int64(s.memory) << 20))
            gauge("berth_domain_vcpus", "The guest's virtual CPUs.", domain, Double(s.vcpus))
            for b in s.blocks {
                let labels = domain + [("device", b.device)]
                counter(
                    "berth_domain_block_read_bytes_total", "Bytes read by the guest's disk (QMP query-blockstats).", labels,
                    b.readBytes)
                counter(
                    "berth_domain_block_write_bytes_total", "Bytes written by the guest's disk (QMP query-blockstats).", labels,
                    b.writeBytes)
            }
            for n in s.interfaces {
                let labels = domain + [("interface", n.device ?? "")]
                if let rx = n.rxBytes {
                    counter(
                        "berth_domain_network_receive_bytes_total",
                        "Bytes the guest received on a tap NIC (the tap's tx_bytes); user-mode NICs keep no counters.", labels,
                        rx)
                }
                if let tx = n.txBytes {
                    counter(
                        "berth_domain_network_transmit_bytes_total", "Bytes the guest sent on a tap NIC (the tap's rx_bytes).", labels,
                        tx)
                }
            }
        }
        return registry.emitToString()
    }
}
