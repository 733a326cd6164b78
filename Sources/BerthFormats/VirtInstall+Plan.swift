#if canImport(BerthModel)
    import BerthModel
#endif

extension VirtInstallRequest {
    /// What `berth install --dry-run` prints: the guest, then each step the install would take.
    ///
    /// - Parameter hostCPUs: the host's CPU count, for `--check-cpu`; nil when not known.
    public func plan(hostCPUs: Int? = nil) -> String {
        let os = effectiveOSInfo
        let guestName = name ?? "(unnamed)"
        var lines: [String] = []
        lines.append("berth install \(guestName)\(dryRun ? " (dry run: nothing is changed)" : "")")
        let memoryText =
            memory.map { "\($0) MiB" } ?? "\(os.defaultMemoryMiB) MiB (default for \(os.id))"
        let vcpuText = "\(vcpus ?? 1) vCPU\((vcpus ?? 1) == 1 ? "" : "s")"
        lines.append("  Guest:       \(guestName), \(vcpuText), \(memoryText) RAM, \(arch ?? "host architecture")")
        if let osVariant {
            if let info = osInfo {
                let arguments = [info.sourceArgument.map { "\($0)=" }, info.kickstartArgument.map { "\($0)=" }]
                    .compactMap { $0 }
                let taking = arguments.isEmpty ? "" : "; its installer takes \(arguments.joined(separator: " and "))"
                lines.append("  OS variant:  \(osVariant) (\(info.name))\(taking)")
            } else {
                lines.append("  OS variant:  \(osVariant) (unknown to Berth: generic Linux defaults)")
            }
        }
        for (index, disk) in effectiveDisks.enumerated() {
            lines.append("  Disk \(index + 1):      \(describe(disk))")
        }
        if case .cdrom(let iso) = method {
            lines.append("  CD-ROM:      \(iso) (installer only, read-only)")
        }
        if networks.isEmpty { lines.append("  Network:     none") }
        for (index, nic) in networks.enumerated() {
            lines.append("  NIC \(index + 1):       \(describe(nic))")
        }
        lines.append("  Display:     \(describeGraphics())")

        lines.append("  Steps:")
        var steps: [String] = []
        for (index, disk) in volumesToCreate {
            let size = disk.sizeGiB.map { Self.gib($0) } ?? "?"
            let format = (disk.format ?? .qcow2).rawValue
            if let path = disk.path {
                steps.append("Create disk \(index + 1): \(path), \(size) GiB \(format), unless it exists.")
            } else {
                steps.append(
                    "Create disk \(index + 1): a \(size) GiB \(format) volume in pool '\(disk.pool ?? "default")'.")
            }
        }
        switch method {
        case .location(let url, let kernel, let initrd):
            let kind = isNetworkLocation ? "network install tree" : "local install tree or ISO"
            steps.append("Recognise the \(kind) at \(url) (.treeinfo, SUSE content, Debian MANIFEST, .disk/info, Mageia VERSION).")
            if let kernel, let initrd {
                steps.append("Fetch the installer kernel \(kernel) and initrd \(initrd) from the tree.")
            } else {
                steps.append("Fetch the installer kernel and initrd the tree names (\(kernelHint(os)) for \(os.name)).")
            }
            if !initrdInjections.isEmpty {
                steps.append("Copy \(initrdInjections.joined(separator: ", ")) into the root of the installer's initrd.")
            }
            steps.append(
                "Boot \(guestName) from the installer kernel with: \(installerCommandLine())\n"
                    + "       The installer's reboot ends this phase (on reboot: destroy).")
        case .cdrom(let iso):
            steps.append("Boot \(guestName) from \(iso); the installer's reboot ends this phase.")
        case .pxe:
            steps.append(
                "Boot \(guestName) from the network (iPXE asks the network's DHCP for its boot file); the installer's reboot ends this phase.")
        case .importDisk:
            steps.append("Skip installation: the disk already holds an installed system.")
        case .kernel(let kernel, let initrd, let args):
            steps.append(
                "Boot the host kernel \(kernel)\(initrd.map { " with initrd \($0)" } ?? "")"
                    + "\(args.map { " and arguments '\($0)'" } ?? ""), now and at every start.")
        case nil:
            steps.append("Nothing: no install method was given.")
        }
        switch method {
        case .kernel:
            steps.append("Define \(guestName) to boot that kernel.")
        default:
            steps.append(
                "Define \(guestName) to boot the kernel on its own disk through Berth's bootloader"
                    + " (virt-install set bootloader = pygrub).")
        }
        if autostart { steps.append("Mark \(guestName) to start when the host starts.") }
        if noReboot, method != .importDisk {
            steps.append("Leave \(guestName) shut off after the install (--noreboot).")
        } else {
            let attach = autoconsole ? "and attach to its serial console" : "without attaching (--noautoconsole)"
            steps.append("Start \(guestName) \(attach).")
        }
        if let waitMinutes {
            steps.append(
                waitMinutes < 0
                    ? "Wait until the install finishes." : "Wait at most \(waitMinutes) minutes for the install to finish.")
        }
        for (number, step) in steps.enumerated() {
            lines.append("    \(number + 1). \(step)")
        }

        var notes = warnings
        if checkCPU {
            let wanted = vcpus ?? 1
            if let hostCPUs, wanted > hostCPUs {
                notes.append("--check-cpu: \(wanted) vCPUs is more than the host's \(hostCPUs) CPUs; the guest will run slower.")
            } else if let hostCPUs {
                notes.append("--check-cpu: \(wanted) vCPUs fit the host's \(hostCPUs) CPUs.")
            } else {
                notes.append("--check-cpu: the daemon checks the vCPU count against the host's CPUs.")
            }
        }
        if let osType { notes.append("--os-type \(osType): kept for reference; --os-variant chooses the defaults.") }
        if debug { notes.append("--debug: the daemon logs each step of the install.") }
        if printXML { notes.append("--print-xml: Berth prints its JSON domain definition instead (berth dumpjson).") }
        if force { notes.append("--force: existing disk files are reused without asking.") }
        if !consoles.isEmpty {
            notes.append("--console \(consoles.joined(separator: ", ")): Berth always gives a logged serial console.")
        }
        if !notes.isEmpty {
            lines.append("  Notes:")
            lines += notes.map { "    - \($0)" }
        }
        return lines.joined(separator: "\n")
    }

