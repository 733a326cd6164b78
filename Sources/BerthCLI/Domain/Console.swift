import ArgumentParser
import BerthModel
import BerthPOSIX
import Foundation

struct Console: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "console",
        abstract: "Attach to a running domain's serial console (Ctrl-] detaches).",
        discussion: "Everything the guest prints is also in its log ('berth log NAME'), attached or not.")

    @Argument(help: "Domain name.") var name: String
    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        try await ConsoleAttachment.attach(name, connection)
    }
}

struct Log: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "log", abstract: "Print a domain's console log.")

    @Argument(help: "Domain name.") var name: String
    @Flag(name: .shortAndLong, help: "Keep printing what the guest writes.") var follow = false
    @Option(help: "Print only the last N bytes first.") var tail: Int?
    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        // A follow otherwise notices a reader that went away only at the guest's next line.
        if follow { StandardOutput.exitWhenReaderLeaves() }
        do {
            try await connection.run { client in
                try await client.consoleLog(name, tail: tail, follow: follow) { buffer in
                    try StandardOutput.write(Array(buffer.readableBytesView))
                }
            }
        } catch is StandardOutput.Closed {
            // The reader went away (`berth log -f demo | sed /READY/q`): that is the end, not an error.
        }
    }
}

struct Events: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "events", abstract: "Print lifecycle events as they happen.")

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let json = output.json
        try await connection.run { client in
            try await client.events { event in
                if json {
                    let encoder = JSONEncoder()
                    encoder.dateEncodingStrategy = .iso8601
                    print(String(decoding: try encoder.encode(event), as: UTF8.self))
                } else {
                    print("\(event.time) \(event.domain) \(event.kind.rawValue) (\(event.state.rawValue))\(event.detail.map { ": \($0)" } ?? "")")
                }
                fflush(nil)
            }
        }
    }
}

/// A raw-terminal bridge between this terminal and the domain's serial line, through berthd's
/// console WebSocket: the same on berthd's host and from another machine (`--connect`).
enum ConsoleAttachment {
    static let detachByte: UInt8 = 0x1D  // Ctrl-]

    static func attach(_ name: String, _ connection: ConnectionOptions) async throws {
        try await connection.run { client in
            let info = try await client.info(name)
            guard info.state == .running || info.state == .paused else {
                throw BerthError(
                    .wrongState, "Domain '\(name)' is \(info.state.rawValue), so it has no live console.",
                    remedy: "Start it with 'berth start --console \(name)', or read its log with 'berth log \(name)'.")
            }
            FileHandle.standardError.write(Data("Connected to domain '\(name)'. Escape character is ^]\r\n".utf8))
            let restore = makeRaw(STDIN_FILENO)
            defer { restore() }
            do {
                try await client.console(name, input: keystrokes()) { try StandardOutput.write($0) }
            } catch is StandardOutput.Closed {
                // Whoever read our output went away: detach.
            }
        }
        FileHandle.standardError.write(Data("\r\nDetached from domain '\(name)'.\r\n".utf8))
    }

    /// What the user types, up to Ctrl-] (or the end of standard input), read on a thread of
    /// its own: a blocking read has no place on the cooperative pool.
    static func keystrokes() -> AsyncStream<[UInt8]> {
        AsyncStream { continuation in
            let reader = Thread {
                var buffer = [UInt8](repeating: 0, count: 4096)
                while true {
                    let count = read(STDIN_FILENO, &buffer, buffer.count)
                    if count < 0, errno == EINTR { continue }
                    guard count > 0 else { break }
                    if let stop = buffer[0..<count].firstIndex(of: detachByte) {
                        if stop > 0 { continuation.yield(Array(buffer[0..<stop])) }
                        break
                    }
                    continuation.yield(Array(buffer[0..<count]))
                }
                continuation.finish()
            }
            reader.name = "berth-console-input"
            reader.start()
        }
    }

    /// Puts the terminal in raw mode; returns what restores it.
    private static func makeRaw(_ fd: Int32) -> () -> Void {
        guard isatty(fd) == 1 else { return {} }
        var original = termios()
        tcgetattr(fd, &original)
        var raw = original
        cfmakeraw(&raw)
        tcsetattr(fd, TCSANOW, &raw)
        return {
            var saved = original
            tcsetattr(fd, TCSANOW, &saved)
        }
    }
}

/// Writes to stdout with write(2): FileHandle traps on a closed pipe, and SwiftNIO ignores
/// SIGPIPE, so a reader that quits early would otherwise crash the CLI.
enum StandardOutput {
    struct Closed: Error {}

    /// Ends the process as soon as standard output's reader closes it (`berth log -f demo |
    /// sed /READY/q`): a pipe's write end reports POLLERR then, without anything written.
    static func exitWhenReaderLeaves() {
        let watcher = Thread {
            while true {
                var pfd = pollfd(fd: STDOUT_FILENO, events: 0, revents: 0)
                if poll(&pfd, 1, 250) > 0, pfd.revents & Int16(POLLERR | POLLHUP | POLLNVAL) != 0 { exit(0) }
            }
        }
        watcher.name = "berth-stdout-watch"
        watcher.start()
    }

    static func write(_ bytes: [UInt8]) throws {
        do { try writeAll(STDOUT_FILENO, bytes) } catch { throw Closed() }
    }
}
