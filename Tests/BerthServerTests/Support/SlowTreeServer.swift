import Foundation

/// An HTTP server for a directory that sends each file slowly (512 KiB every 0.1 s), so a test
/// can act while berthd is still fetching an installer. Test support only: berthd is never slowed.
final class SlowTreeServer: @unchecked Sendable {
    let port: Int
    private let process: Process

    static let script = """
        import functools, http.server, sys, time
        class Slow(http.server.SimpleHTTPRequestHandler):
            def copyfile(self, source, destination):
                while True:
                    chunk = source.read(512 * 1024)
                    if not chunk:
                        return
                    destination.write(chunk)
                    destination.flush()
                    time.sleep(0.1)
            def log_message(self, *arguments):
                pass
        handler = functools.partial(Slow, directory=sys.argv[2])
        http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), handler).serve_forever()
        """

    init(directory: String) throws {
        var port = Int.random(in: 32001...60000)
        while TestDaemon.acceptsTCP(port) { port = Int.random(in: 32001...60000) }
        self.port = port
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = ["-c", Self.script, String(port), directory]
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(60)
        while !TestDaemon.acceptsTCP(port) {
            guard process.isRunning, Date() < deadline else {
                throw SlowTreeServerError(message: "python3 -m http.server did not listen on 127.0.0.1:\(port) (apt-get install python3)")
            }
            usleep(50_000)
        }
    }

    func stop() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }
}

struct SlowTreeServerError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}
