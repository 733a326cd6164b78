import BerthDisk
import Testing

@testable import BerthBoot

@Suite struct Grub2Tests {
    func parse(_ text: String, env: [String: String]? = nil, fs: MemoryFileSystem? = nil) throws -> BootMenu {
        try Grub2.parse(Array(text.utf8), path: "/boot/grub/grub.cfg", fs: fs, environmentBlock: env)
    }

    @Test func variablesAndQuotingExpandAsGrubDoes() throws {
        let menu = try parse(
            #"""
            set kver=6.1.0-13-amd64
            opts="root=/dev/vda1 ro"
            set title_suffix='$not_expanded'
            menuentry "Debian $kver${title_suffix}" {
                linux /boot/vmlinuz-${kver} $opts quiet\ splash "a b"  'c  d'
                initrd /boot/initrd.img-$kver
            }
            """#)
        let entry = try #require(menu.defaultEntry)
        #expect(entry.title == "Debian 6.1.0-13-amd64$not_expanded")
        #expect(entry.kernel == "/boot/vmlinuz-6.1.0-13-amd64")
        // Unquoted $opts splits into words; quoted words keep their spaces.
        #expect(entry.args == "root=/dev/vda1 ro quiet splash a b c  d")
        #expect(entry.initrds == ["/boot/initrd.img-6.1.0-13-amd64"])
    }

    @Test func defaultByIndexTitleAndID() throws {
        let body = """
            menuentry 'A' --id a-id { linux /a }
            menuentry 'B' --id b-id { linux /b }
            menuentry 'C' $menuentry_id_option 'c-id' { linux /c }
            """
        #expect(try parse("set default=1\n" + body).defaultEntry?.kernel == "/b")
        #expect(try parse("set default='C'\n" + body).defaultEntry?.kernel == "/c")
        // Without menuentry_id_option set, 'c-id' is a plain argument, not an id.
        #expect(try parse("set default=c-id\n" + body).defaultIndex == 0)
        #expect(try parse("menuentry_id_option=--id\nset default=c-id\n" + body).defaultEntry?.kernel == "/c")
        // Out of range or unknown: GRUB falls back to the first entry.
        #expect(try parse("set default=7\n" + body).defaultIndex == 0)
        #expect(try parse("set default=nope\n" + body).defaultIndex == 0)
    }

    @Test func nestedSubmenusAndPaths() throws {
        let text = """
            export kopt
            kopt=quiet
            set default="1>1>0"
            menuentry 'top' { linux /top }
            submenu 'outer' {
                menuentry 'o0' { linux /o0 }
                submenu 'inner' {
                    menuentry 'i0' { linux /i0 $kopt }
                    menuentry 'i1' { linux /i1 }
                }
            }
            """
        let menu = try parse(text)
        #expect(menu.entries.map(\.title) == ["top", "o0", "i0", "i1"])
        #expect(menu.entries[2].submenus == ["outer", "inner"])
        #expect(menu.defaultIndex == 2)
        // Exported variables reach entries inside submenus.
        #expect(menu.defaultEntry?.args == "quiet")
        #expect(try parse(text.replacingFirst("1>1>0", with: "outer>inner>i1")).defaultIndex == 3)
        // A default naming a submenu boots its first entry.
        #expect(try parse(text.replacingFirst("1>1>0", with: "1")).defaultIndex == 1)
    }

    @Test func unexportedVariablesDoNotReachSubmenus() throws {
        let menu = try parse(
            """
            secret=x
            submenu 's' { menuentry 'e' { linux /k v=$secret } }
            """)
        #expect(menu.entries[0].args == "v=")
    }

    @Test func ifElseAndTests() throws {
        let text = """
            if [ x"${feature_menuentry_id}" = xy ]; then
              a=yes
            else
              a=no
            fi
            if [ -n "$missing" -o 2 -lt 3 ]; then b=1; elif true; then b=2; fi
            if [ ! -f /boot/nothing ] && false; then c=bad; fi
            if [ -f /boot/present ]; then d=file; fi
            menuentry 'x' { linux /k a=$a b=$b d=$d }
            """
        let fs = MemoryFileSystem(["/boot/present": "1"])
        #expect(try parse(text, fs: fs).defaultEntry?.args == "a=yes b=1 d=file")
    }

    @Test func functionsRunWithArgumentsAndReturn() throws {
        let menu = try parse(
            """
            function gfxmode {
                set gfxpayload="${1}"
                if [ "${1}" = "keep" ]; then
                    set vt_handoff=vt.handoff=7
                else
                    set vt_handoff=
                fi
            }
            function early { return; set never=1 }
            menuentry 'Ubuntu' {
                gfxmode keep
                early
                linux /boot/vmlinuz root=/dev/sda1 ro quiet splash $vt_handoff n=$never
            }
            """)
        #expect(menu.defaultEntry?.args == "root=/dev/sda1 ro quiet splash vt.handoff=7 n=")
    }

    @Test func linuxefiAndSeveralInitrdsAndDevicePrefixes() throws {
        let menu = try parse(
            """
            search --no-floppy --fs-uuid --set=root 1234-ABCD
            menuentry 'efi' {
                linuxefi ($root)/vmlinuz-5.14 ro
                initrdefi (hd0,gpt2)/intel-ucode.img /initramfs-5.14.img
            }
            """)
        let entry = try #require(menu.defaultEntry)
        #expect(entry.kernel == "/vmlinuz-5.14")
        #expect(entry.initrds == ["/intel-ucode.img", "/initramfs-5.14.img"])
        #expect(entry.root == "fs-uuid:1234-ABCD")
    }

    @Test func blsEntriesFromBlscfgWithKernelopts() throws {
        let fs = MemoryFileSystem([
            "/boot/grub2/grub.cfg": """
            load_env
            set default="${saved_entry}"
            if [ -z "${kernelopts}" ]; then set kernelopts="root=/dev/fallback ro"; fi
            insmod blscfg
            blscfg
            """,
            "/boot/grub2/grubenv":
                "# GRUB Environment Block\nsaved_entry=abc-5.14.0-70.el9.x86_64\nkernelopts=root=/dev/mapper/rl-root ro crashkernel=auto\n",
            "/boot/loader/entries/abc-5.14.0-70.el9.x86_64.conf": """
            title Rocky Linux (5.14.0-70.el9.x86_64)
            version 5.14.0-70.el9.x86_64
            linux /vmlinuz-5.14.0-70.el9.x86_64
            initrd /initramfs-5.14.0-70.el9.x86_64.img
            options $kernelopts
            """,
            "/boot/loader/entries/abc-5.14.0-162.el9.x86_64.conf": """
            title Rocky Linux (5.14.0-162.el9.x86_64)
            version 5.14.0-162.el9.x86_64
            linux /vmlinuz-5.14.0-162.el9.x86_64
            initrd /initramfs-5.14.0-162.el9.x86_64.img $tuned_initrd
            options $kernelopts rhgb
            """,
            "/boot/loader/entries/abc-0-rescue.conf": """
            title Rocky Linux (0-rescue-abc)
            version 0-rescue-abc
            linux /vmlinuz-0-rescue-abc
            options $kernelopts
            """,
        ])
        let menu = try MenuSearch.find(in: fs)
        // Newest version first, rescue (version 0) last, as blscfg sorts.
        #expect(menu.entries.map(\.id) == ["abc-5.14.0-162.el9.x86_64", "abc-5.14.0-70.el9.x86_64", "abc-0-rescue"])
        #expect(menu.defaultIndex == 1)
        #expect(menu.defaultEntry?.args == "root=/dev/mapper/rl-root ro crashkernel=auto")
        #expect(menu.entries[0].args == "root=/dev/mapper/rl-root ro crashkernel=auto rhgb")
    }

    @Test func rpmVersionOrdering() {
        #expect(BLS.rpmVersionCompare("5.14.0-162", "5.14.0-70") == 1)
        #expect(BLS.rpmVersionCompare("1.0~rc1", "1.0") == -1)
        #expect(BLS.rpmVersionCompare("1.0^post", "1.0") == 1)
        #expect(BLS.rpmVersionCompare("1.0a", "1.0") == 1)
        #expect(BLS.rpmVersionCompare("010", "10") == 0)
    }

    @Test func sourceAndConfigfileAreFollowedWithinTheGuest() throws {
        let fs = MemoryFileSystem([
            "/boot/grub/grub.cfg": "source $prefix/extra.cfg\nmenuentry 'main' { linux /k $extra }",
            "/boot/grub/extra.cfg": "extra=from-source",
        ])
        #expect(try MenuSearch.find(in: fs).defaultEntry?.args == "from-source")
    }

    @Test func passwordsAndHiddenMenus() throws {
        let menu = try parse("set timeout_style=hidden\nset timeout=0\npassword_pbkdf2 root grub.pbkdf2.x\nmenuentry 'a' { linux /a }")
        #expect(menu.hidden)
        #expect(menu.hasPassword)
        #expect(menu.timeout == 0)
    }

    @Test func entriesBeforeASyntaxErrorStillCount() throws {
        let menu = try parse("menuentry 'ok' { linux /ok }\nmenuentry 'broken' { linux /b\nif then fi fi }}}")
        #expect(menu.entries.first?.title == "ok")
    }

    // Hostile menus: each must finish quickly with a result or an error, never hang or crash.

    @Test(arguments: [
        String(repeating: "if true; then ", count: 10_000),
        String(repeating: "submenu 'x' { ", count: 10_000),
        "function f { f; f }\nf\nmenuentry 'a' { linux /a }",
        "a=x\n" + String(repeating: "a=$a$a$a$a\n", count: 40) + "menuentry \"$a\" { linux /k $a }",
        "menuentry 'unterminated { linux /k",
        "menuentry \"${unterminated\" { linux /k }",
        String(repeating: "menuentry 'm' { linux /k }\n", count: 10_000),
        "\u{0}\u{1}\u{ff}}{;;;\"'\\",
        "source /boot/grub/grub.cfg\nmenuentry 'a' { linux /a }",
        "if [ " + String(repeating: "! ( ", count: 3000) + "x ]; then a=1; fi",
    ])
    func hostileMenusTerminate(_ text: String) {
        let fs = MemoryFileSystem(["/boot/grub/grub.cfg": text])
        do {
            let menu = try parse(text, fs: fs)
            #expect(menu.entries.count <= BootLimits.maxEntries)
            for entry in menu.entries { #expect(entry.args.utf8.count <= BootLimits.maxValueBytes * 4) }
        } catch let error as BootError {
            #expect(!error.description.isEmpty)
        } catch {
            Issue.record("unexpected error type: \(error)")
        }
    }
}

extension String {
    func replacingFirst(_ target: String, with replacement: String) -> String {
        guard let range = range(of: target) else { return self }
        return String(self[..<range.lowerBound]) + replacement + String(self[range.upperBound...])
    }

    func range(of target: String) -> Range<String.Index>? {
        var i = startIndex
        while i < endIndex {
            if self[i...].hasPrefix(target) { return i..<index(i, offsetBy: target.count) }
            i = index(after: i)
        }
        return nil
    }
}

@Suite struct Grub2SplittingTests {
    @Test func unquotedValuesSplitOnTheirOwnWhitespace() throws {
        let menu = try Grub2.parse(Array("a=' x  y '\nmenuentry 'e' { linux /k pre$a\"post\" }".utf8))
        #expect(menu.defaultEntry?.args == "pre x y post")
    }
}
