import BerthModel
import Foundation
import Testing

@testable import BerthFormats

/// The seed's own virt-install command (seed/000_49a3065ba35f7362.txt, "Creating the VM").
enum Seed {
    static let lines = [
        "virt-install",
        "--name=devel1",
        "--arch=x86_64",
        "--vcpus=2 --check-cpu",
        "--ram=1200",
        "--disk path=/dev/xenspace/devel1",
        "--mac=00:0C:29:1A:98:D5",
        "--os-type=linux",
        "--os-variant=rhel6",
        "--location=http://hypervisor.example.com/install/6/x86_64/",
        "--debug",
        "--nographics",
    ]

    /// As the notes hold it: a Markdown code block, each line but the last ending in `\` and two spaces.
    static let pasted = lines.map { "    " + $0 }.joined(separator: " \\  \n") + "\n"

    /// What bash makes of those lines when they reach it joined: every `\␠` is a word holding one space.
    static let bashArgv = [
        "virt-install", " ", "--name=devel1", " ", "--arch=x86_64", " ", "--vcpus=2", "--check-cpu", " ",
        "--ram=1200", " ", "--disk", "path=/dev/xenspace/devel1", " ", "--mac=00:0C:29:1A:98:D5", " ",
        "--os-type=linux", " ", "--os-variant=rhel6", " ",
        "--location=http://hypervisor.example.com/install/6/x86_64/", " ", "--debug", " ", "--nographics",
    ]

    /// The seed's reinstall: "append a flag with the (HTTP downloadable) path to the kickstart file".
    static let kickstartFlag = "-x \"ks=http://hypervisor.example.com/kickstarts/centos-6.ks\""

    static let location = "http://hypervisor.example.com/install/6/x86_64/"
    static let mac = MACAddress("00:0C:29:1A:98:D5")
}

@Suite struct VirtInstallSeedTests {
    /// Everything the seed's command says, as a user would check it.
    static func expectSeed(_ request: VirtInstallRequest) {
        #expect(request.name == "devel1")
        #expect(request.arch == "x86_64")
        #expect(request.vcpus == 2)
        #expect(request.checkCPU)
        #expect(request.memory == 1200)
        #expect(request.disks == [VirtInstallRequest.Disk(path: "/dev/xenspace/devel1")])
        #expect(request.networks == [VirtInstallRequest.Network(mode: .user, mac: Seed.mac)])
        #expect(request.osType == "linux")
        #expect(request.osVariant == "rhel6")
        #expect(request.osInfo?.family == .rhel)
        #expect(request.method == .location(Seed.location))
        #expect(request.debug)
        #expect(request.graphics == .none)
        #expect(request.autoconsole)
        #expect(request.warnings.isEmpty)
    }

    @Test func pastedTextWithBackslashSpaceSpaceLineEnds() throws {
        #expect(Seed.pasted.contains(" \\  \n    --name=devel1"))
        let words = try VirtInstallRequest.splitCommandLine(Seed.pasted)
        #expect(words == Seed.bashArgv.filter { $0 != " " })
        Self.expectSeed(try VirtInstallRequest.parse(commandText: Seed.pasted))
    }

    @Test func pastedTextWithoutIndentOrTrailingSpaces() throws {
        let plain = Seed.lines.joined(separator: " \\\n")
        Self.expectSeed(try VirtInstallRequest.parse(commandText: plain))
        let crlf = Seed.lines.joined(separator: " \\  \r\n")
        Self.expectSeed(try VirtInstallRequest.parse(commandText: crlf))
        let prompt = "$ " + Seed.lines.joined(separator: " \\\n")
        Self.expectSeed(try VirtInstallRequest.parse(commandText: prompt))
    }

    @Test func bashArgvWithOneSpaceWords() throws {
        Self.expectSeed(try VirtInstallRequest.parse(arguments: Seed.bashArgv))
        // `berth install …` and no command word at all are the same request.
        Self.expectSeed(try VirtInstallRequest.parse(arguments: ["berth", "install"] + Seed.bashArgv.dropFirst()))
        Self.expectSeed(try VirtInstallRequest.parse(arguments: Array(Seed.bashArgv.dropFirst())))
    }

    @Test func spaceSeparatedFormIsTheSame() throws {
        let separated = Seed.bashArgv.flatMap { word -> [String] in
            guard word.hasPrefix("--"), let equals = word.firstIndex(of: "=") else { return [word] }
            return [String(word[..<equals]), String(word[word.index(after: equals)...])]
        }
        #expect(separated.contains("--os-variant") && separated.contains("rhel6"))
        Self.expectSeed(try VirtInstallRequest.parse(arguments: separated))
    }

