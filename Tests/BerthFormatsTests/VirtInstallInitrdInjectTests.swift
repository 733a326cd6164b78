import Foundation
import Testing

@testable import BerthFormats

/// Runs a host tool with an argument array; returns its exit status and standard output.
@discardableResult
func run(_ tool: String, _ arguments: [String], input: Data? = nil, in directory: String? = nil, timeout: TimeInterval = 60)
    throws -> (status: Int32, output: String)
{
    let process = Process()
    process.executableURL = URL(fileURLWithPath: tool)
    process.arguments = arguments
    if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
    let output = Pipe()
    process.standardOutput = output
    process.standardError = FileHandle.nullDevice
    let stdin = Pipe()
    process.standardInput = stdin
    try process.run()
    if let input { stdin.fileHandleForWriting.write(input) }
    try stdin.fileHandleForWriting.close()
    // A hung tool must not hang the test: kill it after the timeout, but only while it runs (a
    // blind kill of its PID a minute later would hit whatever process reuses that number).
    let pid = process.processIdentifier
    let killer = DispatchWorkItem { if process.isRunning { kill(pid, SIGKILL) } }
    DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: killer)
    let collected = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    killer.cancel()
    return (process.terminationStatus, String(decoding: collected, as: UTF8.self))
}

func scratchDirectory() throws -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("berth-inject-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

@Suite struct VirtInstallInitrdInjectTests {
    static let kickstart = Array("install\nurl --url http://hypervisor.example.com/install/6/x86_64/\n".utf8)

    @Test func realGzipAndCpioReadTheAppendix() throws {
        let big = (0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }  // spans several stored blocks
        let appendix = try InitrdInjection.appendix([
            .init(name: "centos-6.ks", contents: Self.kickstart),
            .init(name: "post.sh", contents: Array("#!/bin/sh\necho hi\n".utf8), mode: 0o755),
            .init(name: "big.bin", contents: big),
            .init(name: "empty", contents: []),
        ])
        let directory = try scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let gz = directory + "/appendix.gz"
        try Data(appendix).write(to: URL(fileURLWithPath: gz))

        // gzip -t checks the CRC and length trailer.
        #expect(try run("/bin/gzip", ["-t", gz]).status == 0)
        let cpio = try run("/bin/gzip", ["-dc", gz]).output
        #expect(cpio.hasPrefix("070701"))
        let extract = directory + "/out"
        try FileManager.default.createDirectory(atPath: extract, withIntermediateDirectories: true)
        let listed = try run("/bin/sh", ["-c", "gzip -dc ../appendix.gz | cpio -idm --quiet && ls -1"], in: extract)
        #expect(listed.status == 0)
        #expect(listed.output.split(separator: "\n") == ["big.bin", "centos-6.ks", "empty", "post.sh"])
        #expect(try Data(contentsOf: URL(fileURLWithPath: extract + "/centos-6.ks")) == Data(Self.kickstart))
        #expect(try Data(contentsOf: URL(fileURLWithPath: extract + "/big.bin")) == Data(big))
        let attributes = try FileManager.default.attributesOfItem(atPath: extract + "/post.sh")
        #expect((attributes[.posixPermissions] as? Int) == 0o755)
    }

    @Test func badNamesAreRefused() throws {
        for name in ["", "..", "a/b", "x\0y"] {
            #expect(throws: VirtInstallError.self) { try InitrdInjection.appendix([.init(name: name, contents: [])]) }
        }
        #expect(throws: VirtInstallError.self) {
            try InitrdInjection.appendix([.init(name: "a", contents: []), .init(name: "a", contents: [1])])
        }
        #expect(InitrdInjection.injectedName(forHostPath: "/root/ks.cfg") == "ks.cfg")
        #expect(InitrdInjection.crc32(Array("123456789".utf8)) == 0xCBF4_3926)
    }

    static var guest: (kernel: String, initrd: String)? {
        let root =
            ProcessInfo.processInfo.environment["BERTH_FIXTURES"]
            ?? URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../fixtures/out")
            .standardized.path
        let kernel = root + "/guest/vmlinuz"
        let initrd = root + "/guest/initrd.img"
        guard FileManager.default.fileExists(atPath: kernel), FileManager.default.fileExists(atPath: initrd),
            FileManager.default.fileExists(atPath: "/usr/bin/qemu-system-x86_64")
        else { return nil }
        return (kernel, initrd)
    }

    /// The appendix on a real initrd, booted by a real kernel under QEMU: the injected kickstart is in
    /// the initramfs, and an injected `/init` replaces the original (later archives win).
    @Test(.enabled(if: guest != nil, "needs the test guest fixture (BERTH_FIXTURES) and qemu-system-x86_64"))
    func kernelUnpacksTheAppendix() throws {
        let guest = try #require(Self.guest)
        let initScript = """
            #!/bin/sh
            export PATH=/bin
            echo "BERTH-INJECTED $(cat /centos-6.ks | head -1) $(ls /bin/busybox)"
            poweroff -f

            """
        let appendix = try InitrdInjection.appendix([
            .init(name: "centos-6.ks", contents: Self.kickstart),
            .init(name: "init", contents: Array(initScript.utf8), mode: 0o755),
        ])
        let directory = try scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let combined = directory + "/initrd.img"
        var bytes = try Data(contentsOf: URL(fileURLWithPath: guest.initrd))
        bytes += Data(appendix)
        try bytes.write(to: URL(fileURLWithPath: combined))

        let result = try run(
            "/usr/bin/qemu-system-x86_64",
            [
                "-accel", "tcg", "-m", "256", "-nodefaults", "-no-reboot", "-display", "none", "-serial", "stdio",
                "-kernel", guest.kernel, "-initrd", combined, "-append", "console=ttyS0 panic=-1 quiet",
            ], timeout: 180)
        #expect(result.output.contains("BERTH-INJECTED install /bin/busybox"), "\(result.output.suffix(2000))")
        #expect(!result.output.contains("BERTH-GUEST-READY"))
    }
}
