import BerthDisk
import Testing

@testable import BerthBoot

/// The six real menus from Xen's pygrub examples: default entry and listed entries as GRUB
/// (or SYSLINUX) itself would choose and show them, worked out by reading each menu.
@Suite struct AcceptanceMenuTests {
    struct Expected: Sendable, CustomStringConvertible {
        var file: String
        var format: MenuFormat
        var guestPath: String
        var titles: [String]
        var defaultIndex: Int
        var kernel: String
        var initrds: [String]
        var args: String
        var description: String { file }
    }

    static let cases: [Expected] = [
        Expected(
            file: "alpine-linux-2.3.2.extlinux", format: .extlinux, guestPath: "/boot/extlinux.conf",
            titles: ["grsec"], defaultIndex: 0,
            // DEFAULT names menu.c32, not a label: the menu boots its MENU DEFAULT label.
            kernel: "/boot/vmlinuz-3.0.10-grsec", initrds: ["/boot/initramfs-3.0.10-grsec"],
            args: "root=UUID=a97ffe64-430f-4fd3-830e-4736d9a27af0 modules=sd-mod,usb-storage,ext4 quiet"),
        Expected(
            file: "debian-wheezy-hvm.grub2", format: .grub2, guestPath: "/boot/grub/grub.cfg",
            titles: [
                "Debian GNU/Linux, with Linux 3.2.0-4-amd64",
                "Debian GNU/Linux, with Linux 3.2.0-4-amd64 (recovery mode)",
            ],
            defaultIndex: 0, kernel: "/boot/vmlinuz-3.2.0-4-amd64", initrds: ["/boot/initrd.img-3.2.0-4-amd64"],
            args: "root=UUID=f395d5a0-4612-4872-806c-33cd37c152f0 ro"),
        Expected(
            file: "fedora-16-with-xen.grub2", format: .grub2, guestPath: "/grub2/grub.cfg",
            titles: [
                "Fedora Linux, with Linux 3.1.0-0.rc9.git0.0.fc16.x86_64",
                "Fedora Linux, with Linux 3.1.0-0.rc9.git0.0.fc16.x86_64 (recovery mode)",
                "Fedora Linux, with Xen 4.1 and Linux 3.1.0-0.rc9.git0.0.fc16.x86_64",
                "Fedora Linux, with Xen 4.1 and Linux 3.1.0-0.rc9.git0.0.fc16.x86_64 (recovery mode)",
            ],
            // default="${saved_entry}" with no grubenv is empty: GRUB boots entry 0.
            defaultIndex: 0, kernel: "/vmlinuz-3.1.0-0.rc9.git0.0.fc16.x86_64",
            initrds: ["/initramfs-3.1.0-0.rc9.git0.0.fc16.x86_64.img"],
            // GRUB joins the linux command's words with single spaces ("rd.luks=0  KEYTABLE" loses one).
            args:
                "root=/dev/mapper/VolGroup-lv_root ro rd.md=0 rd.dm=0 rd.lvm.lv=VolGroup/lv_swap quiet SYSFONT=latarcyrheb-sun16 rhgb rd.lvm.lv=VolGroup/lv_root rd.luks=0 KEYTABLE=uk LANG=en_US.UTF-8"
        ),
        Expected(
            file: "fedora-19.grub2", format: .grub2, guestPath: "/grub2/grub.cfg",
            titles: [
                "Fedora, with Linux 3.9.6-301.fc19.i686.PAE",
                "Fedora, with Linux 0-rescue-8d62a0261d8147dc84eb89292ebc1666",
            ],
            defaultIndex: 0, kernel: "/vmlinuz-3.9.6-301.fc19.i686.PAE", initrds: ["/initramfs-3.9.6-301.fc19.i686.PAE.img"],
            args:
                "root=/dev/mapper/fedora-root ro rd.lvm.lv=fedora/swap rd.md=0 rd.dm=0 vconsole.keymap=us rd.luks=0 vconsole.font=latarcyrheb-sun16 rd.lvm.lv=fedora/root"
        ),
        Expected(
            file: "rhel-7-beta.grub2", format: .grub2, guestPath: "/grub2/grub.cfg",
            titles: [
                "Red Hat Enterprise Linux Everything, with Linux 3.10.0-54.0.1.el7.x86_64",
                "Red Hat Enterprise Linux Everything, with Linux 0-rescue-af34f0b8cf364cdbbe6d093f8228a37f",
            ],
            defaultIndex: 0, kernel: "/vmlinuz-3.10.0-54.0.1.el7.x86_64", initrds: ["/initramfs-3.10.0-54.0.1.el7.x86_64.img"],
            args:
                "root=/dev/mapper/rhel-root ro rd.lvm.lv=rhel/swap vconsole.keymap=uk crashkernel=auto rd.lvm.lv=rhel/root vconsole.font=latarcyrheb-sun16 LANG=en_GB.UTF-8"
        ),
        Expected(
            file: "ubuntu-14.04-lts.grub2", format: .grub2, guestPath: "/boot/grub/grub.cfg",
            titles: [
                "Ubuntu",
                "Ubuntu, with Linux 3.13.0-44-generic",
                "Ubuntu, with Linux 3.13.0-44-generic (recovery mode)",
                "Memory test (memtest86+)",
                "Memory test (memtest86+, serial console 115200)",
            ],
            defaultIndex: 0, kernel: "/vmlinuz-3.13.0-44-generic", initrds: ["/initrd.img-3.13.0-44-generic"],
            args: "root=/dev/mapper/BoxenSys00-root ro biosdevname=0 quiet"),
    ]

