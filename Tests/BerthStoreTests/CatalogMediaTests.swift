import BerthModel
import Foundation
import Testing

@testable import BerthStore

/// The media library in the catalog, and migration `v10-media`'s one-time import of the
/// `media.json` older berths kept beside it.
@Suite struct CatalogMediaTests {
    let iso = MediaEntry(name: "centos6", path: "/srv/CentOS-6.iso", kind: .iso)
    let tree = MediaEntry(name: "tree", path: "/srv/tree", kind: .directory)

    @Test func addListReplaceRemove() throws {
        let catalog = try TemporaryCatalog().catalog
        try catalog.addMedia(iso, replace: false)
        try catalog.addMedia(tree, replace: false)
        #expect(try catalog.mediaEntries() == [iso, tree])
        let duplicate = #expect(throws: BerthError.self) {
            try catalog.addMedia(MediaEntry(name: "centos6", path: "/x", kind: .directory), replace: false)
        }
        #expect(duplicate?.code == .alreadyExists && duplicate?.message.contains("/srv/CentOS-6.iso") == true)
        #expect(try catalog.mediaEntries() == [iso, tree], "a refused add changes nothing")
        let other = MediaEntry(name: "centos6", path: "/srv/other.iso", kind: .iso)
        try catalog.addMedia(other, replace: true)
        #expect(try catalog.mediaEntries() == [tree, other])
        #expect(try catalog.mediaEntry(named: "centos6") == other)
        try catalog.removeMedia(named: "tree")
        let missing = #expect(throws: BerthError.self) { try catalog.removeMedia(named: "tree") }
        #expect(missing?.code == .notFound)
        #expect(try catalog.mediaEntries() == [other])
    }

    /// A catalog as berth left it before v10-media, with `media.json` beside it.
    func oldCatalog(mediaJSON: String?) throws -> (directory: String, path: String) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("berth-media-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = directory + "/catalog.sqlite"
        try Catalog.migrator(legacyMedia: LegacyMediaFile(directory: nil)).migrate(SQLiteDatabase(path: path), upTo: "v9-storage2")
        if let mediaJSON { try mediaJSON.write(toFile: directory + "/media.json", atomically: true, encoding: .utf8) }
        return (directory, path)
    }

    @Test func migrationImportsMediaJSONOnceAndKeepsItRenamed() throws {
        let json = #"[{"kind":"iso","name":"centos6","path":"/srv/CentOS-6.iso"},{"kind":"directory","name":"tree","path":"/srv/tree"}]"#
        let (directory, path) = try oldCatalog(mediaJSON: json)
        let catalog = try Catalog(path: path)
        #expect(try catalog.mediaEntries() == [iso, tree])
        #expect(!FileManager.default.fileExists(atPath: directory + "/media.json"))
        #expect(try String(contentsOfFile: directory + "/media.json.imported", encoding: .utf8) == json)
        // Once: a media.json appearing later is not read again.
        try catalog.removeMedia(named: "tree")
        try json.write(toFile: directory + "/media.json", atomically: true, encoding: .utf8)
        #expect(try Catalog(path: path).mediaEntries() == [iso])
        #expect(FileManager.default.fileExists(atPath: directory + "/media.json"))
    }

    @Test func withoutMediaJSONTheLibraryStartsEmpty() throws {
        let (directory, path) = try oldCatalog(mediaJSON: nil)
        #expect(try Catalog(path: path).mediaEntries().isEmpty)
        #expect(!FileManager.default.fileExists(atPath: directory + "/media.json.imported"))
    }

    @Test(arguments: ["not json", #"[{"kind":"floppy","name":"a","path":"/a"}]"#, #"[{"kind":"iso","name":"../x","path":"/a"}]"#])
    func anUnreadableMediaJSONStopsTheMigrationAndChangesNothing(_ text: String) throws {
        let (directory, path) = try oldCatalog(mediaJSON: text)
        let error = #expect(throws: BerthError.self) { try Catalog(path: path) }
        #expect(error?.message.contains(directory + "/media.json") == true)
        #expect(error?.remedy?.contains("Move") == true)
        #expect(try String(contentsOfFile: directory + "/media.json", encoding: .utf8) == text)
        let applied = try SQLiteDatabase(path: path).read { db in
            try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations")
        }
        #expect(!applied.contains("v10-media") && applied.contains("v9-storage2"))
        // Moved away, berthd starts with an empty library.
        try FileManager.default.moveItem(atPath: directory + "/media.json", toPath: directory + "/media.json.bad")
        #expect(try Catalog(path: path).mediaEntries().isEmpty)
    }
}
