import BerthDisk
import Foundation
import Testing

/// The images built by `fixtures/disk/build-images.sh` and the source trees they were made from.
enum DiskFixture {
    static let directory: String = {
        if let env = ProcessInfo.processInfo.environment["BERTH_FIXTURES"], !env.isEmpty { return env + "/disk" }
        // <repo>/Tests/BerthDiskTests/DiskFixture.swift → <repo>/fixtures/out/disk
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        return repo.path + "/fixtures/out/disk"
    }()

    /// A missing image fails the test that needs it, with the command that builds it; it never
    /// skips (a plain `swift test` without fixtures must not pass).
    struct Missing: Error, CustomStringConvertible {
        let name: String
        var description: String {
            "The disk fixture \(DiskFixture.directory)/\(name) is missing: run 'fixtures/disk/build-images.sh' (as root: LVM images need loop devices), or 'fixtures/build-all.sh'."
        }
    }

    static func require(_ name: String) throws {
        guard FileManager.default.fileExists(atPath: path(name)) else { throw Missing(name: name) }
    }

    static func path(_ name: String) -> String { directory + "/" + name }

    static func image(_ name: String) throws -> FileSource {
        try require(name)
        return try FileSource(path: path(name))
    }

    static func tree(_ name: String) -> String { directory + "/src-" + name }

    static func bytes(ofFile path: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    /// A whole image in memory, for tests that patch it.
    static func memory(_ name: String) throws -> MemorySource {
        try require(name)
        return MemorySource(try bytes(ofFile: path(name)))
    }

    enum Entry: Equatable {
        case file(String)
        case directory(String)
        case symlink(String, target: String)
    }

    /// Everything under a source tree, depth first, paths relative to the tree ("/boot/grub").
    static func entries(_ root: String) throws -> [Entry] {
        var result: [Entry] = []
        func walk(_ rel: String) throws {
            let names = try FileManager.default.contentsOfDirectory(atPath: root + rel).sorted()
            for name in names {
                let p = rel + "/" + name
                let attrs = try FileManager.default.attributesOfItem(atPath: root + p)
                switch attrs[.type] as? FileAttributeType {
                case .typeSymbolicLink?:
                    result.append(.symlink(p, target: try FileManager.default.destinationOfSymbolicLink(atPath: root + p)))
                case .typeDirectory?:
                    result.append(.directory(p))
                    try walk(p)
                default:
                    result.append(.file(p))
                }
            }
        }
        try walk("")
        return result
    }

    /// The first offset where two byte arrays differ (nil when equal): a readable failure for megabytes.
    static func firstDifference(_ a: [UInt8], _ b: [UInt8]) -> Int? {
        if a == b { return nil }
        return zip(a, b).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(a.count, b.count)
    }

    /// Checks every file, directory and symlink of a filesystem against the tree it was made from.
    static func expectMatches(_ fs: any FileSystem, tree: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let root = Self.tree(tree)
        // mke2fs adds lost+found to the root; everything else must be exactly the tree.
        #expect(
            try fs.list("/").filter { $0 != "lost+found" }.sorted()
                == FileManager.default.contentsOfDirectory(atPath: root).sorted(), sourceLocation: sourceLocation)
        var checked = 0
        for entry in try entries(root) {
            switch entry {
            case .file(let p):
                let expected = try bytes(ofFile: root + p)
                let got = try fs.read(p, limit: 256 << 20)
                #expect(got.count == expected.count, "\(tree)\(p) size", sourceLocation: sourceLocation)
                #expect(firstDifference(got, expected) == nil, "\(tree)\(p) content", sourceLocation: sourceLocation)
                #expect(try fs.stat(p) == FileInfo(kind: .file, size: UInt64(expected.count)), sourceLocation: sourceLocation)
            case .directory(let p):
                let expected = try FileManager.default.contentsOfDirectory(atPath: root + p).sorted()
                #expect(try fs.list(p).sorted() == expected, "\(tree)\(p) listing", sourceLocation: sourceLocation)
                #expect(try fs.stat(p).kind == .directory, sourceLocation: sourceLocation)
            case .symlink(let p, let target):
                if let ext = fs as? Ext4FileSystem {
                    #expect(try ext.readLink(p) == target, "\(tree)\(p) target", sourceLocation: sourceLocation)
                }
            }
            checked += 1
        }
        #expect(checked > 400, sourceLocation: sourceLocation)
    }
}

/// A source that records what was read: to prove laziness, and to aim byte flips at the
/// structures a walk actually touches.
final class RecordingSource: ByteSource, @unchecked Sendable {
    // @unchecked: tests use it from one task at a time.
    let base: any ByteSource
    var reads: [(offset: UInt64, count: Int)] = []
    var size: UInt64 { base.size }
    init(_ base: any ByteSource) { self.base = base }
    func read(at offset: UInt64, count: Int) throws -> [UInt8] {
        reads.append((offset, count))
        return try base.read(at: offset, count: count)
    }
    var bytesRead: Int { reads.reduce(0) { $0 + $1.count } }
}

/// Another source with some bytes replaced: corruption without copying a whole image.
struct PatchedSource: ByteSource {
    let base: any ByteSource
    var patches: [UInt64: UInt8]
    var size: UInt64
    init(_ base: any ByteSource, patches: [UInt64: UInt8] = [:], size: UInt64? = nil) {
        self.base = base
        self.patches = patches
        self.size = min(size ?? base.size, base.size)
    }
    func read(at offset: UInt64, count: Int) throws -> [UInt8] {
        try checkRange(offset, count)
        var bytes = try base.read(at: offset, count: count)
        if !patches.isEmpty {
            for (at, value) in patches where at >= offset && at < offset + UInt64(count) { bytes[Int(at - offset)] = value }
        }
        return bytes
    }
    mutating func write(_ bytes: [UInt8], at offset: UInt64) {
        for (i, b) in bytes.enumerated() { patches[offset + UInt64(i)] = b }
    }
}

/// SplitMix64: a seeded generator so that a failing iteration can be replayed.
struct SeededRandom: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
