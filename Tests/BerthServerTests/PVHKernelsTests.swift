import Foundation
import Testing

@testable import BerthServer

/// `PVHKernels`: what berthd takes from the sandboxed bootloader's output directory, and the
/// cache's behaviour on kernels that cannot be unpacked, with the real bootloader.
@Suite struct PVHKernelsTests {
    func temporaryDirectory() throws -> String {
        let path = "/tmp/berth-pvh-test-" + String(UUID().uuidString.prefix(8)).lowercased()
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// Only a regular file with one name, owned by the user the bootloader ran as, is made
    /// root's and readable: a hard link (to a file chmod would then open up) or a symlink is not.
    @Test func adoptsOnlyWhatTheBootloaderWrote() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let made = dir + "/vmlinux"
        #expect(FileManager.default.createFile(atPath: made, contents: Data([1, 2, 3]), attributes: [.posixPermissions: 0o600]))
        let secret = dir + "/secret"
        #expect(FileManager.default.createFile(atPath: secret, contents: Data([4]), attributes: [.posixPermissions: 0o600]))
        #expect(link(secret, dir + "/linked") == 0)
        #expect(symlink(secret, dir + "/symlinked") == 0)

        #expect(!PVHKernels.adopt(dir + "/linked", madeBy: geteuid()))
        #expect(!PVHKernels.adopt(dir + "/symlinked", madeBy: geteuid()))
        #expect(!PVHKernels.adopt(made, madeBy: geteuid() &+ 1), "another owner")
        var info = stat()
        #expect(stat(secret, &info) == 0 && info.st_mode & 0o777 == 0o600)
        #expect(PVHKernels.adopt(made, madeBy: geteuid()))
        #expect(stat(made, &info) == 0 && info.st_mode & 0o777 == 0o644)
    }

    /// A file that is no bzImage is remembered as such (a `.none` marker) and boots as it is.
    @Test func remembersAKernelItCannotUnpack() async throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let bootloader = URL(fileURLWithPath: TestDaemon.binary).deletingLastPathComponent().appendingPathComponent("berth-bootloader").path
        try #require(
            access(bootloader, X_OK) == 0, "missing \(bootloader): build it with `swift build --product berth-bootloader`")
        let kernel = dir + "/not-a-kernel"
        #expect(FileManager.default.createFile(atPath: kernel, contents: Data(repeating: 7, count: 4096)))
        let cache = PVHKernels(directory: dir + "/pvh", bootloader: bootloader)
        #expect(await cache.elf(for: kernel, identity: nil) == nil)
        let names = try FileManager.default.contentsOfDirectory(atPath: dir + "/pvh")
        #expect(names.count == 1 && names[0].hasSuffix(".none"), "\(names)")
        #expect(await cache.elf(for: kernel, identity: nil) == nil)
    }
}
