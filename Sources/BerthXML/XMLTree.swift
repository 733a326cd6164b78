import Foundation

// Fuzz builds compile the Berth modules named in fuzz/targets/*.swift into this module (fuzz/targets/*.swift).
#if canImport(BerthModel)
    import BerthFormats
    import BerthModel
#endif

#if canImport(FoundationXML)
    import FoundationXML
#endif

/// A parsed XML element: enough of a DOM for libvirt documents.
final class XMLNode {
    let name: String
    let attributes: [String: String]
    let position: TextPosition
    var children: [XMLNode] = []
    var text = ""

    init(name: String, attributes: [String: String], position: TextPosition) {
        self.name = name
        self.attributes = attributes
        self.position = position
    }

    /// The name without a namespace prefix (`berth:note` → `note`).
    var localName: String { name.split(separator: ":").last.map(String.init) ?? name }
    var trimmedText: String { text.trimmingCharacters(in: .whitespacesAndNewlines) }
    func child(_ name: String) -> XMLNode? { children.first { $0.name == name } }
    func all(_ name: String) -> [XMLNode] { children.filter { $0.name == name } }
}

/// Builds `XMLNode`s with Foundation's `XMLParser` (libxml2 underneath): no hand-written XML.
private final class TreeBuilder: NSObject, XMLParserDelegate {
    var stack: [XMLNode] = []
    var root: XMLNode?
    var failure: BerthError?
    let source: String

    init(source: String) { self.source = source }

    func parser(
        _ parser: XMLParser, didStartElement elementName: String, namespaceURI: String?, qualifiedName qName: String?,
        attributes attributeDict: [String: String] = [:]
    ) {
        let position = TextPosition(line: parser.lineNumber, column: parser.columnNumber)
        guard stack.count < BerthFormats.maxNesting else {
            failure = .syntax(
                source, position, "elements nested deeper than \(BerthFormats.maxNesting) levels.",
                remedy: "libvirt domain XML nests about five levels; check that this is a domain document.")
            parser.abortParsing()
            return
        }
        let node = XMLNode(name: elementName, attributes: attributeDict, position: position)
        if let parent = stack.last {
            parent.children.append(node)
        } else if root == nil {
            root = node
        }
        stack.append(node)
    }

    func parser(_ parser: XMLParser, didEndElement elementName: String, namespaceURI: String?, qualifiedName qName: String?) {
        _ = stack.popLast()
    }

    func parser(_ parser: XMLParser, foundCharacters string: String) {
        stack.last?.text += string
    }

    func parser(_ parser: XMLParser, foundCDATA CDATABlock: Data) {
        stack.last?.text += String(decoding: CDATABlock, as: UTF8.self)
    }
}

enum XMLTree {
    static func parse(_ bytes: [UInt8], source: String) throws -> XMLNode {
        let text = try InputCheck.text(bytes, source: source, what: "an XML document")
        // Entity declarations are how XML bombs and external-entity reads work
        // (billion laughs, XXE); libvirt documents never have a DTD.
        if let range = text.range(of: "<!DOCTYPE", options: .caseInsensitive) ?? text.range(of: "<!ENTITY") {
            let prefix = text[..<range.lowerBound]
            let line = prefix.filter { $0 == "\n" }.count + 1
            throw BerthError.syntax(
                source, TextPosition(line: line, column: 1), "XML DOCTYPE or ENTITY declarations are not accepted.",
                remedy: "libvirt domain XML has no DTD; remove the <!DOCTYPE …> block.")
        }
        // Processing instructions other than the XML declaration are refused before parsing:
        // swift-corelibs-foundation's XMLParser calls strlen on a PI's data, which is NULL for
        // `<?name?>`, and crashes (found by fuzz/targets/LibvirtXML.swift).
        var line = 1
        var column = 1
        var index = 0
        var seenContent = false
        while index < bytes.count {
            let byte = bytes[index]
            if byte == 0x3C, index + 1 < bytes.count, bytes[index + 1] == 0x3F {
                let declaration =
                    !seenContent && index + 5 < bytes.count && bytes[index + 2] == 0x78 && bytes[index + 3] == 0x6D
                    && bytes[index + 4] == 0x6C && [0x20, 0x09, 0x0A, 0x0D].contains(bytes[index + 5])
                if !declaration {
                    throw BerthError.syntax(
                        source, TextPosition(line: line, column: column), "XML processing instructions ('<?…?>') are not accepted here.",
                        remedy: "libvirt domain XML has at most an <?xml version=\"1.0\"?> declaration on its first line; remove the others.")
                }
            }
            if byte == 0x0A {
                line += 1
                column = 1
            } else {
                column += 1
            }
            if !(byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D || (index < 3 && [0xEF, 0xBB, 0xBF][index] == byte)) {
                seenContent = true
            }
            index += 1
        }
        let parser = XMLParser(data: Data(bytes))
        parser.shouldResolveExternalEntities = false
        parser.shouldProcessNamespaces = false
        let builder = TreeBuilder(source: source)
        parser.delegate = builder
        let ok = parser.parse()
        if let failure = builder.failure { throw failure }
        if ok, let open = builder.stack.last {
            // libxml2 in push mode can stop at the end of input without complaining.
            throw BerthError.syntax(
                source, open.position, "malformed XML: <\(open.name)> is never closed.",
                remedy: "Add </\(open.name)> (the file may have been cut short).")
        }
        guard ok, let root = builder.root else {
            let position = TextPosition(line: max(parser.lineNumber, 1), column: max(parser.columnNumber, 1))
            let detail = (parser.parserError as NSError?).map { "XML error \($0.code)" } ?? "no root element"
            throw BerthError.syntax(
                source, position, "malformed XML (\(detail)).",
                remedy: "Check that every element is closed and every attribute value is quoted; 'xmllint --noout FILE' shows the exact problem.")
        }
        return root
    }
}

/// XML text escaping for element content and attribute values.
enum XMLEscape {
    static func text(_ value: String) -> String {
        var out = ""
        out.reserveCapacity(value.utf8.count)
        for scalar in value.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            case "\n", "\t", "\r": out += "&#\(scalar.value);"
            default:
                // XML 1.0 cannot carry other control characters at all.
                if scalar.value < 0x20 || (0xFFFE...0xFFFF).contains(scalar.value) {
                    out += "\u{FFFD}"
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out
    }
}
