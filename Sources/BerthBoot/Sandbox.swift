import BerthPOSIX

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// What `berth-bootloader --sandbox=UID:GID` does to itself before it reads a byte of the
/// guest: berthd runs as root and spawns the bootloader on a hostile guest's disk, so a bug
/// in a reader must find an unprivileged process that cannot grow, fork, dump core or regain
/// root (the reason PyGRUB grew `--runas`, XSA-443).
public struct Sandbox: Sendable, Equatable {
    public var uid: UInt32
    public var gid: UInt32

    public init(uid: UInt32, gid: UInt32) {
        self.uid = uid
        self.gid = gid
    }

    /// Parses `UID:GID`, both numeric. 0 (root) and 4294967295 (`(uid_t)-1`, which
    /// `setresuid` reads as "leave unchanged") are refused: neither would drop anything.
    public init(parsing text: String) throws {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        func id(_ s: Substring) -> UInt32? {
            guard s.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let n = UInt32(s), n != 0, n != UInt32.max else { return nil }
            return n
        }
        guard parts.count == 2, let uid = id(parts[0]), let gid = id(parts[1]) else {
            throw BootError.badValue(
                option: "--sandbox", value: text, reason: "must be UID:GID, two numbers other than 0 and 4294967295")
        }
        self.init(uid: uid, gid: gid)
    }

    /// Address space allowed to the sandboxed bootloader: 256 MiB. Measured with `prlimit --as`
    /// on the statically linked debug binary: it starts and extracts the 14 MB test kernel and
    /// its initrd from fixtures/out/guest/bootdisk.img at 16 MiB (12 MiB fails: the loader
    /// cannot map libstdc++), and reads every image in fixtures/out/disk (ext2/3/4, XFS, FAT,
    /// ISO 9660, LVM, GPT) with the same result at 40 MiB. Extraction streams in 1 MiB chunks
    /// and a menu is at most 1 MiB; the largest single allocation a reader may make is
    /// `ByteSourceLimits.maxReadLength` (64 MiB), possibly held twice while copied. 256 MiB
    /// covers that with room to spare, where the 1 GiB first proposed would let a length
    /// read from a hostile disk take four times more of the host (XSA-25).
    public static let addressSpaceBytes: UInt64 = 256 << 20
    /// Descriptors: the image, the output directory, two output files, stdio, a few spare.
    public static let maxOpenFiles: UInt64 = 64
    /// Extra bytes over `--max-bytes` per file written: the ramdisk pads each initrd it
    /// concatenates to 4 bytes, and the `--output` answer is small.
    public static let fileSizeSlack: UInt64 = 1 << 20
    /// Extra CPU seconds over `--time-limit`: the wall-clock deadline in `Extraction`
    /// should fire first and report; the rlimit is the backstop if it does not.
    public static let cpuSlack = 5

    /// The resource limits applied, in the order set; public so tests and docs show them.
    public static func limits(for extraction: ExtractionLimits) -> [(name: String, resource: Int32, soft: UInt64, hard: UInt64)] {
        let fsize = saturatingAdd(extraction.maxTotalBytes, fileSizeSlack)
        let cpu = saturatingAdd(UInt64(clamping: extraction.seconds), UInt64(cpuSlack))
        return [
            ("RLIMIT_CORE", Int32(RLIMIT_CORE.rawValue), 0, 0),
            ("RLIMIT_NOFILE", Int32(RLIMIT_NOFILE.rawValue), maxOpenFiles, maxOpenFiles),
            // No fork (and no threads: Linux counts both; the bootloader is single-threaded).
            ("RLIMIT_NPROC", Int32(__RLIMIT_NPROC.rawValue), 0, 0),
            // Past it the write fails with SIGXFSZ, whose default action ends the process.
            ("RLIMIT_FSIZE", Int32(RLIMIT_FSIZE.rawValue), fsize, fsize),
            // SIGXCPU at the soft limit, SIGKILL one second later.
            ("RLIMIT_CPU", Int32(RLIMIT_CPU.rawValue), cpu, saturatingAdd(cpu, 1)),
            ("RLIMIT_AS", Int32(RLIMIT_AS.rawValue), addressSpaceBytes, addressSpaceBytes),
        ]
    }

    static func saturatingAdd(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let (sum, overflow) = a.addingReportingOverflow(b)
        return overflow ? UInt64.max : sum
    }

