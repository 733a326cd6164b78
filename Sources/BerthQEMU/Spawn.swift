import BerthModel
import BerthPOSIX
import FoundationEssentials
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Berth's one process runner: host programs run from an argument array (never a shell),
/// with a scrubbed environment, default signal handling, and none of berthd's descriptors
/// except those named (the daemon's listening sockets must not leak into guests).
///
/// `run` waits for a short-lived program and collects its output (`qemu --version`, `nft`,
/// the bootloader); `launch` starts a long-lived one (a guest's QEMU) in its own session.
public enum Spawn {
    public struct Outcome: Sendable {
        /// Exit status, or 128 + signal number.
        public var status: Int32
        /// stdout and stderr together, capped at `maxOutput`.
        public var output: String
        /// stdout alone, capped at `maxOutput` (stderr goes to `output` only).
        public var stdout: [UInt8]
        /// Whether it ran past the time allowed and was killed.
        public var timedOut: Bool
    }

    public static let maxOutput = 64 * 1024

    /// What a child sees of the environment: enough to find programs, nothing of berthd's.
    public static let cleanEnvironment = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"]

    /// Runs `argv` (argv[0] an absolute path) and waits for it and for its output to end.
    ///
    /// - Parameters:
    ///   - stdin: a descriptor the child gets as its standard input (default /dev/null); the
    ///     bootloader reads the guest's disk from it, so it never opens a host path itself.
    ///   - directory: the child's working directory, entered before exec.
    ///   - environment: `KEY=value` entries (default `cleanEnvironment`).
    ///   - diesWithParent: the child is SIGKILLed when berthd dies (`setpriv --pdeathsig KILL`,
    ///     PR_SET_PDEATHSIG kept across the exec), so work such as a `qemu-img convert` into a
    ///     temporary file that berthd's next start removes does not run on unowned.
    ///   - onOutput: hears each piece of stdout as it arrives (`qemu-img convert -p`'s progress).
    public static func run(
        _ argv: [String], timeout: Duration, stdin: Int32? = nil, directory: String? = nil,
        environment: [String] = cleanEnvironment, diesWithParent: Bool = false,
        onOutput: (@Sendable ([UInt8]) -> Void)? = nil
    ) async throws -> Outcome {
        let argv = diesWithParent ? try [setprivPath(), "--pdeathsig", "KILL", "--"] + argv : argv
        // The signal follows the thread that spawned the child: this one, which waits for it.
        return try await withCheckedThrowingContinuation { continuation in
            do {
                try startThread(named: "berth-spawn") {
                    continuation.resume(
                        with: Result {
                            try runBlocking(
                                argv, timeout: timeout, stdin: stdin, directory: directory, environment: environment,
                                onOutput: onOutput)
                        })
                }
            } catch {
                continuation.resume(throwing: BerthError(.unavailable, "Cannot start a thread to run \(argv[0]): \(error)."))
            }
        }
    }

    /// Starts `argv` in its own session (so it outlives berthd and no terminal signal reaches
    /// it) and returns its PID at once. A thread reaps it when it exits, so it never lingers
    /// as a zombie while berthd runs.
    ///
    /// - Parameters:
    ///   - passing: descriptors the child gets as 3, 4, 5, … in this order (QEMU's `fd=`,
    ///     `-add-fd` and `/proc/self/fd/N` arguments refer to those numbers).
    ///   - output: where the child's stdout and stderr go.
    ///   - directory: the child's working directory, entered before exec (so it need not be
    ///     able to reach that directory by path).
    ///   - hugePages: false starts the child with transparent huge pages off
    ///     (`withoutHugePages`).
    public static func launch(
        _ argv: [String], passing: [Int32], output: Int32, directory: String? = nil,
        environment: [String] = cleanEnvironment, hugePages: Bool = true
    ) throws -> Int32 {
        let start = {
            try spawn(
                argv, stdin: nil, stdout: output, stderr: output, passing: passing, directory: directory,
                newSession: true, environment: environment)
        }
        let pid = try hugePages ? start() : withoutHugePages(start)
        // Without a thread the child is reaped at berthd's exit instead: it still runs.
        try? startThread(named: "berth-reaper") {
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0, errno == EINTR {}
        }
        return pid
    }

    /// Starts `argv` with the given standard descriptors, in the caller's session (a terminal's
    /// Ctrl-C reaches it too), and returns its PID; the caller reaps it (`waitpid`). For a
    /// child that is part of a conversation, such as the CLI's `ssh … berth proxy-stdio`.
    public static func start(
        _ argv: [String], stdin: Int32, stdout: Int32, stderr: Int32, environment: [String] = cleanEnvironment
    ) throws -> Int32 {
        try spawn(
            argv, stdin: stdin, stdout: stdout, stderr: stderr, passing: [], directory: nil, newSession: false,
            environment: environment)
    }

