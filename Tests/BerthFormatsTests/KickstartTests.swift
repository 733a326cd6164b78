import BerthModel
import Testing

@testable import BerthFormats

@Suite struct KickstartTests {
    @Test func theSeedsKickstart() throws {
        // Copied verbatim from the seed (markdown indentation and all); no %end: the old era.
        let ks = try Kickstart.parse(try Fixture.text("kickstart/seed-centos6.ks"), source: "centos-6.ks")
        #expect(
            ks.commands.map(\.name) == [
                "install", "url", "lang", "keyboard", "network", "rootpw", "firewall", "authconfig", "selinux", "timezone",
                "bootloader", "clearpart", "part", "part", "volgroup", "logvol", "logvol",
            ])
        #expect(ks.validate() == [])
        #expect(ks.installURL == "http://hypervisor.example.com/install/6/x86_64/")
        #expect(ks.command("network")?.option("device") == "eth0")
        #expect(ks.command("network")?.option("bootproto") == "dhcp")
        #expect(ks.command("rootpw")?.has("iscrypted") == true)
        #expect(ks.command("rootpw")?.positionals == ["$1$9P2b0WZe$CSd.fBGCVjjUfzlZ6m5Rk1"])
        #expect(ks.command("firewall")?.options("port") == ["22:tcp"])
        #expect(ks.command("timezone")?.positionals == ["America/Chicago"])
        #expect(ks.command("bootloader")?.option("driveorder") == "xvda")
        #expect(ks.command("logvol")?.option("maxsize") == "1056")
        let packages = ks.packages
        #expect(packages.groups == ["base", "core"])
        #expect(packages.packages == ["keyutils", "iscsi-initiator-utils", "trousers", "fipscheck", "device-mapper-multipath"])
        #expect(ks.sections.first?.terminated == false)
        // /boot 100 + pv.6 (0, grows) holding / 1024 and swap 528 rounded up to 32 MiB extents (544).
        #expect(ks.diskRequirement == .init(totalMiB: 1668, perDrive: ["xvda": 1668]))
        // Print and parse again: the same kickstart, now with %end.
        let printed = ks.text
        #expect(printed.contains("%packages\n    @base\n"))
        #expect(printed.hasSuffix("device-mapper-multipath\n%end\n"))
        let again = try Kickstart.parse(printed)
        #expect(again == ks)
        #expect(again.sections.first?.terminated == true)
        #expect(try Kickstart.parse(ks.text(addEnd: false)).text(addEnd: false) == ks.text(addEnd: false))
    }

    @Test func sectionsBothEras() throws {
        let text = """
            lang en_US.UTF-8
            rootpw --plaintext "two words" # trailing comment
            user --name=admin --groups=wheel \\
                 --password=x --plaintext
            %pre --interpreter=/bin/sh
            echo "# not a comment" > /tmp/x
            %end
            %post --nochroot --log=/mnt/sysimage/root/post.log
            cp /etc/resolv.conf /mnt/sysimage/etc/
            %packages --ignoremissing
            @core
            -sendmail
            %post
            echo second post
            """
        let ks = try Kickstart.parse(text)
        #expect(ks.command("rootpw")?.positionals == ["two words"])
        #expect(ks.command("user")?.option("password") == "x")
        #expect(ks.command("user")?.line == 3)
        #expect(ks.sections.map(\.name) == ["pre", "post", "packages", "post"])
        #expect(ks.sections[0].body == ["echo \"# not a comment\" > /tmp/x"])
        #expect(ks.sections[1].arguments == ["--nochroot", "--log=/mnt/sysimage/root/post.log"])
        #expect(ks.packages.excluded == ["sendmail"])
        #expect(try Kickstart.parse(ks.text) == ks)
        #expect(ks.validate().filter { $0.severity == .error } == [])
    }

    static let problems: [(String, Int, String)] = [
        ("instal", 2, "unknown command 'instal'"),
        ("url --mirror=http://x/", 2, "'url' has no option --mirror"),
        ("url", 2, "'url' needs --url or --mirrorlist or --metalink"),
        ("part /home --size", 2, "option --size of 'part' needs a value"),
        ("part /home --size=big", 2, "--size=big of 'part' is not a whole number"),
        ("part --size=100", 2, "'part' needs an argument (the mount point"),
        ("logvol /srv --name=srv --size=10", 2, "'logvol' needs --vgname"),
        ("logvol /srv --vgname=VolGroup01 --name=srv --size=10", 2, "names volume group 'VolGroup01', which no 'volgroup' defines"),
        ("volgroup VG2 pv.99", 2, "uses 'pv.99', but no 'part pv.99' defines it"),
        ("part /data --size=10 --ondisk=xvdb", 2, "is on xvdb, but 'clearpart --drives' (line 1) only clears xvda"),
        ("part /boot --size=10", 5, "mount point /boot is used twice (first on line 2)"),
        ("selinux --enforcing=yes --paranoid", 2, "'selinux' has no option --paranoid"),
        ("timezone America/Chicago Europe/Paris", 2, "'timezone' takes at most 1 argument"),
        ("%packages --bogus\n@core\n%end", 2, "%packages has no option --bogus"),
        ("%prepare\nexit 0\n%end", 2, "unknown section %prepare"),
    ]

    @Test(arguments: problems)
    func validationNamesTheLine(line: String, number: Int, message: String) throws {
        let base = "clearpart --drives=xvda\n\(line)\nlang C\nrootpw --lock\npart /boot --size=100 --ondisk=xvda\n"
        let problems = try Kickstart.parse(base).validate()
        let problem = try #require(problems.first { $0.message.contains(message) }, "\(problems)")
        #expect(problem.line == number)
        #expect(problem.severity == .error)
    }

    @Test func ignorediskAndMissingCommands() throws {
        let ks = try Kickstart.parse("ignoredisk --only-use=sda\npart / --size=1000 --ondisk=/dev/sdb\n")
        let problems = ks.validate()
        #expect(problems.contains { $0.line == 2 && $0.message.contains("allows only sda") })
        #expect(problems.contains { $0.severity == .warning && $0.message.contains("no 'lang'") })
        #expect(problems.contains { $0.severity == .warning && $0.message.contains("no 'rootpw'") })
    }

    static let syntax: [(String, String)] = [
        ("lang en_US\nrootpw \"unterminated\n", "kickstart:2:8: unterminated quote"),
        ("lang C\n%end\n", "kickstart:2:1: '%end' without an open section"),
    ]

    @Test(arguments: syntax)
    func syntaxErrorsNameLineAndColumn(text: String, prefix: String) throws {
        let error = try #require(throws: BerthError.self) { try Kickstart.parse(text) }
        #expect(error.message.hasPrefix(prefix), "\(error.message)")
        #expect(error.code == .invalidArgument && error.remedy != nil)
    }

    @Test func binaryAndHugeInputs() throws {
        let nul = try #require(throws: BerthError.self) { try Kickstart.parse(bytes: Array("lang C\nur".utf8) + [0, 0x6C]) }
        #expect(nul.message == "kickstart:2:3: NUL byte in a kickstart file.")
        let huge = [UInt8](repeating: 0x0A, count: BerthFormats.maxDocumentBytes + 1)
        #expect(throws: BerthError.self) { try Kickstart.parse(bytes: huge) }
    }

    @Test func windowsLineEndings() throws {
        let ks = try Kickstart.parse("lang C\r\nrootpw --lock\r\n%packages\r\n@core\r\n%end\r\n")
        #expect(ks.commands.map(\.name) == ["lang", "rootpw"])
        #expect(ks.sections.first?.body == ["@core"])
    }

    @Test func carriageReturnsInsideLines() throws {
        // Found by fuzz/targets/Kickstart.swift: a comment ending in "\r\t" lost its "\r" when printed.
        let ks = try Kickstart.parse("  #comment\r\t\t\nlang\rC\r\t\n")
        #expect(ks.items.first == .comment("comment"))
        #expect(ks.command("lang")?.positionals == ["C"])
        #expect(try Kickstart.parse(ks.text) == ks)
    }

    @Test func anEscapedPercentStillStartsASection() throws {
        // Found by fuzz/targets/Kickstart.swift: '\\%x' was a command, printed as '%x', a section.
        let ks = try Kickstart.parse(" \\%confinfig \n")
        #expect(ks.sections.map(\.name) == ["confinfig"])
        #expect(try Kickstart.parse(ks.text) == ks)
    }

    @Test func continuationsStopAtSections() throws {
        // Found by fuzz/targets/Kickstart.swift: a '\\' line swallowed the '%end' after it.
        let ks = try Kickstart.parse("%post\ntrue\n%end\nreboot \\\n%packages\n@core\n")
        #expect(ks.command("reboot")?.arguments == [""])
        #expect(ks.sections.map(\.name) == ["post", "packages"])
        #expect(try Kickstart.parse(ks.text) == ks)
        let error = try #require(throws: BerthError.self) { try Kickstart.parse("\\\n'%end'\n") }
        #expect(error.message.hasPrefix("kickstart:1:1: a continued line cannot start a section"))
    }

    @Test func quotingRoundTrips() throws {
        let command = Kickstart.Command(
            name: "network", arguments: ["--hostname", "", "a b", "it's", "say \"hi\"", "back\\slash", "#hash", "nb\u{00A0}sp", "\"\u{301}"])
        let ks = Kickstart(items: [.command(command)])
        #expect(try Kickstart.parse(ks.text) == ks)
    }
}
