import BerthHost
import BerthModel
import Foundation
import Testing

@testable import BerthServer

/// berthd's install media server: trees and ISOs registered with `berth media add`, served to
/// guests without the API token on a listener of its own, with ranges, never outside their root,
/// and only to requests that name the listener (no DNS rebinding).
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
        // A tree with symlinks out of it to a secret and to the state directory (itself never
        // media: see MediaLibraryTests).
        let scratch = try DaemonStartupTests.scratch()
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let tree = scratch + "/tree"
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
            // No token on the media listener: a guest has none.
            let info = try RawHTTP.request(port: daemon.mediaPort, "GET", "/install/\(media)/.treeinfo")
            #expect(info.status == 200)
            #expect(info.body == treeinfo)
            #expect(info.headers["content-type"]?.hasPrefix("text/plain") == true)
            let whole = try RawHTTP.request(port: daemon.mediaPort, "GET", "/install/\(media)/images/pxeboot/initrd.img")
            #expect(whole.status == 200 && whole.body == initrd, "\(media): \(whole.body.count) of \(initrd.count) bytes")
            let range = try RawHTTP.request(
                port: daemon.mediaPort, "GET", "/install/\(media)/images/pxeboot/initrd.img", headers: ["Range": "bytes=1000-1999"])
            #expect(range.status == 206)
            #expect(range.headers["content-range"] == "bytes 1000-1999/\(initrd.count)")
            #expect(range.body == Array(initrd[1000..<2000]))
            let tail = try RawHTTP.request(
                port: daemon.mediaPort, "GET", "/install/\(media)/images/pxeboot/initrd.img", headers: ["Range": "bytes=-10"])
            #expect(tail.status == 206 && tail.body == Array(initrd.suffix(10)))
            let beyond = try RawHTTP.request(
                port: daemon.mediaPort, "GET", "/install/\(media)/.treeinfo", headers: ["Range": "bytes=999999-"])
            #expect(beyond.status == 416)
            let head = try RawHTTP.request(port: daemon.mediaPort, "HEAD", "/install/\(media)/images/pxeboot/initrd.img")
            #expect(head.status == 200 && head.headers["content-length"] == String(initrd.count) && head.body.isEmpty)
            let listing = try RawHTTP.request(port: daemon.mediaPort, "GET", "/install/\(media)/images/")
            #expect(String(decoding: listing.body, as: UTF8.self).contains("pxeboot/"))
            #expect(try RawHTTP.request(port: daemon.mediaPort, "GET", "/install/\(media)/missing").status == 404)
            for hostile in [
                "/install/\(media)/../../api-token", "/install/\(media)/images/..%2f..%2f.treeinfo", "/install/\(media)/%2e%2e/api-token",
                "/install/\(media)/images%2fpxeboot%2fvmlinuz",
            ] {
                let reply = try RawHTTP.request(port: daemon.mediaPort, "GET", hostile)
                #expect([400, 401, 404].contains(reply.status), "\(hostile) answered \(reply.status)")
                #expect(!String(decoding: reply.body, as: UTF8.self).contains(daemon.token))
            }
        }
        for escape in ["/install/dir/escape", "/install/dir/escape-dir/api-token"] {
            let reply = try RawHTTP.request(port: daemon.mediaPort, "GET", escape)
            #expect(reply.status == 400 || reply.status == 404, "\(escape) answered \(reply.status)")
            #expect(!String(decoding: reply.body, as: UTF8.self).contains("secret"))
        }
        #expect(try RawHTTP.request(port: daemon.mediaPort, "GET", "/install/nothing/.treeinfo").status == 404)

        // The CLI's tree sources over the same media: HTTP (with its size cap) and the ISO file.
        let http = try HTTPInstallTree(location: "http://127.0.0.1:\(daemon.mediaPort)/install/iso/")
        let overHTTP = try await InstallTree.recognize(http)
        let overISO = try await InstallTree.recognize(try ISOInstallTree(path: InstallFixture.iso))
        let directory = LocalDirectoryInstallTree(root: InstallFixture.tree)
        let overDirectory = try await InstallTree.recognize(directory)
        #expect(overHTTP.name == overDirectory.name && overISO.name == overDirectory.name)
        let kernelOverHTTP = try await overHTTP.resolveKernel(in: http)
        #expect(try await kernelOverHTTP == overDirectory.resolveKernel(in: directory))
        await #expect(throws: InstallTreeError.fileTooLarge(path: "images/pxeboot/initrd.img", limit: 1000)) {
            try await http.fetch("images/pxeboot/initrd.img", limit: 1000)
        }
        #expect(try await http.fetch("missing.txt", limit: 1000) == nil)
        #expect(try await http.exists("images/pxeboot/vmlinuz"))
        await #expect(throws: InstallTreeError.self) { try await http.fetch("../api-token", limit: 1000) }

        // Kickstarts, and the API itself still needs the token.
        try FileManager.default.createDirectory(atPath: state + "/kickstarts", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: InstallFixture.kickstart("a.ks"), toPath: state + "/kickstarts/a.ks")
        let ks = try RawHTTP.request(port: daemon.mediaPort, "GET", "/kickstarts/a.ks")
        #expect(ks.status == 200 && String(decoding: ks.body, as: UTF8.self).contains("#berth.marker alpha"))
        #expect(try RawHTTP.request(port: daemon.mediaPort, "GET", "/kickstarts/../api-token").status != 200)
        // The media listener serves media only, and the API listener no media, with or without a token.
        #expect(try RawHTTP.request(port: daemon.mediaPort, "GET", "/v1/domains").status == 404)
        #expect(try RawHTTP.request(port: daemon.mediaPort, "GET", "/v1/host", headers: ["Authorization": "Bearer \(daemon.token)"]).status == 404)
        #expect(try RawHTTP.request(port: daemon.port, "GET", "/install/dir/.treeinfo").status == 401)
        #expect(try RawHTTP.request(port: daemon.port, "GET", "/kickstarts/a.ks").status == 401)
        let withToken = ["Authorization": "Bearer \(daemon.token)"]
        #expect(try RawHTTP.request(port: daemon.port, "GET", "/install/dir/.treeinfo", headers: withToken).status == 404)
        #expect(try RawHTTP.request(port: daemon.port, "GET", "/kickstarts/a.ks", headers: withToken).status == 404)
        for sneaky in ["/install/x/../../v1/domains", "/install/../v1/host", "/kickstarts/..%2fv1%2fhost", "/install/x/%2e%2e/%2e%2e/v1/host"] {
            let reply = try RawHTTP.request(port: daemon.mediaPort, "GET", sneaky)
            #expect([400, 404].contains(reply.status), "\(sneaky) answered \(reply.status)")
            #expect(!String(decoding: reply.body, as: UTF8.self).contains("\"domains\""))
        }
        #expect(try RawHTTP.request(port: daemon.mediaPort, "POST", "/install/dir/.treeinfo").status != 200)
        // GET /v1/host tells clients where media are.
        let host = try await daemon.client.host()
        #expect(host.mediaPort == daemon.mediaPort)
        #expect(host.mediaAddress == "127.0.0.1:\(daemon.mediaPort)")
    }

    /// DNS rebinding: a page on evil.example whose name now resolves to 127.0.0.1 sends its own
    /// name in Host. Only the listener's own names are served.
    @Test func mediaRequestsMustNameTheListener() async throws {
        let daemon = try await TestDaemon()
        defer { daemon.tearDown() }
        let state = daemon.stateDirectory
        try FileManager.default.createDirectory(atPath: state + "/kickstarts", withIntermediateDirectories: true)
        try "rootpw secret\n".write(toFile: state + "/kickstarts/k.ks", atomically: true, encoding: .utf8)
        let port = daemon.mediaPort
        for good in ["127.0.0.1:\(port)", "localhost:\(port)", "LOCALHOST:\(port)", "[::1]:\(port)", "10.0.2.2:\(port)", "127.0.0.1"] {
            let reply = try RawHTTP.request(port: port, "GET", "/kickstarts/k.ks", headers: ["Host": good])
            #expect(reply.status == 200, "Host: \(good) answered \(reply.status)")
        }
        for bad in [
            "evil.example:\(port)", "evil.example", "127.0.0.1.evil.example:\(port)", "127.0.0.1:\(port + 1)", "localhost:80", "[::1]x",
            "10.0.2.2:\(port)@evil",
        ] {
            let reply = try RawHTTP.request(port: port, "GET", "/kickstarts/k.ks", headers: ["Host": bad])
            let text = String(decoding: reply.body, as: UTF8.self)
            #expect(reply.status == 421, "Host: \(bad) answered \(reply.status)")
            #expect(!text.contains("rootpw"))
            if reply.status == 421 { #expect(text.contains("does not serve the host")) }
        }
    }

    /// Symlinks inside a served tree or the kickstart directory are never followed, whether they
    /// were there from the start or swapped in after a first request.
    @Test func symlinksOutOfTheRootAreNeverServed() async throws {
        let daemon = try await TestDaemon()
        defer { daemon.tearDown() }
        let state = daemon.stateDirectory
        let secretPath = "/tmp/berth-secret-\(UUID().uuidString.prefix(8))"
        try "TOP-SECRET-OUTSIDE\n".write(toFile: secretPath, atomically: true, encoding: .utf8)
        defer { unlink(secretPath) }
        let tree = state + "/tree"
        try FileManager.default.createDirectory(atPath: tree + "/images", withIntermediateDirectories: true)
        try "plain\n".write(toFile: tree + "/images/file.txt", atomically: true, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: tree + "/link.txt", withDestinationPath: secretPath)
        try FileManager.default.createSymbolicLink(atPath: tree + "/tmp", withDestinationPath: "/tmp")
        #expect(try await BerthRun.run(["media", "add", "t", tree], state: state).status == 0)
        let port = daemon.mediaPort
        func expectNothingOutside(_ path: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
            let reply = try RawHTTP.request(port: port, "GET", path)
            #expect([403, 404].contains(reply.status), "\(path) answered \(reply.status)", sourceLocation: sourceLocation)
            #expect(!String(decoding: reply.body, as: UTF8.self).contains("TOP-SECRET"), sourceLocation: sourceLocation)
        }
        try expectNothingOutside("/install/t/link.txt")
        try expectNothingOutside("/install/t/tmp/" + (secretPath as NSString).lastPathComponent)
        // Listings leave symlinks out.
        try FileManager.default.createSymbolicLink(atPath: tree + "/images/link.txt", withDestinationPath: secretPath)
        try FileManager.default.createSymbolicLink(atPath: tree + "/images/tmp", withDestinationPath: "/tmp")
        let listing = String(decoding: try RawHTTP.request(port: port, "GET", "/install/t/images/").body, as: UTF8.self)
        #expect(listing == "file.txt\n", "\(listing)")

        // Served once, then the file and then its directory are swapped for symlinks out.
        #expect(try RawHTTP.request(port: port, "GET", "/install/t/images/file.txt").status == 200)
        unlink(tree + "/images/file.txt")
        try FileManager.default.createSymbolicLink(atPath: tree + "/images/file.txt", withDestinationPath: secretPath)
        try expectNothingOutside("/install/t/images/file.txt")
        try FileManager.default.removeItem(atPath: tree + "/images")
        try FileManager.default.createSymbolicLink(atPath: tree + "/images", withDestinationPath: "/tmp")
        try expectNothingOutside("/install/t/images/" + (secretPath as NSString).lastPathComponent)

        // Kickstarts: a symlinked file, and a symlinked kickstart directory.
        try FileManager.default.createDirectory(atPath: state + "/kickstarts", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: state + "/kickstarts/x.ks", withDestinationPath: secretPath)
        try expectNothingOutside("/kickstarts/x.ks")
        try FileManager.default.removeItem(atPath: state + "/kickstarts")
        try FileManager.default.createSymbolicLink(atPath: state + "/kickstarts", withDestinationPath: "/tmp")
        try expectNothingOutside("/kickstarts/" + (secretPath as NSString).lastPathComponent)
    }

    /// A download in progress keeps reading the file it opened: renaming a symlink over the path
    /// mid-transfer serves none of the link's target (every chunk is a pread on one descriptor).
    @Test func aDownloadInProgressIsNotRedirectedBySwappingThePath() async throws {
        let daemon = try await TestDaemon()
        defer { daemon.tearDown() }
        let state = daemon.stateDirectory
        let secretPath = "/tmp/berth-secret-\(UUID().uuidString.prefix(8))"
        try Data(repeating: UInt8(ascii: "S"), count: 40 << 20).write(to: URL(fileURLWithPath: secretPath))
        defer { unlink(secretPath) }
        let tree = state + "/tree"
        try FileManager.default.createDirectory(atPath: tree, withIntermediateDirectories: true)
        let size = 40 << 20
        try Data(repeating: UInt8(ascii: "A"), count: size).write(to: URL(fileURLWithPath: tree + "/big.img"))
        #expect(try await BerthRun.run(["media", "add", "t", tree], state: state).status == 0)

        let body = try RawHTTP.streaming(port: daemon.mediaPort, "/install/t/big.img", pauseAfter: 64 << 10) {
            // The server has sent at most what the socket buffers hold; swap the path now.
            try? FileManager.default.createSymbolicLink(atPath: tree + "/swap", withDestinationPath: secretPath)
            rename(tree + "/swap", tree + "/big.img")
        }
        #expect(body.count == size, "\(body.count) of \(size) bytes")
        #expect(!body.contains(UInt8(ascii: "S")), "bytes of the symlink's target were served")
    }
}
