import BerthBoot
import BerthHost
import BerthModel
import BerthQEMU
import FoundationEssentials
import Glibc

extension BootPreparer {
    /// Direct-kernel domains boot their spec's files; `bootloader` domains get the kernel the
    /// guest's own menu chooses, extracted from their first disk into `directory/<uuid>/` at
    /// every start (so a kernel upgraded inside the guest boots next time), as PyGRUB did.
    ///
    /// The guest's disk and menus are hostile input, so berthd never parses them itself: it runs
    /// `berth-bootloader` (as xl ran pygrub) with the disk as its standard input, opened
    /// read-only here, as the guest's own unprivileged user with resource limits
    /// (`--sandbox`), under a wall-clock limit. A crash, hang or refusal costs this guest its
    /// start, with the bootloader's message, and nothing else.
    static func fromGuestDisk(directory: String, bootloader: String, timeout: Duration = .seconds(30)) -> BootPreparer {
        BootPreparer { spec, identity in
            guard let choice = spec.bootloader else {
                try await refuseHostKernelOVMFCannotStart(spec)
                return nil
            }
            guard let disk = spec.disks.first(where: { $0.device == .disk }) else {
                throw BerthError(
                    .invalidArgument, "Domain '\(spec.name)' boots through its bootloader but has no disk.",
                    remedy: "Add the disk that holds /boot, or give a kernel instead.")
            }
            if disk.format == .qcow2 {
                throw BerthError(
                    .invalidArgument, "The bootloader reads raw disks and block devices; \(disk.path) is qcow2.",
                    remedy: "Convert it with 'qemu-img convert -O raw', or give the domain a kernel and initrd.")
            }
            let output = directory + "/" + spec.uuid.uuidString.lowercased()
            try? FileManager.default.removeItem(atPath: output)
            guard mkdir(output, 0o700) == 0 else {
                throw BerthError(
                    .unavailable, "Cannot create \(output): \(String(cString: strerror(errno)))",
                    remedy: "Check that \(directory) is writable by berthd.")
            }
            if let identity, chown(output, identity.uid, identity.gid) != 0 {
                throw BerthError(.unavailable, "Cannot hand \(output) to the guest's user: \(String(cString: strerror(errno)))")
            }
            let image = open(disk.path, O_RDONLY | O_CLOEXEC | O_NOCTTY)
            guard image >= 0 else {
                throw BerthError(
                    errno == ENOENT ? .notFound : .unavailable,
                    "Cannot read \(disk.path) for the bootloader: \(String(cString: strerror(errno)))",
                    remedy: "Check that the disk of '\(spec.name)' exists on the host.")
            }
            defer { close(image) }

            // The guest's user cannot reach `output` by its path (the state directory is root's),
            // so the bootloader starts inside it.
            var arguments = [bootloader, "--image-fd=0", "--output-directory=.", "--output-format=simple0", "--quiet"]
            if let entry = choice.entry { arguments.append("--entry=\(entry)") }
            if let extra = choice.extraArgs, !extra.isEmpty { arguments.append("--args=\(extra)") }
            if let identity { arguments.append("--sandbox=\(identity.uid):\(identity.gid)") }
            // A kernel OVMF cannot start is refused here, by name, not left to sit in its boot menu.
            let uefi = spec.firmware?.kind == .uefi
            if uefi { arguments.append("--uefi") }
            let outcome = try await Spawn.run(arguments, timeout: timeout, stdin: image, directory: output)
            // Whatever the bootloader left is now root's: nothing running as the guest's user
            // can swap a file in between this check and QEMU opening it.
            if identity != nil, chown(output, 0, 0) != 0 {
                throw BerthError(
                    .unavailable, "Cannot take \(output) back from the guest's user: \(String(cString: strerror(errno)))",
                    remedy: "Check that berthd runs as root and \(directory) is on a local filesystem.")
            }

            guard !outcome.timedOut else {
                throw BerthError(
                    .timeout, "The bootloader took longer than \(timeout.components.seconds) s on \(disk.path) and was stopped.",
                    remedy: "Inspect the disk with 'berth bootloader --list-entries \(disk.path)', or give the domain a kernel.")
            }
            guard !(uefi && outcome.status == BootloaderCommand.notForUEFIStatus) else {
                throw BerthError(
                    .invalidArgument,
                    "Domain '\(spec.name)' boots with UEFI, but the kernel its boot menu chose on \(disk.path) is one OVMF cannot start: \(sanitized(outcome.output, dropping: "berth-bootloader: "))",
                    remedy:
                        "Boot it with BIOS firmware (\"firmware\": {\"kind\": \"bios\"}, or <os firmware='bios'> in 'berth dumpxml', "
                        + "then 'berth define --update FILE'), or install a kernel built with CONFIG_EFI_STUB (Linux 3.3 and later) in the guest.")
            }
            guard outcome.status == 0 else {
                let why = sanitized(outcome.output, dropping: "berth-bootloader: ")
                throw BerthError(
                    .invalidArgument,
                    "The bootloader found nothing to boot on \(disk.path)"
                        + (outcome.status > 128 ? " (it was killed by signal \(outcome.status - 128))" : "")
                        + ": \(why.isEmpty ? "exit status \(outcome.status)" : why)",
                    remedy: "Inspect the disk with 'berth bootloader --list-entries \(disk.path)', or give the domain a kernel.")
            }
            let selection = try parseSimple0(outcome.stdout, directory: output)
            var cmdline = choice.args ?? selection.cmdline ?? ""
            // The console is the serial port: without this a guest's menu line prints nothing to
            // 'berth log' (PyGRUB users had to edit grub.conf for the same reason).
            if !cmdline.split(separator: " ").contains(where: { $0.hasPrefix("console=") }) {
                cmdline += (cmdline.isEmpty ? "" : " ") + "console=ttyS0"
            }
            return BootFiles(kernel: selection.kernel, initrd: selection.initrd, cmdline: cmdline)
        }
    }

