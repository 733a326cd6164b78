import BerthHost
import BerthModel
import Foundation
import Testing

/// berthd's install media server: trees and ISOs registered with `berth media add`, served to
/// guests without the API token, with ranges, and never outside their root.
@Suite(.serialized) struct MediaServerTests {
    @Test(arguments: ["..", "a/../..", "%2e%2e", "a%2f..%2f..", "a%2fb", "a%5cb", "%00", "%zz"])
    func requestPathsNeverLeaveTheRoot(_ raw: String) {
        #expect(throws: MediaError.self) { try MediaLibrary.components(ofRawPath: raw) }
    }

    @Test func plainPathsDecode() throws {
        #expect(try MediaLibrary.components(ofRawPath: "images//pxeboot/vm%20linuz") == ["images", "pxeboot", "vm linuz"])
    }

    @Test func servesTreesAndISOsWithRangesAndNoToken() async throws {
        try InstallFixture.require()
        let daemon = try await TestDaemon()
        defer { daemon.tearDown() }
        let state = daemon.stateDirectory
        // A tree with a symlink out of it, next to a secret.
        let tree = state + "/tree"
        try FileManager.default.copyItem(atPath: InstallFixture.tree, toPath: tree)
        try "secret".write(toFile: state + "/secret.txt", atomically: true, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: tree + "/escape", withDestinationPath: state + "/secret.txt")
        try FileManager.default.createSymbolicLink(atPath: tree + "/escape-dir", withDestinationPath: state)
        #expect(try await BerthRun.run(["media", "add", "dir", tree], state: state).status == 0)
        #expect(try await BerthRun.run(["media", "add", "iso", InstallFixture.iso], state: state).status == 0)
        let again = try await BerthRun.run(["media", "add", "iso", InstallFixture.iso], state: state)
        #expect(again.status == 4 && again.stderr.contains("already registered"))
        let list = try await BerthRun.run(["media", "list"], state: state)
        #expect(list.stdout.contains("dir") && list.stdout.contains("iso") && list.stdout.contains(InstallFixture.iso))

        let treeinfo = try [UInt8](Data(contentsOf: URL(fileURLWithPath: InstallFixture.tree + "/.treeinfo")))
        let initrd = try [UInt8](Data(contentsOf: URL(fileURLWithPath: InstallFixture.tree + "/images/pxeboot/initrd.img")))
        for media in ["dir", "iso"] {
            // No token on TCP: a guest has none.
            let info = try RawHTTP.request(port: daemon.port, "GET", "/install/\(media)/.treeinfo")
            #expect(info.status == 200)
            #expect(info.body == treeinfo)
            #expect(info.headers["content-type"]?.hasPrefix("text/plain") == true)
            let whole = try RawHTTP.request(port: daemon.port, "GET", "/install/\(media)/images/pxeboot/initrd.img")
            #expect(whole.status == 200 && whole.body == initrd, "\(media): \(whole.body.count) of \(initrd.count) bytes")
            let range = try RawHTTP.request(
                port: daemon.port, "GET", "/install/\(media)/images/pxeboot/initrd.img", headers: ["Range": "bytes=1000-1999"])
            #expect(range.status == 206)
            #expect(range.headers["content-range"] == "bytes 1000-1999/\(initrd.count)")
            #expect(range.body == Array(initrd[1000..<2000]))
            let tail = try RawHTTP.request(
                port: daemon.port, "GET", "/install/\(media)/images/pxeboot/initrd.img", headers: ["Range": "bytes=-10"])
            #expect(tail.status == 206 && tail.body == Array(initrd.suffix(10)))
            let beyond = try RawHTTP.request(
                port: daemon.port, "GET", "/install/\(media)/.treeinfo", headers: ["Range": "bytes=999999-"])
            #expect(beyond.status == 416)
            let head = try RawHTTP.request(port: daemon.port, "HEAD", "/install/\(media)/images/pxeboot/initrd.img")
            #expect(head.status == 200 && head.headers["content-length"] == String(initrd.count) && head.body.isEmpty)
            let listing = try RawHTTP.request(port: daemon.port, "GET", "/install/\(media)/images/")
            #expect(String(decoding: listing.body, as: UTF8.self).contains("pxeboot/"))
            #expect(try RawHTTP.request(port: daemon.port, "GET", "/install/\(media)/missing").status == 404)
            for hostile in ["/install/\(media)/../../api-token", "/install/\(media)/images/..%2f..%2f.treeinfo", "/install/\(media)/%2e%2e/api-token", "/install/\(media)/images%2fpxeboot%2fvmlinuz"] {
                let reply = try RawHTTP.request(port: daemon.port, "GET", hostile)
                #expect([400, 401, 404].contains(reply.status), "\(hostile) answered \(reply.status)")
                #expect(!String(decoding: reply.body, as: UTF8.self).contains(daemon.token))
            }
        }
        for escape in ["/install/dir/escape", "/install/dir/escape-dir/api-token"] {
            let reply = try RawHTTP.request(port: daemon.port, "GET", escape)
            #expect(reply.status == 400 || reply.status == 404, "\(escape) answered \(reply.status)")
            #expect(!String(decoding: reply.body, as: UTF8.self).contains("secret"))
        }
        #expect(try RawHTTP.request(port: daemon.port, "GET", "/install/nothing/.treeinfo").status == 404)

        // The CLI's tree sources over the same media: HTTP (with its size cap) and the ISO file.
        let http = try HTTPInstallTree(location: "http://127.0.0.1:\(daemon.port)/install/iso/")
        let overHTTP = try InstallTree.recognize(http)
        let overISO = try InstallTree.recognize(try ISOInstallTree(path: InstallFixture.iso))
        let overDirectory = try InstallTree.recognize(LocalDirectoryInstallTree(root: InstallFixture.tree))
        #expect(overHTTP.name == overDirectory.name && overISO.name == overDirectory.name)
        #expect(try overHTTP.resolveKernel(in: http) == overDirectory.resolveKernel(in: LocalDirectoryInstallTree(root: InstallFixture.tree)))
        #expect(throws: InstallTreeError.fileTooLarge(path: "images/pxeboot/initrd.img", limit: 1000)) {
            try http.fetch("images/pxeboot/initrd.img", limit: 1000)
        }
        #expect(try http.fetch("missing.txt", limit: 1000) == nil)
        #expect(try http.exists("images/pxeboot/vmlinuz"))
        #expect(throws: InstallTreeError.self) { try http.fetch("../api-token", limit: 1000) }

        // Kickstarts, and the API itself still needs the token.
        try FileManager.default.createDirectory(atPath: state + "/kickstarts", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: InstallFixture.kickstart("a.ks"), toPath: state + "/kickstarts/a.ks")
        let ks = try RawHTTP.request(port: daemon.port, "GET", "/kickstarts/a.ks")
        #expect(ks.status == 200 && String(decoding: ks.body, as: UTF8.self).contains("#berth.marker alpha"))
        #expect(try RawHTTP.request(port: daemon.port, "GET", "/kickstarts/../api-token").status != 200)
        #expect(try RawHTTP.request(port: daemon.port, "GET", "/v1/domains").status == 401)
        // The token exemption cannot be stretched to the API.
        for sneaky in ["/install/x/../../v1/domains", "/install/../v1/host", "/kickstarts/..%2fv1%2fhost", "/install/x/%2e%2e/%2e%2e/v1/host"] {
            let reply = try RawHTTP.request(port: daemon.port, "GET", sneaky)
            #expect(reply.status == 401, "\(sneaky) answered \(reply.status)")
        }
        #expect(try RawHTTP.request(port: daemon.port, "POST", "/install/dir/.treeinfo").status != 200)
    }
}
