import BerthBoot
import BerthModel
import BerthQEMU
import Foundation

extension BootPreparer {
    /// Direct-kernel domains boot their spec's files; `bootloader` domains get the kernel the
    /// guest's own menu chooses, extracted from their first disk into `directory/<uuid>/` at
    /// every start (so a kernel upgraded inside the guest boots next time), as PyGRUB did.
    static func fromGuestDisk(directory: String) -> BootPreparer {
        BootPreparer { spec in
            guard let bootloader = spec.bootloader else { return nil }
            guard let disk = spec.disks.first(where: { $0.device == .disk }) else {
                throw BerthError(
                    .invalidArgument, "Domain '\(spec.name)' boots through its bootloader but has no disk.",
                    remedy: "Add the disk that holds /boot, or give a kernel instead.")
            }
            if try DiskFormat.resolve(disk) == .qcow2 {
                throw BerthError(
                    .invalidArgument, "The bootloader reads raw disks and block devices; \(disk.path) is qcow2.",
                    remedy: "Convert it with 'qemu-img convert -O raw', or give the domain a kernel and initrd.")
            }
            let output = directory + "/" + spec.uuid.uuidString.lowercased()
            try? FileManager.default.removeItem(atPath: output)
            try FileManager.default.createDirectory(
                atPath: output, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            let request = BootRequest(
                image: disk.path, entry: bootloader.entry, extraArgs: bootloader.extraArgs, outputDirectory: output)
            let selection: BootSelection
            do {
                selection = try BootSelection.pick(request)
            } catch {
                throw BerthError(
                    .invalidArgument, "The bootloader found nothing to boot on \(disk.path): \(error)",
                    remedy: "Inspect the disk with 'berth bootloader --list-entries \(disk.path)', or give the domain a kernel.")
            }
            var cmdline = bootloader.args ?? selection.cmdline
            // The console is the serial port: without this a guest's menu line prints nothing to
            // 'berth log' (PyGRUB users had to edit grub.conf for the same reason).
            if !cmdline.split(separator: " ").contains(where: { $0.hasPrefix("console=") }) {
                cmdline += (cmdline.isEmpty ? "" : " ") + "console=ttyS0"
            }
            return BootFiles(kernel: selection.kernelPath, initrd: selection.initrdPath, cmdline: cmdline)
        }
    }
}
