/// GRUB2's script language, read as data: a lexer and a parser into a small syntax tree
/// that `Grub2` walks with an environment. Nothing in a menu is ever run as code on the
/// host (CVE-2007-4993); only the commands that shape the menu are understood.
enum Grub2Script {
    enum Segment: Equatable {
        case literal(String, quoted: Bool)
        case variable(String, quoted: Bool)
    }

    struct Word: Equatable {
        var segments: [Segment] = []
        /// The word's text when it is one unquoted literal: keywords and braces are recognized only then.
        var bare: String? {
            if segments.count == 1, case .literal(let text, quoted: false) = segments[0] { return text }
            return nil
        }
    }

    enum Token: Equatable {
        case word(Word, line: Int)
        case separator
        case end
    }

    indirect enum Node {
        case command([Word], line: Int)
        case conditional(branches: [(condition: [Node], body: [Node])], otherwise: [Node]?)
        case menuentry(arguments: [Word], body: [Node], submenu: Bool)
        case function(name: String, body: [Node])
        /// `while`, `until` and `for`: parsed so the rest of the menu reads right, never run.
        case loop
    }

    struct SyntaxError: Error {
        var line: Int
        var reason: String
    }

    // MARK: Lexer

    static func tokenize(_ bytes: [UInt8]) -> [Token] {
        var tokens: [Token] = []
        var i = 0
        var line = 1
        let n = bytes.count

        func isSpace(_ c: UInt8) -> Bool { c == 0x20 || c == 0x09 || c == 0x0D }
        func isNameByte(_ c: UInt8) -> Bool {
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x5F
        }

        while i < n {
            let c = bytes[i]
            if isSpace(c) {
                i += 1
                continue
            }
            if c == 0x5C, i + 1 < n, bytes[i + 1] == 0x0A {  // line continuation
                i += 2
                line += 1
                continue
            }
            if c == 0x0A || c == 0x3B {  // newline, ';'
                if c == 0x0A { line += 1 }
                if tokens.last != .separator { tokens.append(.separator) }
                i += 1
                continue
            }
            if c == 0x23 {  // '#' at the start of a word: comment to end of line
                while i < n, bytes[i] != 0x0A { i += 1 }
                continue
            }
            let startLine = line
            var word = Word()
            var literal: [UInt8] = []
            var literalQuoted = false
            func flush() {
                if !literal.isEmpty {
                    word.segments.append(.literal(String(decoding: literal, as: UTF8.self), quoted: literalQuoted))
                    literal.removeAll(keepingCapacity: true)
                }
            }
            func appendLiteral(_ b: UInt8, quoted: Bool) {
                if quoted != literalQuoted {
                    flush()
                    literalQuoted = quoted
                }
                literal.append(b)
            }
            func appendEmptyQuoted() {
                flush()
                word.segments.append(.literal("", quoted: true))
            }
            // Reads `$name`, `${name}`, `$1`, `$?` at bytes[i] == '$'; returns false if not a variable.
            func readVariable(quoted: Bool) -> Bool {
                guard i + 1 < n else { return false }
                let next = bytes[i + 1]
                if next == 0x7B {  // ${...}
                    var j = i + 2
                    while j < n, bytes[j] != 0x7D, bytes[j] != 0x0A { j += 1 }
                    guard j < n, bytes[j] == 0x7D else { return false }
                    flush()
                    word.segments.append(.variable(String(decoding: bytes[(i + 2)..<j], as: UTF8.self), quoted: quoted))
                    i = j + 1
                    return true
                }
                if next == 0x3F || next == 0x23 || next == 0x40 || next == 0x2A {  // $? $# $@ $*
                    flush()
                    word.segments.append(.variable(String(UnicodeScalar(next)), quoted: quoted))
                    i += 2
                    return true
                }
                if next >= 0x30 && next <= 0x39 {
                    var j = i + 1
                    while j < n, bytes[j] >= 0x30 && bytes[j] <= 0x39 { j += 1 }
                    flush()
                    word.segments.append(.variable(String(decoding: bytes[(i + 1)..<j], as: UTF8.self), quoted: quoted))
                    i = j
                    return true
                }
                guard isNameByte(next) else { return false }
                var j = i + 1
                while j < n, isNameByte(bytes[j]) { j += 1 }
                flush()
                word.segments.append(.variable(String(decoding: bytes[(i + 1)..<j], as: UTF8.self), quoted: quoted))
                i = j
                return true
            }

            wordLoop: while i < n {
                let b = bytes[i]
                switch b {
                case 0x20, 0x09, 0x0D, 0x0A, 0x3B:
                    break wordLoop
                case 0x5C:  // backslash outside quotes escapes the next byte
                    if i + 1 < n {
                        if bytes[i + 1] == 0x0A {
                            line += 1
                        } else {
                            appendLiteral(bytes[i + 1], quoted: true)
                        }
                        i += 2
                    } else {
                        i += 1
                    }
                case 0x27:  // '...': everything literal
                    var j = i + 1
                    let before = word.segments.count + (literal.isEmpty ? 0 : 1)
                    while j < n, bytes[j] != 0x27 {
                        if bytes[j] == 0x0A { line += 1 }
                        appendLiteral(bytes[j], quoted: true)
                        j += 1
                    }
                    if word.segments.count + (literal.isEmpty ? 0 : 1) == before { appendEmptyQuoted() }
                    i = min(j + 1, n)
                case 0x22:  // "...": $ expands, \ escapes $ " \ and newline
                    var j = i + 1
                    var produced = false
                    while j < n, bytes[j] != 0x22 {
                        let q = bytes[j]
                        if q == 0x5C, j + 1 < n {
                            let e = bytes[j + 1]
                            if e == 0x24 || e == 0x22 || e == 0x5C {
                                appendLiteral(e, quoted: true)
                            } else if e == 0x0A {
                                line += 1
                            } else {
                                appendLiteral(q, quoted: true)
                                appendLiteral(e, quoted: true)
                            }
                            produced = true
                            j += 2
                            continue
                        }
                        if q == 0x24 {
                            i = j
                            if readVariable(quoted: true) {
                                j = i
                                produced = true
                                continue
                            }
                        }
                        if q == 0x0A { line += 1 }
                        appendLiteral(q, quoted: true)
                        produced = true
                        j += 1
                    }
                    if !produced { appendEmptyQuoted() }
                    i = min(j + 1, n)
                case 0x24:
                    if !readVariable(quoted: false) {
                        appendLiteral(b, quoted: false)
                        i += 1
                    }
                default:
                    appendLiteral(b, quoted: false)
                    i += 1
                }
            }
            flush()
            tokens.append(.word(word, line: startLine))
        }
        tokens.append(.end)
        return tokens
    }