    /// Limits, no new privileges, not dumpable, then the identity `uid`:`gid` with no
    /// supplementary groups; proves root cannot be regained; last, on x86_64, the seccomp
    /// filter. Any failure throws, and the caller must stop: it never continues unsandboxed.
    /// - Throws: `BootError.sandbox` naming the step and its errno.
    public func apply(_ extraction: ExtractionLimits) throws {
        func fail(_ step: String, _ code: Int32 = errno) -> BootError { .sandbox(step: step, errno: code) }
        for limit in Self.limits(for: extraction) {
            var value = rlimit(rlim_cur: rlim_t(limit.soft), rlim_max: rlim_t(limit.hard))
            guard setrlimit(__rlimit_resource_t(UInt32(limit.resource)), &value) == 0 else {
                throw fail("setrlimit(\(limit.name), \(limit.soft))")
            }
        }
        guard let prctl = Self.prctl, let setresgid = Self.setresgid, let setresuid = Self.setresuid,
            let getresuid = Self.getresuid, let getresgid = Self.getresgid
        else { throw fail("looking up prctl/setresuid/setresgid in libc", ENOSYS) }
        // No setuid binary or file capability can raise this process (or, later, a child) again.
        guard prctl(Self.prSetNoNewPrivs, 1, 0, 0, 0) == 0 else { throw fail("prctl(PR_SET_NO_NEW_PRIVS)") }
        // No core file, no ptrace by the new uid's other processes, /proc/PID owned by root.
        guard prctl(Self.prSetDumpable, 0, 0, 0, 0) == 0 else { throw fail("prctl(PR_SET_DUMPABLE, 0)") }
        // Groups first: once the uid is dropped, the groups could no longer be changed.
        guard setgroups(0, nil) == 0 else { throw fail("setgroups(0)") }
        guard setresgid(gid, gid, gid) == 0 else { throw fail("setresgid(\(gid))") }
        guard setresuid(uid, uid, uid) == 0 else { throw fail("setresuid(\(uid))") }
        var r: uid_t = 0
        var e: uid_t = 0
        var s: uid_t = 0
        var rg: gid_t = 0
        var eg: gid_t = 0
        var sg: gid_t = 0
        guard getresuid(&r, &e, &s) == 0, getresgid(&rg, &eg, &sg) == 0, [r, e, s] == [uid, uid, uid], [rg, eg, sg] == [gid, gid, gid],
            getgroups(0, nil) == 0
        else { throw fail("the new identity did not take", EPERM) }
        // Changing the uid resets "dumpable" to the fs.suid_dumpable sysctl, which a host may
        // have set to 1 or 2: clear it again, and check that it stuck.
        guard prctl(Self.prSetDumpable, 0, 0, 0, 0) == 0 else { throw fail("prctl(PR_SET_DUMPABLE, 0) after the uid change") }
        guard prctl(Self.prGetDumpable, 0, 0, 0, 0) == 0 else { throw fail("the process is still dumpable", EPERM) }
        // The proof: with every id dropped, root cannot be had back.
        if setuid(0) == 0 || setgid(0) == 0 { throw fail("setuid(0) still succeeds after dropping root", EPERM) }
        try Self.installSeccompFilter()
    }

    // MARK: seccomp

    /// x86_64 system calls the bootloader never makes and an exploit would want: networking,
    /// new programs and processes, other processes' memory, the kernel's own state. Reading a
    /// disk and writing two files needs none of them.
    static let deniedSystemCalls: [(name: String, number: UInt32)] = [
        ("socket", 41), ("connect", 42), ("accept", 43), ("sendto", 44), ("sendmsg", 46), ("bind", 49),
        ("listen", 50), ("socketpair", 53), ("accept4", 288),
        ("fork", 57), ("vfork", 58), ("execve", 59), ("execveat", 322), ("clone3", 435),
        ("ptrace", 101), ("process_vm_readv", 310), ("process_vm_writev", 311),
        ("mount", 165), ("umount2", 166), ("pivot_root", 155), ("chroot", 161), ("swapon", 167), ("swapoff", 168),
        ("reboot", 169), ("init_module", 175), ("finit_module", 313), ("delete_module", 176),
        ("kexec_load", 246), ("kexec_file_load", 320), ("unshare", 272), ("setns", 308),
        ("add_key", 248), ("request_key", 249), ("keyctl", 250), ("bpf", 321), ("perf_event_open", 298),
        ("userfaultfd", 323), ("open_by_handle_at", 304), ("name_to_handle_at", 303),
        ("io_uring_setup", 425), ("io_uring_enter", 426), ("io_uring_register", 427),
    ]
    static let cloneNumber: UInt32 = 56
    static let cloneThread: UInt32 = 0x0001_0000
    static let auditArchX86_64: UInt32 = 0xC000_003E

