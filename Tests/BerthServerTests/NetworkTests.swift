import BerthClient
import BerthModel
import Foundation
import Testing

/// Guests on real networks, end to end: a real berthd in a network namespace of the test's
/// own, real QEMU guests, real bridges, taps, dnsmasq and nftables; other namespaces joined by
/// veth pairs play the outside, the router and the LAN. Nothing touches the machine's own
/// interfaces, routes or nft tables.
@Suite(.serialized, .bootsGuests) struct NetworkTests {
    /// A guest that takes DHCP on every NIC, then runs `command`.
    static func guest(_ name: String, nics: [NICSpec], run command: String? = nil) throws -> DomainSpec {
        var spec = try GuestFixture.spec(name)
        spec.cmdline = (spec.cmdline ?? "") + " berth.net=dhcp" + (command.map { " berth.run=\"\($0)\"" } ?? "")
        spec.nics = nics
        return spec
    }

    /// Repeats `ping` inside the guest until `address` answers (the other guest may still boot).
    static func waitFor(_ address: String) -> String {
        "i=0; while [ $i -lt 40 ]; do ping -c1 -W1 \(address) >/dev/null && break; i=$((i+1)); done"
    }

    /// Asks the address server at `host` (busybox's wget crashes in the test guest; nc does not).
    static func fetch(_ host: String, timeout: Int) -> String {
        "(echo GET /cgi-bin/addr HTTP/1.0; echo) | nc -w \(timeout) \(host) 8080 | grep SEEN"
    }

    /// An HTTP server in `namespace` whose /cgi-bin/addr answers `SEEN <client address>`.
    static func addressServer(in namespace: TestNamespace, listen: String, directory: String) throws {
        let cgi = directory + "/www/cgi-bin"
        try FileManager.default.createDirectory(atPath: cgi, withIntermediateDirectories: true)
        try "#!/bin/sh\necho 'Content-Type: text/plain'\necho\necho \"SEEN $REMOTE_ADDR\"\n"
            .write(toFile: cgi + "/addr", atomically: true, encoding: .utf8)
        chmod(cgi + "/addr", 0o755)
        try namespace.daemon(
            ["busybox", "httpd", "-f", "-p", listen, "-h", directory + "/www"], log: directory + "/httpd-\(namespace.name).log")
    }

    static func networkSpec(_ json: String) throws -> NetworkSpec {
        try JSONDecoder().decode(NetworkSpec.self, from: Data(json.utf8))
    }

    /// What `net-destroy` must leave: no bridge, no tap, no dnsmasq, no nft table of Berth's
    /// networks (the daemon's own guest firewall stays, as it does for user-mode guests).
    static func expectNothingLeft(in namespace: TestNamespace, links expected: Set<String>) {
        let links = Set(namespace.links())
        #expect(links == expected, "links left: \(links)")
        let dnsmasqs = namespace.pids().filter {
            ((try? String(contentsOfFile: "/proc/\($0)/comm", encoding: .utf8)) ?? "").hasPrefix("dnsmasq")
        }
        #expect(dnsmasqs.isEmpty, "dnsmasq still runs: \(dnsmasqs)")
        #expect(!namespace.nftTables().contains { $0.contains("berthnet_") }, "\(namespace.nftTables())")
    }

