// Fuzz builds compile BerthModel's sources into this module (fuzz/targets/*.swift).
#if canImport(BerthModel)
    import BerthModel
#endif

/// A value in an xl/xm domain config.
public enum XLValue: Sendable, Equatable {
    case string(String)
    case number(Int64)
    case bool(Bool)
    /// Python's `None` (xm configs only).
    case none
    indirect case list([XLValue])

    /// The value as xl text (`"a"`, `42`, `[ "a", "b" ]`).
    public var xlText: String {
        switch self {
        case .string(let text): XLConfig.quote(text)
        case .number(let number): String(number)
        case .bool(let flag): flag ? "1" : "0"
        case .none: "\"\""
        case .list(let items): items.isEmpty ? "[ ]" : "[ " + items.map(\.xlText).joined(separator: ", ") + " ]"
        }
    }
}

/// One `KEY = VALUE` (or `KEY += VALUE`) line of an xl/xm config.
public struct XLSetting: Sendable, Equatable {
    public var key: String
    public var value: XLValue
    /// `+=`: xl's append to an earlier list or string.
    public var append: Bool
    public var position: TextPosition

    public init(key: String, value: XLValue, append: Bool = false, position: TextPosition) {
        self.key = key
        self.value = value
        self.append = append
        self.position = position
    }
}

/// The syntax of an xl (`xl.cfg(5)`) or xm domain config, before any meaning is given to keys.
///
/// The grammar is xl's: `KEY = VALUE` statements ended by a newline or `;`, `#` comments,
/// strings in single or double quotes with C escapes, decimal/octal/hex numbers, and nested
/// lists. xm configs were Python run by xend; the literal subset of Python is read too
/// (triple-quoted and raw strings, adjacent and `+` string concatenation, tuples, `True`,
/// `False`, `None`, backslash line continuation). Anything that is really code — a `def`,
/// an `import`, a call, `%` formatting, a variable — is refused with its line and column.
public struct XLConfig: Sendable, Equatable {
    public var settings: [XLSetting]

    public init(settings: [XLSetting] = []) { self.settings = settings }

    /// Parses config text. `source` names the file in error messages.
    /// - Throws: `BerthError(.invalidArgument)` with `source:line:column` and a remedy.
    public static func parse(_ text: String, source: String = "config") throws -> XLConfig {
        try parse(bytes: Array(text.utf8), source: source)
    }

    public static func parse(bytes: [UInt8], source: String = "config") throws -> XLConfig {
        _ = try InputCheck.text(bytes, source: source, what: "a domain config")
        var parser = XLParser(bytes: bytes, source: source)
        return XLConfig(settings: try parser.parseFile())
    }

    /// The effective value of `key`: the last assignment, with later `+=` appended.
    public subscript(key: String) -> XLValue? {
        var result: XLValue?
        for setting in settings where setting.key == key {
            if setting.append, let current = result {
                switch (current, setting.value) {
                case (.list(let a), .list(let b)): result = .list(a + b)
                case (.string(let a), .string(let b)): result = .string(a + b)
                default: result = setting.value
                }
            } else {
                result = setting.value
            }
        }
        return result
    }

    /// Position of the last assignment to `key`.
    public func position(of key: String) -> TextPosition? {
        settings.last(where: { $0.key == key })?.position
    }

    /// Keys in first-appearance order, each once.
    public var keys: [String] {
        var seen = Set<String>()
        return settings.map(\.key).filter { seen.insert($0).inserted }
    }

    /// Writes the settings back as xl text (one `key = value` line each).
    public var text: String {
        settings.map { "\($0.key) \($0.append ? "+=" : "=") \($0.value.xlText)\n" }.joined()
    }

