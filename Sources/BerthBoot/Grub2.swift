import BerthDisk

/// GRUB2 `grub.cfg`: the menu is walked the way GRUB's normal mode runs it — variables,
/// `if`/`else`, functions, `load_env`, `source`, `search --set`, `blscfg` — but only the
/// menu-shaping commands do anything, and every step is counted and capped.
public enum Grub2 {
    /// Parses a `grub.cfg`.
    /// - Parameters:
    ///   - bytes: the menu file.
    ///   - path: where it is in `fs` (its directory is GRUB's `$prefix`).
    ///   - fs: the filesystem holding the menu, for `grubenv`, `source`, `[ -f ]` and BLS entries.
    ///   - environmentBlock: overrides the `grubenv` that `load_env` reads (tests, `--isconfig`).
    public static func parse(
        _ bytes: [UInt8], path: String = "/boot/grub/grub.cfg", fs: (any FileSystem)? = nil,
        environmentBlock: [String: String]? = nil
    ) throws -> BootMenu {
        var machine = Machine(path: path, fs: fs, environmentBlock: environmentBlock)
        let (nodes, _) = Grub2Script.parse(bytes)
        var items: [Item] = []
        try machine.run(nodes, items: &items, depth: 0)
        var entries: [BootEntry] = []
        let defaultValue = machine.env["default"] ?? ""
        let defaultIndex = try machine.flatten(items, submenus: [], into: &entries, selector: defaultValue, depth: 0)
        let timeout = machine.env["timeout"].flatMap { Int($0.trimmedSpaces) }
        let hidden = machine.env["timeout_style"] == "hidden" || machine.env["hiddenmenu"] != nil
        var fallback: Int?
        if let f = machine.env["fallback"], let n = Int(f.split(separator: " ").first ?? "") { fallback = n }
        return BootMenu(
            format: .grub2, path: path, entries: entries, defaultIndex: defaultIndex ?? 0,
            fallbackIndex: fallback, timeout: timeout, hidden: hidden, hasPassword: machine.hasPassword)
    }

    /// Reads GRUB's environment block (`grubenv`): `name=value` lines padded with `#`.
    public static func parseEnvironmentBlock(_ bytes: [UInt8]) -> [String: String] {
        var env: [String: String] = [:]
        for line in menuLines(Array(bytes.prefix(BootLimits.maxMenuBytes))) {
            guard !line.hasPrefix("#"), let eq = line.firstIndex(of: "=") else { continue }
            let name = String(line[..<eq])
            guard !name.isEmpty else { continue }
            var value = ""
            var escaped = false
            for ch in line[line.index(after: eq)...] {
                if escaped {
                    value.append(ch == "n" ? "\n" : ch)
                    escaped = false
                } else if ch == "\\" {
                    escaped = true
                } else {
                    value.append(ch)
                }
            }
            env[name] = value
        }
        return env
    }

    enum Item {
        case entry(title: String, id: String?, positional: [String], body: [Grub2Script.Node])
        case resolved(BootEntry)
        case submenu(title: String, id: String?, body: [Grub2Script.Node])
    }

    struct Machine {
        let path: String
        let fs: (any FileSystem)?
        let environmentBlock: [String: String]?
        var env: [String: String] = [:]
        var exported: Set<String> = []
        var functions: [String: [Grub2Script.Node]] = [:]
        var positional: [String] = []
        var steps = 0
        var hasPassword = false
        var status = 0
        /// Set by `return`/`exit`, cleared by the function call or entry it ends.
        var returning = false
        /// What an entry body does when run: filled only while evaluating an entry.
        var boot: BootEntry?
        var multiboot = false
        var modules: [[String]] = []