    /// Runs `body` (a spawn) with transparent huge pages off for berthd's memory, so that the
    /// child it starts keeps them off for good (PR_SET_THP_DISABLE is inherited by a child and
    /// kept across exec), then turns them back on. A TCG guest's QEMU starts so:
    /// with huge pages QEMU madvises its guest RAM for, every first touch of guest memory
    /// faults in and zeroes (and, with `defrag=madvise`, may compact for) a whole 2 MiB page.
    /// Measured in `bench/density/boot.py` (docs/ARCHITECTURE.md, "Decisions", 8). Serialized:
    /// the setting is the whole process's, so two of these never interleave; another spawn
    /// meanwhile may inherit it, which only costs it huge pages. Without prctl (not Linux) it
    /// runs `body` as it is.
    static func withoutHugePages(_ body: () throws -> pid_t) throws -> pid_t {
        guard let prctl = BerthPOSIX.prctl else { return try body() }
        return try hugePageSetting.withLock { _ in
            // Already off (berthd started so): the child inherits that; nothing to turn back.
            guard prctl(prGetTHPDisable, 0, 0, 0, 0) == 0, prctl(prSetTHPDisable, 1, 0, 0, 0) == 0 else {
                return try body()
            }
            defer { _ = prctl(prSetTHPDisable, 0, 0, 0, 0) }
            return try body()
        }
    }

    private static let hugePageSetting = Mutex(())
    /// From <linux/prctl.h>, which Swift's Glibc module does not include.
    private static let prSetTHPDisable: Int32 = 41
    private static let prGetTHPDisable: Int32 = 42

    /// util-linux's `setpriv`, or an error naming its package.
    public static func setprivPath() throws -> String {
        guard let setpriv = ["/usr/bin/setpriv", "/bin/setpriv"].first(where: { (path: String) in access(path, X_OK) == 0 }) else {
            throw BerthError(
                .unavailable, "setpriv is not installed; berthd needs it to run guests and qemu-img.",
                remedy: "Install it with 'apt-get install util-linux'.")
        }
        return setpriv
    }

    /// The absolute path of `program` found in `PATH` (or `program` itself when it has a slash).
    public static func find(_ program: String, path: String? = ProcessInfo.processInfo.environment["PATH"]) -> String? {
        if program.contains("/") { return access(program, X_OK) == 0 ? program : nil }
        let directories = (path ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":").map(String.init)
        return directories.map { $0 + "/" + program }.first { access($0, X_OK) == 0 }
    }

