import Foundation

// Fuzz builds compile the Berth modules named in fuzz/targets/*.swift into this module (fuzz/targets/*.swift).
#if canImport(BerthModel)
    import BerthFormats
    import BerthModel
#endif

/// A domain document of any format Berth reads, recognised by its content.
public enum DomainDocument {
    public enum Format: String, Sendable, Equatable, CaseIterable {
        /// Berth's own JSON (`DomainSpec`).
        case json
        /// libvirt domain XML.
        case libvirtXML = "libvirt-xml"
        /// xl or xm domain config.
        case xl

        /// A format as users name it on the command line: `json`, `xml`/`libvirt`, `xl`/`xm`.
        public init?(name: String) {
            switch name.lowercased() {
            case "json", "berth": self = .json
            case "xml", "libvirt", "libvirt-xml", "virsh": self = .libvirtXML
            case "xl", "xm", "xen", "cfg": self = .xl
            default: return nil
            }
        }
    }

    /// Writes `spec` in `format`; each reads back to the same spec.
    public static func write(_ spec: DomainSpec, as format: Format) -> String {
        switch format {
        case .json: DomainJSON.encode(spec)
        case .libvirtXML: LibvirtXML.write(spec)
        case .xl: XLDomain.write(spec)
        }
    }

    /// Recognises the format by content, not file name: `{` starts JSON, `<` starts XML,
    /// anything else is read as an xl/xm config.
    public static func detect(_ text: String) -> Format {
        var rest = Substring(text)
        if rest.hasPrefix("\u{FEFF}") { rest = rest.dropFirst() }
        let first = rest.first(where: { !$0.isWhitespace })
        switch first {
        case "{": return .json
        case "<": return .libvirtXML
        default: return .xl
        }
    }

    /// Parses any domain document.
    /// - Parameters:
    ///   - source: the file name for messages.
    ///   - options: how xl/xm vifs without a bridge are mapped.
    /// - Returns: the spec, what could not be carried over, and the format found.
    /// - Throws: `BerthError(.invalidArgument)` naming the position or JSON field and what to do.
    public static func parse(_ text: String, source: String = "domain", options: XLDomain.Options = XLDomain.Options())
        throws -> (spec: DomainSpec, warnings: [FormatWarning], format: Format)
    {
        try parse(bytes: Array(text.utf8), source: source, options: options)
    }

    public static func parse(
        bytes: [UInt8], source: String = "domain", options: XLDomain.Options = XLDomain.Options()
    ) throws -> (spec: DomainSpec, warnings: [FormatWarning], format: Format) {
        let text = try InputCheck.text(bytes, source: source, what: "a domain document")
        let format = detect(text)
        switch format {
        case .json:
            return (try DomainJSON.decode(bytes, source: source), [], .json)
        case .libvirtXML:
            let result = try LibvirtXML.read(bytes: bytes, source: source)
            return (result.spec, result.warnings, .libvirtXML)
        case .xl:
            let result = try XLDomain.read(bytes: bytes, source: source, options: options)
            return (result.spec, result.warnings, .xl)
        }
    }
}