    /// A double-quoted xl string with `\\`, `\"` and control characters escaped.
    public static func quote(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\x" + (hex.count == 1 ? "0" + hex : hex)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}

/// Recursive-descent reader over the raw bytes; positions are byte columns.
struct XLParser {
    let bytes: [UInt8]
    let source: String
    var index = 0
    var line = 1
    var lineStart = 0

    init(bytes: [UInt8], source: String) {
        self.bytes = bytes
        self.source = source
    }

    static let pythonKeywords: Set<String> = [
        "def", "class", "import", "from", "if", "elif", "else", "for", "while", "try", "except", "finally",
        "with", "return", "raise", "print", "del", "pass", "global", "exec", "assert", "lambda", "yield",
        "break", "continue", "nonlocal", "async", "await",
    ]
    static let codeRemedy =
        "Berth reads only KEY = value assignments of strings, numbers and lists (what xl accepts) and never runs Python. Replace the code with the values it produced, e.g. name = \"VM1\" instead of name = \"VM%d\" % vmid."

    var position: TextPosition { TextPosition(line: line, column: index - lineStart + 1) }
    var atEnd: Bool { index >= bytes.count }
    var current: UInt8 { index < bytes.count ? bytes[index] : 0 }
    func peek(_ offset: Int) -> UInt8 { index + offset < bytes.count ? bytes[index + offset] : 0 }

    func fail(_ message: String, at position: TextPosition? = nil, remedy: String) -> BerthError {
        .syntax(source, position ?? self.position, message, remedy: remedy)
    }

    func code(_ what: String, at position: TextPosition) -> BerthError {
        .syntax(source, position, "this is Python code, not a setting: \(what).", remedy: Self.codeRemedy)
    }

    mutating func advance() {
        if current == 0x0A {
            line += 1
            lineStart = index + 1
        }
        index += 1
    }

    /// Skips blanks and comments; newlines too when inside brackets (implicit continuation).
    mutating func skipBlanks(newlines: Bool) {
        while !atEnd {
            switch current {
            case 0x20, 0x09, 0x0D, 0x0C: advance()
            case 0xC2 where peek(1) == 0xA0:
                // No-break spaces: configs pasted from web pages (the seed's own vif line) have them.
                advance()
                advance()
            case 0x0A where newlines: advance()
            case 0x5C where peek(1) == 0x0A || (peek(1) == 0x0D && peek(2) == 0x0A):  // backslash continuation
                advance()
                if current == 0x0D { advance() }
                advance()
            case 0x23:  // '#' comment to end of line
                while !atEnd && current != 0x0A { advance() }
            default: return
            }
        }
    }

    static func isIdentStart(_ byte: UInt8) -> Bool {
        (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A) || byte == 0x5F
    }
    static func isIdentBody(_ byte: UInt8) -> Bool {
        isIdentStart(byte) || (byte >= 0x30 && byte <= 0x39)
    }

    mutating func readIdentifier(dots: Bool) -> String {
        let start = index
        while !atEnd && (Self.isIdentBody(current) || (dots && current == 0x2E && Self.isIdentStart(peek(1)))) {
            advance()
        }
        return String(decoding: bytes[start..<index], as: UTF8.self)
    }

    mutating func parseFile() throws -> [XLSetting] {
        var settings: [XLSetting] = []
        while true {
            skipBlanks(newlines: true)
            while current == 0x3B && !atEnd {  // empty statements
                advance()
                skipBlanks(newlines: true)
            }
            if atEnd { break }
            let start = position
            guard Self.isIdentStart(current) else {
                throw unexpected("a setting name (like memory = 512)", at: start)
            }
            let key = readIdentifier(dots: true)
            if Self.pythonKeywords.contains(key) {
                throw code("a Python '\(key)' statement", at: start)
            }
            skipBlanks(newlines: false)
            var append = false
            if current == 0x3D && peek(1) != 0x3D {
                advance()
            } else if current == 0x2B && peek(1) == 0x3D {
                advance()
                advance()
                append = true
            } else if current == 0x28 {
                throw code("a call to '\(key)(…)'", at: start)
            } else if current == 0x3D || current == 0x5B || current == 0x2C || current == 0x3A {
                throw code("'\(key)' is used in an expression", at: start)
            } else {
                throw unexpected("'=' after '\(key)'", at: position)
            }
            skipBlanks(newlines: false)
            let value = try parseExpression(depth: 0, inBrackets: false)
            skipBlanks(newlines: false)
            if !atEnd && current != 0x0A && current != 0x3B {
                throw trailing()
            }
            settings.append(XLSetting(key: key, value: value, append: append, position: start))
        }
        return settings
    }

    /// Explains what follows a complete value: usually Python operators.
    func trailing() -> BerthError {
        switch current {
        case 0x25: return code("'%' string formatting", at: position)
        case 0x2A, 0x2F, 0x2D, 0x2B: return code("arithmetic with '\(Character(Unicode.Scalar(current)))'", at: position)
        case 0x2E, 0x28: return code("a method call", at: position)
        case 0x5B: return code("indexing with '[…]'", at: position)
        case 0x5D, 0x29:
            return fail(
                "unbalanced '\(Character(Unicode.Scalar(current)))' with no opening bracket.",
                remedy: "Remove it or add the matching opening bracket.")
        default:
            if Self.isIdentStart(current) {
                var copy = self
                let word = copy.readIdentifier(dots: false)
                if ["if", "for", "and", "or", "not", "in", "is"].contains(word) {
                    return code("a Python '\(word)' expression", at: position)
                }
            }
            return unexpected("the end of the line or ';' after the value", at: position)
        }
    }

    func unexpected(_ expected: String, at position: TextPosition) -> BerthError {
        let found: String
        if position.line == line && index < bytes.count {
            let byte = bytes[index]
            found = byte == 0x0A ? "the end of the line" : byte < 0x80 ? "'\(Character(Unicode.Scalar(byte)))'" : "a non-ASCII character"
        } else if index >= bytes.count {
            found = "the end of the file"
        } else {
            found = "something else"
        }
        return fail(
            "expected \(expected), found \(found).", at: position,
            remedy: "Each line is KEY = VALUE with a quoted string, a number or a [ list ]; see xl.cfg(5).")
    }

    mutating func parseExpression(depth: Int, inBrackets: Bool) throws -> XLValue {
        let start = position
        var value = try parseTerm(depth: depth, inBrackets: inBrackets)
        while true {
            var probe = self
            probe.skipBlanks(newlines: inBrackets)
            guard probe.current == 0x2B, probe.peek(1) != 0x3D else { break }
            self = probe
            let plus = position
            advance()
            skipBlanks(newlines: inBrackets)
            let rhs = try parseTerm(depth: depth, inBrackets: inBrackets)
            switch (value, rhs) {
            case (.string(let a), .string(let b)): value = .string(a + b)
            case (.list(let a), .list(let b)): value = .list(a + b)
            default: throw code("arithmetic with '+' on numbers", at: plus)
            }
        }
        _ = start
        return value
    }

    mutating func parseTerm(depth: Int, inBrackets: Bool) throws -> XLValue {
        let start = position
        if atEnd { throw unexpected("a value", at: start) }
        switch current {
        case 0x22, 0x27:
            var text = try parseString(raw: false)
            // Adjacent literals concatenate, as in Python and C.
            while true {
                var probe = self
                probe.skipBlanks(newlines: inBrackets)
                guard probe.current == 0x22 || probe.current == 0x27 else { break }
                self = probe
                text += try parseString(raw: false)
            }
            return .string(text)
        case 0x5B, 0x28:
            guard depth < BerthFormats.maxNesting else {
                throw fail(
                    "lists nested deeper than \(BerthFormats.maxNesting) levels.",
                    remedy: "Domain configs need at most two levels of lists; check for a runaway '['.")
            }
            let close: UInt8 = current == 0x5B ? 0x5D : 0x29
            advance()
            var items: [XLValue] = []
            while true {
                skipBlanks(newlines: true)
                if atEnd {
                    throw fail(
                        "unbalanced '\(close == 0x5D ? "[" : "(")': the list that starts here is never closed.",
                        at: start, remedy: "Add the closing '\(close == 0x5D ? "]" : ")")'.")
                }
                if current == close {
                    advance()
                    break
                }
                if current == 0x5D || current == 0x29 {
                    throw fail(
                        "'\(Character(Unicode.Scalar(current)))' does not match the '\(close == 0x5D ? "[" : "(")' at \(start).",
                        remedy: "Close the list with '\(Character(Unicode.Scalar(close)))'.")
                }
                items.append(try parseExpression(depth: depth + 1, inBrackets: true))
                skipBlanks(newlines: true)
                if current == 0x2C {
                    advance()
                } else if current != close {
                    if current == 0x5D || current == 0x29 {
                        throw fail(
                            "'\(Character(Unicode.Scalar(current)))' does not match the '\(close == 0x5D ? "[" : "(")' at \(start).",
                            remedy: "Close the list with '\(Character(Unicode.Scalar(close)))'.")
                    }
                    if atEnd || (line != start.line && Self.isIdentStart(current)) {
                        throw fail(
                            "unbalanced '\(close == 0x5D ? "[" : "(")': the list that starts here is never closed.",
                            at: start, remedy: "Add the closing '\(close == 0x5D ? "]" : ")")'.")
                    }
                    if current == 0x25 || current == 0x2A || current == 0x2F || current == 0x2D || current == 0x2E {
                        throw trailing()
                    }
                    throw unexpected("',' or '\(Character(Unicode.Scalar(close)))' in the list", at: position)
                }
            }
            return .list(items)
        case 0x30...0x39, 0x2D:
            return .number(try parseNumber())
        default:
            guard Self.isIdentStart(current) else { throw unexpected("a value", at: start) }
            // Python string prefixes: r'…', u"…", ur'…', b'…'.
            var probe = self
            let word = probe.readIdentifier(dots: false)
            if word.count <= 2, probe.current == 0x22 || probe.current == 0x27,
                word.lowercased().allSatisfy({ "rub".contains($0) })
            {
                self = probe
                let raw = word.lowercased().contains("r")
                var text = try parseString(raw: raw)
                while true {
                    var next = self
                    next.skipBlanks(newlines: inBrackets)
                    guard next.current == 0x22 || next.current == 0x27 else { break }
                    self = next
                    text += try parseString(raw: false)
                }
                return .string(text)
            }
            let name = readIdentifier(dots: true)
            switch name {
            case "True", "true": return .bool(true)
            case "False", "false": return .bool(false)
            case "None": return .none
            default:
                skipBlanks(newlines: false)
                if current == 0x28 { throw code("a call to '\(name)(…)'", at: start) }
                if Self.pythonKeywords.contains(name) { throw code("a Python '\(name)' expression", at: start) }
                throw code("the value refers to the variable '\(name)'", at: start)
            }
        }
    }

    mutating func parseNumber() throws -> Int64 {
        let start = position
        var negative = false
        if current == 0x2D {
            negative = true
            advance()
            guard current >= 0x30 && current <= 0x39 else { throw unexpected("a number after '-'", at: start) }
        }
        let digitsStart = index
        while !atEnd && (Self.isIdentBody(current) || current == 0x2E) { advance() }
        var text = String(decoding: bytes[digitsStart..<index], as: UTF8.self).lowercased()
        if text.hasSuffix("l") { text.removeLast() }  // Python 2 long
        var radix = 10
        var digits = Substring(text)
        if text.hasPrefix("0x") {
            radix = 16
            digits = text.dropFirst(2)
        } else if text.hasPrefix("0o") {
            radix = 8
            digits = text.dropFirst(2)
        } else if text.hasPrefix("0b") {
            radix = 2
            digits = text.dropFirst(2)
        } else if text.count > 1 && text.hasPrefix("0") {
            radix = 8  // C/xl and Python 2: a leading 0 means octal
            digits = text.dropFirst(1)
        }
        digits = digits.filter { $0 != "_" }[...]
        guard !digits.isEmpty, let magnitude = Int64(digits, radix: radix) else {
            let why = text.contains(".") || text.contains("e") ? "a decimal fraction" : "not a whole number"
            throw fail(
                "'\(negative ? "-" : "")\(text)' is \(why) that Berth can read.", at: start,
                remedy: "Give a whole number: decimal (512), octal (0755) or hex (0x200).")
        }
        return negative ? -magnitude : magnitude
    }

    /// A quoted string; triple quotes may span lines. `raw` keeps backslashes.
    mutating func parseString(raw: Bool) throws -> String {
        let start = position
        let quote = current
        let triple = peek(1) == quote && peek(2) == quote
        advance()
        if triple {
            advance()
            advance()
        }
        var out: [UInt8] = []
        while true {
            if atEnd || (!triple && current == 0x0A) {
                throw fail(
                    "unterminated string: the \(triple ? "triple-" : "")quoted string that starts here is never closed.",
                    at: start, remedy: "Add the closing \(Character(Unicode.Scalar(quote))) on the same line.")
            }
            let byte = current
            if byte == quote {
                if !triple {
                    advance()
                    break
                }
                if peek(1) == quote && peek(2) == quote {
                    advance()
                    advance()
                    advance()
                    break
                }
            }
            if byte == 0x5C && !raw {
                let escapeStart = position
                advance()
                if atEnd { continue }
                let escaped = current
                advance()
                switch escaped {
                case 0x6E: out.append(0x0A)  // n
                case 0x74: out.append(0x09)  // t
                case 0x72: out.append(0x0D)  // r
                case 0x61: out.append(0x07)  // a
                case 0x62: out.append(0x08)  // b
                case 0x66: out.append(0x0C)  // f
                case 0x76: out.append(0x0B)  // v
                case 0x5C, 0x27, 0x22: out.append(escaped)
                case 0x0A: break  // escaped newline: continuation inside the string
                case 0x78:  // \xHH
                    var value: UInt32 = 0
                    var count = 0
                    while count < 2, let digit = hexValue(current) {
                        value = value * 16 + digit
                        advance()
                        count += 1
                    }
                    guard count == 2 else {
                        throw fail(
                            "'\\x' must be followed by two hex digits.", at: escapeStart, remedy: "Write \\x41 for 'A', or \\\\x for a backslash.")
                    }
                    appendScalar(value, to: &out)
                case 0x30...0x37:  // \ooo
                    var value = UInt32(escaped - 0x30)
                    var count = 1
                    while count < 3, current >= 0x30, current <= 0x37 {
                        value = value * 8 + UInt32(current - 0x30)
                        advance()
                        count += 1
                    }
                    guard value != 0 else {
                        throw fail("a '\\0' escape puts a NUL byte in a string.", at: escapeStart, remedy: "Remove the \\0.")
                    }
                    appendScalar(value, to: &out)
                default:
                    out.append(0x5C)  // Python keeps unknown escapes as written
                    out.append(escaped)
                }
                continue
            }
            out.append(byte)
            advance()
        }
        return String(decoding: out, as: UTF8.self)
    }

    func hexValue(_ byte: UInt8) -> UInt32? {
        switch byte {
        case 0x30...0x39: UInt32(byte - 0x30)
        case 0x41...0x46: UInt32(byte - 0x41 + 10)
        case 0x61...0x66: UInt32(byte - 0x61 + 10)
        default: nil
        }
    }

    func appendScalar(_ value: UInt32, to out: inout [UInt8]) {
        if let scalar = Unicode.Scalar(value) { out.append(contentsOf: Array(String(Character(scalar)).utf8)) }
    }
}
