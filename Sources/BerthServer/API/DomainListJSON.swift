import BerthModel
import FoundationEssentials
import Glibc
import Hummingbird
import NIOCore

/// `GET /v1/domains`' body, written directly: with 10,000 domains `JSONEncoder` with sorted
/// keys was half of berthd's time per request. The bytes are `JSONResponse.encoder`'s exactly
/// (keys sorted, `/` escaped); `DomainListJSONTests` compares the two.
enum DomainListJSON {
    static func response(_ summaries: [DomainSummary]) throws -> Response {
        JSONResponse.make(body: try encode(summaries))
    }

    /// The body is put together as one `String` (appends are the standard library's) and
    /// copied into a `ByteBuffer` once.
    static func encode(_ summaries: [DomainSummary]) throws -> ByteBuffer {
        var text = "["
        text.reserveCapacity(2 + summaries.count * 150)
        for (index, summary) in summaries.enumerated() {
            if index > 0 { text += "," }
            try write(summary, to: &text)
        }
        text += "]"
        return ByteBuffer(string: text)
    }

    private static func write(_ summary: DomainSummary, to text: inout String) throws {
        text += summary.autostart ? #"{"autostart":true,"memory":"# : #"{"autostart":false,"memory":"#
        text += String(summary.memory)
        text += #","name":"#
        try writeString(summary.name, to: &text)
        text += #","state":"#
        try writeString(summary.state.rawValue, to: &text)
        text += #","uuid":""#
        text += summary.uuid.uuidString
        text += #"","vcpus":"#
        text += String(summary.vcpus)
        text += "}"
    }

    /// Printable ASCII without `"`, `\` and `/` is written as it is (every valid domain name);
    /// anything else goes through `JSONResponse.encoder`, so the escaping stays its own.
    private static func writeString(_ string: String, to text: inout String) throws {
        let plain = string.utf8.allSatisfy { byte in
            byte >= 0x20 && byte < 0x7F && byte != UInt8(ascii: "\"") && byte != UInt8(ascii: "\\")
                && byte != UInt8(ascii: "/")
        }
        if plain {
            text += "\""
            text += string
            text += "\""
        } else {
            text += String(decoding: try JSONResponse.encoder.encode(string), as: UTF8.self)
        }
    }
}
