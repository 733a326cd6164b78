import BerthClient
import BerthModel
import Foundation
import Testing

@testable import BerthCLI
@testable import BerthServer

/// Issue 12, remote hosts: a berthd in a "remote" network namespace, reached from a "local"
/// one over a veth pair (10.213.0.1 ↔ 10.213.0.2, addresses only inside the two namespaces),
/// by the real CLI: over TLS with client certificates, and over ssh with Debian's sshd.
@Suite(.serialized, .bootsGuests) struct RemoteHostTests {
    /// The two namespaces and the link between them.
    struct Hosts {
        let local: TestNamespace
        let remote: TestNamespace
        let scratch: String

        init() throws {
            local = try TestNamespace("loc")
            remote = try TestNamespace("rem")
            scratch = try DaemonStartupTests.scratch()
            try local.link("rl0", "10.213.0.1/24", to: remote, "rr0", "10.213.0.2/24")
        }

        /// Waits until something accepts connections on `address`:`port` as seen from the local namespace.
        func waitForListener(_ address: String, _ port: Int) async throws {
            let deadline = Date().addingTimeInterval(60)
            while local.attempt(["bash", "-c", ": </dev/tcp/\(address)/\(port)"]).status != 0 {
                guard Date() < deadline else {
                    Issue.record("Nothing listens on \(address):\(port) in the remote namespace after 60 s.")
                    throw BerthError(.timeout, "listener")
                }
                try await Task.sleep(for: .milliseconds(100))
            }
        }

        func destroy() {
            local.destroy()
            remote.destroy()
            try? FileManager.default.removeItem(atPath: scratch)
        }

        /// The environment the CLI gets in the local namespace: `environment` plus PATH, HOME and
        /// an empty state directory (no local token, no local socket, nothing found by chance).
        func clientEnvironment(_ environment: [String: String]) -> [String: String] {
            var base = ["PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": scratch]
            base["BERTH_STATE_DIR"] = scratch + "/client-state"
            return base.merging(environment) { $1 }
        }

        /// `berth console …` inside the local namespace, typed into by the test.
        func console(_ arguments: [String], environment: [String: String] = [:]) throws -> ConsoleSession {
            try ConsoleSession(
                "/usr/bin/env", ["ip", "netns", "exec", local.name, TestDaemon.berthBinary, "console"] + arguments,
                environment: clientEnvironment(environment))
        }

        /// The berth CLI run inside the local namespace, with `environment` only (plus PATH and HOME).
        func berth(_ arguments: [String], environment: [String: String] = [:]) async throws -> BerthRun {
            let arguments = ["ip", "netns", "exec", local.name, TestDaemon.berthBinary] + arguments
            let environment = clientEnvironment(environment)
            return try await withCheckedThrowingContinuation { continuation in
                Thread {
                    continuation.resume(
                        with: Result { try BerthRun.execute("/usr/bin/env", arguments, environment: environment, timeout: 120) })
                }.start()
            }
        }
    }

    /// The remote guest's serial console from the local namespace: a command typed, its answer
    /// read, Ctrl-] detaches.
    static func typeIntoTheRemoteConsole(_ session: ConsoleSession) async throws {
        try await session.waitFor("Escape character is ^]", inMessages: true)
        session.type("echo far-$((6*7))\r")
        try await session.waitFor("far-42")
        session.type([0x1D])
        #expect(try await session.waitForExit() == 0, "\(session.messages)")
    }

    /// `berth tls init` into `directory`.
    static func tlsInit(_ directory: String, _ extra: [String] = []) throws {
        let run = try BerthRun.execute(TestDaemon.berthBinary, ["tls", "init", "--dir", directory] + extra)
        #expect(run.status == 0, "berth tls init failed: \(run.stderr)")
    }

