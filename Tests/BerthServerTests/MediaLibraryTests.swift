import BerthModel
import Foundation
import Testing

@testable import BerthStore

/// The media library lives in berthd's catalog: `berth media` goes through `/v1/media` (so it
/// works with `--connect`), the media listener and the web console read the catalog, and the
/// `media.json` an older berth wrote is imported once by migration `v10-media`.
@Suite(.serialized) struct MediaLibraryTests {
    func list(_ daemon: TestDaemon, _ extra: [String] = []) async throws -> [String] {
        let listed = try await BerthRun.run(["media", "list", "--json"] + extra, state: daemon.stateDirectory)
        #expect(listed.status == 0, "\(listed.stderr)")
        struct Row: Decodable { var name, kind, path: String }
        return try JSONDecoder().decode([Row].self, from: Data(listed.stdout.utf8)).map { "\($0.name) \($0.kind) \($0.path)" }
    }

    @Test func addListRemoveThroughTheAPIAndOverConnect() async throws {
        try InstallFixture.require()
        let daemon = try await TestDaemon()
        defer { daemon.tearDown() }
        let state = daemon.stateDirectory
        let connect = ["--connect", "http://127.0.0.1:\(daemon.port)"]
        let token = ["BERTH_TOKEN": daemon.token]
        let added = try await BerthRun.run(["media", "add", "tree", InstallFixture.tree], state: state)
        #expect(added.status == 0, "\(added.stderr)")
        #expect(added.stdout.contains("--location=http://127.0.0.1:\(daemon.mediaPort)/install/tree/"), "\(added.stdout)")
        // Over TCP with the token, as against another host.
        let remote = try await BerthRun.run(["media", "add"] + connect + ["iso", InstallFixture.iso], state: nil, environment: token)
        #expect(remote.status == 0, "\(remote.stderr)")
        let expected = ["tree directory \(InstallFixture.tree)", "iso iso \(InstallFixture.iso)"]
        #expect(try await list(daemon) == expected)
        #expect(try await list(daemon, connect) == expected)
        #expect(!FileManager.default.fileExists(atPath: state + "/media.json"), "the library is the catalog's, not a file's")

        // What the web console's form reads, and what the media listener serves.
        let media = try RawHTTP.request(port: daemon.port, "GET", "/v1/media", headers: ["Authorization": "Bearer \(daemon.token)"])
        let infos = try JSONDecoder().decode([MediaInfo].self, from: Data(media.body))
        #expect(infos.map(\.name) == ["tree", "iso"])
        #expect(infos.first?.location == "http://127.0.0.1:\(daemon.mediaPort)/install/tree/")
        for name in ["tree", "iso"] {
            #expect(try RawHTTP.request(port: daemon.mediaPort, "GET", "/install/\(name)/.treeinfo").status == 200)
        }

        let removed = try await BerthRun.run(["media", "remove"] + connect + ["iso"], state: nil, environment: token)
        #expect(removed.status == 0 && removed.stdout.contains("Media 'iso' removed."), "\(removed.stderr)")
        #expect(try await list(daemon) == ["tree directory \(InstallFixture.tree)"])
        #expect(try RawHTTP.request(port: daemon.mediaPort, "GET", "/install/iso/.treeinfo").status == 404)
        #expect(FileManager.default.fileExists(atPath: InstallFixture.iso), "remove keeps the files")
    }

