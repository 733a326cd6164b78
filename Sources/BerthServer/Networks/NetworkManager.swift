import BerthModel
import BerthQEMU
import BerthStore
import FoundationEssentials

#if canImport(Glibc)
    import Glibc
#endif

/// Berth's networks on this host: the catalog's definitions made real (bridge, dnsmasq,
/// nftables, IP forwarding) and the taps guests get. An actor: network starts and stops run
/// one after another, so the nft table is always rewritten from one consistent view.
///
/// Each network's files live in `<runtime>/networks/NAME/` (dnsmasq's config, hosts file,
/// leases, pidfile). A started network stays up when berthd stops; the next berthd adopts
/// it (`recover`): the bridge and dnsmasq are checked and whatever died is made again.
actor NetworkManager {
    let catalog: Catalog
    nonisolated let directory: String
    let firewall: NetworkFirewall
    let forwardChain: ForwardChainCompatibility
    let privileged: Bool
    /// Install media on each running network's bridge address (nil: berthd serves no media).
    private(set) var mediaServer: NetworkMediaServer?

    init(catalog: Catalog, runtimeDirectory: String, guestIDBlock: UInt32?, mediaPorts: [Int], privileged: Bool) {
        self.catalog = catalog
        self.directory = runtimeDirectory + "/networks"
        self.firewall = NetworkFirewall(guestIDBlock: guestIDBlock, mediaPorts: mediaPorts)
        self.forwardChain = ForwardChainCompatibility(table: firewall.table)
        self.privileged = privileged
    }

    /// Set once by the daemon before `recover`.
    func serveMedia(_ server: NetworkMediaServer) { mediaServer = server }

    nonisolated func dnsmasq(_ name: String) -> Dnsmasq { Dnsmasq(directory: directory + "/" + name) }
    nonisolated func forwardingMarker(_ family: HostLinks.Family) -> String {
        directory + (family == .ipv4 ? "/ip_forward.enabled-by-berthd" : "/ipv6_forwarding.enabled-by-berthd")
    }

    // MARK: - Definitions

    /// Stores a network; a Berth-made bridge without a name gets the first free `virbrN`.
    func define(_ spec: NetworkSpec) throws -> NetworkInfo {
        var spec = spec
        try spec.validate()
        if spec.bridge == nil {
            let taken = Set(try catalog.allNetworks().compactMap(\.spec.bridge))
            spec.bridge = (0..<1000).lazy.map { "virbr\($0)" }.first { !taken.contains($0) && !HostLinks.exists($0) }
        }
        let stored = try catalog.defineNetwork(spec)
        return try info(stored.name)
    }

    func undefine(_ name: String) throws {
        let record = try catalog.network(named: name)
        let users = try runningDomains(on: name)
        if !users.isEmpty {
            throw BerthError(
                .wrongState, "Network '\(name)' is used by running domains: \(users.joined(separator: ", ")).",
                remedy: "Stop them first ('berth shutdown NAME'), then 'berth net-destroy \(name)'.")
        }
        if record.active {
            throw BerthError(
                .wrongState, "Network '\(name)' is active.", remedy: "Stop it first with 'berth net-destroy \(name)'.")
        }
        try catalog.undefineNetwork(name)
        try? FileManager.default.removeItem(atPath: directory + "/" + name)
    }

    nonisolated func info(_ name: String) throws -> NetworkInfo {
        let record = try catalog.network(named: name)
        return NetworkInfo(
            spec: record.spec, active: record.active,
            dnsmasqPID: record.active && record.spec.ownsBridge ? dnsmasq(name).runningPID() : nil,
            domains: try runningDomains(on: name))
    }

    nonisolated func list() throws -> [NetworkInfo] {
        try catalog.allNetworks().map { try info($0.spec.name) }
    }

    func setAutostart(_ name: String, _ enabled: Bool) throws -> NetworkInfo {
        try catalog.setNetworkAutostart(name, enabled)
        return try info(name)
    }

    /// Running (or starting, or paused) domains with a NIC on `name`.
    nonisolated func runningDomains(on name: String) throws -> [String] {
        try catalog.allDomains().filter { record in
            [.running, .paused, .starting, .shuttingDown].contains(record.state)
                && record.spec.nics.contains { Self.networkName(of: $0) == name }
        }.map(\.spec.name)
    }

    /// The network a NIC attaches to: its own, or for a Xen `vif-nat` NIC without one, `default`.
    static func networkName(of nic: NICSpec) -> String? {
        switch nic.mode {
        case .network, .route: nic.network
        case .nat: nic.network ?? "default"
        case .user, .bridge: nil
        }
    }

    // MARK: - Reservations

    nonisolated func addReservation(_ host: DHCPHost, network name: String) throws -> NetworkInfo {
        try catalog.addReservation(host, network: name)
        refreshReservations([name])
        return try info(name)
    }

    nonisolated func removeReservation(mac: MACAddress, network name: String) throws -> NetworkInfo {
        try catalog.removeReservation(mac: mac, network: name)
        refreshReservations([name])
        return try info(name)
    }

    /// Rewrites the hosts file of each running network named and makes its dnsmasq re-read it
    /// (SIGHUP: no restart, no lease lost).
    nonisolated func refreshReservations(_ names: Set<String>) {
        for name in names {
            guard let record = try? catalog.network(named: name), record.active, record.spec.ownsBridge else { continue }
            let dnsmasq = dnsmasq(name)
            guard (try? dnsmasq.writeHosts(record.spec.hosts)) != nil else { continue }
            dnsmasq.reload()
        }
    }

    nonisolated func leases(_ name: String) throws -> [DHCPLease] {
        let record = try catalog.network(named: name)
        guard record.spec.ownsBridge else {
            throw BerthError(
                .invalidArgument, "Network '\(name)' is the host bridge \(record.spec.bridge ?? ""); the LAN's DHCP server holds its leases.",
                remedy: "Ask that server (the seed's router) for them.")
        }
        guard record.active else { throw BerthError.networkInactive(name) }
        return dnsmasq(name).leases()
    }

    // MARK: - Start and stop

    func start(_ name: String) async throws -> NetworkInfo {
        let record = try catalog.network(named: name)
        guard !record.active else {
            throw BerthError(.wrongState, "Network '\(name)' is already active.", remedy: "Stop it with 'berth net-destroy \(name)'.")
        }
        try await bringUp(record.spec)
        try catalog.setNetworkActive(name, true)
        return try info(name)
    }

    func destroy(_ name: String) async throws -> NetworkInfo {
        let record = try catalog.network(named: name)
        guard record.active else { throw BerthError.networkInactive(name) }
        try await tearDown(record.spec)
        try catalog.setNetworkActive(name, false)
        return try info(name)
    }

    private func requirePrivileges(_ name: String) throws {
        guard privileged else {
            throw BerthError(
                .unavailable, "Network '\(name)' needs a bridge, taps and firewall rules, which only root can make.",
                remedy: "Run berthd as root, or give the domain {\"mode\": \"user\"} NICs.")
        }
    }

    /// Makes the network real; on any failure, undoes what it made.
    private func bringUp(_ spec: NetworkSpec) async throws {
        try requirePrivileges(spec.name)
        guard let bridge = spec.bridge else { throw BerthError(.internal, "Network '\(spec.name)' has no bridge name.") }
        guard spec.ownsBridge else {
            guard HostLinks.isBridge(bridge) else {
                throw BerthError(
                    .notFound, "The host bridge \(bridge) of network '\(spec.name)' does not exist.",
                    remedy:
                        "Create it (ip link add \(bridge) type bridge, with the LAN's port attached) or define the network on an existing bridge ('ip link show type bridge')."
                )
            }
            return
        }
        guard let subnet = spec.subnet else { throw BerthError(.internal, "Network '\(spec.name)' has no subnet.") }
        for tool in [("ip", "iproute2"), ("nft", "nftables"), ("dnsmasq", "dnsmasq-base")] {
            _ = try HostLinks.tool(tool.0, package: tool.1)
        }
        if HostLinks.exists(bridge) {
            throw BerthError(
                .alreadyExists, "Interface \(bridge) already exists on this host.",
                remedy: "Remove it (ip link del \(bridge)) if it is left over, or define the network with another \"bridge\".")
        }
        for route in try await HostLinks.routes() where route.subnet.overlaps(subnet) && route.device != bridge {
            throw BerthError(
                .alreadyExists,
                "Subnet \(subnet.cidr) of '\(spec.name)' overlaps \(route.subnet.cidr), which this host already routes\(route.device.map { " via \($0)" } ?? "").",
                remedy: "Redefine the network on a free subnet ('ip route show table all' lists the used ones).")
        }
        if spec.subnet6 != nil, spec.mode == .nat || spec.mode == .routed, !HostLinks.forwarding(.ipv6) {
            let losing = try await HostLinks.interfacesLosingRARoutes()
            if !losing.isEmpty {
                throw BerthError(
                    .unavailable,
                    "Network '\(spec.name)' needs IPv6 forwarding, which would make \(losing.joined(separator: ", ")) stop taking router advertisements: this host would lose the IPv6 routes it learned there.",
                    remedy:
                        "Let them keep taking advertisements with forwarding on (\(losing.map { "sysctl net.ipv6.conf.\($0).accept_ra=2" }.joined(separator: "; "))), or define the network without \"address6\"."
                )
            }
        }
        if let subnet6 = spec.subnet6 {
            for route in try await HostLinks.routes6() where route.subnet.overlaps(subnet6) && route.device != bridge {
                throw BerthError(
                    .alreadyExists,
                    "IPv6 prefix \(subnet6.cidr) of '\(spec.name)' overlaps \(route.subnet.cidr), which this host already routes\(route.device.map { " via \($0)" } ?? "").",
                    remedy: "Redefine the network on a free prefix ('ip -6 route show table all' lists the used ones).")
            }
        }
        do {
            try await HostLinks.ip([
                "link", "add", bridge, "address", Self.bridgeMAC(spec.uuid).description, "type", "bridge", "stp_state", "0",
                "forward_delay", "0",
            ])
            try await HostLinks.ip(["addr", "add", subnet.description, "dev", bridge])
            if let subnet6 = spec.subnet6 {
                try HostLinks.makeIPv6Router(bridge)
                // nodad: the address is the network's own; dnsmasq binds it at once.
                try await HostLinks.ip(["-6", "addr", "add", subnet6.description, "dev", bridge, "nodad"])
            }
            try await HostLinks.ip(["link", "set", "dev", bridge, "up"])
            try await applyFirewall(including: spec)
            try updateForwarding(including: spec)
            let dnsmasq = dnsmasq(spec.name)
            try prepareDirectories()
            try dnsmasq.prepare(spec, bridge: bridge)
            _ = try await dnsmasq.start()
            try await mediaServer?.start(network: spec.name, address: subnet.host)
        } catch {
            _ = try? await tearDown(spec)
            throw error
        }
    }

    /// Removes everything `bringUp` made, and the taps on the bridge.
    private func tearDown(_ spec: NetworkSpec) async throws {
        guard let bridge = spec.bridge else { return }
        for tap in HostLinks.ports(of: bridge) where tap.hasPrefix(HostLinks.tapPrefix) {
            _ = try? await HostLinks.ip(["link", "del", "dev", tap])
        }
        guard spec.ownsBridge else { return }
        mediaServer?.stop(network: spec.name)
        await dnsmasq(spec.name).stop()
        try await applyFirewall(excluding: spec.name)
        try updateForwarding(excluding: spec.name)
        if HostLinks.exists(bridge) { try await HostLinks.ip(["link", "del", "dev", bridge]) }
    }

    /// dnsmasq drops to `nobody` and re-reads its hosts file by path: the directories on the
    /// way are traversable (not listable) by others. Nothing else in the runtime directory is
    /// readable by them.
    private func prepareDirectories() throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let runtime = URL(fileURLWithPath: directory).deletingLastPathComponent().path
        var status = stat()
        if stat(runtime, &status) == 0 { chmod(runtime, (status.st_mode & 0o7777) | 0o011) }
        chmod(directory, 0o711)
    }

    /// The rules for every active Berth-made network, with or without one being changed.
    private func applyFirewall(including added: NetworkSpec? = nil, excluding removed: String? = nil) async throws {
        var entries: [NetworkFirewall.Entry] = []
        var specs = try catalog.allNetworks().filter { $0.active && $0.spec.name != added?.name }.map(\.spec)
        if let added { specs.append(added) }
        for spec in specs where spec.ownsBridge && spec.name != removed {
            guard let bridge = spec.bridge, let subnet = spec.subnet else { continue }
            entries.append(.init(bridge: bridge, subnet: subnet, subnet6: spec.subnet6, mode: spec.mode, tftp: spec.tftpRoot != nil))
        }
        try await firewall.apply(entries, directory: directory)
        try await forwardChain.apply(bridges: entries.map(\.bridge), bridges6: entries.filter { $0.subnet6 != nil }.map(\.bridge))
    }

    /// IP forwarding is on only while a nat or routed network runs (IPv6 forwarding while one
    /// with IPv6 runs), and only turned off by berthd if berthd turned it on.
    private func updateForwarding(including added: NetworkSpec? = nil, excluding removed: String? = nil) throws {
        var specs = try catalog.allNetworks().filter { $0.active && $0.spec.name != removed }.map(\.spec)
        if let added { specs.append(added) }
        let forwarded = specs.filter { $0.mode == .nat || $0.mode == .routed }
        for family in HostLinks.Family.allCases {
            let needed = family == .ipv4 ? !forwarded.isEmpty : forwarded.contains { $0.subnet6 != nil }
            let marker = forwardingMarker(family)
            if needed, !HostLinks.forwarding(family) {
                try HostLinks.setForwarding(family, true)
                _ = FileManager.default.createFile(atPath: marker, contents: nil)
            } else if !needed, access(marker, F_OK) == 0 {
                try HostLinks.setForwarding(family, false)
                unlink(marker)
            }
        }
    }

    /// A fixed MAC for the bridge (from the network's UUID): a bridge otherwise takes its
    /// lowest port's, and changes it as guests come and go, which upsets the guests' ARP caches.
    static func bridgeMAC(_ uuid: UUID) -> MACAddress {
        let bytes = withUnsafeBytes(of: uuid.uuid) { Array($0) }
        return MACAddress(bytes: MACAddress.qemuPrefix + bytes[0..<3])
    }

    // MARK: - Guests

    /// Makes a tap on the right bridge for each NIC that is not user-mode.
    /// - Throws: the network is not defined or not active; a host bridge does not exist.
    func prepareTaps(for spec: DomainSpec) async throws -> [Int: TapDevice] {
        var taps: [Int: TapDevice] = [:]
        do {
            for (index, nic) in spec.nics.enumerated() where nic.mode != .user {
                let bridge: String
                if nic.mode == .bridge {
                    bridge = nic.bridge ?? ""
                    guard HostLinks.isBridge(bridge) else {
                        throw BerthError(
                            .notFound, "NIC \(index) of '\(spec.name)' names the bridge '\(bridge)', which does not exist on this host.",
                            remedy:
                                "Create it, or attach the NIC to a network ({\"network\": \"default\"}); 'ip link show type bridge' lists bridges.")
                    }
                } else {
                    let routed = nic.mode == .route ? try nic.ip.flatMap(catalog.routedNetwork(containing:)) : nil
                    guard let name = Self.networkName(of: nic) ?? routed else {
                        throw BerthError(
                            .invalidArgument,
                            "NIC \(index) of '\(spec.name)' (Xen vif-route\(nic.ip.map { ", ip=\($0)" } ?? "")) belongs to no routed network.",
                            remedy:
                                "Define a routed network whose subnet holds its address ('berth net-define' with \"mode\": \"routed\"), or give the NIC {\"network\": NAME}."
                        )
                    }
                    let record: NetworkRecord
                    do {
                        record = try catalog.network(named: name)
                    } catch let error as BerthError where error.code == .notFound {
                        throw BerthError(
                            .notFound, "NIC \(index) of '\(spec.name)' uses network '\(name)', which is not defined.",
                            remedy: "Define it with 'berth net-define FILE' (see 'berth net-list --all').")
                    }
                    guard record.active else { throw BerthError.networkInactive(name) }
                    bridge = record.spec.bridge ?? ""
                    guard HostLinks.isBridge(bridge) else {
                        throw BerthError(
                            .unavailable, "The bridge \(bridge) of network '\(name)' is gone from the host.",
                            remedy: "Restart the network: 'berth net-destroy \(name)' then 'berth net-start \(name)'.")
                    }
                }
                try requirePrivileges(nic.network ?? bridge)
                taps[index] = try await TapDevice.make(attachingTo: bridge)
            }
        } catch {
            taps.values.forEach { $0.close() }
            throw error
        }
        return taps
    }

    // MARK: - Recovery

    /// At berthd's start: removes taps left without a guest, adopts networks the last berthd
    /// left running (remaking what died), starts autostart networks, and defines `default`
    /// the first time berthd runs as root.
    func recover() async -> [String] {
        var messages: [String] = []
        guard privileged else { return messages }
        for tap in HostLinks.berthTaps() where Self.carrierless(tap) {
            _ = try? await HostLinks.ip(["link", "del", "dev", tap])
        }
        for record in (try? catalog.allNetworks()) ?? [] {
            let spec = record.spec
            if record.active {
                if let problem = await adopt(spec) { messages.append(problem) }
            } else if spec.autostart {
                do {
                    _ = try await start(spec.name)
                } catch {
                    messages.append("network '\(spec.name)' (autostart) did not start: \(error)")
                }
            }
        }
        if let message = await defineDefaultNetwork() { messages.append(message) }
        return messages
    }

    /// A tap nobody holds has no process behind it; a held one belongs to a live guest.
    static func carrierless(_ tap: String) -> Bool {
        (try? String(contentsOfFile: "/sys/class/net/\(tap)/carrier", encoding: .utf8))?.hasPrefix("0") ?? true
    }

    /// Takes over a network an earlier berthd started: what still runs is kept (guests stay
    /// connected), what died is made again.
    private func adopt(_ spec: NetworkSpec) async -> String? {
        guard spec.ownsBridge, let bridge = spec.bridge else { return nil }
        do {
            if !HostLinks.isBridge(bridge) {
                _ = try? await tearDown(spec)
                try await bringUp(spec)
                return "network '\(spec.name)': its bridge was gone; made again"
            }
            try await applyFirewall()
            try updateForwarding()
            // Without its media listener the network still carries its guests: say so, keep it.
            var media: String?
            do {
                if let host = spec.subnet?.host { try await mediaServer?.start(network: spec.name, address: host) }
            } catch {
                media = "network '\(spec.name)': \(error)"
            }
            let dnsmasq = dnsmasq(spec.name)
            if dnsmasq.runningPID() == nil {
                try prepareDirectories()
                try dnsmasq.prepare(spec, bridge: bridge)
                _ = try await dnsmasq.start()
                return "network '\(spec.name)': dnsmasq had died; restarted" + (media.map { "; \($0)" } ?? "")
            }
            try dnsmasq.writeHosts(spec.hosts)
            dnsmasq.reload()
            return media
        } catch {
            try? catalog.setNetworkActive(spec.name, false)
            return "network '\(spec.name)' could not be adopted and is now inactive: \(error)"
        }
    }

    /// libvirt's `default`: NAT on 192.168.122.0/24, or the first free 192.168.N.0/24 when
    /// the host already routes that; defined once (not started: `berth net-start default`,
    /// `berth net-autostart default`).
    private func defineDefaultNetwork() async -> String? {
        guard (try? catalog.setting("defaultNetworkDefined")) == nil else { return nil }
        defer { try? catalog.setSetting("defaultNetworkDefined", "1") }
        guard (try? catalog.network(named: "default")) == nil else { return nil }
        let routes = ((try? await HostLinks.routes()) ?? []).map(\.subnet)
        let others = ((try? catalog.allNetworks()) ?? []).compactMap(\.spec.subnet)
        for third in [122] + Array(123...254) + Array(100...121) {
            guard let subnet = IPv4Subnet("192.168.\(third).1/24"),
                !(routes + others).contains(where: { $0.overlaps(subnet) })
            else { continue }
            let spec = NetworkSpec(name: "default", mode: .nat, address: subnet.description)
            guard (try? define(spec)) != nil else { return nil }
            return third == 122
                ? nil : "network 'default' defined on \(subnet.cidr): 192.168.122.0/24 is already routed on this host"
        }
        return "no free 192.168.N.0/24 for the 'default' network; define one with 'berth net-define'"
    }
}
