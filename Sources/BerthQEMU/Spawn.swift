import BerthModel
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Runs a short-lived host program with an argument array (never a shell) and collects its
/// output. Used for `qemu-system-x86_64 --version` and for QEMU's `-daemonize` start, whose
/// foreground process exits once the guest is set up.
enum Spawn {
    struct Outcome: Sendable {
        /// Exit status, or 128 + signal number.
        var status: Int32
        /// stdout and stderr together, capped at `maxOutput`.
        var output: String
        /// Whether it ran past the time allowed and was killed.
        var timedOut: Bool
    }

    static let maxOutput = 64 * 1024

    /// Runs `argv` (argv[0] an absolute path) and waits for it and for its output to end.
    ///
    /// The child gets stdin from /dev/null, default signal handling and an empty signal mask
    /// (the daemon may ignore SIGPIPE; QEMU must not inherit that), and none of our other
    /// descriptors: the daemon's listening sockets must not leak into long-lived guests.
    static func run(_ argv: [String], timeout: Duration) async throws -> Outcome {
        try await withCheckedThrowingContinuation { continuation in
            let thread = Thread {
                continuation.resume(with: Result { try runBlocking(argv, timeout: timeout) })
            }
            thread.name = "berth-spawn"
            thread.start()
        }
    }

    private typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32

    /// glibc ≥ 2.34 has it; Swift's Glibc module does not import it, so look it up.
    private static let addCloseFrom: AddCloseFrom? = {
        guard let symbol = dlsym(dlopen(nil, RTLD_NOW), "posix_spawn_file_actions_addclosefrom_np") else { return nil }
        return unsafeBitCast(symbol, to: AddCloseFrom.self)
    }()

    private static func runBlocking(_ argv: [String], timeout: Duration) throws -> Outcome {
        var pipeFDs: [Int32] = [-1, -1]
        // pipe2 is not in Swift's Glibc module; set close-on-exec right after.
        guard pipe(&pipeFDs) == 0 else {
            throw BerthError(.internal, "pipe failed: \(String(cString: strerror(errno)))")
        }
        for fd in pipeFDs { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        let (readEnd, writeEnd) = (pipeFDs[0], pipeFDs[1])
        defer { close(readEnd) }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, writeEnd, 1)
        posix_spawn_file_actions_adddup2(&actions, writeEnd, 2)
        if let addCloseFrom {
            _ = addCloseFrom(&actions, 3)
        } else if let fds = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") {
            for fd in fds.compactMap({ Int32($0) }) where fd > 2 { posix_spawn_file_actions_addclose(&actions, fd) }
        }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        var allSignals = sigset_t()
        sigemptyset(&allSignals)
        for signal in 1..<32 where signal != SIGKILL && signal != SIGSTOP { sigaddset(&allSignals, Int32(signal)) }
        posix_spawnattr_setsigdefault(&attributes, &allSignals)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let cArgs = argv.map { strdup($0) }
        defer { cArgs.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, argv[0], &actions, &attributes, cArgs + [nil], environ)
        close(writeEnd)
        guard spawned == 0 else {
            throw BerthError(
                .unavailable, "Cannot run \(argv[0]): \(String(cString: strerror(spawned)))",
                remedy: "Check that the file exists and is executable.")
        }

        // Read until end-of-file (every holder of the write end is gone: QEMU's daemonized child
        // points its stdout/stderr at /dev/null when its set-up is done) or the deadline.
        let deadline = ContinuousClock.now + timeout
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 8192)
        var timedOut = false
        while true {
            let remaining = ContinuousClock.now.duration(to: deadline)
            if remaining <= .zero {
                timedOut = true
                break
            }
            var pfd = pollfd(fd: readEnd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&pfd, 1, Int32(min(remaining.seconds * 1000 + 1, 60000)))
            if ready < 0, errno == EINTR { continue }
            if ready <= 0 { continue }
            let n = chunk.withUnsafeMutableBytes { read(readEnd, $0.baseAddress, $0.count) }
            if n < 0, errno == EINTR { continue }
            if n <= 0 { break }
            if output.count < maxOutput { output += chunk[0..<min(n, maxOutput - output.count)] }
        }
        if timedOut { kill(pid, SIGKILL) }

        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0, errno == EINTR {}
        let exitStatus: Int32 = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return Outcome(status: exitStatus, output: String(decoding: output, as: UTF8.self), timedOut: timedOut)
    }
}
