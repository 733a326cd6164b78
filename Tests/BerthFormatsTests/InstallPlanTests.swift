import BerthModel
import Foundation
import Testing

@testable import BerthFormats

/// What `berth install` sends berthd, and the two checks berthd makes with BerthFormats.
@Suite struct InstallPlanTests {
    @Test func theSeedLineBecomesOnePlan() throws {
        let request = try VirtInstallRequest.parse(arguments: [
            "--name=devel1", "--vcpus=2", "--ram=1200", "--disk", "path=/srv/disks/devel1.img,size=8", "--disk", "size=2",
            "--mac=00:0C:29:1A:98:D5", "--os-variant=rhel6", "--location=http://127.0.0.1:8001/install/centos6/",
            "-x", "ks=/root/centos-6.ks", "--nographics", "--noreboot",
        ])
        let plan = try request.installPlan(workingDirectory: "/srv")
        #expect(plan.source == .location(url: "http://127.0.0.1:8001/install/centos6/", kernel: nil, initrd: nil))
        #expect(plan.domain.name == "devel1" && plan.domain.memory == 1200 && plan.domain.vcpus == 2)
        #expect(plan.domain.bootloader != nil && plan.domain.kernel == nil)
        // size= alone is a volume in the default pool, named after the guest.
        #expect(plan.domain.disks[0].path == "/srv/disks/devel1.img")
        #expect(plan.domain.disks[1].path == "" && plan.domain.disks[1].volume == "default/devel1-2.img")
        #expect(plan.newDisks == [.init(index: 0, sizeBytes: 8 << 30, format: .raw), .init(index: 1, sizeBytes: 2 << 30, format: .raw)])
        #expect(plan.domain.nics.first?.mac?.description.lowercased() == "00:0c:29:1a:98:d5")
        #expect(plan.extraArgs == ["ks=/root/centos-6.ks"] && plan.sourceArgument == "method")
        #expect(plan.serialConsole && plan.noReboot)
        // It survives the trip through JSON unchanged.
        let decoded = try JSONDecoder().decode(InstallPlan.self, from: try JSONEncoder().encode(plan))
        #expect(decoded == plan)
    }

    /// virt-install's `--disk pool=NAME,size=N` makes a volume in that pool; `--disk vol=POOL/NAME`
    /// names an existing one (berthd resolves it), and is refused together with size= or path=.
    @Test func poolAndVolumeDisks() throws {
        let request = try VirtInstallRequest.parse(arguments: [
            "--name=web", "--disk", "pool=fast,size=4", "--disk", "vol=default/data", "--import", "--disk", "path=/srv/boot.img",
        ])
        let plan = try request.installPlan(workingDirectory: "/srv")
        #expect(plan.domain.disks[0].path == "" && plan.domain.disks[0].volume == "fast/web.img")
        #expect(plan.domain.disks[1].path == "" && plan.domain.disks[1].volume == "default/data")
        #expect(plan.newDisks == [.init(index: 0, sizeBytes: 4 << 30, format: .raw)])
        #expect(request.plan().contains("volume default/data"))
        #expect(throws: VirtInstallError.self) {
            _ = try VirtInstallRequest.parse(arguments: ["--name=web", "--disk", "vol=default/data,size=4", "--import"])
        }
        #expect(throws: VirtInstallError.self) {
            _ = try VirtInstallRequest.parse(arguments: ["--name=web", "--disk", "vol=data", "--import"])
        }
    }

    @Test func theInstallerCommandLineIsBuiltFromItsParts() {
        #expect(
            VirtInstallRequest.installerCommandLine(
                extraArgs: ["ks=http://10.0.2.2:8001/kickstarts/a.ks"], networkLocation: "http://10.0.2.2:8001/install/c6/",
                sourceArgument: "method", serialConsole: true)
                == "ks=http://10.0.2.2:8001/kickstarts/a.ks method=http://10.0.2.2:8001/install/c6/ console=ttyS0")
        #expect(
            VirtInstallRequest.installerCommandLine(
                extraArgs: ["console=hvc0 inst.repo=x"], networkLocation: "http://h/", sourceArgument: "method", serialConsole: true)
                == "console=hvc0 inst.repo=x")
    }

    @Test(arguments: [
        (
            "anaconda",
            "Running anaconda 13.21\nAn unknown error has occurred\nanaconda 13.21 exception report\nTraceback (most recent call last):\nStorageError: no disks\n",
            "An unknown error has occurred"
        ),
        ("debian-installer", "Loading...\n  [!!] Partition disks\n\n  No root file system is defined.\n", "[!!] Partition disks"),
        (
            "test installer", "BERTH-INSTALLER-START ks=x\nBERTH-INSTALLER-FAILED fstype xfs of / is not supported by the test installer\n",
            "BERTH-INSTALLER-FAILED fstype xfs"
        ),
    ])
    func installerFailuresAreRecognised(_ installer: String, _ console: String, _ first: String) throws {
        let report = try #require(InstallerConsole.failure(in: console), "\(installer)")
        #expect(report.hasPrefix(first))
    }

    @Test func aGoodInstallIsNoFailure() {
        #expect(InstallerConsole.failure(in: "BERTH-INSTALLER-START ks=x\ninstaller: mke2fs\nBERTH-INSTALLER-DONE marker=INSTALLED-alpha\n") == nil)
    }

    @Test func theKickstartCheckRefusesATooSmallDiskUnlessForced() throws {
        let text = "install\nrootpw x\nbootloader --location=mbr\nclearpart --all\npart / --fstype ext4 --size=4096\n"
        #expect(throws: BerthError.self) {
            try KickstartCheck.check(text, source: "ks", diskBytes: 1 << 30, force: false)
        }
        let lines = try KickstartCheck.check(text, source: "ks", diskBytes: 1 << 30, force: true)
        #expect(lines.contains { $0.contains("needs at least 4096 MiB") })
        _ = try KickstartCheck.check(text, source: "ks", diskBytes: 8 << 30, force: false)
    }
}
