import BerthModel
import Foundation
import Testing

@testable import BerthFormats

@Suite struct VirtInstallParseTests {
    static let base = ["--name", "g1", "--location", "http://mirror.example/tree/"]

    func parse(_ extra: [String], base: [String] = Self.base) throws -> VirtInstallRequest {
        try VirtInstallRequest.parse(arguments: base + extra)
    }

    @Test func unknownOptionIsNamedWithASuggestion() throws {
        #expect(throws: VirtInstallError.unknownOption("--os-varient", suggestion: "--os-variant")) {
            try parse(["--os-varient=rhel6"])
        }
        #expect(throws: VirtInstallError.unknownOption("--frobnicate", suggestion: nil)) {
            try parse(["--frobnicate"])
        }
        do {
            _ = try parse(["--os-varient", "rhel6"])
        } catch let error as VirtInstallError {
            #expect(
                error.description
                    == "Unknown option '--os-varient'. — Did you mean '--os-variant'? See 'berth install --help' for the options virt-install had.")
            #expect(error.berthError.code == .invalidArgument)
        }
    }

    @Test func uniquePrefixesWorkAsInArgparse() throws {
        let request = try parse(["--os-var", "fedora30", "--noauto", "--vcpu", "4"])
        #expect(request.osVariant == "fedora30")
        #expect(!request.autoconsole)
        #expect(request.vcpus == 4)
        // `--no` could be --noreboot, --nographics, --noautoconsole …: ambiguous, so unknown.
        #expect(throws: VirtInstallError.self) { try parse(["--no"]) }
    }

    @Test func bootOptionsSetTheFirmware() throws {
        let uefi = try parse(["--boot", "uefi", "--disk", "size=1"])
        #expect(uefi.uefi && uefi.bootOrder.isEmpty)
        let installed = try uefi.domains(installerBoot: VirtInstallInstallerBoot(kernel: "/k", initrd: "/i"), createdDiskPaths: [0: "/d.img"])
            .installed
        #expect(installed.firmware == FirmwareSpec(kind: .uefi))
        let loader = try parse(["--boot", "loader=/usr/share/OVMF/OVMF_CODE.fd,nvram=/var/lib/x_VARS.fd"])
        #expect(loader.uefi && loader.loader == "/usr/share/OVMF/OVMF_CODE.fd" && loader.nvram == "/var/lib/x_VARS.fd")
        #expect(try parse(["--boot", "firmware=efi"]).uefi)
        let order = try parse(["--boot", "cdrom,hd,network"])
        #expect(order.bootOrder == ["cdrom", "hd", "network"] && !order.uefi)
        #expect(throws: VirtInstallError.self) { try parse(["--boot", "loader=relative/OVMF.fd"]) }
        // --pxe is an install method of its own; the installer boots from the network, then the disk.
        let pxe = try parse(["--pxe", "--disk", "size=1"], base: ["--name", "p1"])
        #expect(pxe.method == .pxe)
        let domains = try pxe.domains(createdDiskPaths: [0: "/p1.img"])
        #expect(domains.installer?.firmware?.bootOrder == [.network, .hd] && domains.installer?.kernel == nil)
        #expect(domains.installed.bootloader != nil)
        #expect(try pxe.installPlan(workingDirectory: "/").source == .network)
        let cdrom = try parse(["--cdrom", "/isos/x.iso", "--disk", "size=1"], base: ["--name", "c1"]).domains(createdDiskPaths: [0: "/c1.img"])
        #expect(cdrom.installer?.firmware?.bootOrder == [.cdrom, .hd] && cdrom.installer?.disks.last?.path == "/isos/x.iso")
    }

    @Test func installMethodsConflict() throws {
        #expect(throws: VirtInstallError.conflict("--location", "--cdrom and --import")) {
            try parse(["--cdrom", "/isos/x.iso", "--import"])
        }
        #expect(throws: VirtInstallError.conflict("--location", "--cdrom")) {
            try parse(["--cdrom=/isos/x.iso"])
        }
        #expect(throws: VirtInstallError.conflict("--boot kernel=", "--location")) {
            try parse(["--boot", "kernel=/k"])
        }
        #expect(throws: VirtInstallError.self) {
            try VirtInstallRequest.parse(arguments: ["--name", "g1", "--disk", "/d.img"])
        }
        #expect(throws: VirtInstallError.conflict("--nographics", "another display option (--graphics, --nographics, --vnc)")) {
            try parse(["--graphics", "vnc", "--nographics"])
        }
        #expect(throws: VirtInstallError.conflict("--ram=512", "--memory=1024")) {
            try parse(["--ram", "512", "--memory", "1024"])
        }
        #expect(throws: VirtInstallError.conflict("--name=g1", "--name=g2")) { try parse(["--name", "g2"]) }
    }

    @Test func missingPiecesSayWhatToDo() throws {
        do {
            _ = try VirtInstallRequest.parse(arguments: ["--location", "http://x/"])
            Issue.record("no --name accepted")
        } catch let error as VirtInstallError {
            #expect(error == .missing("--name", remedy: "Name the guest, e.g. --name devel1."))
        }
        #expect(throws: VirtInstallError.missingValue(option: "--name")) {
            try VirtInstallRequest.parse(arguments: ["--location", "http://x/", "--name"])
        }
        #expect(throws: VirtInstallError.missingValue(option: "--ram")) { try parse(["--ram", "--debug"]) }
        #expect(throws: VirtInstallError.unexpectedValue(option: "--debug", value: "yes")) { try parse(["--debug=yes"]) }
        #expect(throws: VirtInstallError.strayArgument("extra")) { try parse(["extra"]) }
        #expect(
            throws: VirtInstallError.invalidValue(
                option: "--name", value: "bad name",
                reason: "Use 1–64 letters, digits, '.', '_' or '-', starting with a letter or digit.")
        ) {
            try VirtInstallRequest.parse(arguments: ["--name", "bad name", "--import", "--disk", "/d"])
        }
    }

    @Test func disks() throws {
        let request = try parse([
            "--disk", "/var/lib/berth/g1.qcow2,size=8,format=qcow2,bus=virtio",
            "--disk", "size=0.5",
            "--disk=path=/isos/extra.iso",
            "--disk", "path=/dev/vg/lv,bus=xen,cache=none,sparse=no",
            "--disk", "/dev/sr0,device=cdrom,bus=sata",
        ])
        #expect(
            request.disks == [
                .init(path: "/var/lib/berth/g1.qcow2", sizeGiB: 8, format: .qcow2, bus: .virtio),
                .init(sizeGiB: 0.5),
                .init(path: "/isos/extra.iso", device: .cdrom, readOnly: true),
                .init(path: "/dev/vg/lv", bus: .virtio),
                .init(path: "/dev/sr0", bus: .sata, device: .cdrom, readOnly: true),
            ])
        #expect(request.volumesToCreate.map(\.index) == [0, 1])
        #expect(throws: VirtInstallError.invalidValue(option: "--disk format", value: "vmdk", reason: "Berth uses raw or qcow2 images")) {
            try parse(["--disk", "/d,format=vmdk"])
        }
        #expect(throws: VirtInstallError.self) { try parse(["--disk", "/d,size=-1"]) }
        #expect(throws: VirtInstallError.self) { try parse(["--disk", "relative.img"]) }
        #expect(throws: VirtInstallError.unknownSubOption(option: "--disk", key: "colour", known: ParseState.diskKeys)) {
            try parse(["--disk", "/d,colour=red"])
        }
        // Old virtinst: --file and --file-size.
        let old = try parse(["-f", "/var/lib/xen/images/g1.img", "-s", "4"])
        #expect(old.disks == [.init(path: "/var/lib/xen/images/g1.img", sizeGiB: 4)])
    }

    @Test func networks() throws {
        let request = try parse([
            "--network", "bridge=br0,model=e1000", "--network", "network:default", "-w", "user,mac=52:54:00:aa:bb:cc",
            "--network", "bridge:xenbr0",
        ])
        #expect(
            request.networks == [
                .init(mode: .bridge, bridge: "br0", model: "e1000"),
                .init(mode: .network, network: "default"),
                .init(mode: .user, mac: MACAddress("52:54:00:aa:bb:cc")),
                .init(mode: .bridge, bridge: "xenbr0"),
            ])
        // --mac goes to the NICs in order; more --mac than --network adds user-mode NICs.
        let macs = try parse(["--bridge", "xenbr0", "--mac", "00:50:56:78:0a:1b", "--mac", "52:54:00:00:00:02"])
        #expect(
            macs.networks == [
                .init(mode: .bridge, bridge: "xenbr0", mac: MACAddress("00:50:56:78:0a:1b")),
                .init(mode: .user, mac: MACAddress("52:54:00:00:00:02")),
            ])
        #expect(try parse(["--network", "none"]).networks.isEmpty)
        #expect(try parse([]).networks == [.init()])
        #expect(throws: VirtInstallError.invalidValue(option: "--mac", value: "00:11", reason: "a MAC address looks like 52:54:00:12:34:56")) {
            try parse(["--mac", "00:11"])
        }
        #expect(throws: VirtInstallError.conflict("--network none", "--network or --mac")) {
            try parse(["--network", "none", "--mac", "52:54:00:00:00:01"])
        }
    }

    @Test func graphicsConsoleWaitAndFlags() throws {
        let vnc = try parse(["--graphics", "vnc,listen=0.0.0.0,port=5901,password=secret"])
        #expect(vnc.graphics == .vnc(listen: "0.0.0.0", port: 5901, password: "secret"))
        #expect(try parse(["--graphics=none"]).graphics == .none)
        #expect(try parse(["--graphics", "spice"]).graphics == .spice(listen: nil, port: nil, password: nil))
        #expect(try parse(["--vnc", "--vncport=5905"]).graphics == .vnc(listen: nil, port: 5905, password: nil))
        #expect(try parse([]).graphics == .unspecified)

        let flags = try parse([
            "--console", "pty,target_type=serial", "--noautoconsole", "--wait", "30", "--noreboot", "--dry-run",
            "--print-xml", "--autostart", "--force", "--initrd-inject", "/root/ks.cfg", "--initrd-inject=/root/x.sh",
            "-x", "ks=file:/ks.cfg", "--extra-args", "inst.text",
        ])
        #expect(flags.consoles == ["pty,target_type=serial"])
        #expect(!flags.autoconsole)
        #expect(flags.waitMinutes == 30)
        #expect(flags.noReboot && flags.dryRun && flags.printXML && flags.autostart && flags.force)
        #expect(flags.initrdInjections == ["/root/ks.cfg", "/root/x.sh"])
        #expect(flags.extraArgsText == "ks=file:/ks.cfg inst.text")
        #expect(try parse(["--wait"]).waitMinutes == -1)
        #expect(try parse(["--wait", "-1"]).waitMinutes == -1)
        #expect(try parse(["--wait", "--noreboot"]).waitMinutes == -1)
    }

    @Test func vcpusMemoryAndArch() throws {
        let request = try parse(["--vcpus", "2,maxvcpus=4", "--memory", "memory=1024,maxmemory=2048", "--arch", "amd64"])
        #expect(request.vcpus == 2 && request.maxVCPUs == 4)
        #expect(request.memory == 1024 && request.maxMemory == 2048)
        #expect(request.arch == "x86_64")
        #expect(throws: VirtInstallError.self) { try parse(["--vcpus", "4,maxvcpus=2"]) }
        #expect(throws: VirtInstallError.self) { try parse(["--ram", "lots"]) }
        #expect(throws: VirtInstallError.self) { try parse(["--arch", "vax"]) }
        #expect(throws: VirtInstallError.invalidValue(option: "--ram", value: "8", reason: "give 16 MiB to 4194304 MiB")) {
            try parse(["--ram", "8"])
        }
    }

    @Test func installMethods() throws {
        #expect(try parse([]).isNetworkLocation)
        let withPaths = try parse([], base: ["--name", "g1", "--location", "http://m/t/,kernel=casper/vmlinuz,initrd=casper/initrd"])
        #expect(withPaths.method == .location("http://m/t/", kernel: "casper/vmlinuz", initrd: "casper/initrd"))
        let local = try VirtInstallRequest.parse(arguments: ["--name", "g1", "-l", "/srv/centos6"])
        #expect(local.method == .location("/srv/centos6") && !local.isNetworkLocation)
        let cdrom = try VirtInstallRequest.parse(arguments: ["-n", "g1", "-c", "/isos/debian.iso"])
        #expect(cdrom.method == .cdrom("/isos/debian.iso"))
        let imported = try VirtInstallRequest.parse(arguments: ["-n", "g1", "--import", "--disk", "/d.img"])
        #expect(imported.method == .importDisk)
        let kernel = try VirtInstallRequest.parse(arguments: [
            "-n", "g1", "--import", "--disk", "/d.img", "--boot", "kernel=/k,initrd=/i,kernel_args=console=ttyS0",
        ])
        #expect(kernel.method == .kernel(kernel: "/k", initrd: "/i", args: "console=ttyS0"))
        #expect(throws: VirtInstallError.self) {
            try VirtInstallRequest.parse(arguments: ["-n", "g1", "-c", "/isos/x.iso", "-x", "ks=x"])
        }
        #expect(throws: VirtInstallError.self) { try parse(["--pxe"]) }
        #expect(throws: VirtInstallError.self) {
            try VirtInstallRequest.parse(arguments: ["-n", "g1", "-l", "nfs:server:/export"])
        }
        #expect(throws: VirtInstallError.self) {
            try VirtInstallRequest.parse(arguments: ["-n", "g1", "-l", "http://m/,kernel=k"])
        }
    }

    @Test func unknownVariantWarnsButParses() throws {
        let request = try parse(["--os-variant", "plan9"])
        #expect(request.osVariant == "plan9")
        #expect(request.osInfo == nil)
        #expect(request.effectiveOSInfo.id == "generic")
        #expect(request.warnings.count == 1)
        #expect(request.warnings[0].contains("Unknown --os-variant 'plan9'"))
        #expect(try parse(["--os-variant", "id=http://redhat.com/rhel/6.0"]).osVariant == "rhel6.0")
        #expect(try parse(["--osinfo", "name=debian12"]).osVariant == "debian12")
    }

    @Test func legacyXenOptionsWarn() throws {
        let request = try parse(["--paravirt", "--accelerate", "--virt-type", "xen"])
        #expect(request.warnings.count == 3)
        #expect(request.plan().contains("--paravirt: Berth runs every guest under QEMU"))
    }

    @Test func quotedNameIsOneWordAndValidated() throws {
        let text = "virt-install --name 'my guest' --import --disk /d"
        #expect(try VirtInstallRequest.splitCommandLine(text) == ["virt-install", "--name", "my guest", "--import", "--disk", "/d"])
        #expect(throws: VirtInstallError.self) { try VirtInstallRequest.parse(commandText: text) }
    }

    @Test func shellSplitting() throws {
        let split = VirtInstallRequest.splitCommandLine
        #expect(
            try split(#"virt-install -x "ks=http://h/k.ks ip=dhcp" --name=a\ b"#) == ["virt-install", "-x", "ks=http://h/k.ks ip=dhcp", "--name=a b"])
        #expect(try split("virt-install -x 'a \"b\" c'") == ["virt-install", "-x", "a \"b\" c"])
        #expect(try split(#"virt-install -x "say \"hi\" \\ \$HOME""#) == ["virt-install", "-x", #"say "hi" \ $HOME"#])
        #expect(try split("virt-install \\\n  --name x # a comment\n") == ["virt-install", "--name", "x"])
        #expect(try split("virt-install --name x \\  \n\t--import \\\t\n--disk /d") == ["virt-install", "--name", "x", "--import", "--disk", "/d"])
        #expect(try split("--name x --import") == ["--name", "x", "--import"])
        #expect(try split("\n\n  virt-install --name x\n\n") == ["virt-install", "--name", "x"])
        #expect(throws: VirtInstallError.unterminatedQuote("\"", line: 2)) { try split("virt-install \\\n -x \"ks=") }
        #expect(throws: VirtInstallError.unterminatedQuote("'", line: 1)) { try split("virt-install -x 'ks=") }
        #expect(throws: VirtInstallError.multipleCommands(line: 2)) { try split("virt-install --name a\n--import") }
        #expect(throws: VirtInstallError.emptyCommand) { try split("  \n # nothing\n") }
        #expect(throws: VirtInstallError.notVirtInstall("xm")) { try split("xm create devel1") }
        // A last line that still carries its `\  ` continuation.
        #expect(try split("virt-install --name x \\  ") == ["virt-install", "--name", "x"])
    }
}

@Suite struct VirtInstallPromptTests {
    @Test func rootPromptIsDroppedCommentsAreNot() throws {
        #expect(try VirtInstallRequest.splitCommandLine("# virt-install --name x") == ["virt-install", "--name", "x"])
        #expect(try VirtInstallRequest.splitCommandLine("# the seed's command\nvirt-install --name x") == ["virt-install", "--name", "x"])
    }
}
