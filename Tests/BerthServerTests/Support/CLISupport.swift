import BerthClient
import BerthModel
import Foundation
import Testing

/// The install tree built by fixtures/install/build-tree.sh.
enum InstallFixture {
    static var directory: String {
        URL(fileURLWithPath: GuestFixture.directory).deletingLastPathComponent().appendingPathComponent("install").path
    }
    static var tree: String { directory + "/tree" }
    static var iso: String { directory + "/tree.iso" }
    static func kickstart(_ name: String) -> String { directory + "/ks/" + name }

    static func require() throws {
        guard FileManager.default.fileExists(atPath: tree + "/.treeinfo"), FileManager.default.fileExists(atPath: iso) else {
            Issue.record("The install tree is missing at \(directory): run fixtures/install/build-tree.sh first.")
            throw BerthError(.notFound, "install fixture missing")
        }
    }
}

/// Runs the built `berth` binary against a test daemon's state directory.
struct BerthRun {
    var status: Int32
    var stdout: String
    var stderr: String
    var seconds: Double

    /// Runs the CLI on a thread of its own: waiting for a whole `berth install` on one of the
    /// test runner's few cooperative threads would stall every other test meanwhile.
    static func run(_ arguments: [String], state: String?, environment extra: [String: String] = [:]) async throws
        -> BerthRun
    {
        try await withCheckedThrowingContinuation { continuation in
            Thread {
                continuation.resume(with: Result { try runBlocking(arguments, state: state, environment: extra) })
            }.start()
        }
    }

    static func runBlocking(_ arguments: [String], state: String?, environment extra: [String: String] = [:]) throws
        -> BerthRun
    {
        var environment = ProcessInfo.processInfo.environment
        environment.removeValue(forKey: "BERTH_CONNECT")
        if let state { environment["BERTH_STATE_DIR"] = state }
        environment.merge(extra) { $1 }
        return try execute(TestDaemon.berthBinary, arguments, environment: environment)
    }

    /// Runs a program to its end (terminated after `timeout` seconds when given), collecting
    /// its output; blocking, so callers run it on a thread of its own.
    static func execute(
        _ executable: String, _ arguments: [String], environment: [String: String]? = nil, timeout: Double? = nil
    ) throws -> BerthRun {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment { process.environment = environment }
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        // Never the test runner's terminal: the CLI sees what a script gives it.
        process.standardInput = FileHandle.nullDevice
        let started = Date()
        try process.run()
        let killer = DispatchWorkItem { process.terminate() }
        if let timeout { DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: killer) }
        // Drain both pipes while the program runs: a full pipe would stall it.
        let outData = Collector()
        let errData = Collector()
        let group = DispatchGroup()
        for (pipe, sink) in [(out, outData), (err, errData)] {
            group.enter()
            DispatchQueue.global().async {
                sink.append(Array(pipe.fileHandleForReading.readDataToEndOfFile()))
                group.leave()
            }
        }
        process.waitUntilExit()
        killer.cancel()
        group.wait()
        return BerthRun(
            status: process.terminationStatus, stdout: outData.text, stderr: errData.text,
            seconds: Date().timeIntervalSince(started))
    }
}

/// One raw HTTP/1.0 request over TCP: URLSession would normalise `..` and `%2f` away.
enum RawHTTP {
    struct Reply {
        var status: Int
        var headers: [String: String]
        var body: [UInt8]
    }

    /// A TCP connection to 127.0.0.1:`port` (the caller closes it), with a receive buffer of
    /// `receiveBuffer` bytes when given (set before connecting, so the window is small from the start).
    static func connect(port: Int, receiveBuffer: Int32? = nil) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw BerthError(.connection, "socket") }
        if var size = receiveBuffer {
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else {
            close(fd)
            throw BerthError(.connection, "connect to 127.0.0.1:\(port)")
        }
        return fd
    }

    static func request(port: Int, _ method: String, _ path: String, headers: [String: String] = [:]) throws -> Reply {
        let fd = try connect(port: port)
        defer { close(fd) }
        var text = "\(method) \(path) HTTP/1.1\r\nHost: \(headers["Host"] ?? "127.0.0.1:\(port)")\r\nConnection: close\r\n"
        for (key, value) in headers where key != "Host" { text += "\(key): \(value)\r\n" }
        text += "\r\n"
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            response += buffer[..<n]
        }
        guard let split = response.firstRange(of: Array("\r\n\r\n".utf8)) else {
            throw BerthError(.internal, "no HTTP header in \(String(decoding: response, as: UTF8.self))")
        }
        let head = String(decoding: response[..<split.lowerBound], as: UTF8.self).components(separatedBy: "\r\n")
        let status = head.first.flatMap { Int($0.split(separator: " ").dropFirst().first ?? "") } ?? 0
        var fields: [String: String] = [:]
        for line in head.dropFirst() {
            if let colon = line.firstIndex(of: ":") {
                fields[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
        }
        var body = Array(response[split.upperBound...])
        if fields["transfer-encoding"]?.lowercased() == "chunked" { body = dechunk(body) }
        return Reply(status: status, headers: fields, body: body)
    }

    /// GET `path`, read `pauseAfter` bytes of the response, call `pause` while the server waits
    /// on a full socket, then read the rest. Returns the body (Content-Length framed).
    static func streaming(port: Int, _ path: String, pauseAfter: Int, pause: () -> Void) throws -> [UInt8] {
        // A small receive buffer, so the server is held up early in the transfer.
        let fd = try connect(port: port, receiveBuffer: 32 << 10)
        defer { close(fd) }
        let request = Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n\r\n".utf8)
        _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        var paused = false
        while true {
            let want = paused ? buffer.count : min(buffer.count, max(1, pauseAfter - response.count))
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, want, 0) }
            if n <= 0 { break }
            response += buffer[..<n]
            if !paused, response.count >= pauseAfter {
                paused = true
                usleep(300_000)  // let the server fill the socket and wait on it
                pause()
            }
        }
        guard let split = response.firstRange(of: Array("\r\n\r\n".utf8)) else {
            throw BerthError(.internal, "no HTTP header")
        }
        return Array(response[split.upperBound...])
    }

    static func dechunk(_ data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        var index = 0
        while index < data.count {
            guard let lineEnd = data[index...].firstRange(of: Array("\r\n".utf8)) else { break }
            let sizeText = String(decoding: data[index..<lineEnd.lowerBound], as: UTF8.self)
            guard let size = Int(sizeText.split(separator: ";").first ?? "", radix: 16), size > 0 else { break }
            let start = lineEnd.upperBound
            guard start + size <= data.count else { break }
            out += data[start..<(start + size)]
            index = start + size + 2
        }
        return out
    }
}