        init(path: String, fs: (any FileSystem)?, environmentBlock: [String: String]?) {
            self.path = path
            self.fs = fs
            self.environmentBlock = environmentBlock
            let prefix = BootPath.directory(of: path)
            // What GRUB's normal mode sets before reading grub.cfg.
            let builtins: [String: String] = [
                "prefix": prefix, "config_directory": prefix, "config_file": path, "root": "hd0",
                "grub_platform": "pc", "grub_cpu": "i386", "cmdpath": "(hd0)",
            ]
            for (k, v) in builtins {
                env[k] = v
                exported.insert(k)
            }
            for feature in [
                "feature_chainloader_bpb", "feature_ntldr", "feature_platform_search_hint",
                "feature_default_font_path", "feature_all_video_module", "feature_menuentry_id",
                "feature_menuentry_options", "feature_200_final", "feature_nativedisk_cmd",
                "feature_timeout_style",
            ] {
                env[feature] = "y"
                exported.insert(feature)
            }
        }

        // MARK: Running

        mutating func step() throws {
            steps += 1
            if steps > BootLimits.maxScriptSteps {
                throw BootError.menuTooComplex(path: path, reason: "it runs more than \(BootLimits.maxScriptSteps) commands")
            }
        }

        /// Refuses to go one level deeper than `BootLimits.maxNesting`. Blocks, function calls,
        /// `source`, submenus and entry bodies all share this one depth, carried through `run`,
        /// `flatten` and `evaluate`: a guest's `function f { submenu x { f } }; f` alternates
        /// between them and, counted apart, would recurse until the host's stack overflows.
        func checkDepth(_ depth: Int) throws {
            guard depth <= BootLimits.maxNesting else {
                throw BootError.menuTooComplex(
                    path: path, reason: "blocks, submenus and function calls nest more than \(BootLimits.maxNesting) deep")
            }
        }

        mutating func run(_ nodes: [Grub2Script.Node], items: inout [Item], depth: Int) throws {
            try checkDepth(depth)
            for node in nodes {
                if returning { return }
                try step()
                switch node {
                case .command(let words, _):
                    try command(words, items: &items, depth: depth)
                case .conditional(let branches, let otherwise):
                    var taken = false
                    for branch in branches {
                        try run(branch.condition, items: &items, depth: depth + 1)
                        if returning { return }
                        if status == 0 {
                            try run(branch.body, items: &items, depth: depth + 1)
                            taken = true
                            break
                        }
                    }
                    if !taken, let otherwise {
                        status = 0
                        try run(otherwise, items: &items, depth: depth + 1)
                    } else if !taken {
                        status = 0
                    }
                case .menuentry(let arguments, let body, let submenu):
                    try defineEntry(arguments, body: body, submenu: submenu, items: &items)
                    status = 0
                case .function(let name, let body):
                    if functions.count < 1024 || functions[name] != nil { functions[name] = body }
                    status = 0
                case .loop:
                    status = 0
                }
            }
        }

        func value(_ name: String) -> String {
            // `$1`…`$N` are digits only: `${-9223372036854775808}` or `${+1}` is no positional
            // parameter (and `Int.min - 1` would trap). A number past Int.max names none either.
            if let first = name.utf8.first, first >= 0x30 && first <= 0x39 {
                guard name.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let index = Int(name), index > 0 else { return "" }
                return index <= positional.count ? positional[index - 1] : ""
            }
            switch name {
            case "#": return String(positional.count)
            case "@", "*": return positional.joined(separator: " ")
            case "?": return String(status)
            default: return env[name] ?? ""
            }
        }

        /// Expands a word into fields: unquoted variables split on whitespace, as GRUB does.
        func expand(_ word: Grub2Script.Word) -> [String] {
            var fields: [String] = []
            var current = ""
            var hasField = false
            for segment in word.segments {
                switch segment {
                case .literal(let text, _):
                    current += text
                    hasField = true
                case .variable(let name, let quoted):
                    let v = value(name)
                    if quoted {
                        current += v
                        hasField = true
                    } else {
                        let parts = v.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" })
                        // Leading whitespace in the value ends the field built so far.
                        if let first = v.first, first == " " || first == "\t" || first == "\n", !parts.isEmpty, hasField {
                            fields.append(current)
                            current = ""
                        }
                        for (k, part) in parts.enumerated() {
                            if k > 0 {
                                fields.append(current)
                                current = ""
                            }
                            current += part
                            hasField = true
                        }
                        if let last = v.last, last == " " || last == "\t", !parts.isEmpty {
                            fields.append(current)
                            current = ""
                            hasField = false
                        }
                    }
                }
                if current.utf8.count > BootLimits.maxValueBytes { current = String(current.utf8.prefix(BootLimits.maxValueBytes)) ?? "" }
            }
            if hasField { fields.append(current) }
            return fields
        }

