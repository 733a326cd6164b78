import BerthDisk

#if canImport(Glibc)
    import Glibc
#endif

/// The acceptance menus copied from Xen's pygrub examples into Fixtures/.
enum Fixture {
    static let directory: String = {
        let file = #filePath
        return String(file[..<(file.lastIndex(of: "/") ?? file.endIndex)]) + "/Fixtures"
    }()

    static func bytes(_ name: String) throws -> [UInt8] {
        let source = try FileSource(path: directory + "/" + name)
        return try source.read(at: 0, count: Int(source.size))
    }
}

/// A fresh private directory under /tmp, removed by `remove()`.
struct TemporaryDirectory {
    let path: String

    init() {
        var template = Array("/tmp/berth-boot-test.XXXXXX".utf8CString)
        path = template.withUnsafeMutableBufferPointer { buffer -> String in
            guard let base = buffer.baseAddress, let made = mkdtemp(base) else { return "/tmp/berth-boot-test.fallback" }
            return String(cString: made)
        }
    }

    func remove() {
        if let dir = opendir(path) {
            while let entry = readdir(dir) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                    String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
                }
                if name != "." && name != ".." { unlink(path + "/" + name) }
            }
            closedir(dir)
        }
        rmdir(path)
    }

    func write(_ name: String, _ bytes: [UInt8]) {
        let fd = open(path + "/" + name, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        _ = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, bytes.count) }
        close(fd)
    }

    func read(_ name: String) -> [UInt8]? {
        guard let source = try? FileSource(path: path + "/" + name) else { return nil }
        return try? source.read(at: 0, count: Int(source.size))
    }
}
