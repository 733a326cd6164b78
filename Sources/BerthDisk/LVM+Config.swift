extension LVM {
    /// A value in LVM2's metadata text format: `key = value` pairs inside `name { … }`
    /// sections; values are strings, integers, or `[ … ]` arrays of those.
    public indirect enum ConfigValue: Sendable, Equatable {
        case string(String)
        case number(Int64)
        case array([ConfigValue])
        case section([(key: String, value: ConfigValue)])

        public static func == (a: ConfigValue, b: ConfigValue) -> Bool {
            switch (a, b) {
            case (.string(let x), .string(let y)): x == y
            case (.number(let x), .number(let y)): x == y
            case (.array(let x), .array(let y)): x == y
            case (.section(let x), .section(let y)):
                x.count == y.count && zip(x, y).allSatisfy { $0.key == $1.key && $0.value == $1.value }
            default: false
            }
        }

        /// The first value under `key` in a section.
        public subscript(key: String) -> ConfigValue? {
            guard case .section(let items) = self else { return nil }
            return items.first { $0.key == key }?.value
        }

        public var string: String? { if case .string(let s) = self { s } else { nil } }
        public var number: Int64? { if case .number(let n) = self { n } else { nil } }
        public var array: [ConfigValue]? { if case .array(let a) = self { a } else { nil } }
        public var sectionItems: [(key: String, value: ConfigValue)]? {
            if case .section(let s) = self { s } else { nil }
        }
    }

    /// Parses LVM2 metadata text (the format of `vgcfgbackup` files and on-disk metadata).
    /// Bounded: nesting depth, value count and string length are capped.
    public static func parseConfig(_ text: [UInt8]) throws -> ConfigValue {
        var parser = ConfigParser(text: text)
        return try parser.parseTop()
    }

    struct ConfigParser {
        static let maxDepth = 32
        static let maxValues = 200_000
        let text: [UInt8]
        var pos = 0
        var line = 1
        var values = 0

        init(text: [UInt8]) { self.text = text }

        func fail(_ reason: String) -> Error { .badMetadataText(line: line, reason: reason) }

        mutating func skipSpace() {
            while pos < text.count {
                let c = text[pos]
                if c == UInt8(ascii: "\n") {
                    line += 1
                    pos += 1
                } else if c == UInt8(ascii: " ") || c == UInt8(ascii: "\t") || c == UInt8(ascii: "\r") {
                    pos += 1
                } else if c == UInt8(ascii: "#") {
                    while pos < text.count, text[pos] != UInt8(ascii: "\n") { pos += 1 }
                } else if c == 0 {
                    // The metadata area pads text with NULs.
                    pos = text.count
                } else {
                    break
                }
            }
        }

        static func isNameByte(_ c: UInt8) -> Bool {
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A)
                || c == UInt8(ascii: "_") || c == UInt8(ascii: "-") || c == UInt8(ascii: ".") || c == UInt8(ascii: "+")
        }

        mutating func name() throws -> String {
            let start = pos
            while pos < text.count, Self.isNameByte(text[pos]) { pos += 1 }
            guard pos > start else { throw fail("expected a name") }
            guard pos - start <= 1024 else { throw fail("name too long") }
            return String(decoding: text[start..<pos], as: UTF8.self)
        }

        mutating func count() throws {
            values += 1
            guard values <= Self.maxValues else { throw fail("more than \(Self.maxValues) values") }
        }

        mutating func parseTop() throws -> ConfigValue {
            let items = try parseItems(depth: 0, closing: false)
            return .section(items)
        }

        mutating func parseItems(depth: Int, closing: Bool) throws -> [(key: String, value: ConfigValue)] {
            guard depth <= Self.maxDepth else { throw fail("sections nested deeper than \(Self.maxDepth)") }
            var items: [(key: String, value: ConfigValue)] = []
            while true {
                skipSpace()
                guard pos < text.count else {
                    if closing { throw fail("unexpected end of text inside a section") }
                    return items
                }
                if text[pos] == UInt8(ascii: "}") {
                    guard closing else { throw fail("unexpected '}'") }
                    pos += 1
                    return items
                }
                let key = try name()
                try count()
                skipSpace()
                guard pos < text.count else { throw fail("unexpected end of text after '\(key)'") }
                if text[pos] == UInt8(ascii: "{") {
                    pos += 1
                    items.append((key, .section(try parseItems(depth: depth + 1, closing: true))))
                } else if text[pos] == UInt8(ascii: "=") {
                    pos += 1
                    skipSpace()
                    items.append((key, try parseValue(depth: depth + 1)))
                } else {
                    throw fail("expected '=' or '{' after '\(key)'")
                }
            }
        }

        mutating func parseValue(depth: Int) throws -> ConfigValue {
            guard depth <= Self.maxDepth else { throw fail("arrays nested deeper than \(Self.maxDepth)") }
            guard pos < text.count else { throw fail("missing value") }
            let c = text[pos]
            if c == UInt8(ascii: "\"") {
                return .string(try quoted())
            }
            if c == UInt8(ascii: "[") {
                pos += 1
                var elements: [ConfigValue] = []
                while true {
                    skipSpace()
                    guard pos < text.count else { throw fail("unterminated array") }
                    if text[pos] == UInt8(ascii: "]") {
                        pos += 1
                        return .array(elements)
                    }
                    try count()
                    elements.append(try parseValue(depth: depth + 1))
                    skipSpace()
                    if pos < text.count, text[pos] == UInt8(ascii: ",") { pos += 1 }
                }
            }
            if c == UInt8(ascii: "-") || (c >= 0x30 && c <= 0x39) {
                let start = pos
                pos += 1
                while pos < text.count, (text[pos] >= 0x30 && text[pos] <= 0x39) || text[pos] == UInt8(ascii: ".") {
                    pos += 1
                }
                let token = String(decoding: text[start..<pos], as: UTF8.self)
                if let n = Int64(token) { return .number(n) }
                // LVM writes a few floats (e.g. in profiles); keep them as text.
                if token.contains(".") { return .string(token) }
                throw fail("bad number '\(token)'")
            }
            throw fail("unexpected character '\(Character(Unicode.Scalar(c)))'")
        }

        mutating func quoted() throws -> String {
            pos += 1
            var out: [UInt8] = []
            while pos < text.count {
                let c = text[pos]
                pos += 1
                if c == UInt8(ascii: "\"") { return String(decoding: out, as: UTF8.self) }
                if c == UInt8(ascii: "\\"), pos < text.count {
                    out.append(text[pos])
                    pos += 1
                } else {
                    if c == UInt8(ascii: "\n") { line += 1 }
                    out.append(c)
                }
                guard out.count <= 1 << 16 else { throw fail("string longer than 64 KiB") }
            }
            throw fail("unterminated string")
        }
    }
}
