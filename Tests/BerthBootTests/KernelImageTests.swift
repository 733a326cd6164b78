import BerthDisk
import Testing

@testable import BerthBoot

#if canImport(Glibc)
    import Glibc
#endif

/// What UEFI firmware can start: the check `--uefi` makes on a kernel's first bytes, with
/// every offset taken from those (guest-written) bytes checked.
@Suite struct KernelImageTests {
    /// The head of an x86 bzImage with the EFI stub, as Linux 6.1 lays it out: `MZ`, the PE
    /// header at 0x40, a 160-byte PE32+ optional header whose Subsystem is EFI application,
    /// and the boot protocol's setup header (0xAA55, `HdrS`, version 2.15, relocatable).
    static func stubKernel(
        peOffset: UInt32 = 0x40, optionalSize: UInt16 = 160, subsystem: UInt16 = 10, version: UInt16 = 0x20F, relocatable: UInt8 = 1
    ) -> [UInt8] {
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
        bytes[0x1FE] = 0x55
        bytes[0x1FF] = 0xAA
        bytes.replaceSubrange(0x202..<0x206, with: Array("HdrS".utf8))
        put16(&bytes, 0x206, version)
        bytes[0x234] = relocatable
        return bytes
    }

    /// The stub's `MZ` and `PE\0\0` zeroed: what the end-to-end test makes of the test kernel.
    static func stublessKernel(version: UInt16 = 0x20F, relocatable: UInt8 = 1) -> [UInt8] {
        var bytes = stubKernel(version: version, relocatable: relocatable)
        bytes.replaceSubrange(0..<2, with: [0, 0])
        bytes.replaceSubrange(0x40..<0x44, with: [0, 0, 0, 0])
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
        #expect(KernelImage.uefiStart(Self.stubKernel()) == .efiStub)
        #expect(KernelImage.uefiStart(Self.stubKernel(relocatable: 0)) == .efiStub)
    }

    /// Without the stub, OVMF's Linux loader takes a relocatable bzImage of protocol 2.05+;
    /// an older or non-relocatable one, or no bzImage at all, UEFI cannot start.
    @Test func withoutTheStubOnlyARelocatableBzImageCanBeStarted() {
        #expect(KernelImage.uefiStart(Self.stublessKernel()) == .linuxLoader)
        #expect(KernelImage.uefiStart(Self.stublessKernel(version: 0x205)) == .linuxLoader)
        #expect(KernelImage.uefiStart(Self.stublessKernel(version: 0x204)) == .impossible)
        #expect(KernelImage.uefiStart(Self.stublessKernel(relocatable: 0)) == .impossible)
        var noSignature = Self.stublessKernel()
        noSignature[0x1FE] = 0
        #expect(KernelImage.uefiStart(noSignature) == .impossible)
        var noHdrS = Self.stublessKernel()
        noHdrS[0x205] = 0
        #expect(KernelImage.uefiStart(noHdrS) == .impossible)
        #expect(KernelImage.uefiStart(Array(Self.stublessKernel().prefix(0x234))) == .impossible)
        #expect(KernelImage.uefiStart(Array(Self.stublessKernel().prefix(0x235))) == .linuxLoader)
        #expect(KernelImage.uefiStart(Array("\u{7F}ELF vmlinux, not a bzImage".utf8)) == .impossible)
    }

    /// A bzImage without `MZ` (a kernel built without CONFIG_EFI_STUB has none) is no EFI
    /// application; BIOS still boots it from `HdrS`.
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

    /// `--uefi` refuses after the copy and leaves nothing in the output directory; without it,
    /// the same kernel is extracted as before (BIOS boots it).
    @Test func uefiRefusesAKernelUEFICannotStartAndRemovesTheCopies() throws {
        let fs = MemoryFileSystem(bytes: [
            "/vmlinuz": Self.stublessKernel(relocatable: 0), "/efi": Self.stubKernel(), "/bz": Self.stublessKernel(),
            "/initrd": [1, 2, 3],
        ])
        let tmp = TemporaryDirectory()
        defer { tmp.remove() }
        var options = BootloaderCommand.Options()
        options.outputDirectory = tmp.path
        options.outputFormat = .simple0
        options.kernel = "/vmlinuz"
        options.ramdisk = "/initrd"
        options.uefi = true
        #expect(throws: BootError.notForUEFI(path: "/vmlinuz")) { try BootloaderCommand.execute(options, filesystems: [fs]) }
        #expect(try listDirectory(tmp.path).isEmpty)
        #expect(BootError.notForUEFI(path: "/vmlinuz").description.contains("CONFIG_EFI_STUB"))

        for kernel in ["/efi", "/bz"] {
            options.kernel = kernel
            #expect(try !BootloaderCommand.execute(options, filesystems: [fs]).result.isEmpty, "\(kernel)")
        }
        options.kernel = "/vmlinuz"
        options.uefi = false
        #expect(try !BootloaderCommand.execute(options, filesystems: [fs]).result.isEmpty)
        #expect(try BootloaderCommand.Options(parsing: ["--uefi", "disk.img"]).uefi)
    }
}
