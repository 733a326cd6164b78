import Glibc
import Synchronization
import Testing

@testable import BerthPOSIX

@Suite struct FileBytesTests {
    func temporaryFile(_ bytes: [UInt8]) throws -> String {
        var template = Array("/tmp/berth-filebytes-XXXXXX".utf8CString)
        let fd = mkstemp(&template)
        try #require(fd >= 0)
        defer { close(fd) }
        try writeAll(fd, bytes)
        return String(cString: template)
    }

    @Test func readsRangesTailsAndSizes() throws {
        let bytes = (0..<100_000).map { UInt8($0 % 251) }
        let path = try temporaryFile(bytes)
        defer { unlink(path) }
        #expect(FileBytes.size(path) == 100_000)
        #expect(FileBytes.read(path, maxBytes: 10) == Array(bytes[0..<10]))
        #expect(FileBytes.read(path, from: 99_990, maxBytes: 100) == Array(bytes[99_990...]))
        #expect(FileBytes.read(path, from: 200_000, maxBytes: 100) == [])
        #expect(FileBytes.read(path, maxBytes: 1 << 20) == bytes)
        #expect(FileBytes.tail(path, maxBytes: 5) == Array(bytes[99_995...]))
        #expect(FileBytes.tail(path, maxBytes: 1 << 20) == bytes)
        try FileBytes.append([1, 2, 3], to: path)
        #expect(FileBytes.tail(path, maxBytes: 3) == [1, 2, 3])
    }

    @Test func aMissingFileIsNil() {
        #expect(FileBytes.read("/nonexistent/berth", maxBytes: 10) == nil)
        #expect(FileBytes.tail("/nonexistent/berth", maxBytes: 10) == nil)
        #expect(FileBytes.size("/nonexistent/berth") == nil)
        #expect(throws: SystemCallError.self) { try FileBytes.append([1], to: "/nonexistent/berth") }
    }

    @Test func aThreadRunsItsBodyUnderItsName() async throws {
        let name = Mutex<String?>(nil)
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            do {
                try startThread(named: "berth-test-thread-long-name") {
                    let comm = FileBytes.read("/proc/thread-self/comm", maxBytes: 32) ?? []
                    name.withLock { $0 = String(decoding: comm, as: UTF8.self) }
                    done.resume()
                }
            } catch {
                Issue.record("startThread failed: \(error)")
                done.resume()
            }
        }
        // Linux keeps 15 bytes of a thread's name.
        #expect(name.withLock { $0 } == "berth-test-thre\n")
    }
}