    private typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    private typealias AddChdir =
        @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>)
        -> Int32

    /// glibc ≥ 2.34 and ≥ 2.29 have them; Swift's Glibc module does not import them, so look them up.
    private static let addCloseFrom: AddCloseFrom? = {
        guard let symbol = dlsym(dlopen(nil, RTLD_NOW), "posix_spawn_file_actions_addclosefrom_np") else { return nil }
        return unsafeBitCast(symbol, to: AddCloseFrom.self)
    }()
    private static let addChdir: AddChdir? = {
        guard let symbol = dlsym(dlopen(nil, RTLD_NOW), "posix_spawn_file_actions_addchdir_np") else { return nil }
        return unsafeBitCast(symbol, to: AddChdir.self)
    }()
    /// glibc's POSIX_SPAWN_SETSID (2.26+), which Swift's Glibc module does not carry.
    private static let spawnSetSID: Int32 = 0x80

    private static func spawn(
        _ argv: [String], stdin: Int32?, stdout: Int32, stderr: Int32, passing: [Int32], directory: String?,
        newSession: Bool, environment: [String]
    ) throws -> pid_t {
        guard passing.count < 64 else { throw BerthError(.internal, "Too many descriptors to pass to \(argv[0]).") }
        // Copies above every target number, so a dup2 onto 3, 4, … never overwrites a source.
        var sources: [Int32] = []
        defer { sources.forEach { close($0) } }
        for fd in passing {
            let copy = fcntl(fd, F_DUPFD_CLOEXEC, 100)
            guard copy >= 0 else {
                throw BerthError(.internal, "Cannot pass descriptor \(fd) to \(argv[0]): \(String(cString: strerror(errno)))")
            }
            sources.append(copy)
        }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if let stdin {
            posix_spawn_file_actions_adddup2(&actions, stdin, 0)
        } else {
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        }
        posix_spawn_file_actions_adddup2(&actions, stdout, 1)
        posix_spawn_file_actions_adddup2(&actions, stderr, 2)
        for (index, source) in sources.enumerated() {
            posix_spawn_file_actions_adddup2(&actions, source, Int32(3 + index))
        }
        let firstClosed = Int32(3 + sources.count)
        if let addCloseFrom {
            _ = addCloseFrom(&actions, firstClosed)
        } else if let fds = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") {
            for fd in fds.compactMap({ Int32($0) }) where fd >= firstClosed && !sources.contains(fd) {
                posix_spawn_file_actions_addclose(&actions, fd)
            }
        }
        if let directory {
            guard let addChdir else {
                throw BerthError(.unavailable, "This C library cannot set a child's directory (glibc 2.29 or later needed).")
            }
            _ = addChdir(&actions, directory)
        }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        // The daemon may ignore SIGPIPE; its children must not inherit that.
        var allSignals = sigset_t()
        sigemptyset(&allSignals)
        for signal in 1..<32 where signal != SIGKILL && signal != SIGSTOP { sigaddset(&allSignals, Int32(signal)) }
        posix_spawnattr_setsigdefault(&attributes, &allSignals)
        var flags = Int32(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)
        if newSession { flags |= spawnSetSID }
        posix_spawnattr_setflags(&attributes, Int16(flags))

        let cArgs = argv.map { strdup($0) }
        defer { cArgs.forEach { free($0) } }
        let cEnv = environment.map { strdup($0) }
        defer { cEnv.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, argv[0], &actions, &attributes, cArgs + [nil], cEnv + [nil])
        guard spawned == 0 else {
            throw BerthError(
                .unavailable, "Cannot run \(argv[0]): \(String(cString: strerror(spawned)))",
                remedy: "Check that the file exists and is executable.")
        }
        return pid
    }

    private static func runBlocking(
        _ argv: [String], timeout: Duration, stdin: Int32?, directory: String?, environment: [String],
        onOutput: (@Sendable ([UInt8]) -> Void)?
    ) throws -> Outcome {
        // Two pipes: stdout alone (a result to parse) and stderr (messages); both feed `output`.
        var outFDs: [Int32] = [-1, -1]
        var errFDs: [Int32] = [-1, -1]
        guard pipe(&outFDs) == 0 else { throw BerthError(.internal, "pipe failed: \(String(cString: strerror(errno)))") }
        guard pipe(&errFDs) == 0 else {
            outFDs.forEach { close($0) }
            throw BerthError(.internal, "pipe failed: \(String(cString: strerror(errno)))")
        }
        // pipe2 is not in Swift's Glibc module; set close-on-exec right after.
        for fd in outFDs + errFDs { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        defer { close(outFDs[0]); close(errFDs[0]) }

        let pid: pid_t
        do {
            pid = try spawn(
                argv, stdin: stdin, stdout: outFDs[1], stderr: errFDs[1], passing: [], directory: directory,
                newSession: false, environment: environment)
        } catch {
            close(outFDs[1])
            close(errFDs[1])
            throw error
        }
        close(outFDs[1])
        close(errFDs[1])

        // Read until end-of-file on both (every holder of the write ends is gone) or the deadline.
        let deadline = ContinuousClock.now + timeout
        var output: [UInt8] = []
        var stdout: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 8192)
        var open = [outFDs[0], errFDs[0]]
        var timedOut = false
        while !open.isEmpty {
            let remaining = ContinuousClock.now.duration(to: deadline)
            if remaining <= .zero {
                timedOut = true
                break
            }
            var pfds = open.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            let ready = poll(&pfds, nfds_t(pfds.count), Int32(min(remaining.seconds * 1000 + 1, 60000)))
            if ready < 0, errno == EINTR { continue }
            if ready <= 0 { continue }
            for pfd in pfds where pfd.revents != 0 {
                let n = chunk.withUnsafeMutableBytes { read(pfd.fd, $0.baseAddress, $0.count) }
                if n < 0, errno == EINTR { continue }
                if n <= 0 {
                    open.removeAll { $0 == pfd.fd }
                    continue
                }
                if output.count < maxOutput { output += chunk[0..<min(n, maxOutput - output.count)] }
                if pfd.fd == outFDs[0], stdout.count < maxOutput { stdout += chunk[0..<min(n, maxOutput - stdout.count)] }
                if pfd.fd == outFDs[0], let onOutput { onOutput(Array(chunk[0..<n])) }
            }
        }
        if timedOut { kill(pid, SIGKILL) }

        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0, errno == EINTR {}
        let exitStatus: Int32 = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return Outcome(
            status: exitStatus, output: String(decoding: output, as: UTF8.self), stdout: stdout, timedOut: timedOut)
    }
}