    @Test(arguments: cases)
    func defaultEntryAndListing(_ expected: Expected) throws {
        let bytes = try Fixture.bytes(expected.file)
        #expect(MenuSearch.detectFormat(bytes, path: expected.file) == expected.format)
        let menu = try MenuSearch.parse(bytes, path: expected.guestPath, format: expected.format)
        #expect(menu.entries.map(\.title) == expected.titles)
        #expect(menu.defaultIndex == expected.defaultIndex)
        let entry = try #require(menu.defaultEntry)
        #expect(entry.kernel == expected.kernel)
        #expect(entry.initrds == expected.initrds)
        #expect(entry.args == expected.args)
    }

    @Test func ubuntuSubmenuEntriesAndIDs() throws {
        let menu = try Grub2.parse(try Fixture.bytes("ubuntu-14.04-lts.grub2"))
        // $menuentry_id_option expands to --id because GRUB sets feature_menuentry_id=y.
        #expect(menu.entries[0].id == "gnulinux-simple-c7a4b4ca-71da-4d03-b374-a6b76ebcfc90")
        #expect(menu.entries[1].submenus == ["Advanced options for Ubuntu"])
        #expect(menu.entries[2].args == "root=/dev/mapper/BoxenSys00-root ro recovery nomodeset biosdevname=0")
        // knetbsd is not a Linux kernel; linux16 memtest86+.bin is.
        #expect(menu.entries[3].kernel == nil)
        #expect(menu.entries[4].kernel == "/memtest86+.bin")
        #expect(menu.entries[4].args == "console=ttyS0,115200n8")
        #expect(menu.hasPassword)
        #expect(menu.timeout == 5)
    }

    @Test func fedora16XenEntriesBootTheLinuxModule() throws {
        let menu = try Grub2.parse(try Fixture.bytes("fedora-16-with-xen.grub2"), path: "/grub2/grub.cfg")
        let xen = menu.entries[3]
        #expect(xen.submenus == ["Xen 4.1"])
        #expect(xen.kernel == "/vmlinuz-3.1.0-0.rc9.git0.0.fc16.x86_64")
        #expect(xen.initrds == ["/initramfs-3.1.0-0.rc9.git0.0.fc16.x86_64.img"])
        #expect(xen.args.hasPrefix("root=/dev/mapper/VolGroup-lv_root ro single "))
    }

    // saved_entry / next_entry from grubenv: PyGRUB reads both as 0.