        func expand(_ words: [Grub2Script.Word]) -> [String] {
            var out: [String] = []
            for word in words {
                out += expand(word)
                if out.count > 4096 { break }
            }
            return out
        }

        mutating func set(_ name: String, _ value: String) {
            guard isName(name) else { return }
            env[name] = value.utf8.count > BootLimits.maxValueBytes ? String(value.utf8.prefix(BootLimits.maxValueBytes)) ?? "" : value
            if name == "superusers" { hasPassword = true }
        }

        func isName(_ s: String) -> Bool {
            guard let first = s.utf8.first, !(first >= 0x30 && first <= 0x39) else { return false }
            return s.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x5F }
        }

        mutating func command(_ words: [Grub2Script.Word], items: inout [Item], depth: Int) throws {
            let argv = expand(words)
            guard let name = argv.first else {
                status = 0
                return
            }
            let args = Array(argv.dropFirst())
            // `name=value` alone is an assignment.
            if args.isEmpty, let eq = name.firstIndex(of: "="), isName(String(name[..<eq])) {
                set(String(name[..<eq]), String(name[name.index(after: eq)...]))
                status = 0
                return
            }
            if let body = functions[name] {
                let saved = positional
                positional = args
                try run(body, items: &items, depth: depth + 1)
                positional = saved
                returning = false
                return
            }
            status = 0
            switch name {
            case "set":
                for arg in args.prefix(1) {
                    if let eq = arg.firstIndex(of: "=") {
                        set(String(arg[..<eq]), String(arg[arg.index(after: eq)...]))
                    }
                }
            case "unset":
                for arg in args { env[arg] = nil }
            case "export":
                for arg in args where isName(arg) { exported.insert(arg) }
            case "[", "test":
                var expr = args
                if name == "[" {
                    guard expr.last == "]" else {
                        status = 1
                        return
                    }
                    expr.removeLast()
                }
                var cursor = 0
                status = testOr(expr, &cursor) ? 0 : 1
            case "true": status = 0
            case "false": status = 1
            case "return", "exit", "break", "continue":
                status = Int(args.first ?? "") ?? status
                returning = true
            case "load_env":
                loadEnvironment(args)
            case "source", ".":
                guard let file = args.first, depth < 8 else { break }
                if let bytes = readFile(file) {
                    let (nodes, _) = Grub2Script.parse(bytes)
                    try run(nodes, items: &items, depth: depth + 8)
                    returning = false
                }
            case "configfile":
                guard let file = args.first, depth < 8 else { break }
                if let bytes = readFile(file) {
                    items.removeAll()
                    let (nodes, _) = Grub2Script.parse(bytes)
                    try run(nodes, items: &items, depth: depth + 8)
                    returning = false
                }
            case "search", "search.fs_uuid", "search.fs_label", "search.file":
                search(name, args)
            case "blscfg":
                for entry in BLS.entries(fs: fs, directories: blsDirectories(), expand: { self.expandText($0) }) {
                    if items.count < BootLimits.maxEntries { items.append(.resolved(entry)) }
                }
            case "password", "password_pbkdf2":
                hasPassword = true
            case "hiddenmenu":
                env["hiddenmenu"] = "1"
            case "linux", "linux16", "linuxefi", "kernel":
                guard boot != nil else { break }
                let (device, kernelPath) = BootPath.stripDevice(args.first ?? "")
                boot?.kernel = args.isEmpty ? nil : kernelPath
                boot?.args = args.dropFirst().joined(separator: " ")
                boot?.root = device ?? env["root"]
                multiboot = false
            case "initrd", "initrd16", "initrdefi":
                guard boot != nil else { break }
                boot?.initrds = args.filter { !$0.hasPrefix("--") }.map { BootPath.stripDevice($0).path }
            case "multiboot", "multiboot2":
                guard boot != nil else { break }
                multiboot = true
                modules = []
                boot?.kernel = nil
                boot?.root = env["root"]
            case "module", "module2":
                guard boot != nil, multiboot else { break }
                modules.append(args.filter { !$0.hasPrefix("--") })
                // Xen's entries load Linux as the first module: boot that kernel directly.
                if let first = modules.first, let kernel = first.first {
                    var kernelArgs = Array(first.dropFirst())
                    if kernelArgs.first == "placeholder" { kernelArgs.removeFirst() }
                    boot?.kernel = BootPath.stripDevice(kernel).path
                    boot?.args = kernelArgs.joined(separator: " ")
                    boot?.initrds = modules.dropFirst().compactMap { $0.first.map { BootPath.stripDevice($0).path } }
                }
            case "chainloader", "knetbsd", "kfreebsd", "kopenbsd", "ntldr", "appleloader", "xnu_kernel", "xnu_kernel64", "legacy_kernel":
                guard boot != nil else { break }
                boot?.kernel = nil
                multiboot = false
            case "hwmatch", "loadfont":
                status = name == "loadfont" ? 0 : 1
            default:
                break
            }
        }

