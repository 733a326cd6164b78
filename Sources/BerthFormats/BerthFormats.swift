// Fuzz builds compile BerthModel's sources into this module (fuzz/targets/*.swift).
#if canImport(BerthModel)
    import BerthModel
#endif

/// Berth's text formats: xm/xl domain configs, xend-config.sxp, libvirt domain XML,
/// kickstart files and format detection. Everything here is pure: functions take the
/// text (or bytes) a caller read and return values or throw `BerthError`.
public enum BerthFormats {
    /// Largest document any reader accepts. Real domain configs and kickstarts are a few
    /// KiB; a cap keeps a hostile or mistaken file (a disk image passed by accident) from
    /// costing memory and time.
    public static let maxDocumentBytes = 4 * 1024 * 1024
    /// Deepest nesting of lists, parentheses or XML elements any reader accepts; the
    /// recursive readers would otherwise overflow the stack on `[[[[…`.
    public static let maxNesting = 64
}

/// A place in a document: 1-based line and column (columns count bytes).
public struct TextPosition: Sendable, Equatable, Hashable, CustomStringConvertible {
    public var line: Int
    public var column: Int
    public init(line: Int, column: Int) {
        self.line = line
        self.column = column
    }
    public var description: String { "\(line):\(column)" }
}

/// Something an importer noticed and could not carry over exactly: it reaches the user
/// as a warning line (`file:3:1: vif 'rate=…' is ignored …`).
public struct FormatWarning: Sendable, Equatable, CustomStringConvertible {
    public var position: TextPosition?
    public var message: String
    public init(_ message: String, at position: TextPosition? = nil) {
        self.message = message
        self.position = position
    }
    public var description: String {
        guard let position else { return message }
        return "line \(position.line): \(message)"
    }
}

public enum InputCheck {
    /// Checks size, NUL bytes and UTF-8 before any parsing, so every reader rejects a
    /// binary or oversized file the same way, with the position of the first bad byte.
    public static func text(_ bytes: [UInt8], source: String, what: String) throws -> String {
        guard bytes.count <= BerthFormats.maxDocumentBytes else {
            throw BerthError(
                .invalidArgument,
                "\(source): \(bytes.count) bytes is too large for \(what) (the limit is \(BerthFormats.maxDocumentBytes / 1_048_576) MiB).",
                remedy: "Check that this is the right file; \(what) files are a few KiB.")
        }
        var line = 1
        var column = 1
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            if byte == 0 {
                throw BerthError(
                    .invalidArgument, "\(source):\(line):\(column): NUL byte in \(what).",
                    remedy: "This looks like a binary file; give the text file instead.")
            }
            var length = 1
            if byte >= 0x80 {
                length = utf8SequenceLength(bytes, at: index)
                if length == 0 {
                    throw BerthError(
                        .invalidArgument,
                        "\(source):\(line):\(column): invalid UTF-8 byte 0x\(String(byte, radix: 16)) in \(what).",
                        remedy: "Convert the file to UTF-8 (for example with 'iconv -f latin1 -t utf-8').")
                }
            }
            if byte == 0x0A {
                line += 1
                column = 1
            } else {
                column += length
            }
            index += length
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func text(_ string: String, source: String, what: String) throws -> String {
        try text(Array(string.utf8), source: source, what: what)
    }

    /// Length of a valid UTF-8 sequence starting at `index`, or 0.
    static func utf8SequenceLength(_ bytes: [UInt8], at index: Int) -> Int {
        let first = bytes[index]
        let length: Int
        var minimum: UInt32
        var scalar: UInt32
        switch first {
        case 0xC2...0xDF: (length, minimum, scalar) = (2, 0x80, UInt32(first & 0x1F))
        case 0xE0...0xEF: (length, minimum, scalar) = (3, 0x800, UInt32(first & 0x0F))
        case 0xF0...0xF4: (length, minimum, scalar) = (4, 0x10000, UInt32(first & 0x07))
        default: return 0
        }
        guard index + length <= bytes.count else { return 0 }
        for offset in 1..<length {
            let next = bytes[index + offset]
            guard next & 0xC0 == 0x80 else { return 0 }
            scalar = scalar << 6 | UInt32(next & 0x3F)
        }
        guard scalar >= minimum, scalar <= 0x10FFFF, !(0xD800...0xDFFF).contains(scalar) else { return 0 }
        return length
    }
}

extension BerthError {
    /// A malformed-input error in the `source:line:column: message` shape editors jump to.
    public static func syntax(_ source: String, _ position: TextPosition, _ message: String, remedy: String) -> BerthError {
        BerthError(.invalidArgument, "\(source):\(position.line):\(position.column): \(message)", remedy: remedy)
    }
}