    @Test func kickstartReinstall() throws {
        let text = Seed.pasted.replacingOccurrences(of: "--nographics\n", with: "--nographics \\  \n    \(Seed.kickstartFlag)\n")
        let request = try VirtInstallRequest.parse(commandText: text)
        #expect(request.extraArgs == ["ks=http://hypervisor.example.com/kickstarts/centos-6.ks"])
        #expect(
            request.installerCommandLine()
                == "ks=http://hypervisor.example.com/kickstarts/centos-6.ks method=\(Seed.location) console=ttyS0")

        // The same flag appended to the bash argv, and in its attached forms.
        for flag in [
            ["-x", "ks=http://hypervisor.example.com/kickstarts/centos-6.ks"],
            ["-xks=http://hypervisor.example.com/kickstarts/centos-6.ks"],
            ["--extra-args=ks=http://hypervisor.example.com/kickstarts/centos-6.ks"],
            ["--extra-args", "ks=http://hypervisor.example.com/kickstarts/centos-6.ks"],
        ] {
            let argv = try VirtInstallRequest.parse(arguments: Seed.bashArgv + [" "] + flag)
            #expect(argv.extraArgs == request.extraArgs, "\(flag)")
        }
    }

    @Test func seedDomainsInstallThenBootFromDisk() throws {
        let request = try VirtInstallRequest.parse(commandText: Seed.pasted)
        let uuid = UUID()
        let boot = VirtInstallInstallerBoot(
            kernel: "/var/lib/berth/boot/devel1-vmlinuz", initrd: "/var/lib/berth/boot/devel1-initrd.img",
            sourceArgument: "method")
        let domains = try request.domains(installerBoot: boot, uuid: uuid)
        let installer = try #require(domains.installer)
        #expect(installer.name == "devel1")
        #expect(installer.uuid == uuid)
        #expect(installer.memory == 1200)
        #expect(installer.vcpus == 2)
        #expect(installer.kernel == boot.kernel)
        #expect(installer.initrd == boot.initrd)
        #expect(installer.cmdline == "method=http://hypervisor.example.com/install/6/x86_64/ console=ttyS0")
        #expect(installer.bootloader == nil)
        #expect(installer.onReboot == .destroy)
        #expect(installer.disks == [DiskSpec(path: "/dev/xenspace/devel1")])
        #expect(installer.nics == [NICSpec(mode: .user, mac: Seed.mac)])
        #expect(installer.graphics == nil)

        let installed = domains.installed
        #expect(installed.uuid == uuid)
        #expect(installed.kernel == nil && installed.initrd == nil && installed.cmdline == nil)
        #expect(installed.bootloader == BootloaderSpec())
        #expect(installed.onReboot == .restart)
        #expect(installed.disks == installer.disks)
        #expect(installed.nics == installer.nics)
        #expect(installed.notes.contains("os-variant: rhel6"))
        try installed.validate()
        try installer.validate()
    }

    @Test func seedPlan() throws {
        var request = try VirtInstallRequest.parse(commandText: Seed.pasted)
        request.dryRun = true
        let expected = """
            berth install devel1 (dry run: nothing is changed)
              Guest:       devel1, 2 vCPUs, 1200 MiB RAM, x86_64
              OS variant:  rhel6 (Red Hat Enterprise Linux 6); its installer takes method= and ks=
              Disk 1:      /dev/xenspace/devel1, disk, bus virtio
              NIC 1:       user-mode networking (no bridge needed), MAC 00:0c:29:1a:98:d5
              Display:     none; the console is the logged serial port
              Steps:
                1. Recognise the network install tree at http://hypervisor.example.com/install/6/x86_64/ (.treeinfo, SUSE content, Debian MANIFEST, .disk/info, Mageia VERSION).
                2. Fetch the installer kernel and initrd the tree names (images/pxeboot/vmlinuz and initrd.img for Red Hat Enterprise Linux 6).
                3. Boot devel1 from the installer kernel with: method=http://hypervisor.example.com/install/6/x86_64/ console=ttyS0
                   The installer's reboot ends this phase (on reboot: destroy).
                4. Define devel1 to boot the kernel on its own disk through Berth's bootloader (virt-install set bootloader = pygrub).
                5. Start devel1 and attach to its serial console.
              Notes:
                - --check-cpu: 2 vCPUs fit the host's 4 CPUs.
                - --os-type linux: kept for reference; --os-variant chooses the defaults.
                - --debug: the daemon logs each step of the install.
            """
        #expect(request.plan(hostCPUs: 4) == expected)
        #expect(request.plan(hostCPUs: 1).contains("--check-cpu: 2 vCPUs is more than the host's 1 CPUs"))
    }
}
