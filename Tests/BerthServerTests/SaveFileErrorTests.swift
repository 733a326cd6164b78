import BerthModel
import Foundation
import Testing

@testable import BerthServer

/// `berth save`'s file errors (issue 12): a file that exists, a directory that is missing or
/// is not one, and a save that fails part way. Each says what to do, leaves no file behind
/// and the guest running as it was. A fake guest driver (whose QEMU cannot save) and a real
/// catalog.
@Suite struct SaveFileErrorTests {
    @Test func badSaveFilesAreRefusedAndTheGuestRunsOn() async throws {
        let host = try SupervisorPolicyTests.Host()
        defer { host.remove() }
        try host.define("s")
        let supervisor = try host.hypervisor.supervisor("s")
        try await supervisor.start()
        let guest = try #require(host.driver.lastGuest)
        let taken = host.directory + "/taken.save"
        #expect(FileManager.default.createFile(atPath: taken, contents: Data("mine".utf8)))
        let notADirectory = host.directory + "/file"
        #expect(FileManager.default.createFile(atPath: notADirectory, contents: Data()))
        let files = try Self.saveFiles(host.directory)

        let exists = await #expect(throws: BerthError.self) { try await supervisor.save(to: taken, state: nil) { _, _ in } }
        #expect(exists?.code == .alreadyExists && exists?.remedy?.contains("another file name") == true)
        #expect(FileManager.default.contents(atPath: taken) == Data("mine".utf8))

        let missing = await #expect(throws: BerthError.self) {
            try await supervisor.save(to: host.directory + "/no/such/dir/x.save", state: nil) { _, _ in }
        }
        #expect(missing?.code == .notFound && missing?.remedy?.contains("Create the directory") == true)

        let unwritable = await #expect(throws: BerthError.self) {
            try await supervisor.save(to: notADirectory + "/x.save", state: nil) { _, _ in }
        }
        #expect(unwritable?.message.contains("Cannot write a save file in \(notADirectory)") == true, "\(unwritable?.message ?? "")")
        // None of them touched the guest.
        #expect(guest.requests.isEmpty)

        // QEMU failing part way: the half-written file goes and the guest is resumed.
        let failed = await #expect(throws: BerthError.self) {
            try await supervisor.save(to: host.directory + "/half.save", state: nil) { _, _ in }
        }
        #expect(failed?.message.contains("cannot save") == true, "\(failed?.message ?? "")")
        #expect(guest.requests == ["pause", "resume"])
        try await host.until("the guest runs again") { try host.state("s") == .running }
        #expect(try Self.saveFiles(host.directory) == files)
        #expect(try host.hypervisor.info("s").pid == guest.pid)
    }

    /// The directory's files but the catalog's (whose journal files come and go).
    static func saveFiles(_ directory: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory).filter { !$0.hasPrefix("catalog") }.sorted()
    }
}
