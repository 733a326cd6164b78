import BerthModel
import BerthPOSIX
import BerthQEMU
import FoundationEssentials
import Glibc
import NIOCore
import NIOPosix
import Synchronization

/// `ssh [options] HOST berth proxy-stdio [--socket PATH]`: one HTTP exchange over the child's
/// standard input and output, as virsh's `qemu+ssh://` runs `virt-ssh-helper`. ssh's own
/// messages (host key, authentication, an unreachable host, a missing `berth`) are collected
/// from its standard error and become the error when no answer comes.
final class SSHChild: Sendable {
    let target: SSHTarget
    private let toChild: Int32
    private let fromChild: Int32
    /// ssh's exit status and standard error, once it has exited.
    private let ended = Mutex<(status: Int32, messages: String)?>(nil)

    private init(target: SSHTarget, toChild: Int32, fromChild: Int32) {
        self.target = target
        self.toChild = toChild
        self.fromChild = fromChild
    }

    static func start(_ target: SSHTarget) throws -> SSHChild {
        var argv = target.argv
        guard let ssh = Spawn.find(argv[0]) else {
            throw BerthError(
                .unavailable, "'\(argv[0])' is not installed here, and ssh:// connections run it.",
                remedy: "Install it with 'apt-get install openssh-client', or name the ssh program in BERTH_SSH.")
        }
        argv[0] = ssh
        // A pipe to an ssh that already ended must give EPIPE (and the error below), not kill
        // the CLI with SIGPIPE; sockets have MSG_NOSIGNAL, pipes do not. Spawn resets it in children.
        signal(SIGPIPE, SIG_IGN)
        var input: [Int32] = [-1, -1]
        var output: [Int32] = [-1, -1]
        var errors: [Int32] = [-1, -1]
        guard pipe(&input) == 0, pipe(&output) == 0, pipe(&errors) == 0 else {
            throw BerthError(.internal, "pipe failed: \(String(cString: strerror(errno)))")
        }
        for fd in input + output + errors { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        // ssh needs the user's environment (HOME, SSH_AUTH_SOCK): it is the user's own program.
        let environment = ProcessInfo.processInfo.environment.map { "\($0.key)=\($0.value)" }
        let pid: Int32
        do {
            pid = try Spawn.start(argv, stdin: input[0], stdout: output[1], stderr: errors[1], environment: environment)
        } catch {
            (input + output + errors).forEach { close($0) }
            throw error
        }
        [input[0], output[1], errors[1]].forEach { close($0) }
        let child = SSHChild(target: target, toChild: input[1], fromChild: output[0])
        let messages = errors[0]
        do {
            try startThread(named: "berth-ssh") { child.collect(pid: pid, errors: messages) }
        } catch {
            kill(pid, SIGKILL)
            throw error
        }
        return child
    }

    /// Reads ssh's standard error to its end (capped) and reaps it.
    private func collect(pid: Int32, errors: Int32) {
        var text: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(errors, $0.baseAddress, $0.count) }
            if count < 0, errno == EINTR { continue }
            guard count > 0 else { break }
            if text.count < 16 * 1024 { text += buffer[0..<count] }
        }
        close(errors)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0, errno == EINTR {}
        let code = status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        ended.withLock { $0 = (code, String(decoding: text, as: UTF8.self)) }
    }

    /// A channel over ssh's pipes, with `setup`'s protocol on it; NIO owns (and closes) them
    /// from here.
    func connect<Output: Sendable>(setup: @escaping @Sendable (any Channel) -> EventLoopFuture<Output>) async throws -> Output {
        do {
            return try await NIOPipeBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .takingOwnershipOfDescriptors(input: fromChild, output: toChild, channelInitializer: setup)
        } catch {
            close(fromChild)
            close(toChild)
            throw error
        }
    }

    /// Why no answer came: ssh's exit and its messages (waits up to 30 s for ssh to end).
    func failure() async -> BerthError {
        let deadline = ContinuousClock.now + .seconds(30)
        while ended.withLock({ $0 }) == nil, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        let (status, messages) = ended.withLock { $0 } ?? (-1, "")
        let said = messages.split(separator: "\n").map { $0.trimmed() }.filter { !$0.isEmpty }
            .suffix(3).joined(separator: " ")
        return Self.explain(target: target, status: status, said: said)
    }

    static func explain(target: SSHTarget, status: Int32, said: String) -> BerthError {
        let host = target.host
        let message =
            "\(target) failed\(status >= 0 ? " (ssh exit \(status))" : ""): \(said.isEmpty ? "the connection closed without an answer" : said)"
        // berth proxy-stdio's own words first: its socket error also says "No such file".
        let cases: [(needles: [String], code: BerthError.Code, remedy: String)] = [
            (
                ["proxy-stdio on"], .connection,
                "Start berthd on \(host), or name its socket in the address (ssh://\(host)/path/to/berthd.sock)."
            ),
            (
                ["Host key verification failed", "REMOTE HOST IDENTIFICATION HAS CHANGED"], .connection,
                "ssh does not know \(host)'s host key: run 'ssh \(host)' once to check and accept it, or name a known_hosts file with --ssh-option UserKnownHostsFile=FILE."
            ),
            (
                ["Permission denied", "Too many authentication failures"], .unauthorized,
                "Install a key \(host) accepts (ssh-copy-id \(target.user.map { $0 + "@" } ?? "")\(host)), or name one with --ssh-option IdentityFile=KEY."
            ),
            (
                ["Connection refused", "No route to host", "Could not resolve hostname", "timed out", "Network is unreachable"],
                .connection, "Check that \(host) is up, reachable from here, and runs sshd\(target.port.map { " on port \($0)" } ?? "")."
            ),
            (
                ["command not found", "No such file or directory", "not found"], .unavailable,
                "Install berth on \(host), or give its path in the address: ssh://\(host)/path/to/berthd.sock?berth=/path/to/berth."
            ),
        ]
        for entry in cases where entry.needles.contains(where: { said.contains($0) }) || (entry.code == .unavailable && status == 127) {
            return BerthError(entry.code, message + ".", remedy: entry.remedy)
        }
        return BerthError(.connection, message + ".", remedy: "Run the same ssh by hand to see what it says: \(target.argv.joined(separator: " "))")
    }
}