    @Test func natGuestsGetTheirReservedAddressesReachEachOtherAndGoOutMasqueraded() async throws {
        let host = try TestNamespace("host")
        let outside = try TestNamespace("out")
        defer {
            host.destroy()
            outside.destroy()
        }
        try host.link("h-out", "10.77.0.1/24", to: outside, "o-host", "10.77.0.2/24")
        let daemon = try await TestDaemon(namespace: host)
        defer { daemon.tearDown() }
        try Self.addressServer(in: outside, listen: "10.77.0.2:8080", directory: daemon.stateDirectory)
        // A service of the host's own, which guests must not reach.
        try Self.addressServer(in: host, listen: "8080", directory: daemon.stateDirectory)

        let client = daemon.client
        // One reservation made on the network, one by a domain NIC's "ip".
        let defined = try await client.defineNetwork(
            try Self.networkSpec(
                #"{"name": "lan", "mode": "nat", "address": "10.50.0.1/24", "hosts": [{"mac": "52:54:00:aa:00:01", "ip": "10.50.0.10", "name": "a"}]}"#
            ))
        #expect(defined.spec.bridge == "virbr0" || defined.spec.bridge == "virbr1")
        _ = try await client.startNetwork("lan")
        let a = try Self.guest(
            "nat-a", nics: [NICSpec(mode: .network, mac: MACAddress("52:54:00:aa:00:01"), network: "lan")],
            run: Self.waitFor("10.50.0.11")
                + "; ping -c1 -W2 10.50.0.11 >/dev/null && echo PEER-OK; ping -c1 -W2 10.50.0.1 >/dev/null && echo HOST-OK"
                + "; " + Self.fetch("10.77.0.2", timeout: 5)
                + "; " + Self.fetch("10.50.0.1", timeout: 3) + " || echo HOST-SERVICE-BLOCKED")
        let b = try Self.guest(
            "nat-b", nics: [NICSpec(mode: .network, mac: MACAddress("52:54:00:aa:00:02"), network: "lan", ip: "10.50.0.11")])
        _ = try await client.define(a)
        _ = try await client.define(b)
        #expect(try await client.network("lan").spec.hosts.contains { $0.ip == "10.50.0.11" && $0.domain == "nat-b" })
        _ = try await client.perform(.start, on: "nat-b")
        _ = try await client.perform(.start, on: "nat-a")

        let logB = try await daemon.waitForLog("nat-b", "BERTH-GUEST-NET", timeout: 120)
        #expect(logB.contains("BERTH-GUEST-NET eth0 10.50.0.11/24"))
        let logA = try await daemon.waitForLog("nat-a", "BERTH-GUEST-RUN-END", timeout: 180)
        #expect(logA.contains("BERTH-GUEST-NET eth0 10.50.0.10/24"))
        let seen = IsolationTests.runOutput(logA)
        #expect(seen.contains("PEER-OK"), "\(seen)")
        #expect(seen.contains("HOST-OK"), "\(seen)")
        // The outside saw the host's own address: masquerade.
        #expect(seen.contains("SEEN 10.77.0.1"), "\(seen)")
        #expect(seen.contains("HOST-SERVICE-BLOCKED"), "\(seen)")

        let leases = try await client.leases("lan")
        #expect(Set(leases.map(\.ip)) == ["10.50.0.10", "10.50.0.11"])
        let info = try await client.network("lan")
        #expect(Set(info.domains) == ["nat-a", "nat-b"])
        // A reservation added while the network runs reaches dnsmasq by SIGHUP: same process.
        let pid = try #require(info.dnsmasqPID)
        _ = try await client.addReservation(try DHCPHost(parsing: "52:54:00:aa:00:03,10.50.0.12,c"), network: "lan")
        let hostsFile = daemon.stateDirectory + "/run/networks/lan/dhcp-hosts"
        #expect(try String(contentsOfFile: hostsFile, encoding: .utf8).contains("52:54:00:aa:00:03,10.50.0.12,c"))
        #expect(try await client.network("lan").dnsmasqPID == pid)

        _ = try await client.perform(.destroy, on: "nat-a")
        _ = try await client.perform(.destroy, on: "nat-b")
        _ = try await client.destroyNetwork("lan")
        Self.expectNothingLeft(in: host, links: ["lo", "h-out"])
        #expect(try host.run(["cat", "/proc/sys/net/ipv4/ip_forward"]).hasPrefix("0"))
    }

