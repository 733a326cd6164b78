import BerthClient
import BerthModel
import Foundation
import Testing

/// Guests booted by their firmware rather than a kernel Berth hands QEMU: OVMF (UEFI) from a
/// disk's EFI system partition, with the domain's own variable store made by berthd.
@Suite(.serialized) struct FirmwareTests {
    static var uefiDisk: String { InstallFixture.directory + "/uefi.img" }

    static func requireUEFI() throws {
        guard FileManager.default.fileExists(atPath: uefiDisk) else {
            Issue.record("The UEFI disk is missing at \(uefiDisk): run fixtures/install/build-esp.sh first.")
            throw BerthError(.notFound, "UEFI fixture missing")
        }
        guard FileManager.default.fileExists(atPath: FirmwareSpec.defaultLoader) else {
            Issue.record("OVMF is missing (\(FirmwareSpec.defaultLoader)): run scripts/install-host-deps (ovmf).")
            throw BerthError(.notFound, "OVMF missing")
        }
    }

    /// `berth install --import --boot uefi`: OVMF finds GRUB at the ESP's removable-media path,
    /// GRUB boots the test kernel from the ESP. The variable store is the domain's own copy
    /// under the state directory, recorded in the definition, written by the guest's firmware
    /// through its descriptor, and removed by `undefine`.
    @Test func uefiGuestBootsFromItsEFISystemPartition() async throws {
        try Self.requireUEFI()
        let daemon = try await TestDaemon()
        defer { daemon.tearDown() }
        let state = daemon.stateDirectory
        let disk = state + "/u1.img"
        try FileManager.default.copyItem(atPath: Self.uefiDisk, toPath: disk)
        let run = try await BerthRun.run(
            ["install", "--name=u1", "--ram=256", "--import", "--disk", "path=\(disk)", "--boot", "uefi", "--nographics", "--noautoconsole"],
            state: state)
        #expect(run.status == 0, "stderr:\n\(run.stderr)")
        let log = try await daemon.waitForLog("u1", "BERTH-GUEST-MARKER UEFI-ESP", timeout: 240)
        #expect(log.contains("BERTH-UEFI-GRUB"), "GRUB from the ESP booted the kernel")
        let info = try await daemon.client.info("u1")
        let firmware = try #require(info.spec.firmware)
        #expect(firmware.kind == .uefi && info.spec.bootloader == nil && info.spec.kernel == nil)
        #expect(firmware.loader == FirmwareSpec.defaultLoader)
        let nvram = try #require(firmware.nvram)
        #expect(nvram == state + "/nvram/\(info.spec.uuid.uuidString.lowercased())_VARS.fd")
        let attributes = try FileManager.default.attributesOfItem(atPath: nvram)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        #expect((attributes[.size] as? Int) == 540_672)
        // QEMU holds no path: code and store are descriptors, pflash -blockdev nodes.
        let pid = try #require(info.pid)
        let cmdline = try String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8).replacingOccurrences(of: "\0", with: " ")
        #expect(cmdline.contains("pflash0=pflash0,pflash1=pflash1"))
        #expect(!cmdline.contains("OVMF") && !cmdline.contains("_VARS"), "\(cmdline)")
        _ = try await daemon.client.perform(.destroy, on: "u1")
        let template = try Data(contentsOf: URL(fileURLWithPath: FirmwareSpec.defaultVarsTemplate))
        #expect(try Data(contentsOf: URL(fileURLWithPath: nvram)) != template, "OVMF wrote its boot entries into the domain's own store")
        let undefine = try await BerthRun.run(["undefine", "u1"], state: state)
        #expect(undefine.status == 0, "\(undefine.stderr)")
        #expect(!FileManager.default.fileExists(atPath: nvram))
    }

    /// A missing OVMF is named with its package; a domain with nothing to boot is defined with a
    /// warning and refused at start, saying what is missing.
    @Test func missingFirmwareAndNothingToBootAreNamed() async throws {
        let daemon = try await TestDaemon()
        defer { daemon.tearDown() }
        let state = daemon.stateDirectory
        var spec = DomainSpec(name: "u2", firmware: FirmwareSpec(kind: .uefi, loader: "/nonexistent/OVMF_CODE.fd"))
        spec.disks = []
        do {
            _ = try await daemon.client.define(spec)
            Issue.record("a missing loader was accepted")
        } catch let error as BerthError {
            #expect(error.message.contains("/nonexistent/OVMF_CODE.fd"), "\(error)")
        }
        let file = state + "/empty.json"
        try #"{"name": "empty", "nics": [{"mode": "user"}]}"#.write(toFile: file, atomically: true, encoding: .utf8)
        let define = try await BerthRun.run(["define", file], state: state)
        #expect(define.status == 0, "\(define.stderr)")
        #expect(define.stderr.contains("has nothing to boot"), "\(define.stderr)")
        let start = try await BerthRun.run(["start", "empty"], state: state)
        #expect(start.status != 0)
        #expect(start.stderr.contains("has nothing to boot"), "\(start.stderr)")
        let info = try await daemon.client.info("empty")
        #expect(info.state == .shutoff)
    }
}
