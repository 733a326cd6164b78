import BerthModel
import Foundation
import Testing

@testable import BerthQEMU

@Suite struct AcceleratorProbeTests {
    typealias Facts = AcceleratorProbe.Facts

    @Test(arguments: [
        (Facts(cpuFlags: ["vmx"], device: .open(apiVersion: 12), modules: ["kvm_intel"]), Accelerator.kvm),
        (Facts(cpuFlags: ["svm"], device: .open(apiVersion: 12), modules: ["kvm_amd"]), .kvm),
        (Facts(cpuFlags: ["vmx"], device: .missing, modules: []), .tcg),
        (Facts(cpuFlags: ["vmx"], device: .unopenable("Permission denied"), modules: ["kvm_intel"]), .tcg),
        (Facts(cpuFlags: ["hypervisor"], device: .open(apiVersion: 12), modules: ["kvm_pvm"]), .tcg),
        (Facts(cpuFlags: ["vmx"], device: .open(apiVersion: 12), modules: ["kvm_intel", "kvm_pvm"]), .tcg),
        (Facts(cpuFlags: [], device: .open(apiVersion: nil), modules: []), .tcg),
    ])
    func verdicts(facts: Facts, expected: Accelerator) {
        let verdict = AcceleratorProbe.verdict(from: facts)
        #expect(verdict.chosen == expected, "\(verdict.reason)")
        #expect(!verdict.reason.isEmpty)
        #expect(verdict.checks.contains { $0.name == "/dev/kvm" })
    }

    @Test func pvmVerdictSaysWhy() {
        let verdict = AcceleratorProbe.verdict(
            from: Facts(cpuFlags: ["hypervisor"], device: .open(apiVersion: 12), modules: ["kvm_pvm"]))
        #expect(verdict.chosen == .tcg)
        #expect(verdict.reason.contains("kvm_pvm"))
        #expect(verdict.checks.first { $0.name == "KVM module" }?.result == .fail)
        #expect(verdict.checks.first { $0.name == "Hardware virtualization" }?.detail.contains("nested") == true)
    }

    @Test func gatherReadsFakeRoots() throws {
        let root = NSTemporaryDirectory() + "berth-probe-\(UUID().uuidString.prefix(8))"
        let fm = FileManager.default
        try fm.createDirectory(atPath: root + "/proc", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: root + "/sys/module/kvm_amd", withIntermediateDirectories: true)
        defer { try? fm.removeItem(atPath: root) }
        try "processor\t: 0\nflags\t\t: fpu vme svm sse2\n\nprocessor\t: 1\nflags\t\t: fpu\n"
            .write(toFile: root + "/proc/cpuinfo", atomically: true, encoding: .utf8)
        try "kvm 1 0 - Live 0x0\n".write(toFile: root + "/proc/modules", atomically: true, encoding: .utf8)
        let facts = AcceleratorProbe.gather(procRoot: root + "/proc", sysRoot: root + "/sys", device: root + "/kvm")
        #expect(facts == Facts(cpuFlags: ["svm"], device: .missing, modules: ["kvm_amd"]))
        // A regular file in place of /dev/kvm opens but answers no KVM ioctl.
        try "".write(toFile: root + "/kvm", atomically: true, encoding: .utf8)
        let fake = AcceleratorProbe.gather(procRoot: root + "/proc", sysRoot: root + "/sys", device: root + "/kvm")
        #expect(fake.device == .open(apiVersion: nil))
        #expect(AcceleratorProbe.verdict(from: fake).chosen == .tcg)
    }

    /// On this project's machines /dev/kvm is kvm_pvm: the real probe must pick TCG.
    @Test(.enabled(if: FileManager.default.fileExists(atPath: "/sys/module/kvm_pvm")))
    func thisHostIsTCG() throws {
        let verdict = AcceleratorProbe.probe()
        #expect(verdict.chosen == .tcg)
        #expect(verdict.reason.contains("kvm_pvm"))
        #expect(try AcceleratorProbe.resolve(.auto, verdict: verdict) == .tcg)
        let error = #expect(throws: BerthError.self) { try AcceleratorProbe.resolve(.kvm, verdict: verdict) }
        #expect(error?.code == .unavailable)
        #expect(error?.message.contains("kvm_pvm") == true)
        #expect(error?.remedy?.contains("--accel tcg") == true)
    }

    @Test func resolveHonoursTheRequest() throws {
        let kvm = AcceleratorVerdict(chosen: .kvm, reason: "ok", checks: [])
        #expect(try AcceleratorProbe.resolve(.tcg, verdict: kvm) == .tcg)
        #expect(try AcceleratorProbe.resolve(.kvm, verdict: kvm) == .kvm)
        #expect(try AcceleratorProbe.resolve(.auto, verdict: kvm) == .kvm)
    }