    private func describe(_ disk: Disk) -> String {
        var parts: [String] = []
        if let path = disk.path {
            parts.append(path)
        } else if let volume = disk.volume {
            parts.append("volume \(volume)")
        } else {
            parts.append("new volume in pool '\(disk.pool ?? "default")'")
        }
        if let size = disk.sizeGiB { parts.append("\(Self.gib(size)) GiB") }
        if let format = disk.format { parts.append(format.rawValue) }
        parts.append(disk.device == .cdrom ? "cdrom" : "disk")
        parts.append("bus \((disk.bus ?? (disk.device == .cdrom ? .ide : .virtio)).rawValue)")
        if disk.readOnly { parts.append("read-only") }
        return parts.joined(separator: ", ")
    }

    private func describe(_ nic: Network) -> String {
        var text: String
        switch nic.mode {
        case .user: text = "user-mode networking (no bridge needed)"
        case .bridge: text = "bridge \(nic.bridge ?? "?")"
        case .network: text = "network '\(nic.network ?? "?")'"
        case .route: text = "routed"
        case .nat: text = "NAT"
        }
        text += ", MAC \(nic.mac.map(\.description) ?? "generated")"
        if let model = nic.model { text += ", model \(model)" }
        return text
    }

    private func describeGraphics() -> String {
        switch graphics {
        case .unspecified: "none (no display option given); the console is the logged serial port"
        case .none: "none; the console is the logged serial port"
        case .vnc(let listen, let port, _):
            "VNC on \(listen ?? "127.0.0.1"):\(port.map(String.init) ?? "auto")"
        case .spice(let listen, let port, _):
            "SPICE on \(listen ?? "127.0.0.1"):\(port.map(String.init) ?? "auto")"
        }
    }

    private func kernelHint(_ os: VirtInstallOSInfo) -> String {
        switch os.family {
        case .rhel, .fedora: "images/pxeboot/vmlinuz and initrd.img"
        case .suse: "boot/<arch>/loader/linux and initrd"
        case .debian: "…/netboot/debian-installer/<arch>/linux and initrd.gz"
        case .ubuntu: "…/netboot/ubuntu-installer/<arch>/linux and initrd.gz"
        case .mageia: "isolinux/<arch>/vmlinuz and all.rdz"
        case .generic: "from .treeinfo"
        }
    }
}