    @Test func listStartDominfoDestroyOverTLSWithClientCertificates() async throws {
        let hosts = try Hosts()
        defer { hosts.destroy() }
        let pki = hosts.scratch + "/pki"
        try Self.tlsInit(pki, ["--server-name", "10.213.0.2", "--client", "tester"])
        for file in ["ca-cert.pem", "server-cert.pem", "client-cert.pem", "private/ca-key.pem", "private/server-key.pem", "private/client-key.pem"] {
            #expect(FileManager.default.fileExists(atPath: pki + "/" + file), "\(file) missing")
        }
        var info = stat()
        #expect(stat(pki + "/private/client-key.pem", &info) == 0 && info.st_mode & 0o077 == 0)
        let again = try BerthRun.execute(TestDaemon.berthBinary, ["tls", "init", "--dir", pki])
        #expect(again.status == 4 && again.stderr.contains("--force"), "\(again.stderr)")

        let server = TLSFiles.server(in: pki)
        let daemon = try await TestDaemon(
            extraArguments: ["--listen", "10.213.0.2:8000", "--tls-cert", server.certificate, "--tls-key", server.key, "--tls-ca", server.ca],
            namespace: hosts.remote)
        defer { daemon.tearDown() }
        _ = try await daemon.client.define(try GuestFixture.spec("far1"))
        try await hosts.waitForListener("10.213.0.2", 8000)
        let url = "https://10.213.0.2:8000"
        let client = TLSFiles.client(in: pki)
        let explicit = ["--tls-ca", client.ca, "--tls-cert", client.certificate, "--tls-key", client.key]

        // The CLI finds tls init's files by BERTH_PKI_DIR; options before the subcommand (virsh's habit).
        let list = try await hosts.berth(["--connect", url, "list", "--all"], environment: ["BERTH_PKI_DIR": pki])
        #expect(list.status == 0 && list.stdout.contains("far1"), "\(list.stderr)")
        let start = try await hosts.berth(["start", "far1", "--connect", url] + explicit)
        #expect(start.status == 0, "\(start.stderr)")
        let running = try await hosts.berth(["-c", url, "dominfo", "far1"], environment: ["BERTH_PKI_DIR": pki])
        #expect(running.status == 0 && running.stdout.contains("running"), "\(running.stdout) \(running.stderr)")
        _ = try await daemon.waitForLog("far1", "berth-guest# ")
        try await Self.typeIntoTheRemoteConsole(try hosts.console(["far1", "--connect", url], environment: ["BERTH_PKI_DIR": pki]))
        let destroy = try await hosts.berth(["destroy", "far1", "--connect", url] + explicit)
        #expect(destroy.status == 0, "\(destroy.stderr)")
        _ = try await daemon.waitForState("far1", .shutoff)

        // The token alone (no client certificate) is accepted too; only the CA file is needed.
        let caOnly = hosts.scratch + "/ca-only"
        try FileManager.default.createDirectory(atPath: caOnly, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: client.ca, toPath: caOnly + "/ca-cert.pem")
        let byToken = try await hosts.berth(
            ["list", "--all", "--connect", url], environment: ["BERTH_PKI_DIR": caOnly, "BERTH_TOKEN": daemon.token])
        #expect(byToken.status == 0 && byToken.stdout.contains("far1"), "\(byToken.stderr)")

        // Neither certificate nor token; a wrong token: 401, said as what to do from here.
        let nothing = try await hosts.berth(["list", "--connect", url], environment: ["BERTH_PKI_DIR": caOnly])
        #expect(nothing.status == 7 && nothing.stderr.contains("no API token") && nothing.stderr.contains("--tls-cert"), "\(nothing.stderr)")
        let wrongToken = try await hosts.berth(["list", "--connect", url], environment: ["BERTH_PKI_DIR": caOnly, "BERTH_TOKEN": "0123"])
        #expect(
            wrongToken.status == 7 && wrongToken.stderr.contains("token is wrong") && wrongToken.stderr.contains("BERTH_TOKEN"),
            "\(wrongToken.stderr)")

        // Another site's CA: its CA does not know berthd's certificate, berthd does not know its client's.
        let other = hosts.scratch + "/other"
        try Self.tlsInit(other, ["--server-name", "10.213.0.2"])
        let otherClient = TLSFiles.client(in: other)
        let wrongCA = try await hosts.berth([
            "list", "--connect", url, "--tls-ca", otherClient.ca, "--tls-cert", client.certificate, "--tls-key", client.key,
        ])
        #expect(wrongCA.status == 9 && wrongCA.stderr.contains("not by the CA in \(otherClient.ca)"), "\(wrongCA.stderr)")
        let foreignClient = try await hosts.berth(
            ["list", "--connect", url, "--tls-ca", client.ca, "--tls-cert", otherClient.certificate, "--tls-key", otherClient.key])
        #expect(foreignClient.status == 7 && foreignClient.stderr.contains("refused this client's certificate"), "\(foreignClient.stderr)")

