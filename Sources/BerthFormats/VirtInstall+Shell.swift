extension VirtInstallRequest {
    /// Parses a command pasted from notes, a script or a web page, e.g. the seed's
    ///
    ///     virt-install \␠␠
    ///     --name=devel1 \␠␠
    ///     …
    ///
    /// - Throws: `VirtInstallError` for unbalanced quotes, a second command, or a bad option.
    public static func parse(commandText: String) throws -> VirtInstallRequest {
        try parse(arguments: splitCommandLine(commandText))
    }

    /// Splits one shell command into words the way bash would, without expanding anything.
    ///
    /// Single and double quotes group words; a backslash escapes the next character. A backslash
    /// ending a line joins it to the next, also when spaces or tabs follow the backslash (Markdown
    /// writes a line break as two trailing spaces, so notes carry `\␠␠` line ends). A `$ ` or
    /// `# ` prompt at the start of the text is dropped; `#` starts a comment at the start of a word.
    /// - Throws: `VirtInstallError.unterminatedQuote`, `.multipleCommands`,
    ///   `.emptyCommand`.
    public static func splitCommandLine(_ text: String) throws -> [String] {
        let characters = Array(text.replacingCRLF())
        var words: [String] = []
        var current = ""
        var inWord = false
        var line = 1
        var index = 0
        var commandEnded = false

        func endWord() {
            if inWord { words.append(current) }
            current = ""
            inWord = false
        }
        /// After a backslash: true when only blanks remain before the end of the line.
        func isLineContinuation(from start: Int) -> (Bool, Int) {
            var cursor = start
            while cursor < characters.count, characters[cursor] == " " || characters[cursor] == "\t" { cursor += 1 }
            if cursor < characters.count, characters[cursor] == "\n" { return (true, cursor + 1) }
            // A last line that still ends in `\` (copied with its continuation): nothing follows.
            if cursor == characters.count { return (true, cursor) }
            return (false, start)
        }

        // A copied prompt: "$ virt-install …" or "# virt-install …".
        var start = 0
        while start < characters.count, characters[start].isWhitespace {
            if characters[start] == "\n" { line += 1 }
            start += 1
        }
        if start + 1 < characters.count, characters[start] == "$" || characters[start] == "#",
            characters[start + 1] == " "
        {
            // `# ` is a root prompt only before the command; otherwise it starts a comment.
            let rest = String(characters[(start + 2)...].prefix(40)).trimmingLeadingBlanks()
            let isCommand = (commandWords.union(["berth"])).contains { rest.hasPrefix($0) }
            if characters[start] == "$" || isCommand { start += 2 }
        }
        index = start

        while index < characters.count {
            let character = characters[index]
            if commandEnded, !character.isWhitespace {
                if character == "#" {
                    // A comment after the command: skip to the end of the line.
                    while index < characters.count, characters[index] != "\n" { index += 1 }
                    continue
                }
                throw VirtInstallError.multipleCommands(line: line)
            }
            switch character {
            case "\\":
                let (continues, next) = isLineContinuation(from: index + 1)
                if continues {
                    line += 1
                    index = next
                    // bash would keep `\␠` as a one-space word; a line continuation was meant.
                    continue
                }
                current.append(characters[index + 1])
                inWord = true
                index += 2
            case "'":
                let opened = line
                index += 1
                inWord = true
                while index < characters.count, characters[index] != "'" {
                    if characters[index] == "\n" { line += 1 }
                    current.append(characters[index])
                    index += 1
                }
                guard index < characters.count else { throw VirtInstallError.unterminatedQuote("'", line: opened) }
                index += 1
            case "\"":
                let opened = line
                index += 1
                inWord = true
                var closed = false
                while index < characters.count {
                    let inner = characters[index]
                    if inner == "\"" {
                        closed = true
                        index += 1
                        break
                    }
                    if inner == "\\", index + 1 < characters.count {
                        let escaped = characters[index + 1]
                        if escaped == "\n" {
                            line += 1
                            index += 2
                            continue
                        }
                        if "\"\\$`".contains(escaped) {
                            current.append(escaped)
                            index += 2
                            continue
                        }
                    }
                    if inner == "\n" { line += 1 }
                    current.append(inner)
                    index += 1
                }
                guard closed else { throw VirtInstallError.unterminatedQuote("\"", line: opened) }
            case "\n":
                endWord()
                line += 1
                index += 1
                if !words.isEmpty { commandEnded = true }
            case " ", "\t":
                endWord()
                index += 1
            case "#" where !inWord:
                while index < characters.count, characters[index] != "\n" { index += 1 }
            default:
                current.append(character)
                inWord = true
                index += 1
            }
        }
        endWord()
        guard !words.isEmpty else { throw VirtInstallError.emptyCommand }
        let command = words[0].split(separator: "/").last.map(String.init) ?? words[0]
        if !words[0].hasPrefix("-"), !commandWords.contains(command), command != "berth" {
            throw VirtInstallError.notVirtInstall(words[0])
        }
        return words
    }
}

extension String {
    fileprivate func trimmingLeadingBlanks() -> String {
        String(drop { $0 == " " || $0 == "\t" })
    }

    fileprivate func replacingCRLF() -> String {
        var result = ""
        result.reserveCapacity(utf8.count)
        for character in self {
            // Swift treats "\r\n" as one Character; lines pasted from Windows end that way.
            if character == "\r\n" || character == "\r" { result.append("\n") } else { result.append(character) }
        }
        return result
    }
}
