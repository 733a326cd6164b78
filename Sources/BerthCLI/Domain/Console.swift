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
        let info = try await connection.run { try await $0.info(name) }
        try ConsoleAttachment.attach(info)
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

/// A raw-terminal bridge between this terminal and the domain's console socket.
enum ConsoleAttachment {
    static let detachByte: UInt8 = 0x1D  // Ctrl-]

    static func attach(_ info: DomainInfo) throws {
        let name = info.spec.name
        guard let path = info.consoleSocket else {
            throw BerthError(
                .wrongState, "Domain '\(name)' is not running, so it has no live console.",
                remedy: "Start it with 'berth start --console \(name)', or read its log with 'berth log \(name)'.")
        }
        guard FileManager.default.fileExists(atPath: path) else {
            throw BerthError(
                .unavailable, "The console socket \(path) is not on this machine.",
                remedy: "Attach on the daemon's host, or follow the log from here with 'berth log -f \(name)'.")
        }
        let socket = try connectUnix(path)
        defer { close(socket) }
        FileHandle.standardError.write(Data("Connected to domain '\(name)'. Escape character is ^]\r\n".utf8))
        let restore = makeRaw(STDIN_FILENO)
        defer { restore() }
        var fds = [pollfd(fd: STDIN_FILENO, events: Int16(POLLIN), revents: 0), pollfd(fd: socket, events: Int16(POLLIN), revents: 0)]
        var buffer = [UInt8](repeating: 0, count: 4096)
        loop: while poll(&fds, 2, -1) >= 0 || errno == EINTR {
            if fds[0].revents != 0 {
                let count = read(STDIN_FILENO, &buffer, buffer.count)
                if count <= 0 { break }
                if let stop = buffer[0..<count].firstIndex(of: detachByte) {
                    if stop > 0 { _ = write(socket, buffer, stop) }
                    break loop
                }
                _ = write(socket, buffer, count)
            }
            if fds[1].revents != 0 {
                let count = read(socket, &buffer, buffer.count)
                if count <= 0 { break }
                _ = write(STDOUT_FILENO, buffer, count)
            }
        }
        FileHandle.standardError.write(Data("\r\nDetached from domain '\(name)'.\r\n".utf8))
    }

    private static func connectUnix(_ path: String) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard fd >= 0, bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            throw BerthError(.unavailable, "Cannot open a socket for \(path).")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard result == 0 else {
            close(fd)
            throw BerthError(
                .unavailable, "Cannot connect to the console socket \(path): \(String(cString: strerror(errno))).",
                remedy: "Another client may be attached (one at a time); the log is always in 'berth log'.")
        }
        return fd
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
