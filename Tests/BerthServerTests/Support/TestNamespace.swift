import BerthModel
import BerthQEMU
import Foundation
import Testing

/// A network namespace a test makes (`ip netns add`), so networking tests never touch the
/// machine's own interfaces, routes or nft tables: berthd, its guests and its dnsmasq run in
/// one; others play "the outside", "the router" and "the LAN", joined by veth pairs.
/// `destroy()` kills every process in it and deletes it (its links and nft tables go with it).
final class TestNamespace: @unchecked Sendable {
    // Set once in init, never mutated.
    let name: String

    init(_ role: String) throws {
        name = "berth-\(role)-" + String(UUID().uuidString.prefix(6)).lowercased()
        try Self.requireTools()
        try Self.host(["ip", "netns", "add", name])
        try run(["ip", "link", "set", "lo", "up"])
    }

    /// The tools networking tests need, or a failure with the command that installs them.
    static func requireTools() throws {
        for (tool, package) in [("ip", "iproute2"), ("nft", "nftables"), ("dnsmasq", "dnsmasq-base"), ("busybox", "busybox")]
        where !["/usr/sbin/", "/usr/bin/", "/sbin/", "/bin/"].contains(where: { access($0 + tool, X_OK) == 0 }) {
            Issue.record("\(tool) is missing: install it with 'apt-get install \(package)' (scripts/install-host-deps).")
            throw BerthError(.unavailable, "\(tool) missing")
        }
        guard getuid() == 0 else {
            Issue.record("Networking tests make network namespaces and need root: run 'swift test' as root.")
            throw BerthError(.unavailable, "not root")
        }
    }

    /// Runs a command on the host (only `ip netns` and `ip link` calls that make or move a
    /// test's own links).
    @discardableResult
    static func host(_ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        let out = Pipe()
        process.standardOutput = out
        process.standardError = out
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        guard process.terminationStatus == 0 else {
            throw BerthError(.internal, "\(arguments.joined(separator: " ")) failed: \(text)")
        }
        return text
    }

    /// Runs a command inside the namespace and returns its output.
    @discardableResult
    func run(_ arguments: [String]) throws -> String {
        try Self.host(["ip", "netns", "exec", name] + arguments)
    }

    /// Like `run`, without failing: the exit status and output.
    func attempt(_ arguments: [String]) -> (status: Int32, output: String) {
        do { return (0, try run(arguments)) } catch let error as BerthError { return (1, error.message) } catch {
            return (1, "\(error)")
        }
    }

    /// Starts a long-running server (dnsmasq, busybox httpd) in the namespace, in the
    /// foreground with its output in `log`; `destroy()` kills it with everything else there.
    /// Started by Berth's own runner, not `Process`: Foundation watches a child through a
    /// descriptor it inherits, and dnsmasq closes every inherited descriptor, which Foundation
    /// takes for an exit and then blocks in waitpid, reaping no other child of the tests.
    func daemon(_ arguments: [String], log: String) throws {
        let fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw BerthError(.internal, "cannot write \(log)") }
        defer { close(fd) }
        let ip = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip"].first { (path: String) in access(path, X_OK) == 0 } ?? "/usr/sbin/ip"
        _ = try Spawn.launch([ip, "netns", "exec", name] + arguments, passing: [], output: fd)
    }

    /// A veth pair from this namespace (`local`, with `address`) to `peer` (`remote`, with
    /// `peerAddress`); either address may be nil (a port to put on a bridge).
    func link(_ local: String, _ address: String?, to peer: TestNamespace, _ remote: String, _ peerAddress: String?) throws {
        try run(["ip", "link", "add", local, "type", "veth", "peer", "name", remote, "netns", peer.name])
        if let address { try run(["ip", "addr", "add", address, "dev", local]) }
        if let peerAddress { try peer.run(["ip", "addr", "add", peerAddress, "dev", remote]) }
        try run(["ip", "link", "set", local, "up"])
        try peer.run(["ip", "link", "set", remote, "up"])
    }

    /// Interface names in the namespace.
    func links() -> [String] {
        ((try? run(["ip", "-o", "link", "show"])) ?? "").split(separator: "\n").compactMap { line in
            line.split(separator: ":").dropFirst().first.map { String($0.trimmingCharacters(in: .whitespaces).split(separator: "@")[0]) }
        }
    }

    /// PIDs of processes in the namespace.
    func pids() -> [Int32] {
        ((try? Self.host(["ip", "netns", "pids", name])) ?? "").split(separator: "\n").compactMap { Int32($0) }
    }

    /// nft table names in the namespace.
    func nftTables() -> [String] {
        ((try? run(["nft", "list", "tables"])) ?? "").split(separator: "\n").map(String.init)
    }

    func destroy() {
        for pid in pids() { kill(pid, SIGKILL) }
        _ = try? Self.host(["ip", "netns", "del", name])
    }
}
