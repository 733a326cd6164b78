import ArgumentParser
import BerthModel
import BerthQEMU
import Foundation

/// `berth proxy-stdio`: what `--connect ssh://HOST` runs on the remote host (libvirt's
/// virt-ssh-helper): standard input and output spliced to the local berthd's unix socket, so
/// the CLI on the other end of ssh speaks HTTP to berthd over the ssh channel.
struct ProxyStdio: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "proxy-stdio",
        abstract: "Bridge standard input and output to berthd's unix socket (run by 'berth --connect ssh://…').",
        discussion:
            "Ends when berthd closes the connection or the other side closes standard input and berthd has answered. Needs the rights to open the socket (root, or the group berthd gives it)."
    )

    @Option(help: "berthd's unix socket. Default: the local berthd's (/run/berth/berthd.sock as root).")
    var socket: String?

    func run() throws {
        let path = socket ?? DefaultPaths.current().socketPath
        let fd: Int32
        do {
            fd = try UnixSocketConnection.connected(path: path)
        } catch let error as BerthError {
            throw BerthError(
                .connection, "berth proxy-stdio on \(ProcessInfo.processInfo.hostName): \(error.message).",
                remedy: "Start berthd on that host, or name its socket in the URL (ssh://HOST/path/to/berthd.sock).")
        }
        defer { close(fd) }
        signal(SIGPIPE, SIG_IGN)  // a side that went away gives EPIPE, which ends the bridge
        StdioBridge.splice(socket: fd)
    }
}

/// Copies stdin → socket and socket → stdout until the socket's end (or a write fails).
enum StdioBridge {
    static func splice(socket fd: Int32) {
        var inputOpen = true
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            var fds = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0)]
            if inputOpen { fds.append(pollfd(fd: 0, events: Int16(POLLIN), revents: 0)) }
            guard poll(&fds, nfds_t(fds.count), -1) >= 0 else {
                if errno == EINTR { continue }
                return
            }
            if fds[0].revents != 0 {
                // berthd answered or closed: everything it says goes out; its end is ours.
                guard copy(from: fd, to: 1, &buffer) else { return }
            }
            if inputOpen, fds[1].revents != 0, !copy(from: 0, to: fd, &buffer) {
                inputOpen = false
                shutdown(fd, Int32(SHUT_WR))  // the request is complete; keep reading the answer
            }
        }
    }

    /// One read and the whole write of what it got; false at end-of-file or an error.
    private static func copy(from source: Int32, to target: Int32, _ buffer: inout [UInt8]) -> Bool {
        let count = buffer.withUnsafeMutableBytes { read(source, $0.baseAddress, $0.count) }
        if count < 0 { return errno == EINTR || errno == EAGAIN }
        guard count > 0 else { return false }
        var offset = 0
        while offset < count {
            let written = buffer[offset..<count].withUnsafeBytes { write(target, $0.baseAddress, $0.count) }
            if written < 0, errno == EINTR { continue }
            guard written > 0 else { return false }
            offset += written
        }
        return true
    }
}