    /// A host kernel (the domain's own, or an installer's) under UEFI that OVMF cannot start is
    /// refused before launch, as the bootloader's `--uefi` refuses a disk's. The file is the
    /// administrator's or the install tree's, not the guest's; 4 KiB of it are read, off the
    /// cooperative pool. One that cannot be read is left to QEMU's error, as before.
    static func refuseHostKernelOVMFCannotStart(_ spec: DomainSpec) async throws {
        guard spec.firmware?.kind == .uefi, let kernel = spec.kernel else { return }
        let header = try? await BlockingIO.run { try KernelImage.header(ofFileAt: kernel, followingSymlinks: true) }
        guard let header, KernelImage.uefiStart(header) == .impossible else { return }
        throw BerthError(
            .invalidArgument,
            "Domain '\(spec.name)' boots with UEFI, but its kernel \(kernel) is one OVMF cannot start: it has no EFI stub "
                + "and is not a relocatable bzImage (boot protocol 2.05 or later).",
            remedy:
                "Boot it with BIOS firmware (\"firmware\": {\"kind\": \"bios\"}, or <os firmware='bios'>), or give a kernel built "
                + "with CONFIG_EFI_STUB (Linux 3.3 and later).")
    }

    /// The bootloader's answer, `kernel PATH\0ramdisk PATH\0args ARGS\0\0`, trusted no further
    /// than its files being regular files directly inside `directory`.
    static func parseSimple0(_ bytes: [UInt8], directory: String) throws -> (kernel: String, initrd: String?, cmdline: String?) {
        var fields: [String: String] = [:]
        for field in bytes.split(separator: 0) {
            let text = String(decoding: field, as: UTF8.self)
            guard let space = text.firstIndex(of: " ") else { continue }
            fields[String(text[..<space])] = String(text[text.index(after: space)...])
        }
        func inside(_ path: String) throws -> String {
            // The bootloader ran in `directory` with `--output-directory=.`.
            let name = path.hasPrefix("./") ? String(path.dropFirst(2)) : ""
            var info = stat()
            guard !name.isEmpty, !name.contains("/"), name != "..", name != ".",
                lstat(directory + "/" + name, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG
            else {
                throw BerthError(
                    .invalidArgument, "The bootloader answered with a file outside its output directory.",
                    remedy: "This is a bug or a tampered bootloader; reinstall Berth.")
            }
            return directory + "/" + name
        }
        guard let kernel = fields["kernel"] else {
            throw BerthError(
                .invalidArgument, "The bootloader gave no kernel.", remedy: "Check the guest's boot menu with 'berth bootloader --list-entries'.")
        }
        return (try inside(kernel), try fields["ramdisk"].map(inside), fields["args"])
    }

    /// A child's message as one printable line of at most 500 characters (it may quote a menu).
    static func sanitized(_ text: String, dropping prefix: String) -> String {
        let lines = text.split(whereSeparator: \.isNewline).map { line in
            line.hasPrefix(prefix) ? String(line.dropFirst(prefix.count)) : String(line)
        }
        let joined = lines.joined(separator: "; ")
        let printable = String(String.UnicodeScalarView(joined.unicodeScalars.filter { $0.value >= 0x20 && $0.value != 0x7F }))
        return printable.count > 500 ? String(printable.prefix(500)) + "…" : printable
    }

    /// `berth-bootloader` beside the running berthd.
    static func bootloaderBesideDaemon() -> String {
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: executable).deletingLastPathComponent().appendingPathComponent("berth-bootloader").path
    }
}
