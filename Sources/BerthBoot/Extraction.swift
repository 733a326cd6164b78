import BerthDisk
import BerthPOSIX

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Caps on one kernel/initrd extraction.
public struct ExtractionLimits: Sendable, Equatable {
    /// Kernel plus all initrds, in bytes (XSA-25).
    public var maxTotalBytes: UInt64
    /// Wall-clock seconds for the whole extraction (XSA-443).
    public var seconds: Int

    public init(maxTotalBytes: UInt64 = BootLimits.defaultMaxExtractBytes, seconds: Int = BootLimits.defaultExtractSeconds) {
        self.maxTotalBytes = maxTotalBytes
        self.seconds = seconds
    }
}

/// A file inside a guest filesystem.
public struct GuestFile: Sendable {
    public var fs: any FileSystem
    public var path: String

    public init(fs: any FileSystem, path: String) {
        self.fs = fs
        self.path = path
    }
}

/// Copies a kernel and its initrds out of a guest image into a private directory on the host.
public enum Extraction {
    /// Chunk written at a time, so the deadline is checked while writing.
    static let chunk = 1 << 20

    /// Copies `kernel` to `boot_kernel.XXXXXX` and the initrds, concatenated (each padded to
    /// 4 bytes as GRUB loads several), to `boot_ramdisk.XXXXXX` in `directory`.
    ///
    /// The directory is created 0700 if missing and must be owned by the caller and not
    /// writable by others; files are created with O_EXCL|O_NOFOLLOW, mode 0600, relative to
    /// the directory's descriptor, so no host symlink is ever followed.
    /// - Returns: the host paths of the kernel and (if any initrd) the ramdisk.
    public static func extract(
        kernel: GuestFile, initrds: [GuestFile], to directory: String, limits: ExtractionLimits = ExtractionLimits()
    ) throws -> (kernel: String, ramdisk: String?) {
        let deadline = monotonicSeconds() + Double(limits.seconds)
        func checkTime() throws {
            if monotonicSeconds() > deadline { throw BootError.timedOut(seconds: limits.seconds) }
        }

        // Sizes first, so an oversized guest file is refused before anything is read (XSA-25).
        var total: UInt64 = 0
        for file in [kernel] + initrds {
            let info: FileInfo
            do { info = try file.fs.stat(file.path) } catch FileSystemError.notFound { throw BootError.fileMissing(path: file.path) }
            guard info.kind == .file else { throw BootError.fileMissing(path: file.path) }
            // Sizes come from the guest's inodes: a sum that wraps is over any limit, not small.
            let (sum, overflow) = total.addingReportingOverflow(info.size)
            total = overflow ? .max : sum
            if total > limits.maxTotalBytes { throw BootError.tooLarge(total: total, limit: limits.maxTotalBytes) }
        }

        let dirfd = try openPrivateDirectory(directory)
        defer { close(dirfd) }
        var created: [String] = []
        do {
            var budget = limits.maxTotalBytes
            let kernelName = try writeFiles(
                [kernel], prefix: "boot_kernel.", dirfd: dirfd, directory: directory, budget: &budget, created: &created, checkTime: checkTime)
            var ramdiskName: String?
            if !initrds.isEmpty {
                ramdiskName = try writeFiles(
                    initrds, prefix: "boot_ramdisk.", dirfd: dirfd, directory: directory, budget: &budget, created: &created, checkTime: checkTime)
            }
            let base = directory.hasSuffix("/") ? directory : directory + "/"
            return (base + kernelName, ramdiskName.map { base + $0 })
        } catch {
            for name in created { unlinkat(dirfd, name, 0) }
            throw error
        }
    }

    static func writeFiles(
        _ files: [GuestFile], prefix: String, dirfd: Int32, directory: String, budget: inout UInt64,
        created: inout [String], checkTime: () throws -> Void
    ) throws -> String {
        let (fd, name) = try createUnique(prefix: prefix, dirfd: dirfd, directory: directory)
        created.append(name)
        defer { close(fd) }
        var written = 0
        for (k, file) in files.enumerated() {
            try checkTime()
            let limit = Int(clamping: budget)
            var fileBytes = 0
            do {
                try file.fs.stream(file.path, limit: limit) { chunk in
                    try checkTime()
                    // The readers honour `limit`; this holds the cap even if one did not.
                    let (sum, overflow) = fileBytes.addingReportingOverflow(chunk.count)
                    guard !overflow, sum <= limit else { throw BootError.tooLarge(total: UInt64(clamping: sum), limit: budget) }
                    switch chunk {
                    case .bytes(let bytes): try writeAll(fd, bytes, path: directory + "/" + name, checkTime: checkTime)
                    case .file(let range): try copyRange(range, to: fd, path: directory + "/" + name, checkTime: checkTime)
                    }
                    fileBytes += chunk.count
                }
            } catch FileSystemError.notFound {
                throw BootError.fileMissing(path: file.path)
            } catch FileSystemError.tooLarge(_, let size, _) {
                throw BootError.tooLarge(total: size, limit: budget)
            }
            try checkTime()
            budget -= UInt64(fileBytes)
            written += fileBytes
            // Several initrds become one: pad each to 4 bytes, as GRUB lays them out in memory.
            if files.count > 1, k < files.count - 1, written % 4 != 0 {
                let pad = [UInt8](repeating: 0, count: 4 - written % 4)
                try writeAll(fd, pad, path: directory + "/" + name, checkTime: checkTime)
                written += pad.count
            }
        }
        return name
    }