        mutating func search(_ name: String, _ args: [String]) {
            var variable: String?
            var kind = name == "search.fs_label" ? "label" : name == "search.file" ? "file" : "fs-uuid"
            var key: String?
            var k = 0
            while k < args.count {
                let a = args[k]
                if a == "--set" || a == "-s" {
                    if k + 1 < args.count, !args[k + 1].hasPrefix("-") {
                        variable = args[k + 1]
                        k += 1
                    } else {
                        variable = "root"
                    }
                } else if a.hasPrefix("--set=") {
                    variable = String(a.dropFirst(6))
                } else if a == "--fs-uuid" || a == "-u" {
                    kind = "fs-uuid"
                } else if a == "--label" || a == "-l" {
                    kind = "label"
                } else if a == "--file" || a == "-f" {
                    kind = "file"
                } else if a == "--hint" {
                    k += 1
                } else if a.hasPrefix("-") {
                    // --no-floppy, --hint-bios=..., and the like
                } else {
                    key = a
                }
                k += 1
            }
            if let variable, let key { set(variable, "\(kind):\(key)") }
        }

        func blsDirectories() -> [String] {
            if let dir = env["blsdir"], !dir.isEmpty { return [BootPath.stripDevice(dir).path] }
            return ["/loader/entries", "/boot/loader/entries"]
        }

        func expandText(_ text: String) -> String {
            let tokens = Grub2Script.tokenize(Array(text.utf8))
            var out: [String] = []
            for token in tokens {
                if case .word(let word, _) = token { out += expand(word) }
            }
            return out.joined(separator: " ")
        }

        mutating func loadEnvironment(_ args: [String]) {
            var file = value("prefix") + "/grubenv"
            var wanted: [String] = []
            var k = 0
            while k < args.count {
                let a = args[k]
                if a == "-f" || a == "--file" {
                    if k + 1 < args.count { file = args[k + 1] }
                    k += 1
                } else if a.hasPrefix("--file=") {
                    file = String(a.dropFirst(7))
                } else if !a.hasPrefix("-") {
                    wanted.append(a)
                }
                k += 1
            }
            let block: [String: String]
            if let environmentBlock {
                block = environmentBlock
            } else if let bytes = readFile(file) {
                block = Grub2.parseEnvironmentBlock(bytes)
            } else {
                status = 1
                return
            }
            for (name, value) in block where wanted.isEmpty || wanted.contains(name) { set(name, value) }
        }

        func readFile(_ path: String) -> [UInt8]? {
            guard let fs else { return nil }
            return try? fs.read(BootPath.resolve(BootPath.stripDevice(path).path, relativeTo: "/"), limit: BootLimits.maxMenuBytes)
        }

