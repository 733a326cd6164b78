import BerthModel
import Testing

@testable import BerthFormats

@Suite struct SXPTests {
    @Test func atomsStringsListsAndComments() throws {
        let expressions = try SXP.parse(
            """
            # comment
            (xend-port 8000) (name "a \\"quoted\\" \\\\ value\\n")
            (xen-api-server ((9363 pam '^localhost$ example\\\\.com$')
                             (unix none)))   # trailing comment
            """)
        #expect(expressions.count == 3)
        #expect(expressions[0].head == "xend-port" && expressions[0].items[1].value == .atom("8000"))
        #expect(expressions[1].items[1].value == .string("a \"quoted\" \\ value\n"))
        let server = expressions[2].items[1].items
        #expect(server[0].items[2].text == "^localhost$ example\\.com$")
        #expect(server[1].items.map(\.text) == ["unix", "none"])
        #expect(expressions[2].position == TextPosition(line: 3, column: 1))
        #expect(server[1].position == TextPosition(line: 4, column: 18))
        let printed = expressions.map(SXP.print).joined(separator: "\n")
        #expect(try SXP.parse(printed).map { SXP.print($0) } == expressions.map { SXP.print($0) })
    }

    static let malformed: [(String, String)] = [
        ("(xend-port 8000", "x:1:1: unbalanced '('"),
        ("(a (b c)\n(d)", "x:1:1: unbalanced '('"),
        ("(a)\n  )", "x:2:3: unbalanced ')'"),
        ("(xend-address 'localhost)", "x:1:15: unterminated string"),
        ("(logfile \"/var/log\n", "x:1:10: unterminated string"),
        (String(repeating: "(", count: 200) + String(repeating: ")", count: 200), "nested deeper than"),
    ]

    @Test(arguments: malformed)
    func malformedSXPNamesThePosition(text: String, phrase: String) throws {
        let error = try #require(throws: BerthError.self) { try SXP.parse(text, source: "x") }
        #expect(error.message.contains(phrase), "\(error.message)")
        #expect(error.code == .invalidArgument && error.remedy != nil)
    }

    @Test func binaryInput() throws {
        let error = try #require(throws: BerthError.self) { try SXP.parse(bytes: [0x28, 0x61, 0xFF, 0x29], source: "x") }
        #expect(error.message == "x:1:3: invalid UTF-8 byte 0xff in an S-expression file.")
    }

    static let badSettings: [(String, String)] = [
        ("(xend-port eighty)", "x:1:12: (xend-port eighty): expected a number from 1 to 65535."),
        ("\n(xend-port 70000)", "x:2:12: (xend-port 70000): expected a number"),
        ("(xend-http-server maybe)", "x:1:19: (xend-http-server maybe): expected yes or no."),
        ("(xend-address a b)", "x:1:1: (xend-address …) takes one value."),
        ("xend-port", "x:1:1: expected a setting like (xend-port 8000)."),
        ("((xend-port) 1)", "x:1:1: expected a setting"),
    ]

    @Test(arguments: badSettings)
    func badXendSettings(text: String, prefix: String) throws {
        let error = try #require(throws: BerthError.self) { try XendConfig.parse(text, source: "x") }
        #expect(error.message.hasPrefix(prefix), "\(error.message)")
    }

    @Test func xendSettingsAndDefaults() throws {
        let defaults = try XendConfig.parse("")
        #expect(defaults == XendConfig())
        #expect(defaults.port == 8000 && !defaults.httpServer && defaults.listensOnAllInterfaces)
        let config = try XendConfig.parse(
            """
            (xend-http-server yes) (xend-port 8001) (xend-address 192.0.2.1)
            (xend-unix-server yes) (xend-unix-path /run/berth.sock)
            (network-script 'network-nat') (vif-script vif-nat)
            (logfile /var/log/berth.log) (loglevel INFO) (vnc-listen 0.0.0.0) (vncpasswd 'pw')
            (console-limit 2048) (xend-relocation-port 8012) (xend-relocation-address '')
            """)
        #expect(config.httpServer && config.port == 8001 && config.bindAddress == "192.0.2.1")
        #expect(config.unixServer && config.unixPath == "/run/berth.sock")
        #expect(config.defaultNetworkMode == .nat && config.defaultNIC == NICSpec(mode: .nat))
        #expect(config.logfile == "/var/log/berth.log" && config.loglevel == "INFO")
        #expect(config.vncListen == "0.0.0.0" && config.vncPassword == "pw" && config.consoleLimitKiB == 2048)
        #expect(config.relocationPort == 8012 && config.relocationAddress == "")
        #expect(config.warnings.isEmpty && config.notes.isEmpty)
    }
}