    @Test func routedGuestsAreReachedByTheirOwnAddressIsolatedOnesStayInside() async throws {
        let host = try TestNamespace("host")
        let outside = try TestNamespace("out")
        defer {
            host.destroy()
            outside.destroy()
        }
        try host.link("h-out", "10.78.0.1/24", to: outside, "o-host", "10.78.0.2/24")
        try outside.run(["ip", "route", "add", "10.52.0.0/24", "via", "10.78.0.1"])
        let daemon = try await TestDaemon(namespace: host)
        defer { daemon.tearDown() }
        try Self.addressServer(in: outside, listen: "10.78.0.2:8080", directory: daemon.stateDirectory)
        let client = daemon.client
        _ = try await client.defineNetwork(try Self.networkSpec(#"{"name": "public", "mode": "routed", "address": "10.52.0.1/24"}"#))
        _ = try await client.defineNetwork(try Self.networkSpec(#"{"name": "private", "mode": "isolated", "address": "10.53.0.1/24"}"#))
        _ = try await client.startNetwork("public")
        _ = try await client.startNetwork("private")

        // Two NICs, public and private, as the seed's front-end guests had.
        let r = try Self.guest(
            // The public NIC as a Xen vif-route line imports (`script=vif-route,ip=…`): the routed
            // network holding its address takes it.
            "routed", nics: [NICSpec(mode: .route, ip: "10.52.0.10"), NICSpec(mode: .network, network: "private", ip: "10.53.0.10")],
            run: Self.fetch("10.78.0.2", timeout: 5))
        // An isolated guest given a way out by hand still gets nowhere.
        let i = try Self.guest(
            "isolated", nics: [NICSpec(mode: .network, network: "private", ip: "10.53.0.20")],
            run: Self.waitFor("10.53.0.10")
                + "; ping -c1 -W2 10.53.0.10 >/dev/null && echo PEER-OK; ip route add default via 10.53.0.1"
                + "; " + Self.fetch("10.78.0.2", timeout: 3) + " || echo OUTSIDE-BLOCKED")
        _ = try await client.define(r)
        _ = try await client.define(i)
        _ = try await client.perform(.start, on: "routed")
        _ = try await client.perform(.start, on: "isolated")

        let logR = try await daemon.waitForLog("routed", "BERTH-GUEST-RUN-END", timeout: 180)
        #expect(logR.contains("BERTH-GUEST-NET eth0 10.52.0.10/24"))
        #expect(logR.contains("BERTH-GUEST-NET eth1 10.53.0.10/24"))
        // No masquerade: the outside sees the guest's own address, and reaches it by that address.
        #expect(IsolationTests.runOutput(logR).contains("SEEN 10.52.0.10"), "\(IsolationTests.runOutput(logR))")
        #expect(outside.attempt(["busybox", "ping", "-c1", "-W3", "10.52.0.10"]).status == 0)
        // The private network is not routed from outside.
        #expect(outside.attempt(["busybox", "ping", "-c1", "-W2", "10.53.0.10"]).status != 0)

        let logI = try await daemon.waitForLog("isolated", "BERTH-GUEST-RUN-END", timeout: 180)
        let seen = IsolationTests.runOutput(logI)
        #expect(seen.contains("PEER-OK"), "\(seen)")
        #expect(seen.contains("OUTSIDE-BLOCKED") && !seen.contains("SEEN"), "\(seen)")

        _ = try await client.perform(.destroy, on: "routed")
        _ = try await client.perform(.destroy, on: "isolated")
        _ = try await client.destroyNetwork("public")
        _ = try await client.destroyNetwork("private")
        Self.expectNothingLeft(in: host, links: ["lo", "h-out"])
    }

    /// Waits inside the guest until `eth0` holds a usable (not tentative) address in `prefix`,
    /// then prints it.
    static func waitForIPv6(_ prefix: String) -> String {
        "i=0; while [ $i -lt 60 ] && ! ip -6 -o addr show dev eth0 | grep \(prefix) | grep -qv tentative; do sleep 1; i=$((i+1)); done"
            + "; ip -6 -o addr show dev eth0 | grep \(prefix)"
    }

    @Test func ipv6GuestsConfigureThemselvesReachTheHostAndAreRoutedNotMasqueraded() async throws {
        let host = try TestNamespace("host")
        let outside = try TestNamespace("out")
        defer {
            host.destroy()
            outside.destroy()
        }
        try host.link("h-out", "10.79.0.1/24", to: outside, "o-host", "10.79.0.2/24")
        try host.run(["ip", "-6", "addr", "add", "fd00:79::1/64", "dev", "h-out", "nodad"])
        try outside.run(["ip", "-6", "addr", "add", "fd00:79::2/64", "dev", "o-host", "nodad"])
        try outside.run(["ip", "-6", "route", "add", "fd00:56::/64", "via", "fd00:79::1"])
        let daemon = try await TestDaemon(namespace: host)
        defer { daemon.tearDown() }
        let client = daemon.client
        _ = try await client.defineNetwork(
            try Self.networkSpec(#"{"name": "six", "mode": "nat", "address": "10.56.0.1/24", "address6": "fd00:56::1/64"}"#))
        let started = try await client.startNetwork("six")
        #expect(started.spec.subnet6?.cidr == "fd00:56::/64")
        #expect(try host.run(["ip", "-6", "addr", "show", "dev", try #require(started.spec.bridge)]).contains("fd00:56::1/64"))
        #expect(try host.run(["cat", "/proc/sys/net/ipv6/conf/all/forwarding"]).hasPrefix("1"))
        let shown = try await BerthRun.run(["net-info", "six"], state: daemon.stateDirectory).stdout
        #expect(shown.contains("fd00:56::1/64") && shown.contains("SLAAC"), "\(shown)")
        #expect(try await BerthRun.run(["net-list"], state: daemon.stateDirectory).stdout.contains("10.56.0.0/24 fd00:56::/64"))
        // SLAAC: the guest's address is made from its MAC (EUI-64).
        let guestAddress = "fd00:56::5054:ff:fe56:1"
        let guest = try Self.guest(
            "six", nics: [NICSpec(mode: .network, mac: MACAddress("52:54:00:56:00:01"), network: "six")],
            run: Self.waitForIPv6("fd00:56:") + "; ping6 -c1 -W3 fd00:56::1 >/dev/null && echo HOST6-OK"
                + "; ping6 -c1 -W3 fd00:79::2 >/dev/null && echo OUTSIDE6-OK")
        _ = try await client.define(guest)
        _ = try await client.perform(.start, on: "six")
        let log = try await daemon.waitForLog("six", "BERTH-GUEST-RUN-END", timeout: 180)
        #expect(log.contains("BERTH-GUEST-NET eth0 10.56.0."))
        let seen = IsolationTests.runOutput(log)
        #expect(seen.contains(guestAddress + "/64"), "\(seen)")
        #expect(seen.contains("HOST6-OK"), "\(seen)")
        #expect(seen.contains("OUTSIDE6-OK"), "\(seen)")
        // IPv6 is routed, not masqueraded: the outside reaches the guest by its own address.
        #expect(outside.attempt(["busybox", "ping", "-c1", "-W3", guestAddress]).status == 0)

        _ = try await client.perform(.destroy, on: "six")
        _ = try await client.destroyNetwork("six")
        Self.expectNothingLeft(in: host, links: ["lo", "h-out"])
        #expect(try host.run(["cat", "/proc/sys/net/ipv6/conf/all/forwarding"]).hasPrefix("0"))
    }

    /// An isolated network's IPv6: guests configure themselves and reach the host, but are told
    /// of no router. A DHCPv6 (stateful) network's dnsmasq starts with its range.
    @Test func isolatedIPv6HasNoDefaultRouteAndDHCPv6NetworksStart() async throws {
        let host = try TestNamespace("host")
        defer { host.destroy() }
        let daemon = try await TestDaemon(namespace: host)
        defer { daemon.tearDown() }
        let client = daemon.client
        _ = try await client.defineNetwork(
            try Self.networkSpec(#"{"name": "iso6", "mode": "isolated", "address": "10.59.0.1/24", "address6": "fd00:59::1/64"}"#))
        _ = try await client.defineNetwork(
            try Self.networkSpec(
                #"{"name": "dhcp6", "mode": "routed", "address": "10.60.0.1/24", "address6": "fd00:60::1/64", "dhcp6Start": "fd00:60::100", "dhcp6End": "fd00:60::1ff"}"#
            ))
        _ = try await client.startNetwork("iso6")
        let stateful = try await client.startNetwork("dhcp6")
        #expect(stateful.dnsmasqPID != nil)
        let config = try String(contentsOfFile: daemon.stateDirectory + "/run/networks/dhcp6/dnsmasq.conf", encoding: .utf8)
        #expect(config.contains("dhcp-range=fd00:60::100,fd00:60::1ff,64"), "\(config)")
        // IPv6 forwarding follows the routed network with IPv6, not the isolated one.
        #expect(try host.run(["cat", "/proc/sys/net/ipv6/conf/all/forwarding"]).hasPrefix("1"))
        _ = try await client.destroyNetwork("dhcp6")
        #expect(try host.run(["cat", "/proc/sys/net/ipv6/conf/all/forwarding"]).hasPrefix("0"))

        _ = try await client.define(
            try Self.guest(
                "iso6", nics: [NICSpec(mode: .network, mac: MACAddress("52:54:00:59:00:01"), network: "iso6")],
                run: Self.waitForIPv6("fd00:59:") + "; ping6 -c1 -W3 fd00:59::1 >/dev/null && echo HOST6-OK"
                    + "; ip -6 route | grep -q default && echo HAS-DEFAULT6 || echo NO-DEFAULT6"))
        _ = try await client.perform(.start, on: "iso6")
        let seen = IsolationTests.runOutput(try await daemon.waitForLog("iso6", "BERTH-GUEST-RUN-END", timeout: 180))
        #expect(seen.contains("fd00:59::5054:ff:fe59:1/64"), "\(seen)")
        #expect(seen.contains("HOST6-OK") && seen.contains("NO-DEFAULT6"), "\(seen)")
        _ = try await client.perform(.destroy, on: "iso6")
        _ = try await client.destroyNetwork("iso6")
        Self.expectNothingLeft(in: host, links: ["lo"])
    }

    /// Docker's way: iptables-nft's `filter` table, FORWARD policy drop, Docker's own rule.
    @Test func natGuestsGetOutThroughAForwardChainThatDropsAndItsRulesSurvive() async throws {
        let host = try TestNamespace("host")
        let outside = try TestNamespace("out")
        defer {
            host.destroy()
            outside.destroy()
        }
        try host.link("h-out", "10.80.0.1/24", to: outside, "o-host", "10.80.0.2/24")
        for tool in ["iptables", "ip6tables"] {
            guard host.attempt([tool, "-w", "-P", "FORWARD", "DROP"]).status == 0 else {
                Issue.record("\(tool) is missing: install it with 'apt-get install iptables' (scripts/install-host-deps).")
                return
            }
            try host.run([tool, "-w", "-N", "DOCKER-USER"])
            try host.run([tool, "-w", "-A", "FORWARD", "-j", "DOCKER-USER"])
        }
        let dockers = try host.run(["iptables", "-w", "-S"])
        let daemon = try await TestDaemon(namespace: host)
        defer { daemon.tearDown() }
        try Self.addressServer(in: outside, listen: "10.80.0.2:8080", directory: daemon.stateDirectory)
        let client = daemon.client
        _ = try await client.defineNetwork(
            try Self.networkSpec(#"{"name": "dock", "mode": "nat", "address": "10.57.0.1/24", "address6": "fd00:57::1/64"}"#))
        let bridge = try #require(try await client.startNetwork("dock").spec.bridge)
        for tool in ["iptables", "ip6tables"] {
            #expect(try host.run([tool, "-w", "-S", "FORWARD"]).contains("-i \(bridge) -m comment --comment berthnet_"))
        }
        _ = try await client.define(
            try Self.guest("dock", nics: [NICSpec(mode: .network, network: "dock", ip: "10.57.0.10")], run: Self.fetch("10.80.0.2", timeout: 5)))
        _ = try await client.perform(.start, on: "dock")
        let log = try await daemon.waitForLog("dock", "BERTH-GUEST-RUN-END", timeout: 180)
        #expect(IsolationTests.runOutput(log).contains("SEEN 10.80.0.1"), "\(IsolationTests.runOutput(log))")

        _ = try await client.perform(.destroy, on: "dock")
        _ = try await client.destroyNetwork("dock")
        // Berth's rules are gone; Docker's policy, chain and rule are as they were.
        #expect(try host.run(["iptables", "-w", "-S"]) == dockers)
        #expect(!(try host.run(["ip6tables", "-w", "-S"])).contains("berthnet_"))
    }

    @Test func theSeedsBridgedVifGetsItsAddressFromTheLANsRouterByMAC() async throws {
        let host = try TestNamespace("host")
        let router = try TestNamespace("rtr")
        defer {
            host.destroy()
            router.destroy()
        }
        // The host's xenbr0 with its LAN port; the router holds the seed's reservation.
        try host.run(["ip", "link", "add", "xenbr0", "type", "bridge"])
        try host.run(["ip", "link", "set", "xenbr0", "up"])
        try host.link("lan0", nil, to: router, "rt0", "10.60.0.1/24")
        try host.run(["ip", "link", "set", "lan0", "master", "xenbr0"])
        let daemon = try await TestDaemon(namespace: host)
        defer { daemon.tearDown() }
        let dnsmasq = ["/usr/sbin/dnsmasq", "/sbin/dnsmasq"].first { (path: String) in access(path, X_OK) == 0 } ?? "dnsmasq"
        try router.daemon(
            [
                dnsmasq, "--keep-in-foreground", "--no-resolv", "--port=0", "--interface=rt0", "--bind-interfaces",
                "--dhcp-range=10.60.0.100,10.60.0.200,255.255.255.0", "--dhcp-host=00:50:56:78:0a:1b,10.60.0.50",
                "--dhcp-leasefile=\(daemon.stateDirectory)/router.leases", "--pid-file=", "--user=root", "--log-facility=-",
            ], log: daemon.stateDirectory + "/router-dnsmasq.log")

        let config = daemon.stateDirectory + "/seed.cfg"
        try """
        name = "seed"
        memory = 256
        kernel = "\(GuestFixture.kernel)"
        ramdisk = "\(GuestFixture.initrd)"
        extra = "console=ttyS0 berth.net=dhcp"
        vif = [ "mac=00:50:56:78:0a:1b,bridge=xenbr0,script=vif-bridge" ]

        """.write(toFile: config, atomically: true, encoding: .utf8)
        let defined = try await BerthRun.run(["define", config], state: daemon.stateDirectory)
        #expect(defined.status == 0, "\(defined.stderr)")
        _ = try await daemon.client.perform(.start, on: "seed")
        let log = try await daemon.waitForLog("seed", "BERTH-GUEST-NET", timeout: 120)
        #expect(log.contains("BERTH-GUEST-NET eth0 10.60.0.50/24"))

        // The same bridge as a Berth network in bridge mode; a missing bridge is named.
        _ = try await daemon.client.defineNetwork(try Self.networkSpec(#"{"name": "seedlan", "mode": "bridge", "bridge": "xenbr0"}"#))
        #expect(try await daemon.client.startNetwork("seedlan").active)
        _ = try await daemon.client.defineNetwork(try Self.networkSpec(#"{"name": "nolan", "mode": "bridge", "bridge": "nobr0"}"#))
        let error = await #expect(throws: BerthError.self) { _ = try await daemon.client.startNetwork("nolan") }
        #expect(error?.code == .notFound && error?.message.contains("nobr0") == true)
        _ = try await daemon.client.perform(.destroy, on: "seed")
        #expect(!host.links().contains { $0.hasPrefix("btap") })
    }

    @Test func aRestartedBerthdAdoptsDnsmasqAndTheGuestsKeepTheirNetwork() async throws {
        let host = try TestNamespace("host")
        defer { host.destroy() }
        let daemon = try await TestDaemon(namespace: host)
        defer { daemon.tearDown() }
        let client = daemon.client
        _ = try await client.defineNetwork(try Self.networkSpec(#"{"name": "adopt", "mode": "nat", "address": "10.54.0.1/24"}"#))
        _ = try await client.startNetwork("adopt")
        _ = try await client.define(try Self.guest("keeper", nics: [NICSpec(mode: .network, network: "adopt", ip: "10.54.0.10")]))
        _ = try await client.perform(.start, on: "keeper")
        _ = try await daemon.waitForLog("keeper", "BERTH-GUEST-NET eth0 10.54.0.10/24", timeout: 120)
        let firstPID = try #require(try await client.network("adopt").dnsmasqPID)

        // berthd dies; the guest, its tap and dnsmasq stay; the next berthd adopts them.
        daemon.stop(signal: SIGKILL)
        #expect(kill(firstPID, 0) == 0)
        #expect(host.attempt(["busybox", "ping", "-c1", "-W3", "10.54.0.10"]).status == 0)
        try await daemon.start()
        #expect(try await client.network("adopt").dnsmasqPID == firstPID)
        #expect(try await client.info("keeper").state == .running)
        #expect(host.attempt(["busybox", "ping", "-c1", "-W3", "10.54.0.10"]).status == 0)

        // dnsmasq dies while berthd is down: the next berthd starts another.
        daemon.stop(signal: SIGKILL)
        kill(firstPID, SIGKILL)
        try await Task.sleep(for: .milliseconds(200))
        try await daemon.start()
        let secondPID = try #require(try await client.network("adopt").dnsmasqPID)
        #expect(secondPID != firstPID)

        // What users get told.
        let inUse = await #expect(throws: BerthError.self) { try await client.undefineNetwork("adopt") }
        #expect(inUse?.code == .wrongState && inUse?.message.contains("keeper") == true)
        _ = try await client.defineNetwork(try Self.networkSpec(#"{"name": "idle", "mode": "isolated", "address": "10.55.0.1/24"}"#))
        _ = try await client.define(try Self.guest("stranded", nics: [NICSpec(mode: .network, network: "idle")]))
        let inactive = await #expect(throws: BerthError.self) { _ = try await client.perform(.start, on: "stranded") }
        #expect(inactive?.message.contains("not active") == true)
        #expect(inactive?.remedy?.contains("berth net-start idle") == true)

        _ = try await client.perform(.destroy, on: "keeper")
        _ = try await client.destroyNetwork("adopt")
        // An autostart network comes up with berthd.
        _ = try await client.setNetworkAutostart("idle", true)
        daemon.stop()
        try await daemon.start()
        #expect(try await client.network("idle").active)
        #expect(try await client.network("adopt").active == false)
        _ = try await client.destroyNetwork("idle")
        Self.expectNothingLeft(in: host, links: ["lo"])
        try await client.undefineNetwork("adopt")
    }

    @Test func mistakesAreRefusedWithWhatToDoNext() async throws {
        let host = try TestNamespace("host")
        defer { host.destroy() }
        try host.run(["ip", "link", "add", "d0", "type", "veth", "peer", "name", "d1"])
        try host.run(["ip", "addr", "add", "10.90.0.1/24", "dev", "d0"])
        try host.run(["ip", "addr", "add", "192.168.122.7/24", "dev", "d0"])
        try host.run(["ip", "-6", "addr", "add", "fd00:90::1/64", "dev", "d0", "nodad"])
        try host.run(["ip", "link", "set", "d0", "up"])
        let daemon = try await TestDaemon(namespace: host)
        defer { daemon.tearDown() }
        let client = daemon.client
        // libvirt's `default`, defined at the first start as root, moved off a routed 192.168.122.0/24.
        let defaultNetwork = try await client.network("default")
        #expect(defaultNetwork.spec.mode == .nat && defaultNetwork.spec.subnet?.cidr == "192.168.123.0/24")
        #expect(!defaultNetwork.active && !defaultNetwork.spec.autostart)
        func refusal(_ body: () async throws -> Void) async -> BerthError? {
            await #expect(throws: BerthError.self) { try await body() }
        }
        _ = try await client.defineNetwork(try Self.networkSpec(#"{"name": "one", "address": "10.91.0.1/24"}"#))
        let overlap = await refusal { _ = try await client.defineNetwork(try Self.networkSpec(#"{"name": "two", "address": "10.91.0.129/25"}"#)) }
        #expect(overlap?.code == .alreadyExists && overlap?.message.contains("'one'") == true)
        // A subnet the host already routes is refused at start, naming the route.
        _ = try await client.defineNetwork(try Self.networkSpec(#"{"name": "clash", "address": "10.90.0.254/24"}"#))
        let routed = await refusal { _ = try await client.startNetwork("clash") }
        #expect(routed?.message.contains("d0") == true && routed?.remedy != nil)
        #expect(!host.links().contains { $0.hasPrefix("virbr") })
        // The same for IPv6: a prefix the host routes, and one another network has.
        _ = try await client.defineNetwork(
            try Self.networkSpec(#"{"name": "clash6", "address": "10.93.0.1/24", "address6": "fd00:90::2/64"}"#))
        let routed6 = await refusal { _ = try await client.startNetwork("clash6") }
        #expect(routed6?.message.contains("fd00:90::/64") == true && routed6?.message.contains("d0") == true, "\(String(describing: routed6))")
        #expect(!host.links().contains { $0.hasPrefix("virbr") })
        // A route learned from router advertisements would be lost once IPv6 forwarding is on.
        try host.run(["ip", "-6", "route", "add", "2001:db8:77::/64", "dev", "d0", "proto", "ra"])
        _ = try await client.defineNetwork(
            try Self.networkSpec(#"{"name": "fwd6", "mode": "routed", "address": "10.95.0.1/24", "address6": "fd00:95::1/64"}"#))
        let losing = await refusal { _ = try await client.startNetwork("fwd6") }
        #expect(losing?.message.contains("d0") == true && losing?.remedy?.contains("net.ipv6.conf.d0.accept_ra=2") == true)
        #expect(!host.links().contains { $0.hasPrefix("virbr") })
        try host.run(["sysctl", "-q", "-w", "net.ipv6.conf.d0.accept_ra=2"])
        #expect(try await client.startNetwork("fwd6").active)
        _ = try await client.destroyNetwork("fwd6")
        let overlap6 = await refusal {
            _ = try await client.defineNetwork(
                try Self.networkSpec(#"{"name": "again6", "address": "10.94.0.1/24", "address6": "fd00:90::3/64"}"#))
        }
        #expect(overlap6?.code == .alreadyExists && overlap6?.message.contains("'clash6'") == true)
        let outside = await refusal { _ = try await client.addReservation(try DHCPHost(parsing: "52:54:00:00:00:09,10.92.0.5"), network: "one") }
        #expect(outside?.code == .invalidArgument && outside?.remedy?.contains("10.91.0.0/24") == true)
        _ = try await client.define(try Self.guest("first", nics: [NICSpec(mode: .network, network: "one", ip: "10.91.0.20")]))
        let claimed = await refusal {
            _ = try await client.define(try Self.guest("second", nics: [NICSpec(mode: .network, network: "one", ip: "10.91.0.20")]))
        }
        #expect(claimed?.code == .alreadyExists && claimed?.message.contains("first") == true)
        let notXML = await refusal { _ = try await client.network("nosuch") }
        #expect(notXML?.remedy?.contains("net-list") == true)
    }
}