    // MARK: Parser

    /// Parses as much of the script as is well-formed; GRUB itself runs a menu command by
    /// command, so the entries before a syntax error still count.
    static func parse(_ bytes: [UInt8]) -> (nodes: [Node], error: SyntaxError?) {
        var parser = Parser(tokens: tokenize(bytes))
        var nodes: [Node] = []
        while true {
            parser.skipSeparators()
            if parser.atEnd { return (nodes, nil) }
            do {
                if parser.peekBare == "}" {
                    throw SyntaxError(line: parser.line, reason: "'}' without a matching '{'")
                }
                nodes.append(try parser.parseCommand(depth: 0))
            } catch let error as SyntaxError {
                return (nodes, error)
            } catch {
                return (nodes, SyntaxError(line: parser.line, reason: "\(error)"))
            }
        }
    }

    struct Parser {
        var tokens: [Token]
        var position = 0

        var atEnd: Bool { tokens[position] == .end }
        var line: Int {
            for k in stride(from: min(position, tokens.count - 1), through: 0, by: -1) {
                if case .word(_, let line) = tokens[k] { return line }
            }
            return 1
        }
        var peekBare: String? {
            if case .word(let word, _) = tokens[position] { return word.bare }
            return nil
        }

        mutating func skipSeparators() {
            while tokens[position] == .separator { position += 1 }
        }

