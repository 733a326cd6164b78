// Fuzz builds compile BerthModel's sources into this module (fuzz/targets/*.swift).
#if canImport(BerthModel)
    import BerthModel
#endif

/// A kickstart file (Anaconda's unattended-install language): commands with options,
/// `%packages`/`%pre`/`%post` sections, comments. Both eras are read: sections closed by
/// `%end` (RHEL 6+) and the older files where a section ran to the next `%` header or the
/// end of the file. Printing gives text that parses back to an equal value.
public struct Kickstart: Sendable, Equatable {
    /// One command line: `part /boot --fstype ext3 --size=100`.
    public struct Command: Sendable, Equatable {
        public var name: String
        /// The words after the name, unquoted (`["/boot", "--fstype", "ext3", "--size=100"]`).
        public var arguments: [String]
        /// 1-based line in the parsed text (0 for built values); not part of equality.
        public var line: Int

        public init(name: String, arguments: [String] = [], line: Int = 0) {
            self.name = name
            self.arguments = arguments
            self.line = line
        }

        public static func == (a: Command, b: Command) -> Bool { a.name == b.name && a.arguments == b.arguments }

        /// Options and positional arguments, split the way this command's options are defined
        /// (`--size 100` and `--size=100` both give `size: "100"`; flags give `""`).
        public var parsed: (options: [(name: String, value: String?)], positionals: [String]) {
            KickstartGrammar.split(self).parsed
        }

        /// The value of `--name`, the last one if repeated; `""` for a flag; nil when absent.
        public func option(_ name: String) -> String? {
            parsed.options.last(where: { $0.name == name }).map { $0.value ?? "" }
        }

        /// Every value of a repeatable option such as `firewall --port`.
        public func options(_ name: String) -> [String] {
            parsed.options.filter { $0.name == name }.compactMap(\.value)
        }

        public func has(_ name: String) -> Bool { parsed.options.contains { $0.name == name } }
        public var positionals: [String] { parsed.positionals }
    }

    /// A `%name … %end` section; the body is kept verbatim.
    public struct Section: Sendable, Equatable {
        /// `packages`, `pre`, `post`, `pre-install`, `traceback`, `onerror`, `addon`, `anaconda`.
        public var name: String
        /// Header options, e.g. `["--nochroot", "--interpreter=/usr/bin/python"]`.
        public var arguments: [String]
        public var body: [String]
        /// Whether the section was closed by `%end` (old kickstarts omit it); not part of equality.
        public var terminated: Bool
        public var line: Int

        public init(name: String, arguments: [String] = [], body: [String] = [], terminated: Bool = true, line: Int = 0) {
            self.name = name
            self.arguments = arguments
            self.body = body
            self.terminated = terminated
            self.line = line
        }

        public static func == (a: Section, b: Section) -> Bool {
            a.name == b.name && a.arguments == b.arguments && a.body == b.body
        }
    }

    public enum Item: Sendable, Equatable {
        case command(Command)
        case section(Section)
        /// A `#` comment line, text after the `#`.
        case comment(String)
        case blank
    }

    public var items: [Item]

    public init(items: [Item] = []) { self.items = items }

    public var commands: [Command] {
        items.compactMap { if case .command(let command) = $0 { command } else { nil } }
    }

    public var sections: [Section] {
        items.compactMap { if case .section(let section) = $0 { section } else { nil } }
    }

    /// The last command of that name (kickstart's rule for repeated single commands).
    public func command(_ name: String) -> Command? { commands.last { $0.name == name } }

    /// The network install source: `url --url`, else `nfs` as `nfs:SERVER:DIR`.
    public var installURL: String? {
        if let url = command("url")?.option("url"), !url.isEmpty { return url }
        if let nfs = command("nfs"), let server = nfs.option("server"), let dir = nfs.option("dir") {
            return "nfs:\(server):\(dir)"
        }
        return nil
    }

    /// The `%packages` selection: groups (`@base`), packages and exclusions (`-pkg`).
    public var packages: (groups: [String], packages: [String], excluded: [String]) {
        var groups: [String] = []
        var packages: [String] = []
        var excluded: [String] = []
        for section in sections where section.name == "packages" {
            for raw in section.body {
                let line = raw.trimmed()
                if line.isEmpty || line.hasPrefix("#") { continue }
                let word = line.split(separator: " ").first.map(String.init) ?? line
                if word.hasPrefix("-") {
                    excluded.append(String(word.dropFirst()))
                } else if word.hasPrefix("@") {
                    groups.append(String(word.dropFirst()))
                } else {
                    packages.append(word)
                }
            }
        }
        return (groups, packages, excluded)
    }