    @Test func fedora19SavedEntryByID() throws {
        let env = ["saved_entry": "gnulinux-0-rescue-8d62a0261d8147dc84eb89292ebc1666-advanced-738519ba-06da-4402-9b68-a1c1efada512"]
        let menu = try Grub2.parse(try Fixture.bytes("fedora-19.grub2"), path: "/grub2/grub.cfg", environmentBlock: env)
        #expect(menu.defaultIndex == 1)
        #expect(menu.defaultEntry?.kernel == "/vmlinuz-0-rescue-8d62a0261d8147dc84eb89292ebc1666")
    }

    @Test func rhel7NextEntryWinsOverSavedEntry() throws {
        let env = ["saved_entry": "0", "next_entry": "1"]
        let menu = try Grub2.parse(try Fixture.bytes("rhel-7-beta.grub2"), path: "/grub2/grub.cfg", environmentBlock: env)
        #expect(menu.defaultIndex == 1)
    }

    @Test func fedora16SavedEntryIsASubmenuPathOfTitles() throws {
        let env = ["saved_entry": "Xen 4.1>Fedora Linux, with Xen 4.1 and Linux 3.1.0-0.rc9.git0.0.fc16.x86_64 (recovery mode)"]
        let menu = try Grub2.parse(try Fixture.bytes("fedora-16-with-xen.grub2"), path: "/grub2/grub.cfg", environmentBlock: env)
        #expect(menu.defaultIndex == 3)
        #expect(menu.defaultEntry?.args.contains(" single ") == true)
    }

    @Test func ubuntuNextEntryIsAPathOfIDs() throws {
        let env = [
            "next_entry":
                "gnulinux-advanced-c7a4b4ca-71da-4d03-b374-a6b76ebcfc90>gnulinux-3.13.0-44-generic-recovery-c7a4b4ca-71da-4d03-b374-a6b76ebcfc90"
        ]
        let menu = try Grub2.parse(try Fixture.bytes("ubuntu-14.04-lts.grub2"), environmentBlock: env)
        #expect(menu.defaultIndex == 2)
    }

    @Test func numericDefaultCountsTopLevelItemsNotFlatEntries() throws {
        // GRUB's "2" is the third top-level item (the memtest entry after the submenu),
        // which is the fourth line PyGRUB lists.
        let menu = try Grub2.parse(try Fixture.bytes("ubuntu-14.04-lts.grub2"), environmentBlock: ["next_entry": "2"])
        #expect(menu.defaultIndex == 3)
        #expect(menu.defaultEntry?.title == "Memory test (memtest86+)")
    }

    @Test func debianIgnoresSavedEntryBecauseItsDefaultIsFixed() throws {
        let menu = try Grub2.parse(try Fixture.bytes("debian-wheezy-hvm.grub2"), environmentBlock: ["saved_entry": "1"])
        #expect(menu.defaultIndex == 0)
    }

    @Test func grubenvIsReadFromTheMenuDirectoryOnTheGuest() throws {
        let menuText = String(decoding: try Fixture.bytes("fedora-19.grub2"), as: UTF8.self)
        var grubenv = "# GRUB Environment Block\nsaved_entry=Fedora, with Linux 0-rescue-8d62a0261d8147dc84eb89292ebc1666\n"
        grubenv += String(repeating: "#", count: 1024 - grubenv.utf8.count)
        let fs = MemoryFileSystem(["/boot/grub2/grub.cfg": menuText, "/boot/grub2/grubenv": grubenv])
        let menu = try MenuSearch.find(in: fs)
        #expect(menu.path == "/boot/grub2/grub.cfg")
        #expect(menu.defaultIndex == 1)
    }

    @Test func selectorsByIndexTitleIDAndPath() throws {
        let menu = try Grub2.parse(try Fixture.bytes("ubuntu-14.04-lts.grub2"))
        #expect(menu.index(of: "2") == 2)
        #expect(menu.index(of: "Memory test (memtest86+)") == 3)
        #expect(menu.index(of: "gnulinux-3.13.0-44-generic-advanced-c7a4b4ca-71da-4d03-b374-a6b76ebcfc90") == 1)
        #expect(menu.index(of: "Advanced options for Ubuntu>Ubuntu, with Linux 3.13.0-44-generic (recovery mode)") == 2)
        #expect(menu.index(of: "9") == nil)
        #expect(menu.index(of: "no such") == nil)
    }
}
