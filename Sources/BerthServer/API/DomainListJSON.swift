import BerthModel
import Foundation
import Hummingbird
import NIOCore

/// `GET /v1/domains`' body, written directly: with 10,000 domains `JSONEncoder` with sorted
/// keys was half of berthd's time per request. The bytes are `JSONResponse.encoder`'s exactly
/// (keys sorted, `/` escaped); `DomainListJSONTests` compares the two.
enum DomainListJSON {
    static func response(_ summaries: [DomainSummary]) throws -> Response {
        JSONResponse.make(body: try encode(summaries))
    }

    static func encode(_ summaries: [DomainSummary]) throws -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.reserveCapacity(2 + summaries.count * 150)
        buffer.writeStaticString("[")
        for (index, summary) in summaries.enumerated() {
            if index > 0 { buffer.writeStaticString(",") }
            try write(summary, to: &buffer)
        }
        buffer.writeStaticString("]")
        return buffer
    }

    private static func write(_ summary: DomainSummary, to buffer: inout ByteBuffer) throws {
        buffer.writeStaticString(summary.autostart ? "{\"autostart\":true,\"memory\":" : "{\"autostart\":false,\"memory\":")
        buffer.writeString(String(summary.memory))
        buffer.writeStaticString(",\"name\":")
        try writeString(summary.name, to: &buffer)
        buffer.writeStaticString(",\"state\":")
        try writeString(summary.state.rawValue, to: &buffer)
        buffer.writeStaticString(",\"uuid\":\"")
        buffer.writeString(summary.uuid.uuidString)
        buffer.writeStaticString("\",\"vcpus\":")
        buffer.writeString(String(summary.vcpus))
        buffer.writeStaticString("}")
    }

    /// Printable ASCII without `"`, `\` and `/` is written as it is (every valid domain name);
    /// anything else goes through `JSONResponse.encoder`, so the escaping stays its own.
    private static func writeString(_ text: String, to buffer: inout ByteBuffer) throws {
        let plain = text.utf8.allSatisfy { byte in
            byte >= 0x20 && byte < 0x7F && byte != UInt8(ascii: "\"") && byte != UInt8(ascii: "\\")
                && byte != UInt8(ascii: "/")
        }
        if plain {
            buffer.writeStaticString("\"")
            buffer.writeString(text)
            buffer.writeStaticString("\"")
        } else {
            buffer.writeBytes(try JSONResponse.encoder.encode(text))
        }
    }
}