    @Test func badInputIsRefusedAndChangesNothing() async throws {
        try InstallFixture.require()
        let daemon = try await TestDaemon()
        defer { daemon.tearDown() }
        let state = daemon.stateDirectory
        #expect(try await BerthRun.run(["media", "add", "tree", InstallFixture.tree], state: state).status == 0)
        let before = try await list(daemon)
        let notMedia = state + "/plain.txt"
        try "hello".write(toFile: notMedia, atomically: true, encoding: .utf8)
        // A FIFO would block whoever reads it: refused without being opened.
        let fifo = state + "/fifo"
        #expect(mkfifo(fifo, 0o600) == 0)
        // Guests read media without a token: no directory holding berthd's state or the host's
        // own files, also not through a symlink.
        let link = NSTemporaryDirectory() + "berth-media-link-\(getpid())"
        #expect(symlink("/etc", link) == 0)
        defer { unlink(link) }
        let cases: [(arguments: [String], status: Int32, says: String)] = [
            (["tree", InstallFixture.iso], 4, "already registered (\(InstallFixture.tree))"),
            (["other", state + "/missing.iso"], 3, "\(state)/missing.iso does not exist on berthd's host"),
            (["other", notMedia], 2, "neither a directory nor an ISO9660 image"),
            (["other", fifo], 2, "neither a directory nor an ISO9660 image"),
            (["../x", InstallFixture.iso], 2, "is not a media name"),
            (["root", "/"], 2, "holds berthd's state"),
            (["state", state], 2, "holds berthd's state"),
            (["logs", state + "/logs"], 2, "holds berthd's state"),
            (["etc", "/etc"], 2, "holds the host's own files"),
            (["linked", link], 2, "(/etc) is not served as media"),
        ]
        for (arguments, status, says) in cases {
            let result = try await BerthRun.run(["media", "add"] + arguments, state: state)
            #expect(result.status == status, "\(arguments): \(result.status) \(result.stderr)")
            #expect(result.stderr.contains(says), "\(arguments): \(result.stderr)")
        }
        let unknown = try await BerthRun.run(["media", "remove", "nothing"], state: state)
        #expect(unknown.status == 3 && unknown.stderr.contains("No media is registered as 'nothing'"), "\(unknown.stderr)")
        // The CLI makes a relative path absolute; a client that does not is told where paths are.
        let relative = await #expect(throws: BerthError.self) {
            try await daemon.client.addMedia(MediaAddRequest(name: "rel", path: "tree"))
        }
        #expect(relative?.code == .invalidArgument && relative?.message.contains("berthd's host") == true)
        #expect(try await list(daemon) == before)
        // --replace does replace.
        let replaced = try await BerthRun.run(["media", "add", "--replace", "tree", InstallFixture.iso], state: state)
        #expect(replaced.status == 0, "\(replaced.stderr)")
        #expect(try await list(daemon) == ["tree iso \(InstallFixture.iso)"])
    }

    /// An older berth's state directory: a catalog from before v10-media, and media.json.
    @Test func anOldMediaJSONIsImportedOnceAcrossARestart() async throws {
        try InstallFixture.require()
        let daemon = try await TestDaemon()
        defer { daemon.tearDown() }
        let state = daemon.stateDirectory
        daemon.stop()
        // Closed again (all its connections) before berthd starts.
        try SQLiteDatabase(path: state + "/catalog.sqlite").write { db in
            try db.execute(sql: "DROP TABLE media; DELETE FROM grdb_migrations WHERE identifier = 'v10-media'")
        }
        let json = """
            [
              {"kind": "directory", "name": "centos6", "path": "\(InstallFixture.tree)"},
              {"kind": "iso", "name": "iso", "path": "\(InstallFixture.iso)"}
            ]
            """
        try json.write(toFile: state + "/media.json", atomically: true, encoding: .utf8)
        try await daemon.start()
        let expected = ["centos6 directory \(InstallFixture.tree)", "iso iso \(InstallFixture.iso)"]
        #expect(try await list(daemon) == expected)
        #expect(!FileManager.default.fileExists(atPath: state + "/media.json"))
        #expect(try String(contentsOfFile: state + "/media.json.imported", encoding: .utf8) == json, "kept, renamed")
        #expect(try RawHTTP.request(port: daemon.mediaPort, "GET", "/install/centos6/.treeinfo").status == 200)

        // Once: after a change and another restart, the catalog is what counts.
        #expect(try await BerthRun.run(["media", "remove", "iso"], state: state).status == 0)
        daemon.stop()
        try await daemon.start()
        #expect(try await list(daemon) == ["centos6 directory \(InstallFixture.tree)"])
    }
}
