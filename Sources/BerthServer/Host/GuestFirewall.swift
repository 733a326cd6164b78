import BerthModel
import BerthQEMU
import FoundationEssentials
import Glibc

/// Keeps guests off the host's own services.
///
/// Under user-mode networking a guest reaches the host's loopback as 10.0.2.2, through
/// sockets its QEMU opens; a guest that escapes into its QEMU can open any socket. Since every
/// guest's QEMU runs as a user from this daemon's block (`GuestIdentity`), one nftables rule
/// tells guest traffic apart by socket owner: to any address of this host, guests reach the
/// install-media listener and DNS (slirp forwards its DNS to the host's resolver), and nothing
/// else: not the API, not another guest's VNC, not sshd. It needs root, as running guests
/// under their own users does.
struct GuestFirewall: Sendable {
    /// One table per daemon, named after its guest ID block, so daemons never touch each
    /// other's rules (and a test's daemon never touches the host's).
    let table: String
    let firstUID: UInt32
    let lastUID: UInt32
    let mediaPorts: [Int]

    init(guestIDBlock: UInt32, mediaPorts: [Int]) {
        table = "berthd_\(guestIDBlock)"
        firstUID = guestIDBlock
        lastUID = guestIDBlock + GuestIdentity.blockSize - 1
        self.mediaPorts = mediaPorts
    }

    /// The ruleset, replacing this daemon's table atomically (create, delete, create again in
    /// one `nft -f` transaction, so there is no moment without the rule).
    var ruleset: String {
        let owners = "meta skuid \(firstUID)-\(lastUID)"
        let guests = "\(owners) fib daddr type local"
        // Answers on connections others opened to a guest (a VNC display on TCP) pass; only
        // what a guest's QEMU opens itself is judged.
        var rules = ["        \(owners) ct state established,related accept\n"]
        rules += mediaPorts.map { "        \(guests) tcp dport \($0) accept\n" }
        rules.append("        \(guests) udp dport 53 accept\n")
        rules.append("        \(guests) meta l4proto tcp counter reject with tcp reset\n")
        rules.append("        \(guests) counter reject\n")
        return """
            table inet \(table) {
            }
            delete table inet \(table)
            table inet \(table) {
                chain output {
                    type filter hook output priority filter; policy accept;
            \(rules.joined())    }
            }

            """
    }

    /// Loads the rules. Guests must never run unconfined, so a failure stops berthd's start.
    func apply(runtimeDirectory: String) async throws {
        guard let nft = ["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft"].first(where: { (path: String) in access(path, X_OK) == 0 }) else {
            throw BerthError(
                .unavailable, "nft is not installed; berthd needs it to keep guests off the host's own services.",
                remedy: "Install it with 'apt-get install nftables'.")
        }
        let file = runtimeDirectory + "/guest-firewall.nft"
        do {
            try ruleset.write(toFile: file, atomically: true, encoding: .utf8)
        } catch {
            throw BerthError(.unavailable, "Cannot write \(file): \(BerthError.reason(error))")
        }
        let outcome = try await Spawn.run([nft, "-f", file], timeout: .seconds(30))
        guard outcome.status == 0 else {
            throw BerthError(
                .unavailable, "nft refused the guest firewall: \(outcome.output.prefix(500))",
                remedy: "Check that the kernel has nf_tables (modprobe nf_tables) and that berthd runs as root.")
        }
        // Tests and administrators find the table's name here to remove it after the daemon.
        try? (table + "\n").write(toFile: runtimeDirectory + "/guest-firewall.table", atomically: true, encoding: .utf8)
    }
}
