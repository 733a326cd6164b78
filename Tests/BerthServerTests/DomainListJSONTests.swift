import BerthModel
import Foundation
import NIOCore
import Testing

@testable import BerthServer

/// `GET /v1/domains`' hand-written body is byte for byte what `JSONResponse.encoder` writes.
@Suite struct DomainListJSONTests {
    @Test func bodyIsTheEncodersBytes() throws {
        // Names outside the domain-name alphabet cannot be defined, but the writer must still
        // escape them as the encoder does.
        let names = ["devel1", "a.b_c-9", "with/slash", "quote\"back\\slash", "tab\tnew\nline", "ünïcode", "\u{1}ctl", ""]
        var summaries: [DomainSummary] = []
        for (index, name) in names.enumerated() {
            let state = DomainState.allCases[index % DomainState.allCases.count]
            summaries.append(
                DomainSummary(
                    name: name, uuid: UUID(), state: state, memory: 128 << index, vcpus: index + 1,
                    autostart: index % 2 == 0))
        }
        for list in [[], Array(summaries.prefix(1)), summaries] {
            let expected = try JSONResponse.encoder.encode(list)
            let written = try DomainListJSON.encode(list)
            #expect(Data(written.readableBytesView) == expected, "\(String(decoding: expected, as: UTF8.self))")
        }
    }
}
