#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

func errnoText(_ code: Int32) -> String { String(cString: strerror(code)) }

/// Menu bytes as text: invalid UTF-8 becomes U+FFFD rather than an error, since a title
/// in Latin-1 should not stop a guest from booting.
func menuText(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

/// Lines of a menu, with `\r\n` and `\r` endings handled.
func menuLines(_ bytes: [UInt8]) -> [Substring] {
    menuText(bytes).split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" })
}

extension StringProtocol {
    var trimmedSpaces: Substring {
        var s = self[...]
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return Substring(s)
    }
}

/// Splits on runs of spaces and tabs.
func words<S: StringProtocol>(_ s: S) -> [String] {
    s.split(whereSeparator: { (c: Character) in c == " " || c == "\t" }).map { String($0) }
}

enum BootPath {
    /// Removes a GRUB device prefix: `(hd0,0)/vmlinuz` → `/vmlinuz`, `($root)/boot/x` → `/boot/x`.
    static func stripDevice(_ path: String) -> (device: String?, path: String) {
        guard path.hasPrefix("("), let close = path.firstIndex(of: ")") else { return (nil, path) }
        let device = String(path[path.index(after: path.startIndex)..<close])
        let rest = String(path[path.index(after: close)...])
        return (device, rest.isEmpty ? "/" : rest)
    }

    /// Joins a possibly relative path onto a directory, and normalizes `.`, `..` and `//`.
    static func resolve(_ path: String, relativeTo directory: String) -> String {
        let full = path.hasPrefix("/") ? path : directory + "/" + path
        var parts: [Substring] = []
        for part in full.split(separator: "/") {
            if part == "." { continue }
            if part == ".." {
                if !parts.isEmpty { parts.removeLast() }
                continue
            }
            parts.append(part)
        }
        return "/" + parts.joined(separator: "/")
    }

    static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "/" }
        let dir = String(path[..<slash])
        return dir.isEmpty ? "/" : dir
    }
}