        func fileInfo(_ path: String) -> FileInfo? {
            if let environmentBlock, !environmentBlock.isEmpty, path.hasSuffix("/grubenv") {
                return FileInfo(kind: .file, size: 1024)
            }
            guard let fs else { return nil }
            return try? fs.stat(BootPath.resolve(BootPath.stripDevice(path).path, relativeTo: "/"))
        }

        // MARK: test / [

        func testOr(_ e: [String], _ i: inout Int, depth: Int = 0) -> Bool {
            var result = testAnd(e, &i, depth: depth)
            while i < e.count, e[i] == "-o" {
                i += 1
                let rhs = testAnd(e, &i, depth: depth)
                result = result || rhs
            }
            return result
        }

        func testAnd(_ e: [String], _ i: inout Int, depth: Int) -> Bool {
            var result = testNot(e, &i, depth: depth)
            while i < e.count, e[i] == "-a" {
                i += 1
                let rhs = testNot(e, &i, depth: depth)
                result = result && rhs
            }
            return result
        }

        func testNot(_ e: [String], _ i: inout Int, depth: Int = 0) -> Bool {
            // Bounded recursion: `! ! ! …` and `( ( ( …` come from the guest.
            guard depth < BootLimits.maxNesting else {
                i = e.count
                return false
            }
            if i < e.count, e[i] == "!", i + 1 < e.count {
                i += 1
                return !testNot(e, &i, depth: depth + 1)
            }
            return testPrimary(e, &i, depth: depth)
        }

        func testPrimary(_ e: [String], _ i: inout Int, depth: Int) -> Bool {
            guard i < e.count else { return false }
            if e[i] == "(" {
                i += 1
                let r = testOr(e, &i, depth: depth + 1)
                if i < e.count, e[i] == ")" { i += 1 }
                return r
            }
            let unary: Set<String> = ["-d", "-e", "-f", "-s", "-n", "-z"]
            if unary.contains(e[i]), i + 1 < e.count {
                let op = e[i]
                let arg = e[i + 1]
                i += 2
                switch op {
                case "-n": return !arg.isEmpty
                case "-z": return arg.isEmpty
                case "-d": return fileInfo(arg)?.kind == .directory
                case "-f": return fileInfo(arg)?.kind == .file
                case "-s": return (fileInfo(arg)?.size ?? 0) > 0
                default: return fileInfo(arg) != nil
                }
            }
            let binary: Set<String> = ["=", "==", "!=", "<", ">", "<=", ">=", "-eq", "-ne", "-lt", "-le", "-gt", "-ge", "-pgt", "-plt", "-nt", "-ot"]
            if i + 2 < e.count + 0, i + 1 < e.count, binary.contains(e[i + 1]), i + 2 < e.count {
                let a = e[i]
                let op = e[i + 1]
                let b = e[i + 2]
                i += 3
                let na = Int(a) ?? 0
                let nb = Int(b) ?? 0
                switch op {
                case "=", "==": return a == b
                case "!=": return a != b
                case "<": return a < b
                case ">": return a > b
                case "<=": return a <= b
                case ">=": return a >= b
                case "-eq": return na == nb
                case "-ne": return na != nb
                case "-lt": return na < nb
                case "-le": return na <= nb
                case "-gt": return na > nb
                case "-ge": return na >= nb
                default: return false
                }
            }
            let s = e[i]
            i += 1
            return !s.isEmpty
        }

        // MARK: Menu

        mutating func defineEntry(_ arguments: [Grub2Script.Word], body: [Grub2Script.Node], submenu: Bool, items: inout [Item]) throws {
            let argv = expand(arguments)
            var title: String?
            var id: String?
            var extra: [String] = []
            var k = 0
            while k < argv.count {
                let a = argv[k]
                switch a {
                case "--class", "--users", "--hotkey", "--source":
                    k += 1
                case "--id":
                    if k + 1 < argv.count { id = argv[k + 1] }
                    k += 1
                case "--unrestricted":
                    break
                default:
                    if a.hasPrefix("--id=") {
                        id = String(a.dropFirst(5))
                    } else if a.hasPrefix("--") && title == nil {
                        break
                    } else if title == nil {
                        title = a
                    } else {
                        extra.append(a)
                    }
                }
                k += 1
            }
            guard items.count < BootLimits.maxEntries else { return }
            let name = title ?? ""
            items.append(submenu ? .submenu(title: name, id: id, body: body) : .entry(title: name, id: id, positional: extra, body: body))
        }

