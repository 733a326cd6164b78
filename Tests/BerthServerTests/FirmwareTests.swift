import BerthClient
import BerthModel
import Foundation
import Testing

/// Guests booted by their firmware rather than a kernel Berth hands QEMU: OVMF (UEFI) from a
/// disk's EFI system partition, with the domain's own variable store made by berthd.
@Suite(.serialized, .bootsGuests) struct FirmwareTests {
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
    /// beside its disk file (`NAME_VARS.fd`, as libvirt names it), recorded in the definition,
    /// written by the guest's firmware through its descriptor, and removed by `undefine`.
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
        #expect(nvram == state + "/u1_VARS.fd")
        let attributes = try FileManager.default.attributesOfItem(atPath: nvram)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        #expect((attributes[.size] as? Int) == 540_672)
        let dominfo = try await BerthRun.run(["dominfo", "u1"], state: state)
        #expect(dominfo.stdout.contains("UEFI (OVMF \(FirmwareSpec.defaultLoader), variables \(nvram))"), "\(dominfo.stdout)")
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

    /// A UEFI domain on a dir-pool volume gets its variable store beside the volume, chosen
    /// once: a definition sent again without `nvram` keeps it. A store an older berth recorded
    /// under `<state>/nvram/` stays there and keeps working; a domain whose first disk is no
    /// file gets `<state>/nvram/NAME_VARS.fd`. `undefine` removes each where it is.
    @Test func theVariableStoreLivesBesideADirPoolVolume() async throws {
        try Self.requireUEFI()
        let daemon = try await TestDaemon()
        defer { daemon.tearDown() }
        let state = daemon.stateDirectory
        let created = try await BerthRun.run(["vol-create-as", "default", "u3.img", "100M", "--format", "raw"], state: state)
        #expect(created.status == 0, "\(created.stderr)")
        let volume = try await daemon.client.volume(pool: "default", name: "u3.img")
        // The fixture's ESP disk, written into the volume's file.
        try Data(contentsOf: URL(fileURLWithPath: Self.uefiDisk)).write(to: URL(fileURLWithPath: volume.path))
        let run = try await BerthRun.run(
            ["install", "--name=u3", "--ram=256", "--import", "--disk", "vol=default/u3.img", "--boot", "uefi", "--nographics", "--noautoconsole"],
            state: state)
        #expect(run.status == 0, "stderr:\n\(run.stderr)")
        _ = try await daemon.waitForLog("u3", "BERTH-GUEST-MARKER UEFI-ESP", timeout: 240)
        let info = try await daemon.client.info("u3")
        let nvram = try #require(info.spec.firmware?.nvram)
        #expect(nvram == (volume.path as NSString).deletingLastPathComponent + "/u3_VARS.fd", "\(nvram)")
        #expect(FileManager.default.fileExists(atPath: nvram))
        let dominfo = try await BerthRun.run(["dominfo", "u3"], state: state)
        #expect(dominfo.stdout.contains("variables \(nvram))"), "\(dominfo.stdout)")
        // pool-refresh does not take the store for a volume of the pool.
        let refreshed = try await BerthRun.run(["pool-refresh", "default"], state: state)
        #expect(refreshed.status == 0, "\(refreshed.stderr)")
        #expect(!(try await daemon.client.volumes(pool: "default")).contains { $0.name == "u3_VARS.fd" })
        _ = try await daemon.client.perform(.destroy, on: "u3")
        var again = info.spec
        again.firmware?.nvram = nil
        #expect(try await daemon.client.update(again).spec.firmware?.nvram == nvram, "recorded once, never moved")

        // A store where an older berth made it: kept, and used.
        let disk = state + "/old.img"
        try FileManager.default.copyItem(atPath: Self.uefiDisk, toPath: disk)
        let uuid = UUID()
        let old = state + "/nvram/\(uuid.uuidString.lowercased())_VARS.fd"
        var legacy = DomainSpec(name: "old", uuid: uuid, memory: 256, disks: [DiskSpec(path: disk, format: .raw)])
        legacy.firmware = FirmwareSpec(kind: .uefi, nvram: old)
        #expect(try await daemon.client.define(legacy).spec.firmware?.nvram == old)
        #expect(FileManager.default.fileExists(atPath: old))
        legacy.firmware?.nvram = nil
        #expect(try await daemon.client.update(legacy).spec.firmware?.nvram == old)
        #expect(!FileManager.default.fileExists(atPath: state + "/old_VARS.fd"))

        // No file disk: the state directory's nvram/.
        var diskless = DomainSpec(name: "bare", memory: 256)
        diskless.disks = []
        diskless.firmware = FirmwareSpec(kind: .uefi)
        let bare = try #require(try await daemon.client.define(diskless).spec.firmware?.nvram)
        #expect(bare == state + "/nvram/bare_VARS.fd")

        for (name, path) in [("u3", nvram), ("old", old), ("bare", bare)] {
            try await daemon.client.undefine(name, keepLogs: false)
            #expect(!FileManager.default.fileExists(atPath: path), "undefine removes \(path)")
        }
        #expect(FileManager.default.fileExists(atPath: volume.path), "the volume stays")
    }

