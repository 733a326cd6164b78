import BerthModel
import Testing

@testable import BerthFormats

@Suite struct XLSyntaxTests {
    @Test func grammar() throws {
        let config = try XLConfig.parse(
            """
            # comment
            name = "a\\"b\\\\c\\n" ; memory = 0x200; vcpus = 010
            kernel = '/boot/it''s'   # adjacent literals join
            extra = "a" + 'b' "c"
            disk = [ 'x', [ "y", 2 ], ]
            acpi = True
            empty = [ ]
            long = 10L
            cont = \\
              "next line"
            disk += [ "z" ]
            multi = \"\"\"one
            two\"\"\"
            raw = r'\\d+'
            neg = -5
            """)
        #expect(config["name"] == .string("a\"b\\c\n"))
        #expect(config["memory"] == .number(512))
        #expect(config["vcpus"] == .number(8))
        #expect(config["kernel"] == .string("/boot/its"))
        #expect(config["extra"] == .string("abc"))
        #expect(config["disk"] == .list([.string("x"), .list([.string("y"), .number(2)]), .string("z")]))
        #expect(config["acpi"] == .bool(true))
        #expect(config["empty"] == .list([]))
        #expect(config["long"] == .number(10))
        #expect(config["cont"] == .string("next line"))
        #expect(config["multi"] == .string("one\ntwo"))
        #expect(config["raw"] == .string("\\d+"))
        #expect(config["neg"] == .number(-5))
        #expect(config.position(of: "memory") == TextPosition(line: 2, column: 22))
        // Printing gives text that parses to the same settings.
        let again = try XLConfig.parse(config.text)
        // xl has no boolean literal: True is written as 1.
        #expect(again.settings.map(\.value) == config.settings.map { $0.value == .bool(true) ? .number(1) : $0.value })
    }

    @Test func noBreakSpacesFromWebPagesAreBlanks() throws {
        let config = try XLConfig.parse("vif\u{00A0}=\u{00A0}[\u{00A0}\"mac=00:50:56:78:0a:1b\"\u{00A0}]")
        #expect(config["vif"] == .list([.string("mac=00:50:56:78:0a:1b")]))
    }

    static let malformed: [(String, String, String)] = [
        ("name = \"abc\nmemory = 1", "1:8", "unterminated string"),
        ("name = 'abc", "1:8", "unterminated string"),
        ("disk = [ 'a', 'b'\nname = 'x'\n", "1:8", "never closed"),
        ("disk = [ 'a' )", "1:14", "does not match"),
        ("name = 'a' ]", "1:12", "unbalanced ']'"),
        ("memory 512", "1:8", "expected '='"),
        ("= 5", "1:1", "expected a setting name"),
        ("memory = 1.5", "1:10", "decimal fraction"),
        ("memory = 99999999999999999999", "1:10", "not a whole number"),
        ("name = \"VM%d\" % vmid", "1:15", "'%' string formatting"),
        ("memory = 64 * 2", "1:13", "arithmetic"),
        ("name = vmid", "1:8", "variable 'vmid'"),
        ("import os", "1:1", "Python 'import'"),
        ("xm_vars.var('vmid')", "1:1", "call to 'xm_vars.var"),
        ("if x:\n  name = 'a'", "1:1", "Python 'if'"),
        ("name = str(4)", "1:8", "call to 'str"),
        ("x = 'a' if y else 'b'", "1:9", "Python 'if' expression"),
        ("name = 'a'\n  name2 = \"\\x4\"", "2:12", "two hex digits"),
    ]

    @Test(arguments: malformed)
    func malformedInputNamesThePosition(text: String, position: String, phrase: String) throws {
        let error = try #require(throws: BerthError.self) { try XLConfig.parse(text, source: "guest.cfg") }
        #expect(error.code == .invalidArgument)
        #expect(error.message.hasPrefix("guest.cfg:\(position):"), "\(error.message)")
        #expect(error.message.contains(phrase), "\(error.message)")
        #expect(error.remedy?.isEmpty == false)
    }

    @Test func deepNestingIsCapped() throws {
        let text = "x = " + String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        let error = try #require(throws: BerthError.self) { try XLConfig.parse(text) }
        #expect(error.message.contains("nested deeper than \(BerthFormats.maxNesting)"))
    }

    @Test func hugeFilesAreRefusedBeforeParsing() throws {
        let bytes = [UInt8](repeating: 0x23, count: BerthFormats.maxDocumentBytes + 1)
        let error = try #require(throws: BerthError.self) { try XLConfig.parse(bytes: bytes) }
        #expect(error.message.contains("too large"))
    }

    @Test func invalidUTF8AndNULBytesArePlaced() throws {
        let latin1: [UInt8] = Array("name = 'a'\nkernel = 'caf".utf8) + [0xE9, 0x27]
        let error = try #require(throws: BerthError.self) { try XLConfig.parse(bytes: latin1, source: "c") }
        #expect(error.message.hasPrefix("c:2:14: invalid UTF-8"), "\(error.message)")
        #expect(error.remedy?.contains("iconv") == true)
        let nul: [UInt8] = Array("name = 'a'\nmem".utf8) + [0] + Array("ory = 1".utf8)
        let nulError = try #require(throws: BerthError.self) { try XLConfig.parse(bytes: nul, source: "c") }
        #expect(nulError.message.hasPrefix("c:2:4: NUL byte"), "\(nulError.message)")
        // Overlong encodings and surrogates are not UTF-8 either.
        for bad: [UInt8] in [[0xC0, 0x80], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xE2, 0x82]] {
            #expect(throws: BerthError.self) { try XLConfig.parse(bytes: Array("x = '".utf8) + bad + [0x27]) }
        }
    }
}