    /// glibc's copy_file_range, looked up by name (Swift's Glibc module does not declare it).
    typealias CopyFileRange =
        @convention(c) (
            Int32, UnsafeMutablePointer<Int64>?, Int32, UnsafeMutablePointer<Int64>?, Int, UInt32
        ) -> Int
    static let copyFileRange: CopyFileRange? = dlsym(nil, "copy_file_range").map {
        unsafeBitCast($0, to: CopyFileRange.self)
    }

    /// Copies a range of the image into the output in the kernel (no pass through user memory);
    /// falls back to read and write where the kernel or filesystem cannot.
    static func copyRange(_ range: FileRange, to fd: Int32, path: String, checkTime: () throws -> Void) throws {
        var inOffset = Int64(range.offset)
        var left = range.count
        while left > 0, let copy = copyFileRange {
            try checkTime()
            let n = copy(range.fd, &inOffset, fd, nil, left, 0)
            if n > 0 {
                left -= n
                continue
            }
            if n < 0, errno == EINTR { continue }
            break  // EXDEV, ENOSYS, EINVAL, or an unexpected end: copy the rest by hand
        }
        while left > 0 {
            try checkTime()
            let count = min(left, chunk)
            var buffer = [UInt8](repeating: 0, count: count)
            let got = buffer.withUnsafeMutableBytes { pread(range.fd, $0.baseAddress, count, off_t(inOffset)) }
            if got < 0, errno == EINTR { continue }
            guard got > 0 else { throw BootError.write(path: path, errno: got < 0 ? errno : EIO) }
            buffer.removeLast(count - got)
            try writeAll(fd, buffer, path: path, checkTime: checkTime)
            inOffset += Int64(got)
            left -= got
        }
    }

    /// Writes in `chunk`-sized pieces, checking the time limit between them.
    static func writeAll(_ fd: Int32, _ bytes: [UInt8], path: String, checkTime: () throws -> Void) throws {
        var offset = 0
        while offset < bytes.count {
            try checkTime()
            let count = min(chunk, bytes.count - offset)
            do {
                try BerthPOSIX.writeAll(fd, bytes[offset..<offset + count])
            } catch {
                throw BootError.write(path: path, errno: error.errno)
            }
            offset += count
        }
    }

    /// Opens (creating 0700 if needed) a directory that only the caller can write to.
    static func openPrivateDirectory(_ path: String) throws -> Int32 {
        var fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        if fd < 0 && errno == ENOENT {
            if mkdir(path, 0o700) != 0 && errno != EEXIST {
                throw BootError.outputDirectory(path: path, reason: "cannot create it: \(errnoText(errno))")
            }
            fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        }
        guard fd >= 0 else {
            let e = errno
            let reason = e == ELOOP || e == ENOTDIR ? "is a symbolic link or not a directory" : errnoText(e)
            throw BootError.outputDirectory(path: path, reason: reason)
        }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            close(fd)
            throw BootError.outputDirectory(path: path, reason: errnoText(errno))
        }
        if st.st_uid != geteuid() || st.st_mode & 0o022 != 0 {
            close(fd)
            throw BootError.outputDirectory(path: path, reason: "must be owned by uid \(geteuid()) and writable by no one else")
        }
        return fd
    }

    /// `mkstemp` relative to a directory descriptor: random suffix, O_EXCL|O_NOFOLLOW, 0600.
    static func createUnique(prefix: String, dirfd: Int32, directory: String) throws -> (Int32, String) {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_".utf8)
        for _ in 0..<100 {
            var random = [UInt8](repeating: 0, count: 8)
            fillRandom(&random)
            let suffix = String(decoding: random.map { alphabet[Int($0) % alphabet.count] }, as: UTF8.self)
            let name = prefix + suffix
            let fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            if fd >= 0 {
                fchmod(fd, 0o600)
                return (fd, name)
            }
            if errno != EEXIST { throw BootError.write(path: directory + "/" + name, errno: errno) }
        }
        throw BootError.outputDirectory(path: directory, reason: "cannot create a unique file name")
    }

    static func fillRandom(_ buffer: inout [UInt8]) {
        let count = buffer.count
        var got = -1
        let fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC)
        if fd >= 0 {
            got = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, count) }
            close(fd)
        }
        if got != count {
            var t = timespec()
            clock_gettime(CLOCK_REALTIME, &t)
            var x = UInt64(bitPattern: Int64(t.tv_nsec)) ^ UInt64(getpid()) << 32
            for i in 0..<count {
                x = x &* 6364136223846793005 &+ 1442695040888963407
                buffer[i] = UInt8(truncatingIfNeeded: x >> 33)
            }
        }
    }

    static func monotonicSeconds() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
    }
}
