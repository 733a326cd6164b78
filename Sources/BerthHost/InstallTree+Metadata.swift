/// `.treeinfo`: an INI file (Python configparser syntax) from the tree's compose tool.
struct TreeInfo: Sendable, Equatable {
    /// Section → key → value; section names as written, keys lowercased as configparser does.
    var sections: [String: [String: String]]

    static let maxLines = 20_000

    /// Parses INI text: `[section]`, `key = value` or `key: value`, `#`/`;` comments,
    /// indented continuation lines. Lines before the first section are an error, as in configparser.
    init(text: String, file: String) throws {
        var sections: [String: [String: String]] = [:]
        var section: String?
        var lastKey: String?
        var count = 0
        for rawLine in text.split(separator: "\n", omittingEmptySubsequences: false) {
            count += 1
            guard count <= Self.maxLines else {
                throw InstallTreeError.malformed(file: file, reason: "more than \(Self.maxLines) lines")
            }
            var line = Substring(rawLine)
            if line.hasSuffix("\r") { line = line.dropLast() }
            let trimmed = line.trimmingBlanks()
            if trimmed.isEmpty || trimmed.hasPrefix("#") || trimmed.hasPrefix(";") {
                continue
            }
            if let first = line.first, first == " " || first == "\t", let section, let lastKey {
                // A continuation of the previous value.
                let previous = sections[section]?[lastKey] ?? ""
                sections[section]?[lastKey] = previous.isEmpty ? String(trimmed) : previous + "\n" + trimmed
                continue
            }
            if trimmed.hasPrefix("[") {
                guard trimmed.hasSuffix("]"), trimmed.count >= 2 else {
                    throw InstallTreeError.malformed(file: file, reason: "line \(count): unclosed section header")
                }
                let name = String(trimmed.dropFirst().dropLast())
                section = name
                lastKey = nil
                if sections[name] == nil { sections[name] = [:] }
                continue
            }
            guard let section else {
                throw InstallTreeError.malformed(file: file, reason: "line \(count): a key before any [section]")
            }
            guard let separator = trimmed.firstIndex(where: { $0 == "=" || $0 == ":" }) else {
                throw InstallTreeError.malformed(file: file, reason: "line \(count): no '=' in '\(trimmed.prefix(80))'")
            }
            let key = trimmed[..<separator].trimmingBlanks().lowercased()
            let value = trimmed[trimmed.index(after: separator)...].trimmingBlanks()
            sections[section]?[key] = String(value)
            lastKey = key
        }
        self.sections = sections
    }

    func value(_ section: String, _ key: String) -> String? {
        guard let value = sections[section]?[key.lowercased()] else { return nil }
        return value
    }

    /// A non-empty value.
    func nonEmpty(_ section: String, _ key: String) -> String? {
        guard let value = value(section, key), !value.isEmpty else { return nil }
        return value
    }

    /// `family`: `[general]` in treeinfo 1.0; productmd 1.x keeps `[general]` for compatibility
    /// and adds `[release] name`.
    var family: String? { nonEmpty("general", "family") ?? nonEmpty("release", "name") }
    var version: String? { nonEmpty("general", "version") ?? nonEmpty("release", "version") }
    var name: String? {
        nonEmpty("general", "name")
            ?? nonEmpty("release", "name").map { name in version.map { "\(name) \($0)" } ?? name }
    }
    var arch: String? { nonEmpty("general", "arch") ?? nonEmpty("tree", "arch") }
}

/// SUSE's `content` file: `KEY value` lines (virt-install's `_SUSEContent`).
struct SUSEContent: Sendable, Equatable {
    var fields: [String: String] = [:]

    init(text: String) {
        for line in text.split(separator: "\n") {
            for key in ["LABEL", "DISTRO", "VERSION", "BASEARCHS", "DEFAULTBASE", "REPOID"]
            where line.hasPrefix(key + " ") {
                fields[key] = String(line.dropFirst(key.count + 1)).trimmingBlanks()
            }
        }
    }

    /// `BASEARCHS`/`DEFAULTBASE`, else the last part of `REPOID`; `i586-x86_64` (openSUSE 13.2) is x86_64.
    var treeArch: String? {
        var arch = fields["BASEARCHS"] ?? fields["DEFAULTBASE"]
        if arch == nil, let repo = fields["REPOID"], let last = repo.split(separator: "/").last {
            arch = String(last)
        }
        guard var arch, !arch.isEmpty else { return nil }
        if arch.contains("i586-x86_64") { arch = "x86_64" }
        return arch
    }

    /// `LABEL`, else the name after the comma in `DISTRO cpe:/o:opensuse:opensuse:13.2,openSUSE`.
    var productName: String? {
        if let label = fields["LABEL"] { return label }
        if let distro = fields["DISTRO"], let comma = distro.lastIndex(of: ",") {
            return String(distro[distro.index(after: comma)...])
        }
        return nil
    }

    /// `VERSION 10.4-0` → `10.4`; the CPE's version when there is no VERSION; for SLE the release
    /// and service pack from the label (`… Server 11 SP4` → `11.4`).
    var productVersion: String? {
        guard let productName else { return nil }
        var version = fields["VERSION"] ?? ""
        if let dash = version.firstIndex(of: "-") { version = String(version[..<dash]) }
        if version.isEmpty, let distro = fields["DISTRO"], distro.lowercased().contains("opensuse"),
            let comma = distro.lastIndex(of: ",")
        {
            let cpe = distro[..<comma].split(separator: ":")
            if cpe.count >= 5 { version = String(cpe[4]) }
        }
        if productName.contains("Enterprise") || productName.contains("SLES") {
            let words = productName.split(separator: " ")
            if words.count > 4 {
                version = String(words[4])
                if words.count > 5, words[5].count >= 3 {
                    version += "." + String(words[5].dropFirst(2))
                }
            }
        }
        version = version.trimmingBlanks()
        return version.isEmpty ? nil : version
    }
}

extension StringProtocol {
    func trimmingBlanks() -> String {
        var view = Substring(self)
        while let first = view.first, first.isWhitespace { view = view.dropFirst() }
        while let last = view.last, last.isWhitespace { view = view.dropLast() }
        return String(view)
    }
}