    // MARK: Parsing

    static let sectionNames: Set<String> = [
        "packages", "pre", "post", "pre-install", "traceback", "onerror", "addon", "anaconda",
    ]

    /// Parses kickstart text.
    /// - Throws: `BerthError(.invalidArgument)` for an unterminated quote, a stray `%end`,
    ///   a binary or oversized file — with line and column.
    public static func parse(_ text: String, source: String = "kickstart") throws -> Kickstart {
        try parse(bytes: Array(text.utf8), source: source)
    }

    public static func parse(bytes: [UInt8], source: String = "kickstart") throws -> Kickstart {
        _ = try InputCheck.text(bytes, source: source, what: "a kickstart file")
        // Split the bytes, not Characters: "\r\n" is one Character and would never match "\n".
        var lines = bytes.split(separator: 0x0A, omittingEmptySubsequences: false).map { line -> String in
            var end = line.endIndex
            while end > line.startIndex && line[end - 1] == 0x0D { end -= 1 }
            return String(decoding: line[line.startIndex..<end], as: UTF8.self)
        }
        if lines.last == "" { lines.removeLast() }
        var items: [Item] = []
        var index = 0
        while index < lines.count {
            let number = index + 1
            let raw = lines[index]
            let trimmed = trimBlanks(raw)
            index += 1
            if trimmed.isEmpty {
                items.append(.blank)
                continue
            }
            let first = trimmed.unicodeScalars.first
            if first == "#" {
                items.append(.comment(String(trimmed.unicodeScalars.dropFirst())))
                continue
            }
            let column = 1 + raw.utf8.count - trimmed.utf8.count
            // A line whose first word starts with '%' is a section or directive, however the
            // '%' was written (quoted or escaped), so printing and parsing agree.
            var directiveLine = first == "%"
            if !directiveLine && (first == "'" || first == "\"" || first == "\\") {
                directiveLine = (try? words(trimmed, source: source, line: number, column: column))?.first?.unicodeScalars.first == "%"
            }
            if directiveLine {
                let words = try words(trimmed, source: source, line: number, column: column)
                guard let head = words.first, head.unicodeScalars.first == "%" else {
                    items.append(.blank)  // only '%' quoted away to nothing: nothing to keep
                    continue
                }
                let directive = String(head.unicodeScalars.dropFirst())
                if directive == "end" {
                    throw BerthError.syntax(
                        source, TextPosition(line: number, column: 1), "'%end' without an open section.",
                        remedy: "Remove it, or add the %packages/%pre/%post line it closes.")
                }
                if directive == "include" || directive == "ksappend" {
                    items.append(.command(Command(name: words[0], arguments: Array(words.dropFirst()), line: number)))
                    continue
                }
                var section = Section(name: directive, arguments: Array(words.dropFirst()), body: [], terminated: false, line: number)
                while index < lines.count {
                    let bodyLine = lines[index]
                    let head = trimBlanks(bodyLine)
                    if head == "%end" || head.hasPrefix("%end ") || head.hasPrefix("%end\t") {
                        section.terminated = true
                        index += 1
                        break
                    }
                    // Old kickstarts: a section runs until the next section header.
                    if head.hasPrefix("%"), let name = head.dropFirst().split(whereSeparator: { $0 == " " || $0 == "\t" }).first,
                        sectionNames.contains(String(name)) || name == "include" || name == "ksappend"
                    {
                        break
                    }
                    section.body.append(bodyLine)
                    index += 1
                }
                items.append(.section(section))
                continue
            }
            // Backslash at the end of a line continues the command on the next line.
            var joined = trimmed
            // A section header is never swallowed by a continuation.
            while joined.hasSuffix("\\") && !joined.hasSuffix("\\\\") && index < lines.count
                && trimBlanks(lines[index]).unicodeScalars.first != "%"
            {
                joined = String(joined.dropLast()) + " " + trimBlanks(lines[index])
                index += 1
            }
            let words = try words(joined, source: source, line: number, column: column)
            guard let name = words.first else {
                items.append(.blank)  // a line that was only a trailing comment
                continue
            }
            if name.unicodeScalars.first == "%" {
                throw BerthError.syntax(
                    source, TextPosition(line: number, column: column), "a continued line cannot start a section ('\(name)').",
                    remedy: "Put %-lines on a line of their own, without a '\\' continuation before them.")
            }
            items.append(.command(Command(name: name, arguments: Array(words.dropFirst()), line: number)))
        }
        return Kickstart(items: items)
    }

