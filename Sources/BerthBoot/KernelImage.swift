#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// What the first bytes of a kernel say about the firmware that can start it. UEFI firmware
/// (OVMF) starts only PE/COFF EFI applications; a Linux kernel is one when it was built with
/// `CONFIG_EFI_STUB` (Linux 3.3 and later). A bzImage without the stub still boots from BIOS:
/// the x86 boot protocol needs the setup header at 0x1F1 (`HdrS` at 0x202), not the `MZ`.
public enum KernelImage {
    /// Bytes read from the start of a kernel to judge it. Linux puts its PE header at 0x40
    /// (arm64 and x86 alike); a PE header that starts further in than this is not a kernel's.
    public static let headerBytes = 4096
    /// `IMAGE_SUBSYSTEM_EFI_APPLICATION`, the subsystem of Linux's stub and every EFI loader.
    static let efiApplication: UInt16 = 10

    /// True when `header` (a file's first bytes, at most `headerBytes` used) is a PE/COFF
    /// EFI application: `MZ`, the PE offset at 0x3C pointing inside the header at `PE\0\0`,
    /// an optional header long enough to hold its Subsystem, and that Subsystem EFI
    /// application. Every offset is checked against the bytes present.
    public static func isEFIApplication(_ header: [UInt8]) -> Bool {
        let bytes = Array(header.prefix(headerBytes))
        guard bytes.count >= 0x40, bytes[0] == 0x4D, bytes[1] == 0x5A, let pe = uint32(bytes, at: 0x3C) else { return false }
        // Signature (4), COFF header (20), then the optional header; Subsystem sits 68 bytes
        // into it in both PE32 and PE32+.
        guard pe <= UInt32(headerBytes), let optionalSize = uint16(bytes, at: Int(pe) + 20) else { return false }
        let coff = Int(pe)
        guard bytes[coff..<min(coff + 4, bytes.count)].elementsEqual([0x50, 0x45, 0, 0]), optionalSize >= 70,
            let subsystem = uint16(bytes, at: coff + 24 + 68)
        else { return false }
        return subsystem == efiApplication
    }

    /// The first `headerBytes` of the file at `path`, opened without following a final symlink.
    public static func header(ofFileAt path: String) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw BootError.outputDirectory(path: path, reason: "cannot read it back: \(errnoText(errno))") }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: headerBytes)
        var got = 0
        while got < headerBytes {
            let n = bytes.withUnsafeMutableBytes { buffer in
                pread(fd, buffer.baseAddress.map { $0 + got }, headerBytes - got, off_t(got))
            }
            if n < 0, errno == EINTR { continue }
            guard n >= 0 else { throw BootError.outputDirectory(path: path, reason: "cannot read it back: \(errnoText(errno))") }
            if n == 0 { break }
            got += n
        }
        return Array(bytes.prefix(got))
    }

    static func uint16(_ bytes: [UInt8], at offset: Int) -> UInt16? {
        guard offset >= 0, offset <= bytes.count - 2 else { return nil }
        return UInt16(bytes[offset]) | UInt16(bytes[offset + 1]) << 8
    }

    static func uint32(_ bytes: [UInt8], at offset: Int) -> UInt32? {
        guard offset >= 0, offset <= bytes.count - 4 else { return nil }
        return (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[offset + $1]) << (8 * $1) }
    }
}