        mutating func nextWord() -> Word? {
            if case .word(let word, _) = tokens[position] {
                position += 1
                return word
            }
            return nil
        }

        mutating func expect(_ keyword: String) throws {
            skipSeparators()
            guard peekBare == keyword else {
                throw SyntaxError(line: line, reason: "expected '\(keyword)'")
            }
            position += 1
        }

        /// Commands up to (not including) one of `terminators` at the start of a command.
        mutating func parseList(until terminators: Set<String>, depth: Int) throws -> [Node] {
            guard depth < BootLimits.maxNesting else {
                throw SyntaxError(line: line, reason: "blocks nested more than \(BootLimits.maxNesting) deep")
            }
            var nodes: [Node] = []
            while true {
                skipSeparators()
                if atEnd {
                    throw SyntaxError(line: line, reason: "unexpected end of file, expected \(terminators.sorted().joined(separator: " or "))")
                }
                if let bare = peekBare, terminators.contains(bare) { return nodes }
                if peekBare == "}" { throw SyntaxError(line: line, reason: "unexpected '}'") }
                nodes.append(try parseCommand(depth: depth + 1))
            }
        }

        mutating func parseCommand(depth: Int) throws -> Node {
            let commandLine = line
            let first = peekBare
            switch first {
            case "if":
                position += 1
                var branches: [(condition: [Node], body: [Node])] = []
                var otherwise: [Node]?
                let condition = try parseList(until: ["then"], depth: depth)
                try expect("then")
                branches.append((condition, try parseList(until: ["elif", "else", "fi"], depth: depth)))
                loop: while true {
                    switch peekBare {
                    case "elif":
                        position += 1
                        let c = try parseList(until: ["then"], depth: depth)
                        try expect("then")
                        branches.append((c, try parseList(until: ["elif", "else", "fi"], depth: depth)))
                    case "else":
                        position += 1
                        otherwise = try parseList(until: ["fi"], depth: depth)
                    default:
                        break loop
                    }
                }
                try expect("fi")
                return .conditional(branches: branches, otherwise: otherwise)
            case "while", "until":
                position += 1
                _ = try parseList(until: ["do"], depth: depth)
                try expect("do")
                _ = try parseList(until: ["done"], depth: depth)
                try expect("done")
                return .loop
            case "for":
                position += 1
                while nextWord() != nil {}
                try expect("do")
                _ = try parseList(until: ["done"], depth: depth)
                try expect("done")
                return .loop
            case "function":
                position += 1
                guard let nameWord = nextWord(), let name = nameWord.bare else {
                    throw SyntaxError(line: commandLine, reason: "function without a name")
                }
                try expect("{")
                let body = try parseList(until: ["}"], depth: depth)
                try expect("}")
                return .function(name: name, body: body)
            case "menuentry", "submenu":
                position += 1
                var arguments: [Word] = []
                var opened = false
                while let word = nextWord() {
                    if word.bare == "{" {
                        opened = true
                        break
                    }
                    arguments.append(word)
                }
                guard opened else {
                    throw SyntaxError(line: commandLine, reason: "\(first ?? "menuentry") without '{'")
                }
                let body = try parseList(until: ["}"], depth: depth)
                try expect("}")
                return .menuentry(arguments: arguments, body: body, submenu: first == "submenu")
            default:
                var words: [Word] = []
                while case .word(let word, _) = tokens[position] {
                    // A lone '}' ends the enclosing block even without a separator before it.
                    if word.bare == "}" && !words.isEmpty { break }
                    words.append(word)
                    position += 1
                }
                return .command(words, line: commandLine)
            }
        }
    }
}
