import BerthBoot
import BerthHost
import BerthModel
import BerthQEMU
import FoundationEssentials
import Glibc

/// The uncompressed kernels (ELF, PVH entry) of the host kernels microvm guests boot, unpacked
/// once by `berth-bootloader --unpack-kernel` and kept in `directory` under the bzImage's file
/// identity (device, inode, size, modification and change times): a replaced or rewritten
/// kernel has another, so a stale ELF is never booted. A kernel that cannot be unpacked is
/// remembered too (a `.none` marker) and boots as it is, as before; so does one whose unpacking
/// failed in any other way, then tried again at its next start.
///
/// The bzImage is unpacked in the bootloader's sandbox (the guest's own user, resource limits,
/// seccomp), as a kernel from anywhere may be hostile; berthd only renames the result into place.
/// Starts of guests sharing a kernel wait for one unpacking. At most `keep` ELFs are kept (the
/// least recently made go first); a running QEMU read its kernel at start and needs it no more.
public actor PVHKernels {
    let directory: String
    let bootloader: String
    let timeout: Duration
    let keep: Int
    private var pending: [String: Task<String?, Never>] = [:]

    public init(directory: String, bootloader: String, timeout: Duration = .seconds(60), keep: Int = 8) {
        self.directory = directory
        self.bootloader = bootloader
        self.timeout = timeout
        self.keep = keep
    }

    /// The ELF to boot for `kernel`, or nil to boot `kernel` as it is.
    public func elf(for kernel: String, identity: GuestIdentity?) async -> String? {
        var info = stat()
        guard stat(kernel, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return nil }
        let key = Self.key(info)
        let elf = "\(directory)/\(key).elf"
        if access(elf, F_OK) == 0 { return elf }
        if access("\(directory)/\(key).none", F_OK) == 0 { return nil }
        if let task = pending[key] { return await task.value }
        let task = Task { [directory, bootloader, timeout] in
            await Self.unpack(kernel, key: key, directory: directory, bootloader: bootloader, timeout: timeout, identity: identity)
        }
        pending[key] = task
        let result = await task.value
        pending[key] = nil
        if result != nil { await Self.prune(directory, keep: keep) }
        return result
    }

    static func key(_ info: stat) -> String {
        [
            UInt64(info.st_dev), UInt64(info.st_ino), UInt64(info.st_size), UInt64(info.st_mtim.tv_sec),
            UInt64(info.st_mtim.tv_nsec), UInt64(info.st_ctim.tv_sec), UInt64(info.st_ctim.tv_nsec),
        ].map { String($0, radix: 16) }.joined(separator: "-")
    }

    /// Runs the bootloader on `kernel` in a fresh directory owned by the guest's user, takes the
    /// directory back, and renames a regular `vmlinux` into place. Without an identity (berthd
    /// not root, so QEMU runs as berthd's user) it runs unsandboxed as berthd's user.
    static func unpack(
        _ kernel: String, key: String, directory: String, bootloader: String, timeout: Duration, identity: GuestIdentity?
    ) async -> String? {
        mkdir(directory, 0o755)
        let work = "\(directory)/unpack-\(UUID().uuidString.lowercased())"
        guard mkdir(work, 0o700) == 0 else { return nil }
        defer { try? FileManager.default.removeItem(atPath: work) }
        if let identity, chown(work, identity.uid, identity.gid) != 0 { return nil }
        let image = open(kernel, O_RDONLY | O_CLOEXEC | O_NOCTTY)
        guard image >= 0 else { return nil }
        defer { close(image) }
        var arguments = [bootloader, "--unpack-kernel", "--image-fd=0", "--output-directory=.", "--quiet"]
        if let identity { arguments.append("--sandbox=\(identity.uid):\(identity.gid)") }
        let outcome = try? await Spawn.run(arguments, timeout: timeout, stdin: image, directory: work)
        // Whatever the bootloader left is root's again before it is looked at.
        guard identity == nil || chown(work, 0, 0) == 0, let outcome, !outcome.timedOut else { return nil }
        if outcome.status == BootloaderCommand.notUnpackableStatus {
            close(open("\(directory)/\(key).none", O_WRONLY | O_CREAT | O_CLOEXEC, 0o644))
            return nil
        }
        let made = "\(work)/\(KernelUnpack.outputName)"
        guard outcome.status == 0, adopt(made, madeBy: identity?.uid ?? geteuid()) else { return nil }
        let elf = "\(directory)/\(key).elf"
        return rename(made, elf) == 0 ? elf : nil
    }

    /// Makes the bootloader's output root's and readable by every guest's QEMU, only if it is
    /// what the bootloader itself wrote: a regular file (not followed if a link), with one
    /// name, owned by the user it ran as. A hard link to another file (which chown and chmod
    /// would then change) is refused.
    static func adopt(_ path: String, madeBy uid: uid_t) -> Bool {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG, info.st_nlink == 1, info.st_uid == uid else {
            return false
        }
        return (uid == geteuid() || fchown(fd, 0, 0) == 0) && fchmod(fd, 0o644) == 0
    }

    /// Removes all but the `keep` newest ELFs.
    static func prune(_ directory: String, keep: Int) async {
        try? await BlockingIO.run {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
            let elves = names.filter { $0.hasSuffix(".elf") }.map { name -> (String, Int) in
                var info = stat()
                return (name, stat("\(directory)/\(name)", &info) == 0 ? Int(info.st_mtim.tv_sec) : 0)
            }
            for (name, _) in elves.sorted(by: { $0.1 > $1.1 }).dropFirst(keep) { unlink("\(directory)/\(name)") }
        }
    }
}
