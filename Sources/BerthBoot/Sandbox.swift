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
    /// supplementary groups; finally proves root cannot be regained. Any failure throws, and
    /// the caller must stop: it never continues unsandboxed.
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
        // The proof: with every id dropped, root cannot be had back.
        if setuid(0) == 0 || setgid(0) == 0 { throw fail("setuid(0) still succeeds after dropping root", EPERM) }
    }

    /// glibc's prctl, looked up by name (it is variadic in C, so Swift does not import it; all
    /// its arguments are integers, which the C calling convention passes alike).
    /// From <linux/prctl.h>, which Swift's Glibc module does not include.
    static let prSetDumpable: Int32 = 4
    static let prSetNoNewPrivs: Int32 = 38
    typealias Prctl = @convention(c) (Int32, UInt, UInt, UInt, UInt) -> Int32
    static let prctl: Prctl? = dlsym(nil, "prctl").map { unsafeBitCast($0, to: Prctl.self) }
    /// glibc declares the set/getres[ug]id family only under _GNU_SOURCE, which Swift's Glibc
    /// module does not define; they are plain functions, looked up by name like `prctl`.
    typealias SetRes = @convention(c) (UInt32, UInt32, UInt32) -> Int32
    typealias GetRes = @convention(c) (UnsafeMutablePointer<UInt32>?, UnsafeMutablePointer<UInt32>?, UnsafeMutablePointer<UInt32>?) -> Int32
    static let setresuid: SetRes? = dlsym(nil, "setresuid").map { unsafeBitCast($0, to: SetRes.self) }
    static let setresgid: SetRes? = dlsym(nil, "setresgid").map { unsafeBitCast($0, to: SetRes.self) }
    static let getresuid: GetRes? = dlsym(nil, "getresuid").map { unsafeBitCast($0, to: GetRes.self) }
    static let getresgid: GetRes? = dlsym(nil, "getresgid").map { unsafeBitCast($0, to: GetRes.self) }
}
