import Foundation
import Testing

@testable import BerthDisk

/// Finds (and if needed builds, once) the images of `fixtures/disk/build-fs-images.sh`.
enum FSReadFixtures {
    static let packageRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    static let directory: String = {
        let base = ProcessInfo.processInfo.environment["BERTH_FIXTURES"] ?? packageRoot + "/fixtures/out"
        return base + "/disk"
    }()

    /// Runs the fixture script (it is cached, so this is cheap when the images exist).
    static let built: Result<Void, FixtureError> = {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [packageRoot + "/fixtures/disk/build-fs-images.sh"]
        process.standardOutput = FileHandle.nullDevice
        let errors = Pipe()
        process.standardError = errors
        do { try process.run() } catch { return .failure(FixtureError(message: "\(error)")) }
        let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return process.terminationStatus == 0 ? .success(()) : .failure(FixtureError(message: message))
    }()

    struct FixtureError: Error, CustomStringConvertible { let message: String; var description: String { message } }

    static func image(_ name: String) throws -> FileSource {
        try built.get()
        return try FileSource(path: directory + "/" + name)
    }

    static func sourceRoot(_ name: String = "fsread-src") throws -> String {
        try built.get()
        return directory + "/" + name
    }

    /// Every path under `root` (relative, with a leading `/`), with its type.
    static func walk(_ root: String) throws -> [(path: String, type: FileAttributeType)] {
        var out: [(String, FileAttributeType)] = []
        func visit(_ rel: String) throws {
            for name in try FileManager.default.contentsOfDirectory(atPath: root + rel).sorted() {
                let path = rel + "/" + name
                let attrs = try FileManager.default.attributesOfItem(atPath: root + path)
                let type = attrs[.type] as? FileAttributeType ?? .typeUnknown
                out.append((path, type))
                if type == .typeDirectory { try visit(path) }
            }
        }
        try visit("")
        return out
    }

    static func contents(_ path: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    /// Compares every file, directory listing and symlink under `root` with `fs`.
    /// `skip` leaves out paths a format cannot hold. Returns how many files were compared.
    @discardableResult
    static func compareTree(
        _ fs: any FileSystem, root: String, skip: (String) -> Bool = { _ in false },
        nameMap: (String) -> String = { $0 }, links: Bool = true,
        linkReader: ((String) throws -> String)? = nil
    ) throws -> Int {
        var files = 0
        let all = try walk(root)
        // Lookups scan directories linearly, so in the 3000-entry directory only every 37th file
        // is read back (its listing is still compared whole).
        var perDirectory: [Substring: Int] = [:]
        for (path, _) in all { perDirectory[path[..<(path.lastIndex(of: "/") ?? path.startIndex)], default: 0] += 1 }
        for (index, (path, type)) in all.enumerated() where !skip(path) {
            let mapped = nameMap(path)
            switch type {
            case .typeRegular:
                if perDirectory[path[..<(path.lastIndex(of: "/") ?? path.startIndex)], default: 0] > 1000, index % 37 != 0 { continue }
                let info = try fs.stat(mapped)
                #expect(info.kind == .file, "\(path)")
                let want = try contents(root + path)
                #expect(info.size == UInt64(want.count), "\(path)")
                let got = try fs.read(mapped, limit: 64 << 20)
                #expect(got == want, "\(path) differs")
                files += 1
            case .typeDirectory:
                #expect(try fs.stat(mapped).kind == .directory, "\(path)")
                let want = Set(try FileManager.default.contentsOfDirectory(atPath: root + path).filter { !skip(path + "/" + $0) }.map(nameMap))
                let got = Set(try fs.list(mapped).map(nameMap))
                #expect(want.isSubset(of: got), "\(path): missing \(want.subtracting(got).sorted().prefix(5))")
            case .typeSymbolicLink where links:
                let target = try FileManager.default.destinationOfSymbolicLink(atPath: root + path)
                if let xfs = fs as? XFSFileSystem {
                    #expect(try xfs.lstat(mapped).kind == .symlink)
                    #expect(try xfs.readLink(mapped) == target)
                } else if let linkReader {
                    #expect(try linkReader(mapped) == target, "\(path)")
                }
            default: break
            }
        }
        return files
    }
}

@Suite struct XFSFixtureSupportTests {
    @Test func fixtureScriptBuildsImages() throws {
        try FSReadFixtures.built.get()
        for name in [
            "fsread-xfs-v4.img", "fsread-xfs-v5.img", "fsread-fat12.img", "fsread-fat16.img",
            "fsread-fat32.img", "fsread-rr-joliet.iso", "fsread-joliet.iso", "fsread-plain.iso", "fsread-zisofs.iso",
        ] {
            #expect(FileManager.default.fileExists(atPath: FSReadFixtures.directory + "/" + name), "\(name)")
        }
    }
}
