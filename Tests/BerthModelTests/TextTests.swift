import Testing

@testable import BerthModel

/// The text helpers that stand in for full Foundation's in berthd.
@Suite struct TextTests {
    @Test func trimsWhitespaceAndNewlinesOnBothEnds() {
        #expect("  a b \t\r\n".trimmed() == "a b")
        #expect("\n\n".trimmed() == "")
        #expect("x".trimmed() == "x")
        #expect("[::1]".trimmed(of: "[]") == "::1")
    }

    @Test(arguments: [
        (0.0, 2, "0.00"), (1.005, 1, "1.0"), (2.25, 1, "2.3"), (1536.0 / 1024, 2, "1.50"), (-0.04, 1, "0.0"),
        (-1.26, 1, "-1.3"), (12.0, 0, "12"), (0.999, 2, "1.00"),
    ])
    func fixedDecimals(value: Double, places: Int, expected: String) {
        // As printf's "%.*f" but a value that rounds to zero has no sign (printf: "-0.0").
        #expect(Text.fixed(value, places: places) == expected)
    }

    @Test func hexIsTwoLowercaseDigitsAByte() {
        #expect(Text.hex([0, 15, 16, 255]) == "000f10ff")
        let token = Text.randomHex(byteCount: 32)
        #expect(token.count == 64 && token.allSatisfy(\.isHexDigit))
        #expect(token != Text.randomHex(byteCount: 32))
    }

    @Test func percentEncodingRoundTrips() {
        #expect(Text.percentEncoded("a b/ü~") == "a%20b%2F%C3%BC~")
        #expect(Text.percentEncoded("x:y@z", alsoAllowed: ":@") == "x:y@z")
        #expect(Text.percentDecoded("a%20b%2F%C3%BC~") == "a b/ü~")
        #expect(Text.percentDecoded("100%") == nil)
        #expect(Text.percentDecoded("%zz") == nil)
        #expect(Text.percentDecoded("%FF") == nil)  // not UTF-8
    }

    @Test func pathPartsAsNSStringGaveThem() {
        #expect(PathName.directory(of: "/a/b/c") == "/a/b")
        #expect(PathName.directory(of: "/a/b/") == "/a")
        #expect(PathName.directory(of: "/a") == "/")
        #expect(PathName.directory(of: "a") == "")
        #expect(PathName.lastComponent(of: "/a/b.img") == "b.img")
        #expect(PathName.lastComponent(of: "/a/b/") == "b")
        #expect(PathName.lastComponent(of: "/") == "/")
        #expect(PathName.extension(of: "/x/app.js") == "js")
        #expect(PathName.extension(of: "/x/.hidden") == "")
        #expect(PathName.extension(of: "/x.d/file") == "")
    }
}
