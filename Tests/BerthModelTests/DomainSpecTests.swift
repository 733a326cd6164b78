import Foundation
import Testing

@testable import BerthModel

@Suite struct DomainSpecTests {
    @Test func minimalJSONGetsDefaults() throws {
        let json = Data(#"{"name":"demo","kernel":"/k"}"#.utf8)
        let spec = try JSONDecoder().decode(DomainSpec.self, from: json)
        #expect(spec.memory == 256)
        #expect(spec.vcpus == 1)
        #expect(spec.onReboot == .restart)
        try spec.validate()
    }

    @Test(arguments: ["", "-x", "a b", "a/b", String(repeating: "a", count: 65)])
    func badNamesAreRefused(name: String) {
        #expect(throws: BerthError.self) { try DomainSpec.validateName(name) }
    }

    @Test func duplicateMACInOneDomainIsRefused() throws {
        let mac = try #require(MACAddress("00:0C:29:1A:98:D5"))
        let spec = DomainSpec(name: "d", kernel: "/k", nics: [NICSpec(mac: mac), NICSpec(mac: mac)])
        #expect(throws: BerthError.self) { try spec.validate() }
    }

    @Test(arguments: [("1200", 1200), ("512M", 512), ("1.5G", 1536), ("2GiB", 2048), ("1048576k", 1024)])
    func sizes(text: String, mib: Int) {
        #expect(SizeParser.mebibytes(text) == mib)
    }

    @Test func macRoundTrip() throws {
        let mac = try #require(MACAddress("00:0C:29:1A:98:D5"))
        #expect(mac.description == "00:0c:29:1a:98:d5")
        #expect(MACAddress("00:0C:29:1A:98") == nil)
        #expect(MACAddress.random().bytes.prefix(3).elementsEqual(MACAddress.qemuPrefix))
    }
}
