#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// What the first bytes of a kernel say about the firmware that can start it. OVMF (UEFI)
/// starts a kernel given beside it (QEMU's `-kernel`, over fw_cfg) in one of two ways: as a
/// PE/COFF EFI application (a kernel built with `CONFIG_EFI_STUB`, Linux 3.3 and later), or, for
/// an x86 bzImage without the stub, through its own Linux loader (edk2's LoadLinuxLib, in
/// Debian 12's OVMF 2022.11), which takes only a relocatable bzImage of boot protocol 2.05 or
/// later. Anything else it cannot start: it falls through to its boot menu and sits there. BIOS
/// direct boot (QEMU's linuxboot ROM) reads the setup header at 0x1F1 (`HdrS` at 0x202) and
/// never the `MZ`.
public enum KernelImage {
    /// How UEFI firmware can start a kernel.
    public enum UEFIStart: Sendable, Equatable {
        /// A PE/COFF EFI application: the EFI stub.
        case efiStub
        /// No stub, but a relocatable bzImage (protocol 2.05+) that OVMF's Linux loader takes.
        case linuxLoader
        /// Neither: UEFI firmware cannot start it.
        case impossible
    }

    /// Bytes read from the start of a kernel to judge it. Linux puts its PE header at 0x40
    /// (arm64 and x86 alike); a PE header that starts further in than this is not a kernel's.
    public static let headerBytes = 4096
    /// `IMAGE_SUBSYSTEM_EFI_APPLICATION`, the subsystem of Linux's stub and every EFI loader.
    static let efiApplication: UInt16 = 10

    /// How UEFI firmware can start the kernel whose first bytes are `header`.
    public static func uefiStart(_ header: [UInt8]) -> UEFIStart {
        if isEFIApplication(header) { return .efiStub }
        return isRelocatableBzImage(header) ? .linuxLoader : .impossible
    }

    /// The x86 boot protocol's setup header as edk2's LoadLinuxLib checks it: the boot sector
    /// signature 0xAA55 at 0x1FE, `HdrS` at 0x202, version (0x206) 2.05 or later, and the
    /// relocatable_kernel byte (0x234) set.
    public static func isRelocatableBzImage(_ header: [UInt8]) -> Bool {
        guard header.count > 0x234, header[0x1FE] == 0x55, header[0x1FF] == 0xAA,
            header[0x202..<0x206].elementsEqual(Array("HdrS".utf8)), let version = uint16(header, at: 0x206)
        else { return false }
        return version >= 0x205 && header[0x234] != 0
    }

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

    /// The first `headerBytes` of the file at `path`, opened without following a final symlink
    /// unless `followingSymlinks` (a host kernel such as `/vmlinuz` often is one).
    public static func header(ofFileAt path: String, followingSymlinks: Bool = false) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC | (followingSymlinks ? 0 : O_NOFOLLOW))
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