    @Test func hostCheckNamesQEMU() async throws {
        let (verdict, qemu) = await AcceleratorProbe.hostCheck()
        let binary = try #require(qemu)
        #expect(binary.version.split(separator: ".").count == 3)
        #expect(verdict.checks.first?.name == "QEMU")
        #expect(verdict.checks.first?.result == .pass)
        // Which way logical volumes are used here (issue 10: host-check says which applies).
        let lvm = try #require(verdict.checks.first { $0.name == "LVM" })
        #expect(lvm.detail.contains(DeviceMapper.present ? "/dev/VG/LV" : "byte range of the physical volume"), "\(lvm)")
    }
}

@Suite struct QEMUBinaryTests {
    @Test func notInstalledNamesTheDebianPackage() {
        let error = #expect(throws: BerthError.self) {
            try QEMUBinary.locate(environment: ["PATH": "/nonexistent/bin"])
        }
        #expect(error?.code == .unavailable)
        #expect(error?.remedy?.contains("qemu-system-x86") == true)
        let override = #expect(throws: BerthError.self) {
            try QEMUBinary.locate(environment: ["PATH": "/usr/bin", "BERTH_QEMU": "/nonexistent/qemu"])
        }
        #expect(override?.message.contains("/nonexistent/qemu") == true)
    }

    @Test func versionLine() {
        #expect(QEMUBinary.parseVersion("QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)") == "7.2.22")
        #expect(QEMUBinary.parseVersion("QEMU emulator version 9.0.0") == "9.0.0")
        #expect(QEMUBinary.parseVersion("something else") == nil)
    }

    @Test func findsTheInstalledBinary() async throws {
        let qemu = try await QEMUBinary.find()
        #expect(qemu.path.hasSuffix("/qemu-system-x86_64"))
        #expect(qemu.versionLine.contains(qemu.version))
    }
}

@Suite struct RuntimePathsTests {
    @Test func layout() throws {
        let uuid = try #require(UUID(uuidString: "6F1C2B9E-3D4A-4E5F-8A7B-1C2D3E4F5A6B"))
        let paths = RuntimePaths(runtimeRoot: "/run/berth", logRoot: "/var/log/berth", name: "devel1", uuid: uuid)
        #expect(paths.qmpSocket == "/run/berth/6f1c2b9e-3d4a-4e5f-8a7b-1c2d3e4f5a6b/qmp.sock")
        #expect(paths.consoleSocket == "/run/berth/6f1c2b9e-3d4a-4e5f-8a7b-1c2d3e4f5a6b/console.sock")
        #expect(paths.pidFile == "/run/berth/6f1c2b9e-3d4a-4e5f-8a7b-1c2d3e4f5a6b/qemu.pid")
        #expect(paths.consoleLog == "/var/log/berth/devel1.log")
    }

    @Test func tooLongSocketPathIsRefused() {
        let paths = RuntimePaths(
            runtimeRoot: "/tmp/" + String(repeating: "x", count: 80), logRoot: "/tmp", name: "a", uuid: UUID())
        let error = #expect(throws: BerthError.self) { try paths.prepare() }
        #expect(error?.remedy?.contains("shorter") == true)
    }

    @Test func consoleLogRotation() throws {
        let root = NSTemporaryDirectory() + "berth-rot-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: root) }
        let paths = RuntimePaths(runtimeRoot: root + "/run", logRoot: root + "/logs", name: "g", uuid: UUID())
        try paths.prepare()
        let attributes = try FileManager.default.attributesOfItem(atPath: paths.directory)
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o700)

        // Small logs are left alone.
        try "boot 0\n".write(toFile: paths.consoleLog, atomically: true, encoding: .utf8)
        #expect(try paths.rotateConsoleLog(maxBytes: 100, keep: 2) == false)
        for boot in 1...4 {
            try (String(repeating: "x", count: 200) + " boot \(boot)\n").write(
                toFile: paths.consoleLog, atomically: true, encoding: .utf8)
            #expect(try paths.rotateConsoleLog(maxBytes: 100, keep: 2))
        }
        let fm = FileManager.default
        #expect(!fm.fileExists(atPath: paths.consoleLog))
        #expect(try String(contentsOfFile: paths.consoleLog + ".1", encoding: .utf8).hasSuffix("boot 4\n"))
        #expect(try String(contentsOfFile: paths.consoleLog + ".2", encoding: .utf8).hasSuffix("boot 3\n"))
        #expect(!fm.fileExists(atPath: paths.consoleLog + ".3"))
    }
}
