import BerthModel
import Foundation
import Testing

/// An interactive run of a program (here `berth console`): the test types into its standard
/// input and waits for what it prints.
final class ConsoleSession: @unchecked Sendable {
    private let process = Process()
    private let input = Pipe()
    private let stdout = Collector()
    private let stderr = Collector()
    private let drained = DispatchGroup()

    init(_ executable: String, _ arguments: [String], environment: [String: String]) throws {
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = environment
        process.standardInput = input
        let outPipe = Pipe()
        let errPipe = Pipe()
        process.standardOutput = outPipe
        process.standardError = errPipe
        for (sink, pipe) in [(stdout, outPipe), (stderr, errPipe)] {
            drained.enter()
            Thread { [drained] in
                while case let data = pipe.fileHandleForReading.availableData, !data.isEmpty { sink.append(Array(data)) }
                drained.leave()
            }.start()
        }
        try process.run()
    }

    var output: String { stdout.text }
    var messages: String { stderr.text }

    func type(_ text: String) { input.fileHandleForWriting.write(Data(text.utf8)) }
    func type(_ bytes: [UInt8]) { input.fileHandleForWriting.write(Data(bytes)) }

    /// Waits up to `seconds` for `text` in standard output (or standard error).
    func waitFor(_ text: String, inMessages: Bool = false, seconds: Double = guestWait) async throws {
        let deadline = Date().addingTimeInterval(seconds)
        while !(inMessages ? messages : output).contains(text) {
            guard Date() < deadline, process.isRunning || (inMessages ? messages : output).contains(text) else {
                Issue.record("'\(text)' did not appear in \(seconds) s; stdout: \(output) stderr: \(messages)")
                throw BerthError(.timeout, "console session")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Waits up to `seconds` for the program to end; its exit status (killed when it does not end).
    func waitForExit(seconds: Double = guestWait) async throws -> Int32 {
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning, Date() < deadline { try await Task.sleep(for: .milliseconds(50)) }
        if process.isRunning {
            process.terminate()
            Issue.record("The program did not end in \(seconds) s; stdout: \(output) stderr: \(messages)")
        }
        process.waitUntilExit()
        drained.wait()
        return process.terminationStatus
    }
}
