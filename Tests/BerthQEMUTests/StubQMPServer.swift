import Foundation
import Glibc

@testable import BerthQEMU

/// An in-process QMP peer for error paths: listens on a unix socket, accepts one client and
/// runs a script against it on its own thread.
final class StubQMPServer: Sendable {
    let path: String
    private let listener: Int32

    /// A connected client as the script sees it.
    struct Peer {
        let fd: Int32

        func send(_ line: String) {
            let bytes = Array((line + "\r\n").utf8)
            _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        }

        func sendRaw(_ bytes: [UInt8]) {
            _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        }

        /// Reads one line (without the newline); nil at end-of-file.
        func readLine() -> String? {
            var line: [UInt8] = []
            var byte: UInt8 = 0
            while true {
                let n = read(fd, &byte, 1)
                if n <= 0 { return line.isEmpty ? nil : String(decoding: line, as: UTF8.self) }
                if byte == 0x0A { return String(decoding: line, as: UTF8.self) }
                line.append(byte)
            }
        }

        /// Reads a command and returns its `execute` and `id` (as JSON text).
        func readCommand() -> (execute: String, id: String)? {
            guard let line = readLine(),
                let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                let execute = object["execute"] as? String
            else { return nil }
            let id = (object["id"] as? Int).map(String.init) ?? "null"
            return (execute, id)
        }

        /// The greeting and the `qmp_capabilities` exchange.
        func handshake() {
            send(
                #"{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": "stub"}, "capabilities": []}}"#
            )
            if let command = readCommand() { send(#"{"return": {}, "id": \#(command.id)}"#) }
        }
    }

    init(script: @escaping @Sendable (Peer) -> Void) throws {
        path = NSTemporaryDirectory() + "berth-qmp-\(UUID().uuidString.prefix(8)).sock"
        unlink(path)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        listener = fd
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
            raw[bytes.count] = 0
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard bound == 0, listen(fd, 4) == 0 else {
            throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
        }
        let thread = Thread {
            let peer = accept(fd, nil, nil)
            guard peer >= 0 else { return }
            script(Peer(fd: peer))
            close(peer)
        }
        thread.start()
    }

    deinit {
        close(listener)
        unlink(path)
    }
}

extension StubQMPServer.Peer {
    /// Reads a command sent with a descriptor attached (SCM_RIGHTS): the descriptor and the
    /// command's `execute` and `id`.
    func readCommandWithDescriptor() -> (descriptor: Int32?, execute: String, id: String)? {
        var first: UInt8 = 0
        let space = UnixSocketConnection.controlSpace(descriptors: 1)
        var control = [UInt8](repeating: 0, count: space)
        let received = withUnsafeMutablePointer(to: &first) { byte -> Int in
            control.withUnsafeMutableBytes { controlRaw -> Int in
                var iov = iovec(iov_base: UnsafeMutableRawPointer(byte), iov_len: 1)
                return withUnsafeMutablePointer(to: &iov) { iovPointer in
                    var message = msghdr()
                    message.msg_iov = iovPointer
                    message.msg_iovlen = 1
                    message.msg_control = controlRaw.baseAddress
                    message.msg_controllen = space
                    return recvmsg(fd, &message, 0)
                }
            }
        }
        guard received == 1 else { return nil }
        var descriptor: Int32?
        control.withUnsafeBytes { raw in
            let level = raw.load(fromByteOffset: MemoryLayout<Int>.size, as: Int32.self)
            let type = raw.load(fromByteOffset: MemoryLayout<Int>.size + 4, as: Int32.self)
            if level == SOL_SOCKET, type == Int32(SCM_RIGHTS) {
                descriptor = raw.load(fromByteOffset: MemoryLayout<cmsghdr>.size, as: Int32.self)
            }
        }
        guard let rest = readLine(),
            let object = try? JSONSerialization.jsonObject(with: Data(([first] + Array(rest.utf8)))) as? [String: Any],
            let execute = object["execute"] as? String
        else { return nil }
        return (descriptor, execute, (object["id"] as? Int).map(String.init) ?? "null")
    }
}