    /// Splits a line like a shell (pykickstart uses shlex): quotes, backslashes, `#` comments.
    static func isBlank(_ scalar: Unicode.Scalar) -> Bool {
        scalar == " " || scalar == "\t" || scalar == "\r" || (scalar.value >= 0x80 && scalar.properties.generalCategory == .spaceSeparator)
    }

    /// Trims spaces, tabs and Unicode space separators (no-break spaces from web pages).
    static func trimBlanks(_ line: String) -> String {
        let scalars = line.unicodeScalars
        guard let first = scalars.firstIndex(where: { !isBlank($0) }), let last = scalars.lastIndex(where: { !isBlank($0) }) else {
            return ""
        }
        return String(scalars[first...last])
    }

    /// Splits a line like a shell (pykickstart uses shlex): quotes, backslashes, `#` comments.
    static func words(_ line: String, source: String, line number: Int, column: Int) throws -> [String] {
        var words: [String] = []
        var current = String.UnicodeScalarView()
        var inWord = false
        var quote: Unicode.Scalar?
        var quoteColumn = 0
        var escaped = false
        var offset = column
        for scalar in line.unicodeScalars {
            defer { offset += UTF8.width(scalar) }
            if escaped {
                current.append(scalar)
                escaped = false
                continue
            }
            if let open = quote {
                if scalar == open {
                    quote = nil
                } else if scalar == "\\" && open == "\"" {
                    escaped = true
                } else {
                    current.append(scalar)
                }
                continue
            }
            switch scalar {
            case "\"", "'":
                quote = scalar
                quoteColumn = offset
                inWord = true
            case "\\":
                escaped = true
                inWord = true
            case "#" where !inWord:
                return words
            default:
                if isBlank(scalar) {
                    if inWord { words.append(String(current)) }
                    current = String.UnicodeScalarView()
                    inWord = false
                } else {
                    current.append(scalar)
                    inWord = true
                }
            }
        }
        if quote != nil {
            throw BerthError.syntax(
                source, TextPosition(line: number, column: quoteColumn), "unterminated quote: the quoted text that starts here is never closed.",
                remedy: "Add the closing quote on the same line.")
        }
        if inWord || escaped { words.append(String(current)) }
        return words
    }

    // MARK: Printing

    /// Kickstart text; `parse(text)` gives back an equal `Kickstart`.
    /// - Parameter addEnd: close every section with `%end`, as RHEL 6 and later expect.
    public func text(addEnd: Bool = true) -> String {
        var out = ""
        for item in items {
            switch item {
            case .blank: out += "\n"
            case .comment(let text): out += "#" + text + "\n"
            case .command(let command):
                out += ([command.name] + command.arguments).map(Self.quote).joined(separator: " ") + "\n"
            case .section(let section):
                out += (["%" + section.name] + section.arguments).map(Self.quote).joined(separator: " ") + "\n"
                for line in section.body { out += line + "\n" }
                if section.terminated || addEnd { out += "%end\n" }
            }
        }
        return out
    }

    public var text: String { text() }

    /// Quotes a word so the line splitter gives it back unchanged.
    static func quote(_ word: String) -> String {
        let special = word.unicodeScalars.contains { $0.properties.isWhitespace || isBlank($0) || "\"'\\#".unicodeScalars.contains($0) }
        if !word.isEmpty && !special { return word }
        if !word.unicodeScalars.contains("'") { return "'" + word + "'" }
        var out = String.UnicodeScalarView()
        out.append("\"")
        for scalar in word.unicodeScalars {
            if scalar == "\"" || scalar == "\\" { out.append("\\") }
            out.append(scalar)
        }
        out.append("\"")
        return String(out)
    }
}
