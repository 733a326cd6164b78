import BerthDisk
import Testing

@testable import BerthBoot

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct BootloaderCommandTests {
    typealias Options = BootloaderCommand.Options

    @Test func parsesPyGrubStyleArguments() throws {
        let o = try Options(parsing: [
            "-qn", "--entry", "1", "--output-format=simple0", "/images/guest.img", "--args=console=hvc0", "--offset=1048576",
        ])
        #expect(o.image == "/images/guest.img")
        #expect(o.notReally)
        #expect(o.entry == "1")
        #expect(o.outputFormat == .simple0)
        #expect(o.args == "console=hvc0")
        #expect(o.offset == 1_048_576)
        // getopt accepts unambiguous prefixes; --output=- means standard output.
        let p = try Options(parsing: ["--list", "--output=-", "--isconfig", "menu.lst"])
        #expect(p.listEntries && p.isConfig && p.output == nil)
        #expect(try Options(parsing: ["--output-dir=/run/x", "img"]).outputDirectory == "/run/x")
    }

    @Test(arguments: [["img", "--bogus"], [], ["--output-format=xml", "img"], ["--offset=-1", "img"], ["--output", "img"], ["--out=x", "img"]])
    func refusesBadArguments(_ argv: [String]) {
        #expect(throws: BootError.self) { try Options(parsing: argv) }
    }

    @Test func outputFormatsMatchPyGrub() throws {
        #expect(
            try BootloaderCommand.render(.sxp, kernel: "/run/k", ramdisk: "/run/r", args: "root=/dev/xvda1 ro")
                == "linux (kernel '/run/k')(ramdisk '/run/r')(args 'root=/dev/xvda1 ro')")
        #expect(try BootloaderCommand.render(.sxp, kernel: "/run/k", ramdisk: nil, args: "") == "linux (kernel '/run/k')")
        #expect(try BootloaderCommand.render(.simple, kernel: "/k", ramdisk: "/r", args: "ro") == "kernel /k\nramdisk /r\nargs ro\n\n")
        #expect(try BootloaderCommand.render(.simple0, kernel: "/k", ramdisk: nil, args: "ro") == "kernel /k\0args ro\0\0")
    }

    /// XSA-198: menu text must never add or change a field of the answer.
    @Test func menuContentCannotInjectFields() throws {
        let hostile = "ro')(kernel '/etc/shadow"
        let sxp = try BootloaderCommand.render(.sxp, kernel: "/k", ramdisk: nil, args: hostile)
        #expect(sxp == #"linux (kernel '/k')(args "ro')(kernel '/etc/shadow")"#)
        #expect(BootloaderCommand.pythonRepr("a'b\"c\\\n\u{1b}") == #"'a\'b"c\\\n\x1b'"#)
        #expect(throws: BootError.self) { try BootloaderCommand.render(.simple, kernel: "/k", ramdisk: nil, args: "ro\nkernel /etc/shadow") }
        #expect(throws: BootError.self) { try BootloaderCommand.render(.simple0, kernel: "/k", ramdisk: nil, args: "ro\0kernel /etc/shadow") }
        // A GRUB2 quoted string may span lines: such an entry is refused, not mangled.
        let fs = MemoryFileSystem([
            "/boot/grub/grub.cfg": "menuentry 'x' { linux /k 'ro\nkernel /etc/shadow' }", "/k": "K",
        ])
        var options = try Options(parsing: ["-q", "--output-format=simple", "img"])
        options.notReally = true
        #expect(throws: BootError.self) { try BootloaderCommand.execute(options, filesystems: [fs]) }
    }

    @Test func listingEscapesControlCharacters() {
        let menu = BootMenu(format: .grub2, path: "/g", entries: [BootEntry(title: "evil\u{1b}[2J", kernel: "/k", args: "a")])
        let text = String(decoding: BootloaderCommand.listing(menu), as: UTF8.self)
        #expect(text == "title: evil\\x1b[2J\n  root: None\n  kernel: /k\n  args: a\n  initrd: None\n")
    }

    @Test func isconfigReadsAHostMenuFile() throws {
        let options = try Options(parsing: ["--isconfig", Fixture.directory + "/ubuntu-14.04-lts.grub2", "--entry=2"])
        let out = try BootloaderCommand.execute(options)
        #expect(
            String(decoding: out.stdout, as: UTF8.self) == """
                  kernel: /vmlinuz-3.13.0-44-generic
                  initrd: /initrd.img-3.13.0-44-generic
                  args: root=/dev/mapper/BoxenSys00-root ro recovery nomodeset biosdevname=0

                """)
    }

    @Test func wholeRunOnARealImage() throws {
        guard
            let image = Ext4Image([
                "/boot/grub/grub.cfg": Array("menuentry 'Debian' { linux /boot/vmlinuz root=/dev/xvda1 ro\n initrd /boot/initrd.img }".utf8),
                "/boot/vmlinuz": Array("KERNEL".utf8), "/boot/initrd.img": Array("INITRD".utf8),
            ])
        else {
            Issue.record("mke2fs -d failed: install e2fsprogs")
            return
        }
        defer { image.remove() }
        let list = try BootloaderCommand.execute(try Options(parsing: ["-l", image.path]))
        #expect(String(decoding: list.stdout, as: UTF8.self).hasPrefix("title: Debian\n  root: hd0\n  kernel: /boot/vmlinuz\n"))
        let dry = try BootloaderCommand.execute(try Options(parsing: ["-q", "-n", image.path]))
        #expect(
            String(decoding: dry.result, as: UTF8.self)
                == "linux (kernel '<kernel:/boot/vmlinuz>')(ramdisk '<ramdisk:/boot/initrd.img>')(args 'root=/dev/xvda1 ro')")
        let out = image.directory.path + "/out"
        let run = try BootloaderCommand.execute(
            try Options(parsing: ["--output-format=simple0", "--output-directory=" + out, "--args=quiet", image.path]))
        let fields = String(decoding: run.result, as: UTF8.self).split(separator: "\0").map(String.init)
        #expect(fields.count == 3)
        #expect(fields[0].hasPrefix("kernel " + out + "/boot_kernel."))
        #expect(fields[1].hasPrefix("ramdisk " + out + "/boot_ramdisk."))
        #expect(fields[2] == "args root=/dev/xvda1 ro quiet")
        let kernel = try FileSource(path: String(fields[0].dropFirst(7)))
        #expect(try kernel.read(at: 0, count: 6) == Array("KERNEL".utf8))
        #expect(BootloaderCommand.run(arguments: ["-q", "--entry=9", "-n", image.path]) == 1)
        for name in try listDirectory(out) { unlink(out + "/" + name) }
        rmdir(out)  // else the image's directory, which holds it, is left behind in /tmp
    }
}
