import BerthDisk
import Testing

@testable import BerthBoot

#if canImport(Glibc)
    import Glibc
#endif

/// `berth-bootloader --image-fd=N --sandbox=UID:GID`, the way berthd (root) runs it: the
/// built binary as a real child process, its outcome seen from outside.
@Suite(.serialized) struct SandboxTests {
    typealias Options = BootloaderCommand.Options

    static let packageRoot: String = {
        let file = #filePath  // <root>/Tests/BerthBootTests/SandboxTests.swift
        var parts = file.split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)
        return parts.joined(separator: "/")
    }()
    static let binary = packageRoot + "/.build/debug/berth-bootloader"
    static let guestDirectory = packageRoot + "/fixtures/out/guest"

    /// The test guest's kernel, or a failure naming the command that builds it.
    static func guestKernel() throws -> String {
        let kernel = guestDirectory + "/vmlinuz"
        try #require(
            access(kernel, R_OK) == 0, "missing \(kernel): build it with `scripts/install-host-deps && fixtures/build-all.sh`")
        return kernel
    }
    static let bootDisk = guestDirectory + "/bootdisk.img"
    static let nobody: UInt32 = 65534

    /// The test guest's boot disk, or a recorded failure naming the command that builds it.
    func requireBootDisk() throws -> String {
        guard access(Self.bootDisk, R_OK) == 0 else {
            Issue.record("missing \(Self.bootDisk): build it with `scripts/install-host-deps && fixtures/build-all.sh`")
            throw BootError.fileMissing(path: Self.bootDisk)
        }
        return Self.bootDisk
    }

    func requireBinary() throws -> String {
        guard access(Self.binary, X_OK) == 0 else {
            Issue.record("missing \(Self.binary): build it with `BERTH_ONLY=BerthDisk,BerthBoot swift build`")
            throw BootError.fileMissing(path: Self.binary)
        }
        return Self.binary
    }

    struct Run {
        var status: Int32
        var stdout: [UInt8]
        var stderr: String
        var text: String { String(decoding: stdout, as: UTF8.self) }
    }

    /// Spawns the bootloader with `stdin` (a path, opened read-only) as its descriptor 0.
    static func spawn(_ arguments: [String], stdin: String? = nil, in dir: TemporaryDirectory) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, stdin ?? "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, dir.path + "/stdout", O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&actions, 2, dir.path + "/stderr", O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        let argv = [binary] + arguments
        var cArgs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        defer { for p in cArgs { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, binary, &actions, nil, &cArgs, environ)
        guard rc == 0 else { throw BootError.write(path: binary, errno: rc) }
        return pid
    }

    static func wait(_ pid: pid_t, in dir: TemporaryDirectory) -> Run {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        // Exited: its status; killed by a signal: 128 + the signal, as a shell reports it.
        let code = status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return Run(status: code, stdout: dir.read("stdout") ?? [], stderr: String(decoding: dir.read("stderr") ?? [], as: UTF8.self))
    }

    func run(_ arguments: [String], stdin: String? = nil) throws -> Run {
        _ = try requireBinary()
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        return Self.wait(try Self.spawn(arguments, stdin: stdin, in: dir), in: dir)
    }

    static func fileBytes(_ path: String) throws -> [UInt8] {
        let source = try FileSource(path: path)
        return try source.read(at: 0, count: Int(source.size))
    }

    /// Kernel and ramdisk bytes of the disk's default entry, extracted in process by path
    /// (the disk's own files: fixtures/out/guest/vmlinuz may be rebuilt apart from the disk).
    static func expectedBootFiles(_ disk: String) throws -> (kernel: [UInt8], ramdisk: [UInt8]) {
        let dir = TemporaryDirectory()
        defer { _ = runTool(["rm", "-rf", dir.path]) }
        let out = try BootloaderCommand.execute(
            try Options(parsing: ["--output-format=simple0", "--output-directory=" + dir.path + "/out", disk]))
        let fields = String(decoding: out.result, as: UTF8.self).split(separator: "\0").map(String.init)
        guard fields.count == 3 else { throw BootError.emptyMenu(path: disk) }
        return (
            try fileBytes(String(fields[0].dropFirst("kernel ".count))), try fileBytes(String(fields[1].dropFirst("ramdisk ".count)))
        )
    }

    static func owner(_ path: String) -> (uid: UInt32, gid: UInt32, mode: UInt32)? {
        var st = stat()
        guard lstat(path, &st) == 0 else { return nil }
        return (st.st_uid, st.st_gid, st.st_mode & 0o7777)
    }

    // MARK: Options

    @Test func parsesImageFDAndSandbox() throws {
        let o = try Options(parsing: ["--image-fd=0", "--sandbox=65534:65534", "--output-format=simple0", "--output-directory=/run/b"])
        #expect(o.imageFD == 0 && o.image == "fd:0")
        #expect(o.sandbox == Sandbox(uid: 65534, gid: 65534))
        #expect(try Options(parsing: ["--image-fd", "5", "--isconfig"]).image == "fd:5")
        #expect(try Options(parsing: ["--sandbox", "1000:100", "img"]).sandbox == Sandbox(uid: 1000, gid: 100))
    }

    @Test(arguments: [
        ["--image-fd=0", "img"], ["--image-fd=-1"], ["--image-fd=x"], ["--image-fd=+1"], ["--image-fd=4294967296"],
        ["--sandbox=0:0", "img"], ["--sandbox=65534:0", "img"], ["--sandbox=4294967295:1", "img"], ["--sandbox=nobody:nogroup", "img"],
        ["--sandbox=65534", "img"], ["--sandbox=1:2:3", "img"], ["--sandbox=-1:-1", "img"], ["--sandbox=4294967296:1", "img"],
        ["--time-limit=9223372036854775807", "img"], ["--time-limit=86401", "img"],
    ])
    func refusesBadImageFDAndSandboxValues(_ argv: [String]) {
        #expect(throws: BootError.self) { try Options(parsing: argv) }
    }

    @Test func limitsAreTheDocumentedOnes() {
        let limits = Sandbox.limits(for: ExtractionLimits(maxTotalBytes: 100 << 20, seconds: 60))
        #expect(limits.map(\.name) == ["RLIMIT_CORE", "RLIMIT_NOFILE", "RLIMIT_NPROC", "RLIMIT_FSIZE", "RLIMIT_CPU", "RLIMIT_AS"])
        let fsize: UInt64 = (100 << 20) + (1 << 20)
        let space: UInt64 = 256 << 20
        let soft: [UInt64] = [0, 64, 0, fsize, 65, space]
        let hard: [UInt64] = [0, 64, 0, fsize, 66, space]
        #expect(limits.map(\.soft) == soft)
        #expect(limits.map(\.hard) == hard)
        // Extreme --max-bytes saturates instead of trapping.
        #expect(Sandbox.limits(for: ExtractionLimits(maxTotalBytes: .max, seconds: 86_400))[3].soft == .max)
    }

    // MARK: --image-fd

    @Test func fileSourceFromADescriptor() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        dir.write("img", Array("0123456789".utf8))
        let fd = open(dir.path + "/img", O_RDONLY)
        defer { close(fd) }
        lseek(fd, 7, SEEK_SET)
        let source = try FileSource(descriptor: fd, name: "fd:\(fd)")
        #expect(source.size == 10 && source.path == "fd:\(fd)")
        #expect(try source.read(at: 2, count: 3) == Array("234".utf8))
        // pread leaves the caller's offset alone, and the caller's descriptor stays open.
        #expect(lseek(fd, 0, SEEK_CUR) == 7)
        #expect(fcntl(fd, F_GETFD) >= 0)

        let rw = open(dir.path + "/img", O_RDWR)
        defer { close(rw) }
        #expect(throws: ByteSourceError.notReadOnly(path: "fd:rw")) { try FileSource(descriptor: rw, name: "fd:rw") }
        var pipeFDs: [Int32] = [0, 0]
        #expect(pipe(&pipeFDs) == 0)
        defer { close(pipeFDs[0]); close(pipeFDs[1]) }
        #expect(throws: ByteSourceError.notSeekable(path: "fd:p")) { try FileSource(descriptor: pipeFDs[0], name: "fd:p") }
        #expect(throws: ByteSourceError.cannotOpen(path: "fd:999", errno: EBADF)) { try FileSource(descriptor: 999, name: "fd:999") }
    }

    @Test func imageFDGivesTheSameResultAsThePath() throws {
        let disk = try requireBootDisk()
        let fd = open(disk, O_RDONLY | O_CLOEXEC)
        try #require(fd >= 0)
        defer { close(fd) }
        for extra in [["-l"], ["-q", "-n"], ["-q", "-n", "--entry=1", "--output-format=simple"]] {
            let byPath = try BootloaderCommand.execute(try Options(parsing: extra + [disk]))
            let byFD = try BootloaderCommand.execute(try Options(parsing: extra + ["--image-fd=\(fd)"]))
            #expect(byFD == byPath)
            #expect(!byPath.stdout.isEmpty || !byPath.result.isEmpty)
        }
        // The real binary with the disk as its standard input, as berthd passes it.
        let out = TemporaryDirectory()
        defer { out.remove() }
        let run = try run(["--image-fd=0", "--output-format=simple0", "--output-directory=" + out.path], stdin: disk)
        #expect(run.status == 0, "\(run.stderr)")
        let fields = run.text.split(separator: "\0").map(String.init)
        #expect(fields.count == 3)
        #expect(fields.last == "args console=ttyS0 berth.marker=FROM-DISK")
        let kernel = try #require(fields.first?.dropFirst("kernel ".count)).description
        let expected = try Self.expectedBootFiles(disk)
        #expect(try Self.fileBytes(kernel) == expected.kernel)
        #expect(expected.kernel.count > 1 << 20)
        // A missing descriptor is a clean error naming it.
        let bad = try self.run(["-n", "--image-fd=900"])
        #expect(bad.status == 1 && bad.stderr == "berth-bootloader: cannot open fd:900: Bad file descriptor\n")
    }

    /// berthd's usual disk is a block device (an LV, a loop device): its size comes from
    /// BLKGETSIZE64, since fstat gives 0. A read-only loop device over the boot disk.
    @Test(.enabled(if: geteuid() == 0, "needs root to attach a loop device"))
    func imageFDOnABlockDevice() throws {
        let disk = try requireBootDisk()
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let pid = try Self.spawnAs(["losetup", "--find", "--show", "--read-only", disk], in: dir)
        let attach = Self.wait(pid, in: dir)
        try #require(attach.status == 0, "losetup: \(attach.stderr)")
        let device = attach.text.trimmingTrailingNewline
        defer { _ = runTool(["losetup", "--detach", device]) }
        let fd = open(device, O_RDONLY | O_CLOEXEC)
        try #require(fd >= 0, "open \(device): \(errno)")
        defer { close(fd) }
        var st = stat()
        #expect(fstat(fd, &st) == 0 && st.st_mode & S_IFMT == S_IFBLK)
        let source = try FileSource(descriptor: fd, name: "fd:\(fd)")
        #expect(source.size == 64 << 20)
        #expect(try source.read(at: source.size - 512, count: 512) == FileSource(path: disk).read(at: source.size - 512, count: 512))
        let byPath = try BootloaderCommand.execute(try Options(parsing: ["-q", "-n", disk]))
        let byFD = try BootloaderCommand.execute(try Options(parsing: ["-q", "-n", "--image-fd=\(fd)"]))
        #expect(byFD == byPath && !byFD.result.isEmpty)
    }

    // MARK: --sandbox

    @Test func sandboxedRunExtractsAsTheUnprivilegedUser() throws {
        let disk = try requireBootDisk()
        guard geteuid() == 0 else {
            // Without root there is nothing to drop to: refused, never run unsandboxed.
            let run = try self.run(["--sandbox=65534:65534", "-n", "--image-fd=0"], stdin: disk)
            #expect(run.status == 1 && run.stderr.hasPrefix("berth-bootloader: cannot enter the sandbox"))
            return
        }
        // berthd makes the directory owned by the sandbox user, mode 0700.
        let parent = TemporaryDirectory()
        defer { _ = runTool(["rm", "-rf", parent.path]) }
        chmod(parent.path, 0o755)
        let out = parent.path + "/out"
        #expect(mkdir(out, 0o700) == 0 && chown(out, Self.nobody, Self.nobody) == 0)
        let run = try run(
            ["--image-fd=0", "--sandbox=65534:65534", "--output-format=simple0", "--output-directory=" + out, "--args=quiet"],
            stdin: disk)
        #expect(run.status == 0, "\(run.stderr)")
        let fields = run.text.split(separator: "\0").map(String.init)
        try #require(fields.count == 3)
        #expect(fields[2] == "args console=ttyS0 berth.marker=FROM-DISK quiet")
        let kernel = String(fields[0].dropFirst("kernel ".count))
        let ramdisk = String(fields[1].dropFirst("ramdisk ".count))
        #expect(kernel.hasPrefix(out + "/boot_kernel.") && ramdisk.hasPrefix(out + "/boot_ramdisk."))
        for file in [kernel, ramdisk] {
            let o = try #require(Self.owner(file))
            #expect(o.uid == Self.nobody && o.gid == Self.nobody && o.mode == 0o600)
        }
        let expected = try Self.expectedBootFiles(disk)
        #expect(try Self.fileBytes(kernel) == expected.kernel)
        #expect(try Self.fileBytes(ramdisk) == expected.ramdisk)
        #expect(expected.kernel.count > 1 << 20 && expected.ramdisk.count > 1 << 10)

        // The same run into a directory root owns: the sandbox user may not write there.
        let rootOwned = TemporaryDirectory()
        defer { rootOwned.remove() }
        chmod(rootOwned.path, 0o755)
        let refused = try self.run(["--image-fd=0", "--sandbox=65534:65534", "--output-directory=" + rootOwned.path], stdin: disk)
        #expect(refused.status == 1 && refused.stderr.contains("must be owned by uid 65534"))
    }

    /// `--unpack-kernel` as berthd runs it: the test kernel's ELF written by the unprivileged
    /// user; a file that is no bzImage exits 3 (boot it as it is) and writes nothing.
    @Test func unpacksAKernelInTheSandbox() throws {
        let kernel = try Self.guestKernel()
        let out = TemporaryDirectory()
        defer { out.remove() }
        try #require(chown(out.path, Self.nobody, Self.nobody) == 0)
        let arguments = ["--unpack-kernel", "--image-fd=0", "--output-directory=\(out.path)", "--sandbox=65534:65534"]
        let unpacked = try run(arguments, stdin: kernel)
        #expect(unpacked.status == 0, "\(unpacked.stderr)")
        var info = stat()
        #expect(stat(out.path + "/vmlinux", &info) == 0 && info.st_uid == Self.nobody && info.st_size > 0)
        unlink(out.path + "/vmlinux")
        let other = try run(arguments, stdin: Self.guestDirectory + "/initrd.img")
        #expect(other.status == BootloaderCommand.notUnpackableStatus, "\(other.stderr)")
        #expect(access(out.path + "/vmlinux", F_OK) != 0)
    }

    @Test func sandboxedProcessCannotReadRootsFiles() throws {
        _ = try requireBinary()
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        chmod(dir.path, 0o755)
        dir.write("grub.cfg", Array("menuentry 'secret' { linux /vmlinuz root=/dev/vda1 }\n".utf8))
        let menu = dir.path + "/grub.cfg"
        chmod(menu, 0o600)
        // Unsandboxed, the file is readable to this user: the menu is fine.
        let plain = try run(["--isconfig", menu])
        #expect(plain.status == 0 && plain.text.contains("kernel: /vmlinuz"), "\(plain.stderr)")
        let sandboxed = try run(["--sandbox=65534:65534", "--isconfig", menu])
        #expect(sandboxed.status == 1)
        if geteuid() == 0 {
            #expect(sandboxed.stderr == "berth-bootloader: cannot open \(menu): Permission denied\n")
            #expect(sandboxed.text.isEmpty)
        } else {
            #expect(sandboxed.stderr.hasPrefix("berth-bootloader: cannot enter the sandbox: "))
        }
    }

    @Test func aNonRootCallerIsRefusedNotRunUnsandboxed() throws {
        _ = try requireBinary()
        guard geteuid() == 0 else {
            let help = try self.run(["--sandbox=65534:65534", "--help"])
            #expect(help.status == 0)  // --help reads nothing
            let refused = try self.run(["--sandbox=65534:65534", "--isconfig", "/dev/null"])
            #expect(refused.status == 1 && refused.stderr.contains("setgroups(0) failed: Operation not permitted"))
            return
        }
        // As root, become nobody first (setpriv from util-linux), then ask for the sandbox.
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        chmod(dir.path, 0o755)
        dir.write("grub.cfg", Array("menuentry 'a' { linux /k }\n".utf8))
        chmod(dir.path + "/grub.cfg", 0o644)
        let pid = try Self.spawnAs(
            [
                "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", Self.binary, "--sandbox=65534:65534", "--isconfig",
                dir.path + "/grub.cfg",
            ], in: dir)
        let run = Self.wait(pid, in: dir)
        #expect(run.status == 1, "\(run.stderr)")
        #expect(
            run.stderr
                == "berth-bootloader: cannot enter the sandbox: setgroups(0) failed: Operation not permitted — --sandbox needs root (CAP_SETUID, CAP_SETGID); nothing was read\n"
        )
        #expect(run.text.isEmpty)
    }

    /// The sandbox seen in /proc while the child waits on a FIFO it opened as its menu:
    /// the open happens after the sandbox, so the child is stopped inside it.
    @Test func procShowsTheIdentityLimitsAndNoNewPrivs() throws {
        _ = try requireBinary()
        guard geteuid() == 0 else { return }  // the non-root refusal is asserted above
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        chmod(dir.path, 0o755)
        let fifo = dir.path + "/menu.fifo"
        try #require(mkfifo(fifo, 0o666) == 0)
        chmod(fifo, 0o666)
        let pid = try Self.spawn(["--sandbox=65534:65534", "--max-bytes=1000000", "--time-limit=20", "--isconfig", fifo], in: dir)
        var status = ""
        for _ in 0..<500 {
            status = String(decoding: (try? Self.procFile("/proc/\(pid)/status")) ?? [], as: UTF8.self)
            // Asleep on the FIFO's open: past every sandbox step (the ids change before the
            // seccomp filter is loaded, so a changed Uid alone can be read too early).
            if status.contains("Uid:\t65534\t65534\t65534\t65534"), status.contains("State:\tS") { break }
            usleep(10_000)
        }
        let limits = String(decoding: (try? Self.procFile("/proc/\(pid)/limits")) ?? [], as: UTF8.self)
        // Release the child: a writer on the FIFO lets its open return; it then refuses a FIFO.
        // Non-blocking: if the child never reached its open, kill it rather than hang here.
        var released = false
        for _ in 0..<500 {
            let writer = open(fifo, O_WRONLY | O_NONBLOCK)
            if writer >= 0 {
                close(writer)
                released = true
                break
            }
            usleep(10_000)
        }
        if !released { kill(pid, SIGKILL) }
        let run = Self.wait(pid, in: dir)
        #expect(released, "the sandboxed child never opened its menu: \(run.stderr)")
        #expect(status.contains("Uid:\t65534\t65534\t65534\t65534"))
        #expect(status.contains("Gid:\t65534\t65534\t65534\t65534"))
        let groups = status.split(separator: "\n").first { $0.hasPrefix("Groups:") }
        #expect(groups.map { $0.dropFirst(7).allSatisfy { $0 == " " || $0 == "\t" } } == true)
        #expect(status.contains("NoNewPrivs:\t1"))
        #expect(status.contains("CapEff:\t0000000000000000"))
        #if arch(x86_64)
            #expect(status.contains("Seccomp:\t2"))
        #endif
        func limit(_ name: String) -> [String] {
            guard let line = limits.split(separator: "\n").first(where: { $0.hasPrefix(name) }) else { return [] }
            return line.dropFirst(name.count).split(separator: " ").prefix(2).map(String.init)
        }
        #expect(limit("Max core file size") == ["0", "0"])
        #expect(limit("Max open files") == ["64", "64"])
        #expect(limit("Max processes") == ["0", "0"])
        #expect(limit("Max file size") == ["\(1_000_000 + (1 << 20))", "\(1_000_000 + (1 << 20))"])
        #expect(limit("Max cpu time") == ["25", "26"])
        #expect(limit("Max address space") == ["\(256 << 20)", "\(256 << 20)"])
        #expect(run.status == 1)
    }

    /// The seccomp program, loaded in a forked child of this test: each denied call ends the
    /// child with SIGSYS; ordinary calls and the child's own exit still work.
    @Test(arguments: ["getpid", "socket", "fork", "execve", "ptrace", "mount", "x32"])
    func seccompFilterKillsForbiddenCalls(_ call: String) throws {
        #if arch(x86_64)
            guard let prctl = Sandbox.prctl else {
                Issue.record("prctl not found in libc")
                return
            }
            // Everything the child touches is made before fork: it only makes system calls.
            let program = Sandbox.seccompProgram()
            let filter = UnsafeMutableRawPointer.allocate(byteCount: program.count, alignment: 8)
            defer { filter.deallocate() }
            program.withUnsafeBytes { bytes in
                if let base = bytes.baseAddress { filter.copyMemory(from: base, byteCount: bytes.count) }
            }
            let fprog = UnsafeMutablePointer<UInt64>.allocate(capacity: 2)
            defer { fprog.deallocate() }
            fprog[0] = UInt64(program.count / 8)
            fprog[1] = UInt64(UInt(bitPattern: filter))
            guard let devNull = strdup("/dev/null") else { return }
            defer { free(devNull) }
            let sys = syscallFunction()
            let pid = fork()
            try #require(pid >= 0)
            if pid == 0 {
                guard prctl(Sandbox.prSetNoNewPrivs, 1, 0, 0, 0) == 0,
                    prctl(Sandbox.prSetSeccomp, Sandbox.seccompModeFilter, UInt(bitPattern: fprog), 0, 0) == 0
                else { _exit(3) }
                // Straight to the kernel: libc wrappers may take another path (fork is clone).
                let raw = UInt(bitPattern: devNull)
                switch call {
                case "socket": _ = sys?(41, UInt(AF_INET), 1, 0)
                case "fork": _ = sys?(57, 0, 0, 0)
                case "execve": _ = sys?(59, raw, 0, 0)
                case "ptrace": _ = sys?(101, 0, 0, 0)
                case "mount": _ = sys?(165, raw, raw, 0)
                case "x32": _ = sys?(0x4000_0000 | 39, 0, 0, 0)  // getpid through the x32 ABI
                default:
                    _ = getpid()
                    _ = open(devNull, O_RDONLY)
                }
                _exit(0)
            }
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            let signal = status & 0x7f
            if call == "getpid" {
                #expect(signal == 0 && (status >> 8) & 0xff == 0, "status \(status)")
            } else {
                #expect(signal == SIGSYS, "\(call): status \(status)")
            }
        #endif
    }

    /// /proc/PID/limits reports size 0 to stat: read it until the end.
    static func procFile(_ path: String) throws -> [UInt8] {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw ByteSourceError.cannotOpen(path: path, errno: errno) }
        defer { close(fd) }
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, 4096) }
            if n <= 0 { break }
            out += buffer[0..<n]
        }
        return out
    }

    static func spawnAs(_ argv: [String], in dir: TemporaryDirectory) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, dir.path + "/stdout", O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&actions, 2, dir.path + "/stderr", O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        var cArgs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        defer { for p in cArgs { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawnp(&pid, argv[0], &actions, nil, &cArgs, environ)
        guard rc == 0 else { throw BootError.write(path: argv[0], errno: rc) }
        return pid
    }
}

#if arch(x86_64)
    /// libc's `syscall(n, a, b, c)` (it is variadic, so Swift does not import it).
    func syscallFunction() -> (@convention(c) (Int, UInt, UInt, UInt) -> Int)? {
        dlsym(nil, "syscall").map { unsafeBitCast($0, to: (@convention(c) (Int, UInt, UInt, UInt) -> Int).self) }
    }
#endif

extension String {
    var trimmingTrailingNewline: String {
        var s = self
        while s.hasSuffix("\n") { s.removeLast() }
        return s
    }
}
