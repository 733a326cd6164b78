import BerthModel
import BerthPOSIX
import FoundationEssentials
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A running QEMU for one domain: its PID, its files and its QMP connection.
///
/// QEMU runs daemonized in its own session, so it outlives the daemon; `attach` finds it again
/// by UUID. The PID alone is never trusted: `/proc/PID/cmdline` must carry `-uuid <uuid>`,
/// so a PID the kernel reused for another program is never signalled or mistaken for a guest.
public struct QEMUProcess: Sendable {
    public let pid: Int32
    public let uuid: UUID
    public let paths: RuntimePaths
    public let qmp: QMP.Client

    /// How `stop` ended the process.
    public enum StopOutcome: String, Sendable {
        /// It had already exited.
        case alreadyGone = "already-gone"
        /// QMP `quit`: QEMU flushed its disks and exited.
        case quit
        /// SIGTERM.
        case terminated
        /// SIGKILL after the grace period.
        case killed
        /// Still there after SIGKILL (stuck in the kernel, such as on a hung NFS disk).
        case stuck
    }

    // MARK: Launch

    /// Starts QEMU and returns once it runs and QMP is connected.
    ///
    /// berthd opens every file and socket the command line names (`descriptors`) and QEMU
    /// inherits them; with an `identity`, QEMU runs as that unprivileged user under
    /// `-sandbox` (no exec, no privilege change), in its own session so it outlives berthd.
    /// QEMU's set-up is complete when it greets on QMP; if it exits first, its own message
    /// (from `paths.qemuLog`) is the error.
    ///
    /// - Parameters:
    ///   - binary: path of `qemu-system-x86_64` (`QEMUBinary.locate()`).
    ///   - identity: the guest's own user (berthd as root); nil runs QEMU as berthd's user.
    ///   - logRotation: rotate the console log first when it exceeds `maxBytes`, keeping `keep`.
    ///   - timeout: for QEMU's set-up and the QMP greeting.
    /// - Throws: `BerthError` (`.wrongState` if this domain's QEMU already runs).
    public static func launch(
        _ commandLine: QEMUCommandLine, binary: String, paths: RuntimePaths, identity: GuestIdentity? = nil,
        logRotation: (maxBytes: UInt64, keep: Int) = (1 << 20, 5), timeout: Duration = .seconds(30)
    ) async throws -> QEMUProcess {
        let uuid = commandLine.uuid
        guard commandLine.descriptors.contains(.init(source: .listeningSocket(path: paths.qmpSocket), number: 3)) else {
            throw BerthError(.internal, "The QEMU command line was built for other runtime paths.")
        }
        try paths.prepare(owner: identity)
        if let pid = runningPID(uuid: uuid, paths: paths) {
            throw BerthError(
                .wrongState, "Domain '\(commandLine.name)' is already running (QEMU PID \(pid)).",
                remedy:
                    "Stop it first with 'berth shutdown \(commandLine.name)' or 'berth destroy \(commandLine.name)'.")
        }
        paths.removeRuntimeFiles()
        try paths.rotateConsoleLog(maxBytes: logRotation.maxBytes, keep: logRotation.keep)

        let opened = try openDescriptors(commandLine)
        defer { opened.forEach { close($0) } }
        let qemuLog = open(paths.qemuLog, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard qemuLog >= 0 else {
            throw BerthError(
                .unavailable, "Cannot write \(paths.qemuLog): \(String(cString: strerror(errno)))",
                remedy: "Check that \(paths.logDirectory) is writable by berthd.")
        }
        defer { close(qemuLog) }
        let argv = try (identity.map(GuestIdentity.setprivArguments) ?? []) + [binary] + commandLine.arguments
        // Under TCG without transparent huge pages: see `Spawn.withoutHugePages`.
        let pid = try Spawn.launch(
            argv, passing: opened, output: qemuLog, directory: paths.displayDirectory,
            hugePages: commandLine.accel != .tcg)
        try writePIDFile(pid, path: paths.pidFile)

        let qmp: QMP.Client
        do {
            // A storm of starts on a loaded host can make QEMU's set-up slow, never a failure:
            // the wait goes on while QEMU lives and uses CPU; one stuck for `timeout` fails.
            let progress = CPUProgress(pid: pid)
            qmp = try await QMP.Client.connect(
                path: paths.qmpSocket, timeout: timeout,
                keepWaiting: { isAlive(pid: pid, uuid: uuid) && progress.advanced() }, limit: .seconds(600))
        } catch {
            // QEMU exited during set-up (its listening socket closed with it) or hung.
            let exited = await waitForExit(pid: pid, uuid: uuid, timeout: .seconds(2))
            if !exited {
                kill(pid, SIGKILL)
                _ = await waitForExit(pid: pid, uuid: uuid, timeout: .seconds(5))
            }
            paths.removeRuntimeFiles()
            let message = readCapped(paths.qemuLog, maxBytes: 8192)
            throw launchError(
                name: commandLine.name, message: message, timedOut: !exited && message.isEmpty, timeout: timeout)
        }
        let process = QEMUProcess(pid: pid, uuid: uuid, paths: paths, qmp: qmp)
        if let password = commandLine.displayPassword, let kind = commandLine.displayKind {
            do {
                try await qmp.execute(
                    "set_password", arguments: ["protocol": .string(kind.rawValue), "password": .string(password)])
            } catch {
                await process.stop(grace: .seconds(2))
                throw BerthError(
                    .internal, "Could not set the \(kind.rawValue) display password of '\(commandLine.name)': \(error)",
                    remedy: "Start it again; remove the password to start without one.")
            }
        }
        return process
    }

    /// Opens what the command line names, in descriptor order (the caller closes them).
    static func openDescriptors(_ commandLine: QEMUCommandLine) throws -> [Int32] {
        var opened: [Int32] = []
        do {
            for descriptor in commandLine.descriptors {
                guard descriptor.number == Int32(3 + opened.count) else {
                    throw BerthError(.internal, "QEMU descriptors are not numbered 3, 4, … in order.")
                }
                switch descriptor.source {
                case .listeningSocket(let path):
                    opened.append(try UnixSocketConnection.listen(path: path))
                case .open(let fd, let what):
                    let copy = fcntl(fd, F_DUPFD_CLOEXEC, 3)
                    guard copy >= 0 else {
                        throw BerthError(
                            .internal, "Cannot pass \(what) to QEMU: \(String(cString: strerror(errno)))",
                            remedy: "Start '\(commandLine.name)' again.")
                    }
                    opened.append(copy)
                case .file(let path, let access):
                    let flags: Int32 =
                        switch access {
                        case .readOnly: O_RDONLY
                        case .readWrite: O_RDWR
                        case .append: O_WRONLY | O_APPEND | O_CREAT
                        }
                    let fd = open(path, flags | O_CLOEXEC | O_NOCTTY, 0o600)
                    guard fd >= 0 else {
                        let code = errno
                        throw BerthError(
                            code == ENOENT ? .notFound : .unavailable,
                            "QEMU could not start '\(commandLine.name)': cannot open \(path): \(String(cString: strerror(code)))",
                            remedy: code == ENOENT
                                ? "Check that the kernel, initrd and disk paths of '\(commandLine.name)' exist on the host."
                                : "Make the file readable (and disks writable) by berthd's user.")
                    }
                    opened.append(fd)
                }
            }
        } catch {
            opened.forEach { close($0) }
            throw error
        }
        return opened
    }

    static func writePIDFile(_ pid: Int32, path: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else {
            kill(pid, SIGKILL)
            throw BerthError(.unavailable, "Cannot write \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        let bytes = Array("\(pid)\n".utf8)
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    }

    /// At most `maxBytes` of a small text file (QEMU's messages).
    static func readCapped(_ path: String, maxBytes: Int) -> String {
        String(decoding: FileBytes.read(path, maxBytes: maxBytes) ?? [], as: UTF8.self).trimmed()
    }

    /// Waits at most `timeout` for `pid` (this UUID's QEMU) to exit; returns whether it did.
    static func waitForExit(pid: Int32, uuid: UUID, timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        var delay = Duration.milliseconds(5)
        while isAlive(pid: pid, uuid: uuid) {
            guard ContinuousClock.now < deadline, !Task.isCancelled else { return false }
            try? await Task.sleep(for: min(delay, ContinuousClock.now.duration(to: deadline)))
            delay = min(delay * 2, .milliseconds(100))
        }
        return true
    }

    static func launchError(name: String, message output: String, timedOut: Bool, timeout: Duration) -> BerthError {
        if timedOut {
            return BerthError(
                .timeout, "QEMU for '\(name)' stopped making progress while starting (no CPU time used in \(timeout.seconds) s).",
                remedy: "QEMU is hung, such as on a disk that does not answer; check the disks are reachable, then start it again.")
        }
        let lines = output.split(separator: "\n").map { line -> String in
            var text = String(line)
            // QEMU prefixes its messages with its name: `qemu-system-x86_64: ` or `qemu: `.
            if text.hasPrefix("qemu"), let colon = text.firstRange(of: ": ") {
                text = String(text[colon.upperBound...]).trimmed()
            }
            return text
        }
        let message = lines.isEmpty ? "it exited without a message" : lines.joined(separator: "; ")
        let (code, remedy): (BerthError.Code, String) =
            if message.contains("No such file or directory") {
                (.notFound, "Check that the kernel, initrd and disk paths of '\(name)' exist on the host.")
            } else if message.contains("\"write\" lock") {
                (.alreadyExists, "Another running guest uses the same disk; stop it or give this one another disk.")
            } else if message.contains("Permission denied") {
                (.unavailable, "Make the file readable (and disks writable) by the user running berthd.")
            } else if message.contains("Address already in use") {
                (.alreadyExists, "Choose another VNC port, or leave the port out to pick a free one.")
            } else {
                (.invalidArgument, "Fix the setting QEMU names above ('berth edit \(name)') and start again.")
            }
        return BerthError(code, "QEMU could not start '\(name)': \(message)", remedy: remedy)
    }

    // MARK: Re-attach

    /// Finds the running QEMU of a domain again (after a daemon restart) and reconnects QMP.
    ///
    /// - Throws: `BerthError(.notFound)` when no QEMU with this UUID runs (a missing pidfile,
    ///   or a PID now used by something else); QMP failures as `BerthError(.connection)`.
    public static func attach(uuid: UUID, paths: RuntimePaths, timeout: Duration = .seconds(10)) async throws
        -> QEMUProcess
    {
        guard let pid = runningPID(uuid: uuid, paths: paths) else {
            let recorded = readPIDFile(paths.pidFile)
            throw BerthError(
                .notFound,
                recorded.map { "PID \($0) in \(paths.pidFile) is not the QEMU of \(uuid.uuidString.lowercased())." }
                    ?? "No QEMU is running for \(uuid.uuidString.lowercased()) (no pidfile at \(paths.pidFile)).",
                remedy: "The guest is not running; start it again.")
        }
        do {
            // Many guests re-attached at once on a loaded host: a slow answer is no death.
            let progress = CPUProgress(pid: pid)
            let qmp = try await QMP.Client.connect(
                path: paths.qmpSocket, timeout: timeout,
                keepWaiting: { isAlive(pid: pid, uuid: uuid) && progress.advanced() }, limit: .seconds(120))
            return QEMUProcess(pid: pid, uuid: uuid, paths: paths, qmp: qmp)
        } catch let error as QMP.Error {
            throw error.berthError
        }
    }

    /// The PID of this domain's live QEMU, from the pidfile, confirmed by its command line.
    public static func runningPID(uuid: UUID, paths: RuntimePaths) -> Int32? {
        guard let pid = readPIDFile(paths.pidFile), isAlive(pid: pid, uuid: uuid) else { return nil }
        return pid
    }

    static func readPIDFile(_ path: String) -> Int32? {
        // A pidfile is a number and a newline; never read more than that.
        guard let data = FileBytes.read(path, maxBytes: 32) else { return nil }
        guard let pid = Int32(String(decoding: data, as: UTF8.self).trimmed()),
            pid > 1
        else { return nil }
        return pid
    }

    /// Whether `pid` is a live process (not a zombie) whose command line has `-uuid <uuid>`.
    public static func isAlive(pid: Int32, uuid: UUID) -> Bool {
        guard let arguments = commandLine(pid: pid), hasUUID(arguments, uuid) else { return false }
        // An exited QEMU whose parent does not reap it stays a zombie: that is gone, too.
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return false }
        let state = stat[stat.index(after: close)...].trimmed().first
        return state != "Z" && state != "X"
    }

    /// `/proc/PID/cmdline` as arguments.
    static func commandLine(pid: Int32) -> [String]? {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"), !data.isEmpty else { return nil }
        return data.split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
    }

    /// Whether the arguments contain `-uuid` followed by this UUID (any case).
    static func hasUUID(_ arguments: [String], _ uuid: UUID) -> Bool {
        let wanted = uuid.uuidString.lowercased()
        for (i, argument) in arguments.enumerated().dropLast() where argument == "-uuid" || argument == "--uuid" {
            if arguments[i + 1].lowercased() == wanted { return true }
        }
        return false
    }

    // MARK: Life

    /// Whether this QEMU still runs.
    public var isAlive: Bool { Self.isAlive(pid: pid, uuid: uuid) }

    /// Returns when the process has exited: the QMP socket closes first, then the PID goes.
    public func waitForExit() async {
        await qmp.waitUntilClosed()
        var delay = Duration.milliseconds(5)
        while isAlive, !Task.isCancelled {
            try? await Task.sleep(for: delay)
            delay = min(delay * 2, .milliseconds(250))
        }
    }

    /// Waits at most `timeout` for the process to exit; returns whether it did.
    public func waitForExit(timeout: Duration) async -> Bool {
        await Self.waitForExit(pid: pid, uuid: uuid, timeout: timeout)
    }

    /// Stops QEMU: QMP `quit`, then SIGTERM, then SIGKILL, each after `grace`; then removes
    /// the sockets and pidfile. The guest gets no chance to shut down (that is
    /// `system_powerdown`); QEMU does flush its disk caches on `quit` and SIGTERM.
    @discardableResult
    public func stop(grace: Duration = .seconds(5)) async -> StopOutcome {
        defer {
            qmp.close()
            if !isAlive { paths.removeRuntimeFiles(includingDirectory: true) }
        }
        guard isAlive else { return .alreadyGone }
        if !qmp.isClosed {
            _ = try? await qmp.execute("quit", timeout: grace)
            if await waitForExit(timeout: grace) { return .quit }
        }
        // Signal only a process that is still this guest's QEMU (never a reused PID).
        guard isAlive else { return .quit }
        kill(pid, SIGTERM)
        if await waitForExit(timeout: grace) { return .terminated }
        guard isAlive else { return .terminated }
        kill(pid, SIGKILL)
        return await waitForExit(timeout: .seconds(5)) ? .killed : .stuck
    }
}

/// Whether a process used CPU time since the last call (`/proc/PID/stat` utime + stime): a
/// process that is slow because the host is loaded advances, a hung one does not.
final class CPUProgress: Sendable {
    private let pid: Int32
    private let last: Mutex<UInt64?>

    init(pid: Int32) {
        self.pid = pid
        self.last = Mutex(Self.ticks(pid: pid))
    }

    func advanced() -> Bool {
        let now = Self.ticks(pid: pid)
        return last.withLock { last in
            defer { last = now }
            guard let now, let before = last else { return false }
            return now > before
        }
    }

    /// utime + stime in clock ticks, from the fields after the command name (which may hold
    /// spaces and parentheses: the last `)` ends it).
    static func ticks(pid: Int32) -> UInt64? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = text.lastIndex(of: ")")
        else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // Field 3 (state) is fields[0]; utime and stime are fields 14 and 15.
        guard fields.count > 12, let user = UInt64(fields[11]), let system = UInt64(fields[12]) else { return nil }
        return user &+ system
    }
}