        /// Runs an entry's body the way GRUB does when the entry is booted.
        mutating func evaluate(
            title: String, id: String?, positional args: [String], body: [Grub2Script.Node], submenus: [String], depth: Int
        ) -> BootEntry {
            let savedEnv = env
            let savedPositional = positional
            let savedStatus = status
            positional = args
            env["chosen"] = title
            boot = BootEntry(title: title, id: id, submenus: submenus)
            multiboot = false
            modules = []
            var scratch: [Item] = []
            // A body that fails part-way (too many steps, too deep) still yields what it set.
            do { try run(body, items: &scratch, depth: depth) } catch {}
            returning = false
            var result = boot ?? BootEntry(title: title, id: id, submenus: submenus)
            if result.root == nil { result.root = env["root"] }
            boot = nil
            env = savedEnv
            positional = savedPositional
            status = savedStatus
            return result
        }

        /// Flattens the menu tree into `out` (PyGRUB's order) and returns the flat index of the
        /// entry GRUB's `default` selects: a number, a title, an id, or a `>` path of those.
        mutating func flatten(
            _ items: [Item], submenus: [String], into out: inout [BootEntry], selector: String, depth: Int
        ) throws -> Int? {
            try checkDepth(depth)
            let (head, rest) = splitSelector(selector)
            let chosen = resolve(head, in: items)
            var result: Int?
            for (index, item) in items.enumerated() {
                guard out.count < BootLimits.maxEntries else { break }
                let start = out.count
                switch item {
                case .resolved(var entry):
                    entry.submenus = submenus
                    out.append(entry)
                case .entry(let title, let id, let positional, let body):
                    out.append(evaluate(title: title, id: id, positional: positional, body: body, submenus: submenus, depth: depth + 1))
                case .submenu(let title, let id, let body):
                    // Entering a submenu opens a new context that sees only exported variables.
                    let savedEnv = env
                    let visible = exported
                    env = env.filter { visible.contains($0.key) }
                    var inner: [Item] = []
                    try run(body, items: &inner, depth: depth + 1)
                    returning = false
                    let innerSelector = rest ?? (env["default"] ?? "")
                    let innerDefault = try flatten(
                        inner, submenus: submenus + [title], into: &out, selector: innerSelector, depth: depth + 1)
                    env = savedEnv
                    _ = id
                    if index == chosen { result = innerDefault ?? (out.count > start ? start : nil) }
                    continue
                }
                if index == chosen { result = start }
            }
            return result
        }

        func splitSelector(_ selector: String) -> (String, String?) {
            // `>>` is an escaped '>' inside a title.
            var head = ""
            var chars = Array(selector)
            var k = 0
            while k < chars.count {
                if chars[k] == ">" {
                    if k + 1 < chars.count, chars[k + 1] == ">" {
                        head.append(">")
                        k += 2
                        continue
                    }
                    chars.removeFirst(k + 1)
                    return (head, String(chars))
                }
                head.append(chars[k])
                k += 1
            }
            return (head, nil)
        }

        func resolve(_ selector: String, in items: [Item]) -> Int {
            let s = String(selector.trimmedSpaces)
            if let n = Int(s) { return items.indices.contains(n) ? n : 0 }
            if s.hasPrefix("0x"), let n = Int(s.dropFirst(2), radix: 16) { return items.indices.contains(n) ? n : 0 }
            for (index, item) in items.enumerated() {
                switch item {
                case .entry(let title, let id, _, _), .submenu(let title, let id, _):
                    if id == s || title == s { return index }
                case .resolved(let entry):
                    if entry.id == s || entry.title == s { return index }
                }
            }
            return 0
        }
    }
}
