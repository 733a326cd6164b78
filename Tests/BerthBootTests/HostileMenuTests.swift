import BerthDisk
import Testing

@testable import BerthBoot

#if canImport(Glibc)
    import Glibc
#endif

/// Menus a hostile guest writes to crash the host's bootloader. Each of these once trapped
/// (arithmetic overflow, exit 132) or overflowed the stack (exit 139); now each parses or
/// fails with a `BootError`, through every way a menu is read.
@Suite struct HostileMenuTests {
    typealias Options = BootloaderCommand.Options

    /// Writes `text` as `name` in a fresh directory and runs `--isconfig` on it, in process.
    func isconfig(_ name: String, _ text: String, _ extra: [String] = []) throws -> (BootloaderCommand.Output?, (any Error)?, Int32) {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        dir.write(name, Array(text.utf8))
        let arguments = ["-q", "--isconfig"] + extra + [dir.path + "/" + name]
        let status = BootloaderCommand.run(arguments: arguments + ["--output=/dev/null"])
        do {
            return (try BootloaderCommand.execute(try Options(parsing: arguments)), nil, status)
        } catch {
            return (nil, error, status)
        }
    }

    // MARK: ${-9223372036854775808}

    @Test func positionalParameterOutOfRangeIsEmpty() throws {
        // The guest's one-line menu: no entries, so a clean "empty menu" error, exit 1.
        let (_, error, status) = try isconfig("grub.cfg", "echo ${-9223372036854775808}\n")
        if case .emptyMenu? = error as? BootError {} else { Issue.record("expected an empty menu, got \(String(describing: error))") }
        #expect(status == 1)

        let menu = """
            function f { menuentry "t${-9223372036854775808}$9223372036854775807${99999999999999999999}${-1}${+1}$1" { linux /k a$1 b${0} ${-9223372036854775808} } }
            f first
            """
        let (out, failure, ok) = try isconfig("grub.cfg", menu)
        #expect(failure == nil)
        #expect(ok == 0)
        #expect(String(decoding: out?.stdout ?? [], as: UTF8.self) == "  kernel: /k\n  args: a b\n")
        let fs = MemoryFileSystem(["/boot/grub/grub.cfg": menu, "/k": "K"])
        let found = try MenuSearch.find(in: fs)
        #expect(found.entries.map(\.title) == ["tfirst"])
    }

    // MARK: TIMEOUT 9223372036854775807

    @Test(
        arguments: [
            ("9223372036854775807", 922_337_203_685_477_581), ("0", -1), ("1", 1), ("10", 1), ("11", 2), ("50", 5),
            ("-9223372036854775808", nil), ("-1", nil), ("18446744073709551615", nil), ("x", nil),
        ] as [(String, Int?)])
    func extlinuxTimeoutNeverOverflows(_ value: String, _ seconds: Int?) throws {
        let text = "TIMEOUT \(value)\nLABEL x\n  KERNEL /k\n"
        #expect(Extlinux.parse(Array(text.utf8)).timeout == seconds)
        let fs = MemoryFileSystem(["/boot/extlinux.conf": text, "/k": "K"])
        let menu = try MenuSearch.find(in: fs)
        #expect(menu.format == .extlinux && menu.timeout == seconds)
        let (out, error, status) = try isconfig("extlinux.conf", text)
        #expect(error == nil && status == 0)
        #expect(String(decoding: out?.stdout ?? [], as: UTF8.self) == "  kernel: /k\n  args: \n")
    }

    // MARK: function f { submenu x { f } }

    static let recursiveMenus = [
        "function f { submenu x { f } }\nf\n",
        "function f { submenu x { f } }\nsubmenu y { f }\n",
        "function f { if true; then submenu x { menuentry e { linux /k }; f; } fi }\nf\n",
        "function f { f }\nf\nmenuentry a { linux /k }\n",
    ]

    @Test(arguments: recursiveMenus)
    func recursionThroughSubmenusAndFunctionsIsRefused(_ text: String) throws {
        func isTooComplex(_ error: (any Error)?) -> Bool {
            if case .menuTooComplex(_, let reason)? = error as? BootError { return reason.contains("nest more than 64 deep") }
            return false
        }
        #expect(throws: BootError.self) { try Grub2.parse(Array(text.utf8)) }
        #expect(isTooComplex(Result { try Grub2.parse(Array(text.utf8)) }.error))
        let fs = MemoryFileSystem(["/boot/grub/grub.cfg": text, "/k": "K"])
        #expect(isTooComplex(Result { try MenuSearch.find(in: fs) }.error))
        let (_, error, status) = try isconfig("grub.cfg", text)
        #expect(isTooComplex(error))
        #expect(status == 1)
    }

    /// The crash inputs kept as fuzz seeds, through the built binary: an exit status, never
    /// a signal (132 was SIGILL from an overflow trap, 139 SIGSEGV from the stack overflow).
    @Test(arguments: [
        ("crash-grub2-positional-int-min.cfg", 1, "has no boot entries"),
        ("crash-extlinux-timeout-int-max.conf", 0, ""),
        ("crash-grub2-submenu-function-recursion.cfg", 1, "nest more than 64 deep"),
    ])
    func crashSeedsEndWithAnExitStatus(_ seed: String, _ status: Int32, _ message: String) throws {
        let path = SandboxTests.packageRoot + "/fuzz/seeds/Menus/" + seed
        let run = try SandboxTests().run(["-q", "--isconfig", path])
        #expect(run.status == status, "\(run.stderr)")
        #expect(run.stderr.contains(message))
    }

    @Test func nestingWithinTheLimitStillWorks() throws {
        // Submenus made by functions, three deep, with entries at each level.
        let text = """
            function l3 { submenu L3 { menuentry e3 { linux /k3 } } }
            function l2 { submenu L2 { menuentry e2 { linux /k2 }; l3 } }
            function l1 { submenu L1 { menuentry e1 { linux /k1 }; if true; then l2; fi } }
            l1
            set default="L1>L2>L3>e3"
            """
        let menu = try Grub2.parse(Array(text.utf8))
        #expect(menu.entries.map(\.title) == ["e1", "e2", "e3"])
        #expect(menu.entries.map(\.submenus) == [["L1"], ["L1", "L2"], ["L1", "L2", "L3"]])
        #expect(menu.defaultEntry?.kernel == "/k3")
        // An entry whose own body recurses keeps what it set before the limit.
        let body = try Grub2.parse(Array("function g { g }\nmenuentry a { linux /k ro; g }\n".utf8))
        #expect(body.entries.first?.kernel == "/k" && body.entries.first?.args == "ro")
    }
}

extension Result where Failure == any Error {
    var error: (any Error)? {
        if case .failure(let e) = self { return e }
        return nil
    }
}