    /// A host kernel under OVMF: an xl config with `type = "hvm"`, `bios = "ovmf"` and a kernel
    /// (xl's HVM direct-kernel boot) is defined, and OVMF boots the test kernel through its EFI
    /// stub from QEMU's fw_cfg (`-kernel` on a descriptor beside the pflash nodes); the guest
    /// sees EFI. `dumpconfig --format xl` gives the same config back.
    @Test func uefiBootsAHostKernelThroughItsEFIStub() async throws {
        try Self.requireUEFI()
        let guest = try GuestFixture.spec("k1", mode: "poweroff", marker: "UEFI-KERNEL")
        let daemon = try await TestDaemon()
        defer { daemon.tearDown() }
        let state = daemon.stateDirectory
        let config = state + "/k1.cfg"
        try """
        name = "k1"
        type = "hvm"
        bios = "ovmf"
        memory = 256
        kernel = "\(GuestFixture.kernel)"
        ramdisk = "\(GuestFixture.initrd)"
        cmdline = "\(guest.cmdline ?? "")"
        on_poweroff = "destroy"
        """.write(toFile: config, atomically: true, encoding: .utf8)
        let define = try await BerthRun.run(["define", config], state: state)
        #expect(define.status == 0, "\(define.stderr)")
        let defined = try await daemon.client.info("k1")
        #expect(defined.spec.firmware?.kind == .uefi && defined.spec.kernel == GuestFixture.kernel)
        let start = try await BerthRun.run(["start", "k1"], state: state)
        #expect(start.status == 0, "\(start.stderr)")
        let running = try await daemon.client.info("k1")
        // Read while QEMU runs (the guest powers off by itself later).
        if let pid = running.pid, let text = try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8) {
            let cmdline = text.replacingOccurrences(of: "\0", with: " ")
            #expect(cmdline.contains("pflash0=pflash0,pflash1=pflash1") && cmdline.contains("-kernel /proc/self/fd/"), "\(cmdline)")
            #expect(!cmdline.contains("microvm"), "UEFI is never microvm")
        }
        let log = try await daemon.waitForLog("k1", "BERTH-GUEST-MARKER UEFI-KERNEL", timeout: 240)
        #expect(log.contains("EFI stub"), "OVMF started the kernel's EFI stub")
        #expect(log.contains("efi: EFI v"), "the kernel runs on UEFI")
        #expect(log.contains("BERTH-GUEST-READY"))
        _ = try await daemon.waitForState("k1", .shutoff, timeout: 120)
        let dumped = try await BerthRun.run(["dumpconfig", "k1", "--format", "xl"], state: state)
        #expect(dumped.stdout.contains("type = \"hvm\"") && dumped.stdout.contains("bios = \"ovmf\""), "\(dumped.stdout)")
        #expect(dumped.stdout.contains("kernel = \"\(GuestFixture.kernel)\""))
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
            #expect(error.remedy?.contains("install ovmf") == true, "names the package: \(error.remedy ?? "-")")
        }
        let file = state + "/empty.json"
        try #"{"name": "empty", "nics": [{"mode": "user"}]}"#.write(toFile: file, atomically: true, encoding: .utf8)
        let define = try await BerthRun.run(["define", file], state: state)
        #expect(define.status == 0, "\(define.stderr)")
        #expect(define.stderr.contains("has nothing to boot"), "\(define.stderr)")
        // dominfo says which firmware boots it, in which order, and what it lacks.
        let dominfo = try await BerthRun.run(["dominfo", "empty"], state: state)
        #expect(dominfo.stdout.contains("SeaBIOS, boot order hd, cdrom — "), "\(dominfo.stdout)")
        #expect(dominfo.stdout.contains("nothing to boot"), "\(dominfo.stdout)")
        let start = try await BerthRun.run(["start", "empty"], state: state)
        #expect(start.status != 0)
        #expect(start.stderr.contains("has nothing to boot"), "\(start.stderr)")
        let info = try await daemon.client.info("empty")
        #expect(info.state == .shutoff)
    }

    /// `berth install --pxe`, in a network namespace of the test's own: a nat network whose
    /// dnsmasq serves a TFTP root and names `boot.ipxe` in DHCP; QEMU's iPXE ROM on the
    /// installer's NIC (the boot order network, hd) fetches the script, the installer kernel and
    /// initrd over TFTP; the installer fetches its kickstart from an "outside" namespace, installs
    /// and powers off; berthd hands over, the installed system boots from its disk.
    @Test func pxeInstallBootsTheInstallerFromTheNetworksTFTP() async throws {
        try InstallFixture.require()
        let host = try TestNamespace("host")
        let outside = try TestNamespace("out")
        defer {
            host.destroy()
            outside.destroy()
        }
        try host.link("h-out", "10.78.0.1/24", to: outside, "o-host", "10.78.0.2/24")
        let daemon = try await TestDaemon(namespace: host)
        defer { daemon.tearDown() }
        let state = daemon.stateDirectory
        // The kickstart, served from outside over HTTP (the guest goes out masqueraded).
        let www = state + "/www"
        try FileManager.default.createDirectory(atPath: www, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: InstallFixture.kickstart("a.ks"), toPath: www + "/a.ks")
        try outside.daemon(["busybox", "httpd", "-f", "-p", "10.78.0.2:8080", "-h", www], log: state + "/httpd.log")
        // dnsmasq drops to nobody before it serves TFTP: a world-readable root of its own.
        let tftp = "/tmp/berth-tftp-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: tftp, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        defer { try? FileManager.default.removeItem(atPath: tftp) }
        for file in ["vmlinuz", "initrd.img"] {
            try FileManager.default.copyItem(atPath: InstallFixture.tree + "/images/pxeboot/" + file, toPath: tftp + "/" + file)
            chmod(tftp + "/" + file, 0o644)
        }
        try "#!ipxe\nkernel vmlinuz console=ttyS0 ks=http://10.78.0.2:8080/a.ks\ninitrd initrd.img\nboot\n"
            .write(toFile: tftp + "/boot.ipxe", atomically: true, encoding: .utf8)
        chmod(tftp + "/boot.ipxe", 0o644)
        let network = try JSONDecoder().decode(
            NetworkSpec.self,
            from: Data(#"{"name": "pxe", "mode": "nat", "address": "10.61.0.1/24", "tftpRoot": "\#(tftp)", "bootFile": "boot.ipxe"}"#.utf8))
        _ = try await daemon.client.defineNetwork(network)
        _ = try await daemon.client.startNetwork("pxe")
        let xml = try await BerthRun.run(["net-dumpxml", "pxe"], state: state)
        #expect(xml.stdout.contains("<tftp root='\(tftp)'/>") && xml.stdout.contains("<bootp file='boot.ipxe'/>"), "\(xml.stdout)")

        let disk = state + "/p1.img"
        let run = try await BerthRun.run(
            [
                "install", "--name=p1", "--ram=512", "--pxe", "--network", "network=pxe", "--disk", "path=\(disk),size=1", "--nographics",
                "--noautoconsole", "--wait=-1",
            ], state: state)
        #expect(run.status == 0, "stderr:\n\(run.stderr)")
        #expect(run.stderr.contains("boots from the network"), "\(run.stderr)")
        let log = try await daemon.log("p1")
        // Only the network's boot script names this kickstart: iPXE ran it (iPXE's own output
        // goes to the display, not the serial console).
        #expect(log.contains("BERTH-INSTALLER-START ks=http://10.78.0.2:8080/a.ks"), "\(log)")
        #expect(log.contains("BERTH-INSTALLER-DONE marker=INSTALLED-alpha"))
        _ = try await daemon.waitForLog("p1", "BERTH-GUEST-MARKER INSTALLED-alpha", timeout: 180)
        let info = try await daemon.client.info("p1")
        #expect(info.spec.bootloader != nil && info.spec.disks.map(\.path) == [disk])
        _ = try await daemon.client.perform(.destroy, on: "p1")
        print("PXE install timing: \(String(format: "%.1f", run.seconds)) s")

        // --pxe without a network that names a boot file, or on user-mode networking: refused, nothing made.
        _ = try await daemon.client.defineNetwork(
            try JSONDecoder().decode(NetworkSpec.self, from: Data(#"{"name": "plain", "mode": "isolated", "address": "10.62.0.1/24"}"#.utf8)))
        for (network, words) in [("network=plain", "names none"), ("user", "needs a NIC on a Berth network")] {
            let refused = try await BerthRun.run(
                ["install", "--name=p2", "--pxe", "--network", network, "--disk", "path=\(state)/p2.img,size=1", "--noautoconsole"], state: state)
            #expect(refused.status != 0)
            #expect(refused.stderr.contains(words), "\(refused.stderr)")
            #expect(!FileManager.default.fileExists(atPath: state + "/p2.img"))
        }
    }
}
