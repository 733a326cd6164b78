import BerthDisk
import Testing

@testable import BerthBoot

#if canImport(Glibc)
    import Glibc
#endif

/// UEFI starts only EFI applications: the check `--require-efi-stub` makes on a kernel's
/// first bytes, with every offset taken from those (guest-written) bytes checked.
@Suite struct KernelImageTests {
    /// The head of an x86 bzImage with the EFI stub, as Linux 6.1 lays it out: `MZ`, the PE
    /// header at 0x40, a 160-byte PE32+ optional header whose Subsystem is EFI application,
    /// and the boot protocol's `HdrS` at 0x202.
    static func stubKernel(peOffset: UInt32 = 0x40, optionalSize: UInt16 = 160, subsystem: UInt16 = 10) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: 0x400)
        bytes[0] = 0x4D
        bytes[1] = 0x5A
        put32(&bytes, 0x3C, peOffset)
        let pe = Int(peOffset)
        if pe + 24 + 70 <= bytes.count {
            bytes.replaceSubrange(pe..<pe + 4, with: [0x50, 0x45, 0, 0])
            put16(&bytes, pe + 4, 0x8664)
            put16(&bytes, pe + 20, optionalSize)
            put16(&bytes, pe + 24 + 68, subsystem)
        }
        bytes.replaceSubrange(0x202..<0x206, with: Array("HdrS".utf8))
        return bytes
    }

    static func put16(_ bytes: inout [UInt8], _ at: Int, _ value: UInt16) {
        bytes[at] = UInt8(truncatingIfNeeded: value)
        bytes[at + 1] = UInt8(truncatingIfNeeded: value >> 8)
    }

    static func put32(_ bytes: inout [UInt8], _ at: Int, _ value: UInt32) {
        for k in 0..<4 { bytes[at + k] = UInt8(truncatingIfNeeded: value >> (8 * k)) }
    }

    @Test func aKernelWithTheStubIsAnEFIApplication() {
        #expect(KernelImage.isEFIApplication(Self.stubKernel()))
    }

    /// What the end-to-end test makes of the test kernel: the same bzImage without `MZ` (a
    /// kernel built without CONFIG_EFI_STUB has none); BIOS still boots it from `HdrS`.
    @Test func withoutMZOrPESignatureItIsNot() {
        var noMZ = Self.stubKernel()
        noMZ[0] = 0
        noMZ[1] = 0
        #expect(!KernelImage.isEFIApplication(noMZ))
        var noPE = Self.stubKernel()
        noPE[0x40] = 0
        #expect(!KernelImage.isEFIApplication(noPE))
        #expect(!KernelImage.isEFIApplication(Array("\u{1F}\u{8B} gzip, not a kernel".utf8)))
        #expect(!KernelImage.isEFIApplication([]))
    }

    @Test func anotherSubsystemOrAShortOptionalHeaderIsNot() {
        #expect(!KernelImage.isEFIApplication(Self.stubKernel(subsystem: 11)))  // a boot-service driver
        #expect(!KernelImage.isEFIApplication(Self.stubKernel(subsystem: 3)))  // a Windows console program
        #expect(!KernelImage.isEFIApplication(Self.stubKernel(optionalSize: 68)))
    }

    /// The PE offset is the guest's: past the header, past the bytes present, at the very end,
    /// or 0xFFFFFFFF, it is refused without reading out of bounds.
    @Test func hostilePEOffsetsAreRefusedWithoutReadingPastTheBytes() {
        for offset: UInt32 in [0xFFFF_FFFF, 0x8000_0000, UInt32(KernelImage.headerBytes), 0x3FE, 0x3FC, 0x3E0] {
            #expect(!KernelImage.isEFIApplication(Self.stubKernel(peOffset: offset)), "PE offset \(offset)")
        }
        // Cut short anywhere, a real header stops being one rather than being read past its end.
        let whole = Self.stubKernel()
        for length in [2, 0x3C, 0x40, 0x44, 0x58, 0x9D] {
            #expect(!KernelImage.isEFIApplication(Array(whole.prefix(length))), "\(length) bytes")
        }
        #expect(KernelImage.isEFIApplication(Array(whole.prefix(0x9E))))
    }

    /// `--require-efi-stub` refuses after the copy and leaves nothing in the output directory;
    /// without it, the same kernel is extracted as before (BIOS boots it).
    @Test func requireEFIStubRefusesAKernelWithoutOneAndRemovesTheCopies() throws {
        var plain = Self.stubKernel()
        plain[0] = 0
        plain[1] = 0
        let fs = MemoryFileSystem(bytes: ["/vmlinuz": plain, "/efi": Self.stubKernel(), "/initrd": [1, 2, 3]])
        let tmp = TemporaryDirectory()
        defer { tmp.remove() }
        var options = BootloaderCommand.Options()
        options.outputDirectory = tmp.path
        options.outputFormat = .simple0
        options.kernel = "/vmlinuz"
        options.ramdisk = "/initrd"
        options.requireEFIStub = true
        #expect(throws: BootError.noEFIStub(path: "/vmlinuz")) { try BootloaderCommand.execute(options, filesystems: [fs]) }
        #expect(try listDirectory(tmp.path).isEmpty)
        #expect(BootError.noEFIStub(path: "/vmlinuz").description.contains("CONFIG_EFI_STUB"))

        options.kernel = "/efi"
        #expect(try !BootloaderCommand.execute(options, filesystems: [fs]).result.isEmpty)
        options.kernel = "/vmlinuz"
        options.requireEFIStub = false
        #expect(try !BootloaderCommand.execute(options, filesystems: [fs]).result.isEmpty)
        #expect(try BootloaderCommand.Options(parsing: ["--require-efi-stub", "disk.img"]).requireEFIStub)
    }
}