    /// The classic-BPF program (`struct sock_filter[]`, 8 bytes each, little-endian): the
    /// architecture must be x86_64 (else another ABI's numbers would slip through), x32
    /// numbers (bit 30) are refused, `clone` is allowed only for a thread, and each denied
    /// call kills the whole process (SECCOMP_RET_KILL_PROCESS, SIGSYS).
    static func seccompProgram() -> [UInt8] {
        let ldAbs: UInt16 = 0x20, jeq: UInt16 = 0x15, jge: UInt16 = 0x35, jset: UInt16 = 0x45, ret: UInt16 = 0x06
        let allow: UInt32 = 0x7FFF_0000, killProcess: UInt32 = 0x8000_0000
        var program: [(code: UInt16, jt: UInt8, jf: UInt8, k: UInt32)] = []
        let denied = deniedSystemCalls.count
        // Layout: 0 ld arch, 1 jeq, 2 ld nr, 3 jge x32, 4 jeq clone, 5… denied, A allow,
        // A+1 ld args[0], A+2 jset CLONE_THREAD, A+3 allow, A+4 kill.
        let allowAt = 5 + denied
        let killAt = allowAt + 4
        func to(_ target: Int, from pc: Int) -> UInt8 { UInt8(target - pc - 1) }
        program.append((ldAbs, 0, 0, 4))
        program.append((jeq, 0, to(killAt, from: 1), auditArchX86_64))
        program.append((ldAbs, 0, 0, 0))
        program.append((jge, to(killAt, from: 3), 0, 0x4000_0000))
        program.append((jeq, to(allowAt + 1, from: 4), 0, cloneNumber))
        for (k, call) in deniedSystemCalls.enumerated() {
            program.append((jeq, to(killAt, from: 5 + k), 0, call.number))
        }
        program.append((ret, 0, 0, allow))
        program.append((ldAbs, 0, 0, 16))  // args[0], low 32 bits: clone's flags
        program.append((jset, 0, to(killAt, from: allowAt + 2), cloneThread))
        program.append((ret, 0, 0, allow))
        program.append((ret, 0, 0, killProcess))
        var bytes: [UInt8] = []
        for insn in program {
            bytes += [UInt8(truncatingIfNeeded: insn.code), UInt8(truncatingIfNeeded: insn.code >> 8), insn.jt, insn.jf]
            bytes += withUnsafeBytes(of: insn.k.littleEndian, Array.init)
        }
        return bytes
    }

    /// Loads `seccompProgram` (after NO_NEW_PRIVS, so no privilege is needed). x86_64 only:
    /// the system call numbers differ per architecture; elsewhere the filter is not installed.
    static func installSeccompFilter() throws {
        #if arch(x86_64)
            guard let prctl else { throw BootError.sandbox(step: "looking up prctl", errno: ENOSYS) }
            let program = seccompProgram()
            let count = program.count / 8
            let rc: Int32 = program.withUnsafeBytes { filter in
                // struct sock_fprog { unsigned short len; struct sock_filter *filter; }: len at 0, pointer at 8.
                var fprog = [UInt64](repeating: 0, count: 2)
                fprog[0] = UInt64(count)
                fprog[1] = UInt64(UInt(bitPattern: filter.baseAddress))
                return fprog.withUnsafeBytes { prog in
                    prctl(prSetSeccomp, seccompModeFilter, UInt(bitPattern: prog.baseAddress), 0, 0)
                }
            }
            guard rc == 0 else { throw BootError.sandbox(step: "prctl(PR_SET_SECCOMP)", errno: errno) }
        #endif
    }

    /// From <linux/prctl.h>, which Swift's Glibc module does not include.
    static let prGetDumpable: Int32 = 3
    static let prSetDumpable: Int32 = 4
    static let prSetNoNewPrivs: Int32 = 38
    static let prSetSeccomp: Int32 = 22
    static let seccompModeFilter: UInt = 2
    /// glibc's prctl (`BerthPOSIX.prctl`).
    static let prctl = BerthPOSIX.prctl
    /// glibc declares the set/getres[ug]id family only under _GNU_SOURCE, which Swift's Glibc
    /// module does not define; they are plain functions, looked up by name like `prctl`.
    typealias SetRes = @convention(c) (UInt32, UInt32, UInt32) -> Int32
    typealias GetRes = @convention(c) (UnsafeMutablePointer<UInt32>?, UnsafeMutablePointer<UInt32>?, UnsafeMutablePointer<UInt32>?) -> Int32
    static let setresuid: SetRes? = dlsym(nil, "setresuid").map { unsafeBitCast($0, to: SetRes.self) }
    static let setresgid: SetRes? = dlsym(nil, "setresgid").map { unsafeBitCast($0, to: SetRes.self) }
    static let getresuid: GetRes? = dlsym(nil, "getresuid").map { unsafeBitCast($0, to: GetRes.self) }
    static let getresgid: GetRes? = dlsym(nil, "getresgid").map { unsafeBitCast($0, to: GetRes.self) }
}
