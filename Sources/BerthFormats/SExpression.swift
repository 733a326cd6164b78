// Fuzz builds compile BerthModel's sources into this module (fuzz/targets/*.swift).
#if canImport(BerthModel)
    import BerthModel
#endif

/// One S-expression from an xend-style file: an atom, a quoted string or a list.
public struct SExpression: Sendable, Equatable {
    public enum Value: Sendable, Equatable {
        case atom(String)
        case string(String)
        case list([SExpression])
    }
    public var value: Value
    public var position: TextPosition

    public init(_ value: Value, at position: TextPosition) {
        self.value = value
        self.position = position
    }

    /// The text of an atom or string; nil for a list.
    public var text: String? {
        switch value {
        case .atom(let text), .string(let text): text
        case .list: nil
        }
    }

    /// The items of a list; empty for an atom.
    public var items: [SExpression] {
        if case .list(let items) = value { return items }
        return []
    }

    /// The first item's text, e.g. `xend-port` in `(xend-port 8000)`.
    public var head: String? { items.first?.text }
}

/// xend's S-expression syntax (`xen/xend/sxp.py`): atoms, strings in single or double
/// quotes with backslash escapes, nested lists in parentheses, `#` comments.
public enum SXP {
    /// Parses every top-level expression.
    /// - Throws: `BerthError(.invalidArgument)` naming `source:line:column`.
    public static func parse(_ text: String, source: String = "xend-config.sxp") throws -> [SExpression] {
        try parse(bytes: Array(text.utf8), source: source)
    }

    public static func parse(bytes: [UInt8], source: String = "xend-config.sxp") throws -> [SExpression] {
        _ = try InputCheck.text(bytes, source: source, what: "an S-expression file")
        var reader = SXPReader(bytes: bytes, source: source)
        return try reader.parseAll()
    }

    /// Prints an expression back in the same syntax.
    public static func print(_ expression: SExpression) -> String {
        switch expression.value {
        case .atom(let text): return text
        case .string(let text):
            var out = "'"
            for character in text {
                switch character {
                case "'": out += "\\'"
                case "\\": out += "\\\\"
                case "\n": out += "\\n"
                case "\t": out += "\\t"
                default: out.append(character)
                }
            }
            return out + "'"
        case .list(let items): return "(" + items.map(print).joined(separator: " ") + ")"
        }
    }
}

struct SXPReader {
    let bytes: [UInt8]
    let source: String
    var index = 0
    var line = 1
    var lineStart = 0

    init(bytes: [UInt8], source: String) {
        self.bytes = bytes
        self.source = source
    }

    var position: TextPosition { TextPosition(line: line, column: index - lineStart + 1) }
    var atEnd: Bool { index >= bytes.count }
    var current: UInt8 { index < bytes.count ? bytes[index] : 0 }

    mutating func advance() {
        if current == 0x0A {
            line += 1
            lineStart = index + 1
        }
        index += 1
    }

    mutating func skipBlanks() {
        while !atEnd {
            if current == 0x23 {
                while !atEnd && current != 0x0A { advance() }
            } else if current == 0x20 || current == 0x09 || current == 0x0A || current == 0x0D || current == 0x0C {
                advance()
            } else if current == 0xC2 && index + 1 < bytes.count && bytes[index + 1] == 0xA0 {
                // No-break spaces from text pasted out of web pages.
                advance()
                advance()
            } else {
                return
            }
        }
    }

    mutating func parseAll() throws -> [SExpression] {
        var result: [SExpression] = []
        while true {
            skipBlanks()
            if atEnd { return result }
            if current == 0x29 {
                throw BerthError.syntax(
                    source, position, "unbalanced ')' with no '(' to close.",
                    remedy: "Remove the extra ')' or add the missing '('.")
            }
            result.append(try parseExpression(depth: 0))
        }
    }

    mutating func parseExpression(depth: Int) throws -> SExpression {
        let start = position
        switch current {
        case 0x28:
            guard depth < BerthFormats.maxNesting else {
                throw BerthError.syntax(
                    source, start, "parentheses nested deeper than \(BerthFormats.maxNesting) levels.",
                    remedy: "xend settings nest two or three levels; look for a runaway '('.")
            }
            advance()
            var items: [SExpression] = []
            while true {
                skipBlanks()
                if atEnd {
                    throw BerthError.syntax(
                        source, start, "unbalanced '(': the list that starts here is never closed.",
                        remedy: "Add the closing ')'.")
                }
                if current == 0x29 {
                    advance()
                    return SExpression(.list(items), at: start)
                }
                items.append(try parseExpression(depth: depth + 1))
            }
        case 0x22, 0x27:
            let quote = current
            advance()
            var out: [UInt8] = []
            while true {
                if atEnd {
                    throw BerthError.syntax(
                        source, start, "unterminated string: the quoted string that starts here is never closed.",
                        remedy: "Add the closing \(Character(Unicode.Scalar(quote))).")
                }
                let byte = current
                advance()
                if byte == quote { break }
                if byte == 0x5C, !atEnd {
                    let escaped = current
                    advance()
                    switch escaped {
                    case 0x6E: out.append(0x0A)
                    case 0x74: out.append(0x09)
                    case 0x72: out.append(0x0D)
                    case 0x61: out.append(0x07)
                    case 0x62: out.append(0x08)
                    case 0x66: out.append(0x0C)
                    case 0x76: out.append(0x0B)
                    default: out.append(escaped)  // \\ \' \" and any other character stand for themselves
                    }
                    continue
                }
                out.append(byte)
            }
            return SExpression(.string(String(decoding: out, as: UTF8.self)), at: start)
        default:
            let begin = index
            while !atEnd {
                let byte = current
                if byte == 0x28 || byte == 0x29 || byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D
                    || byte == 0x22 || byte == 0x27 || byte == 0x23
                    || (byte == 0xC2 && index + 1 < bytes.count && bytes[index + 1] == 0xA0)
                {
                    break
                }
                advance()
            }
            return SExpression(.atom(String(decoding: bytes[begin..<index], as: UTF8.self)), at: start)
        }
    }
}