        // A host nobody answers for.
        let unreachable = try await hosts.berth(["list", "--connect", "https://10.213.0.9:8000"], environment: ["BERTH_PKI_DIR": pki])
        #expect(
            unreachable.status == 9 && unreachable.stderr.contains("10.213.0.9") && unreachable.stderr.contains("reachable"), "\(unreachable.stderr)")
    }

    @Test func anExpiredServerCertificateIsNamedAsSuch() async throws {
        let hosts = try Hosts()
        defer { hosts.destroy() }
        let pki = hosts.scratch + "/pki"
        try Self.tlsInit(pki, ["--server-name", "10.213.0.2"])
        // A server certificate from the same CA that ended yesterday.
        let authority = try CertificateAuthority.load(certificate: pki + "/ca-cert.pem", key: TLSFiles.caKey(in: pki))
        try authority.write(
            .server, names: ["10.213.0.2"], days: 1, from: Date().addingTimeInterval(-3 * 86400),
            to: TLSFiles(ca: pki + "/ca-cert.pem", certificate: pki + "/old-cert.pem", key: pki + "/private/old-key.pem"))
        let daemon = try await TestDaemon(
            extraArguments: [
                "--listen", "10.213.0.2:8000", "--tls-cert", pki + "/old-cert.pem", "--tls-key", pki + "/private/old-key.pem", "--tls-ca",
                pki + "/ca-cert.pem",
            ],
            namespace: hosts.remote)
        defer { daemon.tearDown() }
        try await hosts.waitForListener("10.213.0.2", 8000)
        let run = try await hosts.berth(["list", "--connect", "https://10.213.0.2:8000"], environment: ["BERTH_PKI_DIR": pki])
        #expect(run.status == 9 && run.stderr.contains("expired on") && run.stderr.contains("tls init --force"), "\(run.stderr)")
    }

    @Test func berthdRefusesANonLoopbackListenerWithoutTLS() throws {
        let root = try DaemonStartupTests.scratch()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let refused = try #require(
            try DaemonStartupTests.runBerthd(["--state-dir", root + "/state", "--listen", "10.213.0.2:8000", "--media-listen", "none"]))
        #expect(refused.status == 2, "\(refused.stderr)")
        #expect(
            refused.stderr.contains("10.213.0.2:8000") && refused.stderr.contains("without TLS") && refused.stderr.contains("berth tls init")
                && refused.stderr.contains("--tls-cert"), "\(refused.stderr)")
        // Nothing was made in the state directory before the refusal.
        #expect(!FileManager.default.fileExists(atPath: root + "/state/catalog.sqlite"))

        // xend-relocation-server on every interface is a listener off loopback too.
        let config = root + "/xend-config.sxp"
        try "(xend-http-server no)\n(xend-relocation-server yes)\n(xend-relocation-hosts-allow '^localhost$')\n".write(
            toFile: config, atomically: true, encoding: .utf8)
        let relocation = try #require(
            try DaemonStartupTests.runBerthd(["--state-dir", root + "/state2", "--config", config, "--media-listen", "none"]))
        #expect(relocation.status == 2 && relocation.stderr.contains("relocation listener on 0.0.0.0:8002"), "\(relocation.stderr)")
        #expect(HostsAllowMiddleware.allows("10.213.0.1", patterns: ["^10\\.213\\.0\\.1$"]))
        #expect(!HostsAllowMiddleware.allows("10.213.0.11", patterns: ["^10\\.213\\.0\\.1$"]))
        #expect(HostsAllowMiddleware.allows("127.0.0.1", patterns: ["^localhost$"]))
    }

    @Test func connectionOptionsBeforeTheSubcommandAreMovedAfterIt() throws {
        #expect(Berth.hoistingConnectionOptions(["-c", "ssh://h", "list", "--all"]) == ["list", "--all", "--connect", "ssh://h"])
        #expect(
            Berth.hoistingConnectionOptions(["--connect=https://h", "--tls-ca", "ca.pem", "start", "x"])
                == ["start", "x", "--connect=https://h", "--tls-ca", "ca.pem"])
        #expect(Berth.hoistingConnectionOptions(["list", "--connect", "x"]) == ["list", "--connect", "x"])
        let target = try #require(
            {
                if case .ssh(let target) = try BerthClient.resolve(url: "ssh://root@h:2222/run/b.sock?berth=/opt/berth").endpoint { return target }
                return nil
            }())
        #expect(target.argv.suffix(10) == ["-p", "2222", "-l", "root", "--", "h", "/opt/berth", "proxy-stdio", "--socket", "/run/b.sock"])
        #expect(throws: BerthError.self) { try BerthClient.resolve(url: "ssh://h/run/b.sock;reboot") }
    }

    /// Keys, a known_hosts naming the remote's host key, and Debian's sshd started in the
    /// remote namespace on 10.213.0.2:22, accepting root with `client_key`; returns the keys'
    /// directory. sshd itself is waited for with `waitForSSHD`.
    static func startSSHD(_ hosts: Hosts) throws -> String {
        guard access("/usr/sbin/sshd", X_OK) == 0 else {
            Issue.record("sshd is missing: install it with 'scripts/install-host-deps' (openssh-server).")
            throw BerthError(.notFound, "sshd")
        }
        let keys = hosts.scratch + "/ssh"
        try FileManager.default.createDirectory(atPath: keys, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        for key in ["host_key", "client_key"] {
            let made = try BerthRun.execute("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", key, "-f", keys + "/" + key])
            #expect(made.status == 0, "\(made.stderr)")
        }
        try FileManager.default.copyItem(atPath: keys + "/client_key.pub", toPath: keys + "/authorized_keys")
        let hostKey = try String(contentsOfFile: keys + "/host_key.pub", encoding: .utf8).split(separator: " ").prefix(2).joined(separator: " ")
        try "10.213.0.2 \(hostKey)\n".write(toFile: keys + "/known_hosts", atomically: true, encoding: .utf8)
        try "".write(toFile: keys + "/empty_known_hosts", atomically: true, encoding: .utf8)
        try """
        ListenAddress 10.213.0.2:22
        HostKey \(keys)/host_key
        AuthorizedKeysFile \(keys)/authorized_keys
        PermitRootLogin prohibit-password
        PasswordAuthentication no
        KbdInteractiveAuthentication no
        UsePAM no
        StrictModes no
        PidFile \(keys)/sshd.pid

        """.write(toFile: keys + "/sshd_config", atomically: true, encoding: .utf8)
        // sshd's privilege-separation directory (Debian's service unit makes it).
        try FileManager.default.createDirectory(atPath: "/run/sshd", withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        try hosts.remote.daemon(["/usr/sbin/sshd", "-D", "-e", "-f", keys + "/sshd_config"], log: keys + "/sshd.log")
        return keys
    }

    @Test func listStartDominfoDestroyOverSSH() async throws {
        let hosts = try Hosts()
        defer { hosts.destroy() }
        let keys = try Self.startSSHD(hosts)
        let daemon = try await TestDaemon(namespace: hosts.remote)
        defer { daemon.tearDown() }
        _ = try await daemon.client.define(try GuestFixture.spec("far2"))
        try await Self.waitForSSHD(hosts, log: keys + "/sshd.log")

        let url = "ssh://root@10.213.0.2\(daemon.socketPath)?berth=\(TestDaemon.berthBinary)"
        // BERTH_SSH: the ssh command, here without the user's own ssh config; --ssh-option for the rest.
        let ssh = ["BERTH_SSH": "ssh -F /dev/null -o BatchMode=yes -o ConnectTimeout=30"]
        let options = [
            "--ssh-option", "UserKnownHostsFile=\(keys)/known_hosts", "--ssh-option", "IdentityFile=\(keys)/client_key", "--ssh-option",
            "IdentitiesOnly=yes",
        ]
        let list = try await hosts.berth(["--connect", url] + options + ["list", "--all"], environment: ssh)
        #expect(list.status == 0 && list.stdout.contains("far2"), "\(list.stdout) \(list.stderr)")
        let start = try await hosts.berth(["start", "far2", "--connect", url] + options, environment: ssh)
        #expect(start.status == 0, "\(start.stderr)")
        let info = try await hosts.berth(["dominfo", "far2", "--connect", url] + options, environment: ssh)
        #expect(info.status == 0 && info.stdout.contains("running"), "\(info.stdout) \(info.stderr)")
        // A streaming response (the console log) comes through the ssh pipes as well.
        _ = try await daemon.waitForLog("far2", "BERTH-GUEST-READY")
        let log = try await hosts.berth(["log", "far2", "--connect", url] + options, environment: ssh)
        #expect(log.status == 0 && log.stdout.contains("BERTH-GUEST-READY"), "\(log.stderr)")
        _ = try await daemon.waitForLog("far2", "berth-guest# ")
        try await Self.typeIntoTheRemoteConsole(try hosts.console(["far2", "--connect", url] + options, environment: ssh))
        let destroy = try await hosts.berth(["destroy", "far2", "--connect", url] + options, environment: ssh)
        #expect(destroy.status == 0, "\(destroy.stderr)")
        _ = try await daemon.waitForState("far2", .shutoff)

        // An unknown host key, a key sshd does not accept, a socket where no berthd listens.
        let unknownKey = try await hosts.berth(
            [
                "list", "--connect", url, "--ssh-option", "UserKnownHostsFile=\(keys)/empty_known_hosts", "--ssh-option", "StrictHostKeyChecking=yes",
                "--ssh-option", "IdentityFile=\(keys)/client_key",
            ], environment: ssh)
        #expect(unknownKey.status == 9 && unknownKey.stderr.contains("host key"), "\(unknownKey.stderr)")
        let wrongKey = try await hosts.berth(
            [
                "list", "--connect", url, "--ssh-option", "UserKnownHostsFile=\(keys)/known_hosts", "--ssh-option", "IdentityFile=\(keys)/host_key",
                "--ssh-option", "IdentitiesOnly=yes",
            ],
            environment: ssh)
        #expect(wrongKey.status == 7 && wrongKey.stderr.contains("Permission denied"), "\(wrongKey.stderr)")
        let noDaemon = try await hosts.berth(
            ["list", "--connect", "ssh://root@10.213.0.2/tmp/no-berthd.sock?berth=\(TestDaemon.berthBinary)"] + options, environment: ssh)
        #expect(noDaemon.status == 9 && noDaemon.stderr.contains("Start berthd on 10.213.0.2"), "\(noDaemon.stderr)")
    }

    /// `berth migrate --to ssh://…`: the source berthd reaches the destination's API through
    /// ssh and `berth proxy-stdio` (its own `--migration-ssh-option`s), the guest's memory
    /// follows over the destination's migration listener, and its counter goes on there.
    @Test func aRunningGuestMigratesOverSSH() async throws {
        let hosts = try Hosts()
        defer { hosts.destroy() }
        let keys = try Self.startSSHD(hosts)
        let destination = try await TestDaemon(extraArguments: ["--migration-listen", "10.213.0.2"], namespace: hosts.remote)
        defer { destination.tearDown() }
        let sshOptions = [
            "UserKnownHostsFile=\(keys)/known_hosts", "IdentityFile=\(keys)/client_key", "IdentitiesOnly=yes", "BatchMode=yes",
            "ConnectTimeout=30",
        ]
        let source = try await TestDaemon(
            extraArguments: sshOptions.flatMap { ["--migration-ssh-option", $0] }, namespace: hosts.local)
        defer { source.tearDown() }
        _ = try await source.client.define(try SaveRestoreTests.counterSpec("roam"))
        let started = try await source.client.perform(.start, on: "roam")
        _ = try await source.waitForLog("roam", "tick 2")
        try await Self.waitForSSHD(hosts, log: keys + "/sshd.log")

        let url = "ssh://root@10.213.0.2\(destination.socketPath)?berth=\(TestDaemon.berthBinary)"
        let run = try await BerthRun.run(["migrate", "roam", "--to", url, "--live"], state: source.stateDirectory)
        #expect(run.status == 0, "\(run.stdout)\n\(run.stderr)")
        let there = try await destination.client.info("roam")
        #expect(there.state == .running)
        #expect(try await source.client.info("roam").state == .shutoff)
        #expect(qemuProcesses(uuid: started.spec.uuid) == [try #require(there.pid)])
        let at = try #require(SaveRestoreTests.lastTick(try await destination.log("roam")))
        let ticks = SaveRestoreTests.ticks(try await destination.waitForLog("roam", "tick \(at + 2)"))
        #expect(ticks == Array(0..<ticks.count), "the counter restarted or skipped: \(ticks)")
        _ = try await destination.client.perform(.destroy, on: "roam")
    }

    /// sshd is up when its log says so (or a connection is accepted on port 22).
    static func waitForSSHD(_ hosts: Hosts, log: String) async throws {
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            if text.contains("Server listening") { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        Issue.record("sshd did not start in the remote namespace: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
        throw BerthError(.timeout, "sshd")
    }
}
